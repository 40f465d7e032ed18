#!/usr/bin/env bash
# Load test of plate-policy (docs/performance.md): builds the release binary, starts it
# in dev mode twice on loopback (the shipped policy set, and an empty one: the limit
# of the HTTPS path itself), drives keep-alive POST /validate traffic with wrk at
# concurrency 1, 4, 16 and 64, then a fixed rate at half the measured maximum with
# wrk paced by bench/mix.lua, and prints throughput and latency per level, cold start and RSS.
#
#   bash bench/load.sh            # DURATION=10 (seconds per level) by default
#   BIN=/tmp/plate-policy-before bash bench/load.sh   # another build (no cargo build)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DURATION="${DURATION:-10}"
LEVELS="${LEVELS:-1 4 16 64}"

for tool in wrk; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
  fi
done
rustup target add wasm32-unknown-unknown >/dev/null
# BIN: another build of the server (an A/B of two commits); else the release build.
if [ -z "${BIN:-}" ]; then
  cargo build --release -p plate-policy --quiet
  BIN=target/release/plate-policy
fi
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT


rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
now_ms() { date +%s%3N; }

# start NAME PORT METRICS_PORT [ARGS...]: starts a server, waits for /readyz, prints
# cold start; leaves its pid in STARTED (not echoed: a subshell would lose PIDS).
start() {
  local name=$1 port=$2 mport=$3; shift 3
  local t0; t0=$(now_ms)
  "$BIN" serve --dev --certs-dir "$WORK/certs" --addr "127.0.0.1:$port" --metrics-addr "127.0.0.1:$mport" \
    --log-level warn "$@" >"$WORK/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  until curl -sf "http://127.0.0.1:$mport/readyz" >/dev/null; do
    kill -0 "$pid" 2>/dev/null || { cat "$WORK/$name.log"; exit 1; }
    sleep 0.005
  done
  local t1; t1=$(now_ms)
  echo "$name: ready $((t1 - t0)) ms after start, RSS idle $(( $(rss_kib "$pid") / 1024 )) MiB (pid $pid)"
  STARTED=$pid
}

for port in 18443 18444 19090 19091; do
  if curl -s "http://127.0.0.1:$port/" >/dev/null 2>&1 || (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use (a server from an earlier run?); stop it first" >&2
    exit 1
  fi
done

# Certificates first, so neither server's cold start includes creating them.
"$BIN" certs --out "$WORK/certs" >/dev/null

# Cold start with an empty module cache (everything compiled), then a restart that
# reuses it (what a restarted container does with the chart's emptyDir).
start cold 18443 19090 --module-cache "$WORK/module-cache"; kill "$STARTED"; wait "$STARTED" 2>/dev/null || true
start shipped 18443 19090 --module-cache "$WORK/module-cache"; POLICY_PID=$STARTED
start empty 18444 19091 --policies bench/empty-set.yaml; EMPTY_PID=$STARTED

run_wrk() { # URL CONCURRENCY -> "rps p50 p90 p99" (ms)
  local c=$2 threads=$(( $2 < 2 ? 1 : 2 ))
  REVIEWS_DIR=bench/reviews wrk -t"$threads" -c"$c" -d"${DURATION}s" --latency -s bench/mix.lua "$1" 2>&1 |
    awk '
      function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
      /^ +50%/ {p50=ms($2)} /^ +90%/ {p90=ms($2)} /^ +99%/ {p99=ms($2)}
      /Requests\/sec/ {rps=$2}
      /Non-2xx/ {bad=$4}
      END { printf "%.0f %.3f %.3f %.3f %s\n", rps, p50, p90, p99, (bad==""?0:bad) }'
}

printf '\n%-6s | %-44s | %-44s | %s\n' "conc" "shipped policies: req/s  p50  p90  p99 (ms)" "empty policy set: req/s  p50  p90  p99 (ms)" "ratio"
declare -A MAX
for c in $LEVELS; do
  read -r r1 a1 b1 c1 e1 < <(run_wrk https://127.0.0.1:18443/validate "$c")
  read -r r2 a2 b2 c2 e2 < <(run_wrk https://127.0.0.1:18444/validate "$c")
  MAX[$c]=$r1
  printf '%-6s | %8s  %7s %7s %7s  non-2xx %-4s | %8s  %7s %7s %7s  non-2xx %-4s | %s\n' \
    "$c" "$r1" "$a1" "$b1" "$c1" "$e1" "$r2" "$a2" "$b2" "$c2" "$e2" "$(awk -v a="$r1" -v b="$r2" 'BEGIN{printf "%.0f%%", 100*a/b}')"
done
echo "RSS under load: shipped $(( $(rss_kib "$POLICY_PID") / 1024 )) MiB, empty $(( $(rss_kib "$EMPTY_PID") / 1024 )) MiB"

best=0; for c in "${!MAX[@]}"; do [ "${MAX[$c]}" -gt "$best" ] && best=${MAX[$c]}; done
half=$(( best / 2 )); conns=16
echo
echo "fixed rate at half the maximum: $half req/s over $conns connections (wrk, paced by mix.lua's delay()):"
read -r r a b c e < <(RATE=$half CONNS=$conns run_wrk https://127.0.0.1:18443/validate "$conns")
echo "  achieved $r req/s  p50 $a ms  p90 $b ms  p99 $c ms  non-2xx $e"
