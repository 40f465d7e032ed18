#!/usr/bin/env bash
# Wall time of the one-shot commands a pipeline runs (docs/performance.md), with the
# release binary and hyperfine (Debian package, installed if missing): medians over
# RUNS runs (default 10) of
#   check -f examples/plate-prod.yaml --env prod
#   test policies
#   check over a directory of 500 manifests (objects per second)
# Every run starts cold (a new process); built-in policies load precompiled, and
# policy files from the module cache (disabled here: nothing but built-ins is used).
#
#   bash bench/cli.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS="${RUNS:-10}"

if ! command -v hyperfine >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq hyperfine >/dev/null
fi
rustup target add wasm32-unknown-unknown >/dev/null
cargo build --release -p plate-policy --quiet
BIN="$PWD/target/release/plate-policy"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# 500 manifests: the example file's objects, renamed, in nested directories.
for i in $(seq 1 125); do
  mkdir -p "$WORK/many/team-$((i % 10))"
  sed -e "s/name: plate-/name: plate-$i-/" -e "s/name: fe-web-prod/name: fe-web-prod-$i/" \
    examples/plate-prod.yaml > "$WORK/many/team-$((i % 10))/app-$i.yaml"
done
# check exits 1 (the examples are denied); only 2, bad input, is a failure here.
objects=$({ "$BIN" check -f "$WORK/many" --env prod -o json || [ $? -eq 1 ]; } \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["summary"]["objects"])')

median() { # NAME COMMAND...: prints the median wall time in ms
  local name=$1; shift
  hyperfine --runs "$RUNS" --warmup 1 -N -i --export-json "$WORK/$name.json" "$*" >/dev/null
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.1f" % (r["median"]*1000))' "$WORK/$name.json"
}

one=$(median one "$BIN check -f examples/plate-prod.yaml --env prod --no-module-cache")
suites=$(median suites "$BIN test policies --no-module-cache")
many=$(median many "$BIN check -f $WORK/many --env prod --no-module-cache")
rate=$(python3 -c "print(round($objects / ($many / 1000)))")

echo "median of $RUNS runs, release binary ($(nproc) cores):"
echo "  check -f examples/plate-prod.yaml --env prod   ${one} ms"
echo "  test policies                                  ${suites} ms"
echo "  check over $objects objects in 125 files        ${many} ms  ($rate objects/s)"
