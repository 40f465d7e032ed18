#!/usr/bin/env bash
# Concurrency soak of plate-policy (issue 7; figures in docs/security.md): a bounded,
# moderate load with policy-set reloads and certificate rotations during it.
#
#   bash bench/soak.sh                 # DURATION=3600 (seconds)
#   DURATION=240 bash bench/soak.sh    # a short run
#
# Builds the release binary and starts `serve --dev` on 127.0.0.1:28443 (metrics on
# :29090; PORT and METRICS_PORT change them) with a copy of policies/policies.yaml and a TLS pair given as files in a
# Secret-like directory (tls.crt -> ..data/tls.crt, ..data -> a versioned directory),
# then for DURATION seconds:
#   - wrk drives keep-alive POST /validate traffic (bench/mix.lua's review mix) over
#     CONNECTIONS connections, each pausing DELAY_MS between requests;
#   - every RELOAD_EVERY s (60) the policy-set file is rewritten atomically (rename),
#     alternating require-resources between mode warn and enforce;
#   - every ROTATE_EVERY s (90) the certificate is rotated: a new CA and pair, made
#     live by swapping the ..data symlink (as kubelet does for a Secret volume), and
#     the script waits until new handshakes get the new certificate, then makes one
#     more trusting both the old and the new CA (old first), as a client holding a
#     CA bundle during a rotation does;
#   - every CURL_EVERY s (5) a fresh connection (curl, trusting the CA in use) must
#     get a 200 answer: wrk keeps its connections, so this is what sees the rotation;
#   - every RSS_EVERY s (10) the server's RSS is sampled (/proc/PID/status VmRSS).
# Every answer is judged (bench/soak.lua): the verdict its review must get (allowed or
# denied, the policy that denies or warns named; for the Deployment without resources,
# either verdict of require-resources' mode), so a wrong 200 is a failure too.
# At the end it asserts: every answer the verdict its review must get, no non-2xx
# answer and no socket error in wrk's report, no failed fresh connection (with the
# two-CA bundle too), every reload and rotation taken (reload counters, no failures),
# the server still alive, and the RSS at the end no more than 10% above the RSS after
# the warm-up (the first WARMUP s, 60). Prints the figures; exits 1 if any assertion
# fails. Not part of .ci/run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DURATION="${DURATION:-3600}"
CONNECTIONS="${CONNECTIONS:-8}"
DELAY_MS="${DELAY_MS:-20}"
RELOAD_EVERY="${RELOAD_EVERY:-60}"
ROTATE_EVERY="${ROTATE_EVERY:-90}"
CURL_EVERY="${CURL_EVERY:-5}"
RSS_EVERY="${RSS_EVERY:-10}"
WARMUP="${WARMUP:-60}"
PORT="${PORT:-28443}"
METRICS_PORT="${METRICS_PORT:-29090}"
ADDR="127.0.0.1:$PORT"
METRICS="127.0.0.1:$METRICS_PORT"
URL="https://localhost:$PORT/validate"

if [ "$DURATION" -le "$WARMUP" ]; then
  echo "DURATION ($DURATION s) must exceed WARMUP ($WARMUP s)" >&2
  exit 2
fi
for tool in wrk curl; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk curl >/dev/null
  fi
done
rustup target add wasm32-unknown-unknown >/dev/null
cargo build --release -p plate-policy --quiet
BIN="$PWD/target/release/plate-policy"

WORK="$(mktemp -d)"
SERVER_PID=""; WRK_PID=""; CURL_PID=""
cleanup() {
  for p in "$CURL_PID" "$WRK_PID" "$SERVER_PID"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
now() { date +%s; }
log() { printf '[%4ds] %s\n' "$(( $(now) - START ))" "$*"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0; }
# What the RSS is made of (KiB): anonymous memory (heap, stacks, the instance pool's
# resident pages), file pages (the binary's code and the libraries, clean and shared)
# and shared memory (wasmtime's copy-on-write memory images). A leak grows the first.
rss_parts() { awk '/^RssAnon/ {a=$2} /^RssFile/ {f=$2} /^RssShmem/ {s=$2} END {print a + 0, f + 0, s + 0}' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0 0 0; }

# --- The Secret-like TLS directory ------------------------------------------------
TLS="$WORK/tls"
mkdir -p "$TLS"
GENERATION=0
# new_pair: writes a new CA and serving pair into $TLS/..gen-N; echoes N.
new_pair() {
  GENERATION=$((GENERATION + 1))
  "$BIN" certs --out "$WORK/pairs/$GENERATION" --dns localhost --dns 127.0.0.1 >/dev/null
  mkdir -p "$TLS/..gen-$GENERATION"
  cp "$WORK/pairs/$GENERATION/tls.crt" "$WORK/pairs/$GENERATION/tls.key" "$TLS/..gen-$GENERATION/"
}
# activate N: swaps ..data to ..gen-N atomically (rename over the old symlink).
activate() {
  ln -sfn "..gen-$1" "$TLS/..data.tmp"
  mv -T "$TLS/..data.tmp" "$TLS/..data"
}
# trust FILES...: the CA bundle fresh connections use, replaced atomically.
trust() {
  cat "$@" > "$WORK/trust.pem.tmp"
  mv "$WORK/trust.pem.tmp" "$WORK/trust.pem"
}
new_pair
activate 1
ln -s ..data/tls.crt "$TLS/tls.crt"
ln -s ..data/tls.key "$TLS/tls.key"
trust "$WORK/pairs/1/ca.crt"

# --- The policy set and its two variants ---------------------------------------------
mkdir -p "$WORK/policies"
cp policies/policies.yaml "$WORK/policies.warn.yaml"
awk '/- name: require-resources/ {inside=1}
     inside && /^ *mode: warn/ {sub(/mode: warn/, "mode: enforce"); inside=0}
     {print}' policies/policies.yaml > "$WORK/policies.enforce.yaml"
if cmp -s "$WORK/policies.warn.yaml" "$WORK/policies.enforce.yaml"; then
  echo "could not make the enforce variant of policies/policies.yaml" >&2
  exit 2
fi
cp "$WORK/policies.warn.yaml" "$WORK/policies/policies.yaml"
MODE=warn
# rewrite: the other variant, written beside the file and renamed over it.
rewrite() {
  if [ "$MODE" = warn ]; then MODE=enforce; else MODE=warn; fi
  cp "$WORK/policies.$MODE.yaml" "$WORK/policies/.policies.yaml.tmp"
  mv "$WORK/policies/.policies.yaml.tmp" "$WORK/policies/policies.yaml"
}

# --- Server ---------------------------------------------------------------------------
# Another server on these ports would answer in our place (or be killed by its owner
# with ours): refuse to start.
for port in "$PORT" "$METRICS_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "127.0.0.1:$port is in use: set PORT and METRICS_PORT" >&2
    exit 2
  fi
done
"$BIN" serve --dev --policies "$WORK/policies/policies.yaml" --certs-dir "$WORK/certs" \
  --tls-cert "$TLS/tls.crt" --tls-key "$TLS/tls.key" \
  --addr "$ADDR" --metrics-addr "$METRICS" --log-level warn >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 600); do
  curl -sf "http://$METRICS/readyz" >/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log"; exit 1; }
  sleep 0.1
done
curl -sf "http://$METRICS/readyz" >/dev/null || { echo "server not ready" >&2; cat "$WORK/server.log"; exit 1; }

# One fresh connection: POST a review, expect 200 and the uid echoed. CA: $1 (default
# the current trust bundle).
fresh_request() {
  local ca="${1:-$WORK/trust.pem}" out
  out=$(curl -sS --max-time 10 --cacert "$ca" -H 'Content-Type: application/json' \
    --data-binary @bench/reviews/pod-denied.json -w '\n%{http_code}' "$URL" 2>&1) || { echo "$out"; return 1; }
  # The verdict too: denied by no-latest-tag, for this review's uid.
  [ "${out##*$'\n'}" = 200 ] && grep -q '"uid":"b0000000-0000-4000-8000-000000000002"' <<<"$out" &&
    grep -q '"allowed":false' <<<"$out" && grep -q '"message":"\[no-latest-tag\]' <<<"$out" || { echo "$out"; return 1; }
}

START=$(now)
echo "soak: $DURATION s, $CONNECTIONS connections pausing $DELAY_MS ms, reload every $RELOAD_EVERY s, rotation every $ROTATE_EVERY s (server pid $SERVER_PID)"

# --- Load -----------------------------------------------------------------------------
REVIEWS_DIR=bench/reviews EXTRA_REVIEWS=deployment-no-resources DELAY_MS="$DELAY_MS" wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s \
  --latency -s bench/soak.lua "$URL" >"$WORK/wrk.txt" 2>&1 &
WRK_PID=$!

# --- Fresh connections every CURL_EVERY s ------------------------------------------------
(
  ok=0; bad=0
  while [ $(( $(now) - START )) -lt "$DURATION" ]; do
    if msg=$(fresh_request); then ok=$((ok + 1)); else
      bad=$((bad + 1)); echo "[$(( $(now) - START ))s] fresh connection failed: $msg" >>"$WORK/curl-errors.txt"
    fi
    echo "$ok $bad" >"$WORK/curl-count.txt"
    sleep "$CURL_EVERY"
  done
) &
CURL_PID=$!

# --- Reloads, rotations, RSS ----------------------------------------------------------------
: >"$WORK/rss.txt"
next_rss=0; next_reload=$RELOAD_EVERY; next_rotate=$ROTATE_EVERY
reloads=0; rotations=0; slowest_pickup=0; rotation_failures=0; bundle_failures=0
while :; do
  t=$(( $(now) - START ))
  [ "$t" -ge "$DURATION" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { log "the server is gone"; break; }
  if [ "$t" -ge "$next_rss" ]; then
    echo "$t $(rss_kib) $(rss_parts)" >>"$WORK/rss.txt"
    next_rss=$((next_rss + RSS_EVERY))
  fi
  if [ "$t" -ge "$next_reload" ]; then
    rewrite
    reloads=$((reloads + 1))
    log "policy set rewritten (require-resources: $MODE)"
    next_reload=$((next_reload + RELOAD_EVERY))
  fi
  if [ "$t" -ge "$next_rotate" ]; then
    old=$GENERATION
    new_pair
    # Trust both while the server switches, then only the new CA once it serves it.
    trust "$WORK/pairs/$old/ca.crt" "$WORK/pairs/$GENERATION/ca.crt"
    t0=$(date +%s%3N)
    activate "$GENERATION"
    picked=0
    for _ in $(seq 1 200); do
      if fresh_request "$WORK/pairs/$GENERATION/ca.crt" >/dev/null; then picked=1; break; fi
      sleep 0.05
    done
    t1=$(date +%s%3N)
    if [ "$picked" = 1 ]; then
      # The new pair served, a client still trusting the old CA and the new one (a CA
      # bundle during a rotation, old first) must reach it too: the periodic curl hits
      # this window only by chance.
      if ! msg=$(fresh_request "$WORK/trust.pem"); then
        bundle_failures=$((bundle_failures + 1))
        echo "[$(( $(now) - START ))s] fresh connection trusting the old and new CA failed: $msg" >>"$WORK/bundle-errors.txt"
      fi
      trust "$WORK/pairs/$GENERATION/ca.crt"
      rm -rf "$TLS/..gen-$old"
      rotations=$((rotations + 1))
      [ $((t1 - t0)) -gt "$slowest_pickup" ] && slowest_pickup=$((t1 - t0))
      log "certificate rotated to pair $GENERATION (served after $((t1 - t0)) ms)"
    else
      rotation_failures=$((rotation_failures + 1))
      log "certificate pair $GENERATION was not served within 10 s"
    fi
    next_rotate=$((next_rotate + ROTATE_EVERY))
  fi
  sleep 1
done
kill -0 "$SERVER_PID" 2>/dev/null && echo "$(( $(now) - START )) $(rss_kib) $(rss_parts)" >>"$WORK/rss.txt"

wait "$WRK_PID" || true; WRK_PID=""
wait "$CURL_PID" || true; CURL_PID=""
alive=yes; exit_status=""
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  alive=no
  wait "$SERVER_PID" && exit_status=0 || exit_status=$?
  SERVER_PID=""
fi
metrics=$(curl -sf "http://$METRICS/metrics" || true)
metric() { # NAME [LABEL="VALUE"...] -> the sum of the series with all those labels
  local name=$1; shift
  awk -v name="$name" -v filters="$*" '
    BEGIN { n = split(filters, want, " ") }
    $1 ~ "^" name "({|$)" { for (i = 1; i <= n; i++) if (!index($1, want[i])) next; s += $2 }
    END { printf "%d", s }' <<<"$metrics"
}

# --- Figures and verdict ------------------------------------------------------------------
echo
echo "== wrk"
cat "$WORK/wrk.txt"
requests=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt")
non2xx=$(awk '/Non-2xx/ {print $NF}' "$WORK/wrk.txt"); non2xx=${non2xx:-0}
socket_errors=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$WORK/wrk.txt"); socket_errors=${socket_errors:-0}
read -r curl_ok curl_bad <"$WORK/curl-count.txt" || { curl_ok=0; curl_bad=0; }
judged=$(awk '/^verdicts judged:/ {gsub(",", ""); print $3}' "$WORK/wrk.txt"); judged=${judged:-0}
wrong=$(awk '/^verdicts judged:/ {print $5}' "$WORK/wrk.txt"); wrong=${wrong:-unknown}
warm_kib=$(awk -v w="$WARMUP" '$1 >= w {print $2; exit}' "$WORK/rss.txt")
end_kib=$(awk '$2 > 0 {v = $2} END {print v + 0}' "$WORK/rss.txt")
min_kib=$(awk '$2 > 0 && (m == "" || $2 < m) {m = $2} END {print m + 0}' "$WORK/rss.txt")
max_kib=$(awk '$2 > m {m = $2} END {print m}' "$WORK/rss.txt")
growth=$(awk -v a="$warm_kib" -v b="$end_kib" 'BEGIN {printf "%.1f", 100 * (b - a) / a}')
ps_ok=$(metric plate_policy_reloads_total 'what="policy_set"' 'result="success"')
ps_bad=$(metric plate_policy_reloads_total 'what="policy_set"' 'result="failure"')
cert_ok=$(metric plate_policy_reloads_total 'what="certificate"' 'result="success"')
cert_bad=$(metric plate_policy_reloads_total 'what="certificate"' 'result="failure"')
decided=$(metric plate_policy_admission_requests_total)
policy_errors=$(metric plate_policy_policy_evaluations_total 'result="error"')
policy_timeouts=$(metric plate_policy_policy_evaluations_total 'result="timeout"')

echo
echo "== soak figures ($DURATION s)"
echo "requests (wrk):            $requests ($rps req/s), non-2xx $non2xx, socket errors $socket_errors"
echo "decided (server metric):   $decided"
echo "verdicts judged (wrk):     $judged, wrong $wrong"
echo "fresh connections (curl):  $curl_ok ok, $curl_bad failed"
echo "policy-set rewrites:       $reloads; reloads counted: $ps_ok success, $ps_bad failure"
echo "certificate rotations:     $rotations (slowest pickup $slowest_pickup ms), $rotation_failures not picked up; reloads counted: $cert_ok success, $cert_bad failure"
echo "old+new CA bundle:         $((rotations - bundle_failures)) of $rotations fresh connections ok after the switch"
echo "policy evaluation errors:  $policy_errors, timeouts $policy_timeouts"
echo "RSS: after warm-up (${WARMUP} s) $((warm_kib / 1024)) MiB ($warm_kib KiB), end $((end_kib / 1024)) MiB ($end_kib KiB), change $growth%; min $((min_kib / 1024)) MiB, max $((max_kib / 1024)) MiB"
echo "RSS parts (KiB anon / file / shmem): after warm-up $(awk -v w="$WARMUP" '$1 >= w {print $3 " / " $4 " / " $5; exit}' "$WORK/rss.txt"), end $(awk '$2 > 0 {v = $3 " / " $4 " / " $5} END {print v}' "$WORK/rss.txt")"
echo "RSS samples (s KiB): $(awk '{printf "%s %s ", $1, $2}' "$WORK/rss.txt")"
if [ "$alive" = no ]; then
  signal=""; [ "$exit_status" -gt 128 ] && signal=" (signal $(kill -l $((exit_status - 128)) 2>/dev/null || echo $((exit_status - 128))))"
  echo "the server exited with status $exit_status$signal before the end"
fi
[ -s "$WORK/curl-errors.txt" ] && { echo "fresh-connection failures:"; head -20 "$WORK/curl-errors.txt"; }
[ -s "$WORK/bundle-errors.txt" ] && { echo "failures with the old and new CA trusted:"; head -20 "$WORK/bundle-errors.txt"; }

fail=0
check() { if eval "$1"; then echo "PASS  $2"; else echo "FAIL  $2"; fail=1; fi; }
echo
check '[ "$alive" = yes ]' "the server is alive at the end"
check '[ "${requests:-0}" -gt 0 ]' "wrk sent requests"
check '[ "$wrong" = 0 ] && [ "$judged" -gt 0 ]' "every answer had the verdict its review must get"
check '[ "$non2xx" -eq 0 ] && [ "$socket_errors" -eq 0 ]' "no non-2xx answer and no socket error"
check '[ "$curl_bad" -eq 0 ] && [ "$curl_ok" -gt 0 ]' "every fresh connection got a 200"
check '[ "$ps_bad" -eq 0 ] && { [ "$reloads" -eq 0 ] || [ "$ps_ok" -ge 1 ]; }' "policy-set reloads taken, none rejected"
check '[ "$rotation_failures" -eq 0 ] && [ "$cert_bad" -eq 0 ] && [ "$cert_ok" -ge "$rotations" ]' "every rotated certificate served, none rejected"
check '[ "$bundle_failures" -eq 0 ]' "after each rotation, a client trusting the old and the new CA got a 200"
check '[ "$alive" = yes ] && [ "$end_kib" -le $(( warm_kib * 110 / 100 )) ]' "RSS at the end within 10% of RSS after warm-up"
if [ "$fail" -ne 0 ]; then
  mkdir -p target/tmp
  cp "$WORK/server.log" target/tmp/soak-server.log
  cp "$WORK/rss.txt" target/tmp/soak-rss.txt
  echo; echo "server log (last 30 lines; all of it in target/tmp/soak-server.log):"; tail -n 30 "$WORK/server.log"
  exit 1
fi
