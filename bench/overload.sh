#!/usr/bin/env bash
# Overload of plate-policy (issue 13 point 3; figures in docs/security.md): runs the
# end-to-end overload test (tests/overload.rs) with a release build and longer
# phases, and prints its figures: what the server sustains with a policy of some
# milliseconds of CPU and 2 evaluation slots, then p50/p99/max latency, the share of
# requests that got the policy's failure outcome and the RSS at twice that rate,
# then the latency after the overload. The test itself asserts only outcomes (every
# answer before the 500 ms deadline plus 500 ms, verdict or failure outcome,
# verdicts again afterwards).
#
#   bash bench/overload.sh                     # 30 s of overload
#   OVERLOAD_SECONDS=120 bash bench/overload.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export OVERLOAD_SECONDS="${OVERLOAD_SECONDS:-30}"
export OVERLOAD_CALIBRATE_SECONDS="${OVERLOAD_CALIBRATE_SECONDS:-10}"
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
nice -n 5 cargo test --release -p plate-policy --test overload -j 2 -- --nocapture 2>&1 |
  grep -E '^overload|test result|panicked|FAILED'
