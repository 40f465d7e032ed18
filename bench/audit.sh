#!/usr/bin/env bash
# Scale figures of the audit (issue 16; docs/performance.md, "Audit"), on the real
# control plane of the cluster harness, release build:
#
#   bash bench/audit.sh                     # 10,000 Deployments in 50 namespaces
#   OBJECTS=2000 NAMESPACES=20 bash bench/audit.sh
#
# 1. Creates NAMESPACES namespaces (every other one production, the rest development)
#    and OBJECTS Deployments with replicas 0 spread over them (the controller manager
#    makes a ReplicaSet of each, so the audit lists twice as many objects); every
#    VIOLATING-th uses plate-api:latest (a violation of no-latest-tag in prod).
# 2. One-shot audit (`audit -o json`), RUNS times: wall time, objects, findings.
# 3. `audit --watch --qps 0` (bound lifted): time until every report is written (the
#    API server's and etcd's rate), RSS after the first pass; a second process on the
#    unchanged cluster: reports written by its first pass (must be 0); one Deployment
#    changed: time until its report changes.
# 4. `audit --watch` at the default --qps: reports written per second over
#    DEFAULT_QPS_SECONDS (the bound, not the cluster, is then the limit).
# 5. Admission latency (p50/p90/p99) of a local `serve --dev` at a steady moderate
#    rate (bench/soak.lua, LOAD_CONNECTIONS x 1000/LOAD_DELAY_MS req/s at most, for
#    LOAD_SECONDS), idle, then while one-shot audits run back to back; with nothing
#    pinned, and with CPU pinning standing in for separate nodes (see the step).
#
# Starts the control plane if it is not up; the objects are left for inspection
# (`scripts/cluster.sh down` removes everything). Needs root (the harness).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OBJECTS="${OBJECTS:-10000}"
NAMESPACES="${NAMESPACES:-50}"
VIOLATING="${VIOLATING:-10}"
RUNS="${RUNS:-3}"
DEFAULT_QPS_SECONDS="${DEFAULT_QPS_SECONDS:-30}"
LOAD_SECONDS="${LOAD_SECONDS:-20}"
LOAD_CONNECTIONS="${LOAD_CONNECTIONS:-4}"
LOAD_DELAY_MS="${LOAD_DELAY_MS:-10}"
PREFIX="${PREFIX:-scale}"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

$SUDO bash scripts/cluster.sh status >/dev/null 2>&1 || $SUDO bash scripts/cluster.sh up
eval "$($SUDO bash scripts/cluster.sh env | sed 's/^/export /')"
: "${KUBECONFIG:?cluster.sh env gives the kubeconfig}"
PATH="$PLATE_CLUSTER_BIN:$PATH"
cargo build --release -p plate-policy --quiet
BIN="$PWD/target/release/plate-policy"
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

# STEPS chooses what runs (default all; "load" alone needs the objects made before).
STEPS="${STEPS:-objects oneshot watch qps load}"
step() { [[ " $STEPS " == *" $1 "* ]]; }
say() { printf '\n== %s\n' "$*"; }
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$2"; }

metric() { curl -s "http://$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
start_watch() { # $1: metrics port, rest: extra args
  local port=$1; shift
  "$BIN" --log-level warn audit --watch --kubeconfig "$KUBECONFIG" --metrics-addr "127.0.0.1:$port" "$@" >"$WORK/watch-$port.log" 2>&1 &
  echo $!
}
wait_ready() { for _ in $(seq 1 1200); do curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0; sleep 0.25; done; return 1; }
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
# Every report, by collection (one DELETE per namespace; kubectl would delete one by one).
delete_reports() {
  local ns
  for ns in $(kubectl get ns -o jsonpath='{.items[*].metadata.name}'); do
    kubectl delete --raw "/apis/openreports.io/v1alpha1/namespaces/$ns/reports" >/dev/null 2>&1 || true
  done
  kubectl delete --raw /apis/openreports.io/v1alpha1/clusterreports >/dev/null 2>&1 || true
}

# The OpenReports CRDs, from their Go module as the cluster tests take them.
reports_dir=$(go mod download -json github.com/openreports/reports-api@v0.2.1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
kubectl apply --server-side -f "$reports_dir/config/crd/openreports.io_reports.yaml" \
  -f "$reports_dir/config/crd/openreports.io_clusterreports.yaml" >/dev/null
kubectl wait --for condition=established --timeout=60s crd/reports.openreports.io crd/clusterreports.openreports.io >/dev/null

if step objects; then
say "objects: $OBJECTS Deployments (replicas 0) in $NAMESPACES namespaces, 1 in $VIOLATING violating"
# The webhook (if the chart is installed) is out of the way: these are pre-existing objects.
kubectl delete validatingwebhookconfiguration plate-policy --ignore-not-found >/dev/null
kubectl apply --server-side -f - >/dev/null <<EOF
$(for n in $(seq 0 $((NAMESPACES - 1))); do
  env=development; [ $((n % 2)) = 0 ] && env=production
  printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: %s-%02d, labels: {environment: %s}}\n---\n' "$PREFIX" "$n" "$env"
done)
EOF
python3 - "$WORK" "$OBJECTS" "$NAMESPACES" "$VIOLATING" "$PREFIX" <<'PY'
import sys
work, objects, namespaces, violating, prefix = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
chunk = 500
for start in range(0, objects, chunk):
    docs = []
    for i in range(start, min(objects, start + chunk)):
        ns = f"{prefix}-{i % namespaces:02d}"
        image = "harbor.cocdev.co.kr/plate/plate-api:latest" if i % violating == 0 else "harbor.cocdev.co.kr/plate/plate-api:2.4.1"
        docs.append(f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: app-{i}, namespace: {ns}}}
spec:
  replicas: 0
  selector: {{matchLabels: {{app: app-{i}}}}}
  template:
    metadata: {{labels: {{app: app-{i}}}}}
    spec:
      containers:
        - name: api
          image: {image}
          resources: {{requests: {{cpu: 10m, memory: 16Mi}}}}
""")
    open(f"{work}/chunk-{start // chunk:04d}.yaml", "w").write("---\n".join(docs))
PY
t0=$(now)
for f in "$WORK"/chunk-*.yaml; do kubectl apply --server-side -f "$f" >/dev/null; done
t1=$(now)
echo "created $OBJECTS Deployments in $(elapsed "$t0" "$t1") s"
fi
# The controller manager makes a ReplicaSet per Deployment at its own API rate (20/s
# by default): the later steps need a settled cluster (a second audit pass with nothing
# changed must write nothing), so the watch steps wait for all of them.
if step objects || step watch; then
t0=$(now)
for _ in $(seq 1 3600); do
  rs=$(kubectl get replicasets -A --no-headers 2>/dev/null | grep -c "^$PREFIX-" || true)
  [ "$rs" -ge "$OBJECTS" ] && break
  sleep 1
done
echo "ReplicaSets made by the controller manager: $rs (waited $(elapsed "$t0" "$(now)") s for them)"

fi
if step oneshot; then
say "one-shot audit, $RUNS runs"
for r in $(seq 1 "$RUNS"); do
  t0=$(now)
  code=0
  "$BIN" audit --kubeconfig "$KUBECONFIG" -o json >"$WORK/audit.json" || code=$?
  t1=$(now)
  python3 - "$WORK/audit.json" "$(elapsed "$t0" "$t1")" "$code" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["summary"]
print(f"run: {sys.argv[2]} s, exit {sys.argv[3]}, listed {s['listed']}, judged {s['objects']}, enforce violations {s['enforceViolations']}, other {s['otherViolations']}, errors {s['errors']}")
PY
done

fi
if step watch; then
say "audit --watch --qps 0 (bound lifted)"
delete_reports
t0=$(now)
pid=$(start_watch 29301 --qps 0)
wait_ready 29301
t1=$(now)
rss_ready=$(rss_mib "$pid")
judged=$(metric 127.0.0.1:29301 plate_policy_audit_objects)
for _ in $(seq 1 2400); do
  written=$(metric 127.0.0.1:29301 'plate_policy_audit_report_writes_total{result="success"}')
  [ "${written%.*}" -ge "${judged%.*}" ] && break
  sleep 0.25
done
t2=$(now)
echo "first pass (list and judge) done in $(elapsed "$t0" "$t1") s (ready); $written reports written in $(elapsed "$t0" "$t2") s ($(python3 -c "print(f'{float(\"$written\") / (float(\"$t2\") - float(\"$t0\")):.0f}')") writes/s)"
echo "RSS after the first pass: $rss_ready MiB; after its writes: $(rss_mib "$pid") MiB"
kill "$pid"; wait "$pid" 2>/dev/null || true

say "a second process, nothing changed"
pid=$(start_watch 29302 --qps 0)
wait_ready 29302
echo "reports written by its first pass: $(metric 127.0.0.1:29302 'plate_policy_audit_report_writes_total{result="success"}') (RSS $(rss_mib "$pid") MiB)"
uid=$(kubectl get deployment -n "$PREFIX-00" app-0 -o jsonpath='{.metadata.uid}')
# A watch on the Deployment's report, open before the change (its first line is the
# report as it is), times the re-report without kubectl start-up in the loop.
coproc REPORT_WATCH { timeout 120 kubectl get reports.openreports.io -n "$PREFIX-00" "$uid" --watch -o jsonpath='{.summary.fail}{"\n"}'; }
read -r fails_before <&"${REPORT_WATCH[0]}" || fails_before="no report"
# Flip its verdict: to a violation if it has none (an earlier run may have fixed it),
# else to a fixed image.
if [ "$fails_before" = 0 ]; then image=plate-api:latest want=1; else image=plate-api:9.9.9 want=0; fi
t0=$(now)
kubectl -n "$PREFIX-00" set image deployment/app-0 "api=harbor.cocdev.co.kr/plate/$image" >/dev/null
t_set=$(now)
fails="$fails_before"
while [ "$fails" != "$want" ] && read -r fails <&"${REPORT_WATCH[0]}"; do :; done
t1=$(now)
kill "$REPORT_WATCH_PID" 2>/dev/null || true
echo "one changed Deployment (fail $fails_before -> ${fails:-?}) re-reported $(elapsed "$t0" "$t1") s after kubectl set image started ($(elapsed "$t_set" "$t1") s after it returned)"
kill "$pid"; wait "$pid" 2>/dev/null || true

fi
if step qps; then
say "audit --watch at the default --qps, for $DEFAULT_QPS_SECONDS s"
delete_reports
pid=$(start_watch 29303)
sleep "$DEFAULT_QPS_SECONDS"
written=$(metric 127.0.0.1:29303 'plate_policy_audit_report_writes_total{result="success"}')
echo "$written reports in $DEFAULT_QPS_SECONDS s: $(python3 -c "print(f'{float(\"$written\") / $DEFAULT_QPS_SECONDS:.1f}')") writes/s"
kill "$pid"; wait "$pid" 2>/dev/null || true

fi
if step load; then
say "admission latency of serve --dev at a steady rate, idle and while audits run"
# In a cluster the webhook, the audit and the API server run in their own pods, on
# their own CPU; here they share this machine's cores. Two layouts: "shared" (nothing
# pinned: the audit and the API server take CPU from the webhook, the worst case) and
# "nodes" (serve pinned to CPU 0 as if on its own node; the control plane, the audit
# and the load generator on the other CPUs, wrk at a higher priority so that its own
# timing is not what the audit delays). The load is moderate and steady (soak.lua:
# CONNECTIONS connections, a DELAY_MS pause before each request, every verdict judged),
# not saturation: the latency of a webhook at its usual load is what an audit could hurt.
cpus=$(nproc)
if ! command -v wrk >/dev/null 2>&1; then
  echo "wrk is not installed (apt-get install wrk): skipped"
elif [ "$cpus" -lt 2 ]; then
  echo "one CPU: no layout keeps the audit off the webhook's CPU; skipped"
else
  control_plane=$(pgrep -d ' ' -x 'etcd|kube-apiserver|kube-controller-manager' || true)
  pin() { # $1: CPU list, rest: PIDs (every thread)
    local cpus=$1 p; shift
    for p in "$@"; do taskset -a -p -c "$cpus" "$p" >/dev/null 2>&1 || true; done
  }
  # shellcheck disable=SC2086
  trap 'pin "0-$((cpus - 1))" $control_plane; kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
  run_layout() { # $1: shared | nodes
    local layout=$1 serve_cpus="" other_cpus="" wrk_prefix=() auditing serve
    if [ "$layout" = nodes ]; then
      serve_cpus=0; other_cpus="1-$((cpus - 1))"
      # shellcheck disable=SC2086
      pin "$other_cpus" $control_plane
      # Real-time priority where allowed: the load generator shares its CPUs with the
      # audit and the API server, and its own wake-ups must not be what is measured.
      if chrt -f 50 true 2>/dev/null; then
        wrk_prefix=(chrt -f 50 taskset -c "$other_cpus")
      else
        wrk_prefix=(nice -n -5 taskset -c "$other_cpus")
      fi
    else
      # shellcheck disable=SC2086
      pin "0-$((cpus - 1))" $control_plane
    fi
    local serve_prefix=(); [ -n "$serve_cpus" ] && serve_prefix=(taskset -c "$serve_cpus")
    local audit_prefix=(); [ -n "$other_cpus" ] && audit_prefix=(taskset -c "$other_cpus")
    # Info level: each decision's `decided` line carries the server's own elapsed_us.
    "${serve_prefix[@]}" "$BIN" --log-level info serve --dev --certs-dir "$WORK/certs" \
      --addr 127.0.0.1:28543 --metrics-addr 127.0.0.1:29543 >"$WORK/serve.log" 2>&1 &
    serve=$!
    for _ in $(seq 1 200); do curl -sf http://127.0.0.1:29543/readyz >/dev/null && break; sleep 0.1; done
    load() {
      REVIEWS_DIR=bench/reviews DELAY_MS="$LOAD_DELAY_MS" "${wrk_prefix[@]}" wrk -t1 -c"$LOAD_CONNECTIONS" \
        -d"${LOAD_SECONDS}s" --latency -s bench/soak.lua https://127.0.0.1:28543/validate |
        awk '/Latency Distribution/ {p=1} p && /50%|90%|99%/ {printf "  %s", $0} /Requests\/sec/ {printf "  req/s %s", $2} /verdicts judged/ {printf "  (%s)", $0} END {print ""}'
      # The server's own time per decision, over the same requests.
      grep -a elapsed_us "$WORK/serve.log" | grep -aoE 'elapsed_us["=:]+[0-9]+' | grep -oE '[0-9]+$' | sort -n |
        awk '{a[NR] = $1} END {if (NR) printf "    server elapsed_us (n %d): p50 %d, p90 %d, p99 %d\n", NR, a[int(NR * 0.5)], a[int(NR * 0.9)], a[int(NR * 0.99)]}'
      : >"$WORK/serve.log"
    }
    echo "$layout, idle:"; load
    ( while kill -0 "$serve" 2>/dev/null; do
        "${audit_prefix[@]}" "$BIN" audit --kubeconfig "$KUBECONFIG" -o json >/dev/null 2>&1 || true
        echo x >>"$WORK/audits-$layout"
      done ) &
    auditing=$!
    sleep 2 # the first audit's lists are under way
    echo "$layout, while one-shot audits run back to back:"; load
    echo "    audits finished meanwhile: $(wc -l <"$WORK/audits-$layout" 2>/dev/null || echo 0)"
    kill "$auditing" "$serve" 2>/dev/null || true
    wait "$serve" 2>/dev/null || true
  }
  run_layout shared
  run_layout nodes
  # shellcheck disable=SC2086
  pin "0-$((cpus - 1))" $control_plane
fi
fi
