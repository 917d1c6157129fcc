#!/usr/bin/env bash
# The one command that sets up and runs every pushlab test on a fresh Debian machine:
# installs what is missing, checks formatting and lints, runs the Rust tests, then the
# browser tests. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# Debian packages the tests drive for real: Chromium for the browser tests, Redis and
# nginx for the several-instance tests (tests/scale_*.rs), curl as an independent
# HTTP/2 client (tests/http2.rs).
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v curl >/dev/null || need+=(curl)
command -v redis-server >/dev/null || need+=(redis-server)
command -v nginx >/dev/null || need+=(nginx)
# Chinese glyphs for the page's 中文 and the screenshots the browser tests take.
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need+=(fonts-wqy-microhei)
if [ ${#need[@]} -gt 0 ]; then
  step "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

step "the server library builds without the load generator (feature bench off)"
cargo clippy --lib --no-default-features --locked -- -D warnings

step "Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast
  cargo test --locked --doc
else
  cargo test --locked
fi

step "smoke bench (every transport, every message exactly once)"
cargo run --locked --quiet --bin pushlab -- bench --smoke

if [ -f e2e/package.json ]; then
  step "browser tests (Chromium via playwright-core)"
  cargo build --locked --bin pushlab
  (cd e2e && npm ci --no-audit --no-fund && PUSHLAB_BIN="$PWD/../target/debug/pushlab" npm test)
fi
