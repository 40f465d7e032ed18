#!/usr/bin/env bash
# The cold path on loopback: what one admission costs when requests arrive one at a
# time with idle gaps between them, as a quiet API server sends them (caches cold,
# threads asleep), rather than back to back. One keep-alive connection sends the API
# server's real defaulted 3-container Deployment (bench/reviews/deployment-defaulted.json,
# 4.4 KB with managedFields; three shipped policies match it in plate-prod) every GAP_MS,
# first to a server with the shipped policy set, then to one with an empty set, and
# prints both servers' own `decided` elapsed_us p50/p99 (the cost inside plate-policy),
# wrk's client-side latency, and their difference. docs/performance.md, "The cold path".
#
#   bash bench/paced.sh                    # 3 ms gaps, 20 s per server
#   GAP_MS=10 DURATION=30 bash bench/paced.sh
#   ROUNDS=3 bash bench/paced.sh           # shipped, empty, shipped, empty, ... in turn
#   POLICIES=my-set.yaml bash bench/paced.sh   # another set in place of the shipped one
#   BIN=/tmp/plate-policy-before bash bench/paced.sh  # another build (no cargo build)
#   REVIEWS_DIR=dir REVIEW=name bash bench/paced.sh    # another review (dir/name.json)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
GAP_MS="${GAP_MS:-3}"
DURATION="${DURATION:-20}"
ROUNDS="${ROUNDS:-1}"
REVIEW="${REVIEW:-deployment-defaulted}"

if ! command -v wrk >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
fi
rustup target add wasm32-unknown-unknown >/dev/null
# BIN: another build of the server (an A/B of two commits); else the release build.
if [ -z "${BIN:-}" ]; then
  cargo build --release -p plate-policy --quiet
  BIN=target/release/plate-policy
fi
WORK="$(mktemp -d)"
PID=""
cleanup() { [ -z "$PID" ] || kill "$PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

"$BIN" certs --out "$WORK/certs" >/dev/null

for port in 18445 19092; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use (a server from an earlier run?); stop it first" >&2
    exit 1
  fi
done

# Server-side elapsed_us of the `decided` lines in LOG: "p50 p99 count".
server_percentiles() {
  grep -ao '"elapsed_us":[0-9]*' "$1" | cut -d: -f2 | sort -n |
    awk '{v[NR]=$1} END { if (NR == 0) { print "- - 0"; exit }
      i50=int((NR-1)*0.50+0.5)+1; i99=int((NR-1)*0.99+0.5)+1; print v[i50], v[i99], NR }'
}

# One server, one paced run: "server_p50 server_p99 count client_p50_ms client_p99_ms".
run() {
  local name=$1; shift
  "$BIN" serve --dev --certs-dir "$WORK/certs" --addr 127.0.0.1:18445 --metrics-addr 127.0.0.1:19092 \
    --log-level info --log-format json "$@" >"$WORK/$name.log" 2>&1 &
  PID=$!
  until curl -sf http://127.0.0.1:19092/readyz >/dev/null; do
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/$name.log" >&2; exit 1; }
    sleep 0.01
  done
  # A short warm-up (first compilations of code paths, the pool's slots), not counted.
  REVIEWS="$REVIEW" RATE=$((1000 / GAP_MS)) CONNS=1 REVIEWS_DIR="${REVIEWS_DIR:-bench/reviews}" \
    wrk -t1 -c1 -d2s -s bench/mix.lua https://127.0.0.1:18445/validate >/dev/null
  local from; from=$(( $(stat -c %s "$WORK/$name.log") + 1 ))
  local client
  client=$(REVIEWS="$REVIEW" RATE=$((1000 / GAP_MS)) CONNS=1 REVIEWS_DIR="${REVIEWS_DIR:-bench/reviews}" \
    wrk -t1 -c1 -d"${DURATION}s" --latency -s bench/mix.lua https://127.0.0.1:18445/validate 2>&1 |
    awk 'function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
      /^ +50%/ {p50=ms($2)} /^ +99%/ {p99=ms($2)} /Non-2xx/ {bad=$4}
      END { printf "%.3f %.3f %s", p50, p99, (bad == "" ? 0 : bad) }')
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  tail -c +"$from" "$WORK/$name.log" >"$WORK/$name.measured.log"
  echo "$(server_percentiles "$WORK/$name.measured.log") $client"
}

echo "one request every ${GAP_MS} ms on one connection, ${DURATION} s per server, review $REVIEW"
printf '%-8s | %-30s | %-24s\n' "set" "server elapsed_us p50 / p99 (n)" "client p50 / p99 ms (non-2xx)"
for round in $(seq 1 "$ROUNDS"); do
  read -r s50 s99 n c50 c99 bad < <(run shipped ${POLICIES:+--policies "$POLICIES"})
  printf '%-8s | %6s / %-6s (%s) %*s | %s / %s (%s)\n' shipped "$s50" "$s99" "$n" 6 "" "$c50" "$c99" "$bad"
  read -r e50 e99 m d50 d99 ebad < <(run empty --policies bench/empty-set.yaml)
  printf '%-8s | %6s / %-6s (%s) %*s | %s / %s (%s)\n' empty "$e50" "$e99" "$m" 6 "" "$d50" "$d99" "$ebad"
  echo "round $round: the policies add $((s50 - e50)) us p50 inside the server, $(awk -v a="$c50" -v b="$d50" 'BEGIN{printf "%.3f", a-b}') ms p50 at the client"
done
