#!/usr/bin/env bash
# TCP segments ("packets") per idle minute per client and per delivered message, for
# each transport, counted by the kernel. Each transport is measured in a network
# namespace of its own (`unshare --net`: its own loopback, its own /proc/net/snmp), so
# that no other traffic on the machine is counted. A window's packets are the
# difference between a long and a short run of the same bench row, so that connecting
# and disconnecting cancel out.
#
#   scripts/packets.sh [PUSHLAB_BINARY] > docs/bench/packets.md   # as root; ~6 minutes
#
# docs/comparison.md quotes the result. The four transports run at once, one namespace
# each; the load is light (100 clients each, mostly idle).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=$(realpath "${1:-target/release/pushlab}")
CLIENTS=100
IDLE_SECS=300          # a multiple of every period: 25 s pings, 15 s keep-alives, 30 s holds
MESSAGES_LONG=40 MESSAGES_SHORT=10

# Runs `pushlab bench --url … ARGS` against a fresh server in a fresh namespace and
# prints the TCP segments the run took.
segments() {
  unshare --net bash -c '
    set -euo pipefail
    ip link set lo up
    "$0" --addr 127.0.0.1:18080 --log error --publish-rate 0 --max-connections 0 \
         --max-connections-per-ip 0 >/dev/null & pid=$!
    for _ in $(seq 100); do curl -sf http://127.0.0.1:18080/healthz >/dev/null && break; sleep 0.1; done
    before=$(awk "/^Tcp:/ { if (++n == 2) print \$12 }" /proc/net/snmp)
    "$0" bench --url http://127.0.0.1:18080 --server-pid "$pid" "$@" >/dev/null 2>&1
    after=$(awk "/^Tcp:/ { if (++n == 2) print \$12 }" /proc/net/snmp)
    kill "$pid"; wait "$pid" || true
    echo $((after - before))
  ' "$BIN" "$@"
}

measure() {
  local transport=$1
  local idle_long idle_short fan_long fan_short
  idle_long=$(segments --workloads idle --transports "$transport" --idle-clients $CLIENTS --idle-secs $IDLE_SECS)
  idle_short=$(segments --workloads idle --transports "$transport" --idle-clients $CLIENTS --idle-secs 0)
  fan_long=$(segments --workloads fanout --transports "$transport" --fanout-clients $CLIENTS --messages $MESSAGES_LONG)
  fan_short=$(segments --workloads fanout --transports "$transport" --fanout-clients $CLIENTS --messages $MESSAGES_SHORT)
  awk -v t="$transport" -v il="$idle_long" -v is="$idle_short" -v fl="$fan_long" -v fs="$fan_short" \
      -v n=$CLIENTS -v secs=$IDLE_SECS -v m=$((MESSAGES_LONG - MESSAGES_SHORT)) 'BEGIN {
    printf "| %s | %d − %d | %.1f | %d − %d | %.2f |\n", t, il, is, (il - is) / n / (secs / 60), fl, fs, (fl - fs) / (n * m)
  }'
}

cat <<EOF
# TCP segments per transport

Counted by \`scripts/packets.sh\` ($(date -u +%Y-%m-%d), $(nproc) CPUs, Linux $(uname -r), $("$BIN" --version),
$(basename "$(dirname "$BIN")") build; segment counts do not depend on the build):
each transport in its own network namespace, $CLIENTS clients, the bench's own clients
(\`pushlab bench --url\`). Idle: a $IDLE_SECS s window minus a 0 s one. Per message:
$MESSAGES_LONG messages at 1 msg/s minus $MESSAGES_SHORT (the publisher's own POSTs are
included: about 4 segments per message, 0.04 per delivery at $CLIENTS clients).

| transport | idle run segments (${IDLE_SECS} s − 0 s) | segments / client / idle minute | fan-out run segments ($MESSAGES_LONG − $MESSAGES_SHORT messages) | segments / delivered message |
|---|---|---|---|---|
EOF
for transport in short-poll long-poll sse websocket; do
  measure "$transport" > "/tmp/packets.$$.$transport" &
done
wait
for transport in short-poll long-poll sse websocket; do
  cat "/tmp/packets.$$.$transport"
  rm -f "/tmp/packets.$$.$transport"
done
