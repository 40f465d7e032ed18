#!/usr/bin/env bash
# Bounded fuzzing of the parsers that read untrusted input (issue 7; docs/security.md):
# the AdmissionReview decoding and response path, the SDK's image-reference parser and
# the policy-set parser. `cargo fuzz` needs a nightly toolchain, so this drives the
# property tests of tests/properties.rs (proptest, stable Rust) with a time budget and
# a large case count instead. Not part of .ci/run: CI runs the same properties with
# small case counts, plus every input kept in tests/corpus/.
#
#   bash bench/fuzz.sh                         # every target, 300 s each
#   FUZZ_SECONDS=60 bash bench/fuzz.sh image   # one target (admission, image, policy-set)
#
# FUZZ_SECONDS: wall time per target (its properties run side by side for that long).
# PROPTEST_CASES: most cases one property runs (default 1,000,000: time is the bound).
# (Not SECONDS: bash sets that variable itself.)
#
# Prints, per property and per target, the cases run, the time taken, and how many
# inputs the parser accepted or rejected. A failing input is shrunk, printed, and
# saved under target/tmp/fuzz-found/TARGET/: copy it into tests/corpus/TARGET/ (and
# fix the bug) so CI keeps checking it.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export FUZZ_SECONDS="${FUZZ_SECONDS:-300}"
export PROPTEST_CASES="${PROPTEST_CASES:-1000000}"
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(admission image policy-set)

rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
cargo test -p plate-policy --test properties --no-run --quiet || exit 1

LOG_DIR="$(mktemp -d)"
trap 'rm -rf "$LOG_DIR"' EXIT
failed=0
printf 'fuzzing %s for %s s each (at most %s cases per property)\n' "${TARGETS[*]}" "$FUZZ_SECONDS" "$PROPTEST_CASES"
for target in "${TARGETS[@]}"; do
  filter="${target//-/_}_"
  log="$LOG_DIR/$target.log"
  start=$(date +%s)
  # The harness stops each property at the budget; `timeout` only guards a hang.
  timeout --signal=KILL "$((FUZZ_SECONDS + 300))" \
    cargo test -p plate-policy --test properties --quiet -- \
      --nocapture --test-threads 4 --skip corpus --skip shipped "$filter" >"$log" 2>&1
  status=$?
  end=$(date +%s)
  echo
  echo "== $target: $((end - start)) s wall, exit $status"
  # (libtest's progress dots may precede a line: match anywhere.)
  grep -o 'property .*' "$log" | sed 's/^/  /'
  grep -o 'property .*' "$log" | awk -v t="$target" '{ n += $3; if ($6 + 0 > secs) secs = $6 + 0 }
    END { if (NR) printf "  %s total: %d cases in %.0f s\n", t, n, secs }'
  if [ "$status" -ne 0 ]; then
    failed=1
    echo "  FAILED:"
    grep -E "panicked|minimal input|saved to|timeout|Killed" "$log" | head -20 | sed 's/^/    /'
    cp "$log" "target/tmp/fuzz-$target.log" 2>/dev/null && echo "  full log: target/tmp/fuzz-$target.log"
  fi
done
exit "$failed"
