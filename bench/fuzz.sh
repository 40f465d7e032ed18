#!/usr/bin/env bash
# Coverage-guided fuzzing of plate-policy (issue 13; results in docs/security.md):
# cargo-fuzz (libFuzzer with AddressSanitizer) on the targets in fuzz/, one after the
# other, each for a time budget.
#
#   bash bench/fuzz.sh                 # every target, 600 s each
#   bash bench/fuzz.sh 60 image        # 60 s, only the image target
#
# Targets (fuzz/src/lib.rs says what each checks): admission manifest policy_set
# image verdict.
#
# cargo-fuzz is installed if missing (`cargo install cargo-fuzz`). It needs nightly
# compiler features: with a nightly toolchain installed this uses `cargo +nightly`,
# otherwise the stable compiler with RUSTC_BOOTSTRAP=1, set for this build only
# (never for the normal build). The fuzz crate is its own workspace with its own
# target directory (fuzz/target), so the normal build never sees it.
#
# Each target starts from its corpus, fuzz/corpus/TARGET (kept in the repository:
# tests/properties.rs runs every file of it on stable), and adds what raises
# coverage there; afterwards the corpus is minimised in place by edge coverage
# (MINIMIZE=0 skips that; inputs with names of their own, such as crash-* of fixed
# findings, are regression tests and kept as they are). A crash stops the target: libFuzzer saves the input in
# fuzz/artifacts/TARGET/ and this script says so; fix the bug and copy the input
# into fuzz/corpus/TARGET/ so the regression test keeps it.
#
# Prints per target: executions, time, coverage (edges, libFuzzer's `cov:`), corpus
# size, and whether it found a crash. Runs under `nice -n 10`. Exit 1 on a crash.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUDGET="${1:-600}"
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(admission manifest policy_set image verdict)
MINIMIZE="${MINIMIZE:-1}"
case "$BUDGET" in
  '' | *[!0-9]*) echo "usage: bench/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install --locked cargo-fuzz || exit 1
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  CARGO=(cargo +nightly)
  # The built-in policies are compiled by a nested cargo of the same toolchain.
  rustup target add --toolchain nightly wasm32-unknown-unknown >/dev/null || exit 1
  toolchain=nightly
else
  CARGO=(env RUSTC_BOOTSTRAP=1 cargo)
  toolchain="stable with RUSTC_BOOTSTRAP=1"
fi
# The nested policy build gets its own target directory: sharing the main one
# would rebuild the policies at every switch of toolchain.
export PLATE_POLICY_WASM_TARGET_DIR="$PWD/fuzz/target/policies-wasm"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
# Where cargo fuzz puts the target binaries (the merge runs them directly).
HOST=$(rustc -vV | sed -n 's/^host: //p')

# Inputs longer than these do not help: the admission target's body limit is 8 KiB
# (twice that reaches the over-limit path), the others read small documents.
max_len() {
  case "$1" in
    admission) echo 16384 ;;
    manifest | policy_set) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

echo "fuzzing ${TARGETS[*]} for $BUDGET s each ($toolchain)"
if ! (cd fuzz && nice -n 10 "${CARGO[@]}" fuzz build --release); then
  echo "building the fuzz targets failed" >&2
  exit 1
fi
LOG_DIR="$(mktemp -d)"
trap 'rm -rf "$LOG_DIR"' EXIT
failed=0
for target in "${TARGETS[@]}"; do
  mkdir -p "fuzz/corpus/$target"
  log="$LOG_DIR/$target.log"
  before=$(find "fuzz/corpus/$target" -type f | wc -l)
  start=$(date +%s)
  (cd fuzz && nice -n 10 "${CARGO[@]}" fuzz run --release "$target" "corpus/$target" -- \
    -max_total_time="$BUDGET" -max_len="$(max_len "$target")" -timeout=20 \
    -rss_limit_mb=4096 -print_final_stats=1) >"$log" 2>&1
  status=$?
  end=$(date +%s)
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
  ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
  after=$(find "fuzz/corpus/$target" -type f | wc -l)
  echo
  echo "== $target: $((end - start)) s, ${runs:-?} executions, cov ${cov:-?} edges (ft ${ft:-?}), corpus $before -> $after files, exit $status"
  if [ "$status" -ne 0 ]; then
    failed=1
    echo "  FOUND (or failed):"
    grep -E "panicked|ERROR: |SUMMARY|Test unit written|artifact_prefix" "$log" | head -12 | sed 's/^/    /'
    mkdir -p target/tmp && cp "$log" "target/tmp/fuzz-$target.log" && echo "  full log: target/tmp/fuzz-$target.log"
    continue
  fi
  if [ "$MINIMIZE" = 1 ]; then
    # Minimised by edge coverage: libFuzzer's merge with set cover and hit counters
    # off keeps a small set of inputs that reaches every edge the corpus reaches
    # (`cargo fuzz cmin` keeps every input with a new hit-count bucket too: five times
    # the files, little more code). Inputs not named by their SHA-1 as libFuzzer names
    # what it finds (crash-*, timeout-*, oom-* of fixed findings, seeds such as
    # `empty`) are regression tests: the merge would drop them when their edges are
    # elsewhere, so they are set aside and put back.
    kept_dir="$LOG_DIR/kept-$target"
    merged_dir="$LOG_DIR/merged-$target"
    mkdir -p "$kept_dir" "$merged_dir"
    find "fuzz/corpus/$target" -maxdepth 1 -type f -regextype posix-extended \
      ! -regex '.*/[0-9a-f]{40}' -exec mv -t "$kept_dir" {} +
    nice -n 10 "fuzz/target/$HOST/release/$target" -merge=1 -set_cover_merge=1 -use_counters=0 \
      -use_value_profile=0 -max_len="$(max_len "$target")" -timeout=20 -rss_limit_mb=4096 \
      "$merged_dir" "fuzz/corpus/$target" >"$log.cmin" 2>&1
    cmin_status=$?
    if [ "$cmin_status" -eq 0 ] && [ -n "$(ls -A "$merged_dir")" ]; then
      find "fuzz/corpus/$target" -maxdepth 1 -type f -delete
      mv -t "fuzz/corpus/$target" "$merged_dir"/*
    else
      [ "$cmin_status" -ne 0 ] || cmin_status=1
    fi
    mv -t "fuzz/corpus/$target" "$kept_dir"/* 2>/dev/null || true
    if [ "$cmin_status" -ne 0 ]; then
      failed=1
      echo "  minimising failed (exit $cmin_status), the corpus is left as it was:"; tail -5 "$log.cmin" | sed 's/^/    /'
    fi
    kept=$(find "fuzz/corpus/$target" -type f | wc -l)
    bytes=$(find "fuzz/corpus/$target" -type f -printf '%s\n' | awk '{s += $1} END {printf "%.0f", s / 1024}')
    reached=$(nice -n 10 "fuzz/target/$HOST/release/$target" -runs=0 -max_len="$(max_len "$target")" \
      -rss_limit_mb=4096 "fuzz/corpus/$target" 2>&1 | grep -oE 'INITED cov: [0-9]+' | grep -oE '[0-9]+$')
    echo "  minimised: $kept files, ${bytes} KiB of inputs, reaching cov ${reached:-?} edges"
  fi
done
exit "$failed"
