#!/usr/bin/env bash
# Memory after a flood (docs/reliability.md): the resident memory of a release pushlab
# before, at its peak while N SSE streams are connected, and after they have all left,
# for several floods in a row. The streams come from `pushlab bench` (its idle
# workload), on loopback. A measurement, not a test: run it by hand.
#
#   bash scripts/memory-after-flood.sh [N=3000] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-3000}
rounds=${2:-3}

cargo build --release --quiet --bin pushlab
bin=target/release/pushlab
log=$(mktemp)
"$bin" --addr 127.0.0.1:0 --max-connections-per-ip 0 --max-connections 0 --log warn >"$log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do
  url=$(grep -o 'http://[0-9.:]*' "$log" || true)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "pushlab did not start" >&2; exit 1; }

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
mb() { echo "$(($1 / 1024)) MB"; }
open_streams() {
  curl -s "$url/metrics" | awk '/^pushlab_open_connections\{transport="sse"\}/ {print $2}'
}

echo "pushlab $url (pid $pid), $n SSE streams per flood"
echo "before any flood: $(mb "$(rss_kb)")"
for round in $(seq "$rounds"); do
  "$bin" bench --url "$url" --server-pid "$pid" --transports sse --workloads idle \
    --idle-clients "$n" --idle-secs 3 >/dev/null &
  bench=$!
  peak=0
  while kill -0 "$bench" 2>/dev/null; do
    now=$(rss_kb)
    [ "$now" -gt "$peak" ] && peak=$now
    sleep 0.1
  done
  wait "$bench"
  for _ in $(seq 100); do
    [ "$(open_streams)" = 0 ] && break
    sleep 0.1
  done
  sleep 1
  echo "flood $round: peak $(mb "$peak"), 1 s after the last stream left $(mb "$(rss_kb)")"
done
sleep 10
echo "10 s later: $(mb "$(rss_kb)")"
