#!/usr/bin/env bash
# The cluster harness: a real Kubernetes control plane on this machine, without a
# container engine (docs/testing.md, "The cluster harness").
#
#   scripts/cluster.sh build    build the pinned binaries that are missing (tests/cluster)
#   scripts/cluster.sh up       build, make the PKI and the network, start etcd,
#                               kube-apiserver and kube-controller-manager, wait for /readyz,
#                               print `export KUBECONFIG=...`
#   scripts/cluster.sh down     stop what `up` started (by PID) and any webhook replica left
#                               in the harness's network namespaces; remove namespaces, links
#   scripts/cluster.sh status   say what runs
#   scripts/cluster.sh env      the KEY=VALUE lines the cluster test suite reads
#   scripts/cluster.sh demo     after `up`: `plate-policy serve` (this checkout, built-in
#                               policies) on the bridge address, registered with the API
#                               server by the chart's own webhook configuration (README)
#
# Binaries live in the user's cache, keyed by the pinned versions, so a fresh clone on the
# same machine does not rebuild them. The state (PKI, etcd data, PID files, logs) lives in
# $PLATE_CLUSTER_STATE, default ${XDG_STATE_HOME:-~/.local/state}/plate-policy/cluster:
# one per machine, like the network names and ports, so `down` in any clone cleans up
# after a run that crashed in another. Logs stay there after `down`.
#
# Network: a bridge with the host side of the harness's subnet and one network namespace
# per webhook replica slot (a veth pair into the bridge, no default route: a replica can
# reach the bridge's subnet and nothing else). Addresses come from 198.18.0.0/15
# (benchmarking range); `up` refuses a subnet that overlaps any route the machine has.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MOD="$ROOT/tests/cluster"

K8S_VERSION=v1.37.2
ETCD_VERSION=v3.7.0
HELM_VERSION=v4.3.1

STATE="${PLATE_CLUSTER_STATE:-${XDG_STATE_HOME:-$HOME/.local/state}/plate-policy/cluster}"
# The bridge's /24: host side .1, replica slot i at .(10+i).
NET_PREFIX="${PLATE_CLUSTER_NET:-198.18.10}"
# Service ClusterIPs (nothing answers on them: there is no kube-proxy).
SERVICE_CIDR="${PLATE_CLUSTER_SERVICE_CIDR:-198.18.11.0/24}"
SLOTS="${PLATE_CLUSTER_SLOTS:-4}"
BRIDGE=platebr0
NS_PREFIX=plate-r
HOST_IP="$NET_PREFIX.1"
API_PORT=6443
ETCD_CLIENT=127.0.0.1:23790
ETCD_PEER=127.0.0.1:23800
KCM_PORT=10257

die() { printf 'cluster.sh: %s\n' "$*" >&2; exit 1; }
say() { printf 'cluster.sh: %s\n' "$*" >&2; }
need_root() { [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, bridge): run it with sudo"; }

# --- binaries ---------------------------------------------------------------------------

cache_key() {
  # The versions, plus a digest of the module files (a dependency bump is a new key)
  # and the Go release (a different compiler is a different binary).
  local digest
  digest="$(cat "$MOD/go.mod" "$MOD/go.sum" "$MOD/helm/go.mod" "$MOD/helm/go.sum" |
    sha256sum | cut -c1-12)"
  printf 'k8s-%s_etcd-%s_helm-%s_%s_%s' "$K8S_VERSION" "$ETCD_VERSION" "$HELM_VERSION" \
    "$(go env GOVERSION)" "$digest"
}

bin_dir() {
  printf '%s/plate-policy/cluster/%s/bin' "${XDG_CACHE_HOME:-$HOME/.cache}" "$(cache_key)"
}

build() {
  command -v go >/dev/null || die "go is not installed (the harness builds the control plane with it)"
  local bin; bin="$(bin_dir)"
  mkdir -p "$bin"
  local major="${K8S_VERSION#v}"; major="${major%%.*}"
  local minor="${K8S_VERSION#v*.}"; minor="${minor%%.*}"
  local kv=k8s.io/component-base/version
  local k8s_ldflags="-s -w -X $kv.gitVersion=$K8S_VERSION -X $kv.gitMajor=$major -X $kv.gitMinor=$minor -X $kv.gitTreeState=clean"
  local -a want=()
  local b
  for b in kube-apiserver kube-controller-manager kubectl; do
    [ -x "$bin/$b" ] || want+=("k8s.io/kubernetes/cmd/$b")
  done
  [ -x "$bin/etcd" ] || want+=("go.etcd.io/etcd/server/v3")
  if [ "${#want[@]}" -gt 0 ]; then
    say "building ${want[*]} into $bin (a cold build takes ~20 min of CPU)"
    local tmp; tmp="$(mktemp -d "$bin/.build.XXXXXX")"
    (cd "$MOD" && CGO_ENABLED=0 nice -n 10 go build -ldflags "$k8s_ldflags" -o "$tmp/" "${want[@]}")
    # etcd's main package is its module root (.../server/v3): go names that binary "server".
    [ ! -e "$tmp/server" ] || mv "$tmp/server" "$tmp/etcd"
    [ ! -e "$tmp/v3" ] || mv "$tmp/v3" "$tmp/etcd"
    mv "$tmp"/* "$bin/"
    rmdir "$tmp"
  fi
  if [ ! -x "$bin/helm" ]; then
    say "building helm $HELM_VERSION into $bin"
    local hv=helm.sh/helm/v4/internal/version
    (cd "$MOD/helm" && CGO_ENABLED=0 nice -n 10 go build \
      -ldflags "-s -w -X $hv.version=$HELM_VERSION -X $hv.metadata= -X $hv.gitTreeState=clean" \
      -o "$bin/helm.tmp" helm.sh/helm/v4/cmd/helm)
    mv "$bin/helm.tmp" "$bin/helm"
  fi
  for b in etcd kube-apiserver kube-controller-manager kubectl helm; do
    [ -x "$bin/$b" ] || die "build left no $bin/$b"
  done
}

# --- PKI --------------------------------------------------------------------------------

# sign NAME SUBJECT EXT: a P-256 key and a certificate signed by the cluster CA.
sign() {
  local name=$1 subject=$2 ext=$3 pki="$STATE/pki"
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/$name.key" 2>/dev/null
  openssl req -new -key "$pki/$name.key" -subj "$subject" -out "$pki/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" >"$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -days 30 -sha256 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr" "$pki/$name.ext"
}

kubeconfig() {
  local file=$1 user=$2 pki="$STATE/pki"
  cat >"$file" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
  - name: plate-harness
    cluster:
      server: https://$HOST_IP:$API_PORT
      certificate-authority: $pki/ca.crt
users:
  - name: $user
    user:
      client-certificate: $pki/$user.crt
      client-key: $pki/$user.key
contexts:
  - name: plate-harness
    context: {cluster: plate-harness, user: $user}
current-context: plate-harness
KUBECONFIG
}

make_pki() {
  local pki="$STATE/pki"
  rm -rf "$pki"; mkdir -p "$pki"; chmod 700 "$pki"
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=plate-harness-ca" -days 30 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$pki/ca.crt" 2>/dev/null
  # The first address of the service range is the `kubernetes` Service's ClusterIP.
  local base="${SERVICE_CIDR%/*}"; local first="${base%.*}.$(( ${base##*.} + 1 ))"
  sign apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:$HOST_IP,IP:127.0.0.1,IP:$first,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  local client="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
  sign admin "/O=system:masters/CN=plate-harness-admin" "$client"
  sign kube-controller-manager "/CN=system:kube-controller-manager" "$client"
  # The API server's client certificate for webhooks is not needed (they do not ask for one).
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  kubeconfig "$STATE/admin.kubeconfig" admin
  kubeconfig "$STATE/kube-controller-manager.kubeconfig" kube-controller-manager
}

# --- network ----------------------------------------------------------------------------

check_subnets() {
  command -v python3 >/dev/null || die "python3 is needed to check the subnets against the routes"
  local routes; routes="$(ip -o route show table all | awk '{print $1}' | grep -E '^[0-9.]+(/[0-9]+)?$' || true)"
  local own; own="$(ip -o route show dev "$BRIDGE" 2>/dev/null | awk '{print $1}' || true)"
  python3 - "$NET_PREFIX.0/24" "$SERVICE_CIDR" "$routes" "$own" <<'PY' || die "subnet check failed"
import ipaddress, sys
mine = [ipaddress.ip_network(sys.argv[1]), ipaddress.ip_network(sys.argv[2])]
bench = ipaddress.ip_network("198.18.0.0/15")
own = set(sys.argv[4].split())
for net in mine:
    if not net.subnet_of(bench):
        sys.exit(f"cluster.sh: {net} is outside 198.18.0.0/15")
for route in sys.argv[3].split():
    if route in own:
        continue
    r = ipaddress.ip_network(route, strict=False)
    if r.prefixlen == 0:
        continue  # the default route overlaps everything by definition
    for net in mine:
        if net.overlaps(r):
            sys.exit(f"cluster.sh: {net} overlaps the route {r} this machine has: set PLATE_CLUSTER_NET / PLATE_CLUSTER_SERVICE_CIDR")
PY
}

net_up() {
  check_subnets
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
  fi
  ip addr replace "$HOST_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  local i ns
  for ((i = 0; i < SLOTS; i++)); do
    ns="$NS_PREFIX$i"
    ip netns list | awk '{print $1}' | grep -qx "$ns" || ip netns add "$ns"
    if ! ip link show "${ns}h" >/dev/null 2>&1; then
      ip link add "${ns}h" type veth peer name eth0 netns "$ns"
    fi
    ip link set "${ns}h" master "$BRIDGE" up
    ip -n "$ns" addr replace "$NET_PREFIX.$((10 + i))/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
  done
}

net_down() {
  local ns pid
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$NS_PREFIX[0-9]+$" || true); do
    # Webhook replicas a test started and could not stop (it crashed): they live in the
    # harness's own namespaces, so their PIDs are known exactly.
    for pid in $(ip netns pids "$ns" 2>/dev/null || true); do
      say "stopping process $pid left in network namespace $ns"
      kill -TERM "$pid" 2>/dev/null || true
    done
    for _ in $(seq 50); do
      [ -z "$(ip netns pids "$ns" 2>/dev/null || true)" ] && break
      sleep 0.1
    done
    for pid in $(ip netns pids "$ns" 2>/dev/null || true); do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns del "$ns"
  done
  local link
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E "^$NS_PREFIX[0-9]+h$" || true); do
    ip link del "$link" 2>/dev/null || true
  done
  if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link del "$BRIDGE"; fi
}

# --- processes --------------------------------------------------------------------------

# The PID in $STATE/NAME.pid, if that process still runs the program it was started as.
running_pid() {
  local name=$1 pidfile="$STATE/$1.pid" pid
  [ -f "$pidfile" ] || return 1
  pid="$(cat "$pidfile")"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "/$name " || return 1
  printf '%s\n' "$pid"
}

start() {
  local name=$1; shift
  local log="$STATE/logs/$name.log"
  say "starting $name (log: $log)"
  # setsid: its own session, so a ^C in the caller's terminal does not reach it.
  setsid "$@" >>"$log" 2>&1 </dev/null &
  printf '%s\n' "$!" >"$STATE/$name.pid"
}

stop() {
  local name=$1 pid
  pid="$(running_pid "$name")" || { rm -f "$STATE/$name.pid"; return 0; }
  say "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do
    [ -d "/proc/$pid" ] || break
    sleep 0.1
  done
  if [ -d "/proc/$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$STATE/$name.pid"
}

# wait_for WHAT SECONDS COMMAND...: polls COMMAND every 0.2 s until it succeeds.
wait_for() {
  local what=$1 limit=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
  say "$what is ready"
}

api_readyz() {
  curl -sf --max-time 2 --cacert "$STATE/pki/ca.crt" --cert "$STATE/pki/admin.crt" \
    --key "$STATE/pki/admin.key" "https://$HOST_IP:$API_PORT/readyz" | grep -qx ok
}
etcd_health() { curl -sf --max-time 2 "http://$ETCD_CLIENT/health" | grep -q '"health":"true"'; }
kcm_healthz() { curl -skf --max-time 2 "https://127.0.0.1:$KCM_PORT/healthz" | grep -qx ok; }

all_running() {
  running_pid etcd >/dev/null && running_pid kube-apiserver >/dev/null &&
    running_pid kube-controller-manager >/dev/null && api_readyz
}

fail_with_log() {
  local name=$1; shift
  say "$*; the last lines of $STATE/logs/$name.log:"
  tail -n 30 "$STATE/logs/$name.log" >&2 || true
  exit 1
}

up() {
  need_root
  build
  local bin; bin="$(bin_dir)"
  if all_running; then
    say "already up"
    print_export
    return 0
  fi
  # Half up (a crash, a reboot): start from nothing.
  down_quiet
  mkdir -p "$STATE/logs"
  : >"$STATE/logs/etcd.log"; : >"$STATE/logs/kube-apiserver.log"; : >"$STATE/logs/kube-controller-manager.log"
  make_pki
  net_up
  rm -rf "$STATE/etcd"
  local t0=$SECONDS
  start etcd "$bin/etcd" --name plate-harness --data-dir "$STATE/etcd" \
    --listen-client-urls "http://$ETCD_CLIENT" --advertise-client-urls "http://$ETCD_CLIENT" \
    --listen-peer-urls "http://$ETCD_PEER" --initial-advertise-peer-urls "http://$ETCD_PEER" \
    --initial-cluster "plate-harness=http://$ETCD_PEER" --log-level warn
  wait_for etcd 60 etcd_health || fail_with_log etcd "etcd did not become healthy in 60 s"
  local pki="$STATE/pki"
  start kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers "http://$ETCD_CLIENT" \
    --bind-address "$HOST_IP" --advertise-address "$HOST_IP" --secure-port "$API_PORT" \
    --endpoint-reconciler-type none --enable-aggregator-routing=true \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --authorization-mode RBAC --profiling=false --v=1
  wait_for kube-apiserver 120 api_readyz || fail_with_log kube-apiserver "kube-apiserver not ready in 120 s"
  start kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig "$STATE/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig "$STATE/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig "$STATE/kube-controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" \
    --controllers '*,-nodeipam,-nodelifecycle' --use-service-account-credentials=true \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --leader-elect=false --profiling=false --v=1
  wait_for kube-controller-manager 60 kcm_healthz ||
    fail_with_log kube-controller-manager "kube-controller-manager not healthy in 60 s"
  # The ServiceAccount controller's work: without `default` no Pod is admitted.
  wait_for "the default ServiceAccount" 60 \
    "$bin/kubectl" --kubeconfig "$STATE/admin.kubeconfig" -n default get serviceaccount default ||
    fail_with_log kube-controller-manager "no default ServiceAccount after 60 s"
  say "up in $((SECONDS - t0)) s (after the build)"
  write_env
  print_export
}

write_env() {
  {
    printf 'KUBECONFIG=%s\n' "$STATE/admin.kubeconfig"
    printf 'PLATE_CLUSTER_BIN=%s\n' "$(bin_dir)"
    printf 'PLATE_CLUSTER_STATE=%s\n' "$STATE"
    printf 'PLATE_CLUSTER_API_HOST=%s\n' "$HOST_IP"
    printf 'PLATE_CLUSTER_API_PORT=%s\n' "$API_PORT"
    printf 'PLATE_CLUSTER_CA=%s\n' "$STATE/pki/ca.crt"
    printf 'PLATE_CLUSTER_SLOTS=%s\n' "$SLOTS"
    printf 'PLATE_CLUSTER_NETNS_PREFIX=%s\n' "$NS_PREFIX"
    printf 'PLATE_CLUSTER_NET=%s\n' "$NET_PREFIX"
  } >"$STATE/cluster.env"
}

print_export() {
  printf 'export KUBECONFIG=%s\n' "$STATE/admin.kubeconfig"
  say "kubectl and helm: $(bin_dir)"
}

down_quiet() {
  stop plate-policy
  stop kube-controller-manager
  stop kube-apiserver
  stop etcd
  net_down
  rm -f "$STATE/cluster.env"
}

down() {
  need_root
  down_quiet
  say "down (logs kept in $STATE/logs)"
}

status() {
  local name pid rc=0
  for name in etcd kube-apiserver kube-controller-manager; do
    if pid="$(running_pid "$name")"; then
      printf '%-24s running (pid %s)\n' "$name" "$pid"
    else
      printf '%-24s stopped\n' "$name"; rc=1
    fi
  done
  if [ -f "$STATE/pki/ca.crt" ] && api_readyz; then
    printf '%-24s ready at https://%s:%s\n' "/readyz" "$HOST_IP" "$API_PORT"
  else
    printf '%-24s not ready\n' "/readyz"; rc=1
  fi
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$NS_PREFIX[0-9]+$" | sort || true); do
    printf '%-24s %s process(es)\n' "netns $ns" "$(ip netns pids "$ns" 2>/dev/null | wc -l)"
  done
  [ "$rc" -eq 0 ] && printf 'export KUBECONFIG=%s\n' "$STATE/admin.kubeconfig"
  return "$rc"
}

# --- the webhook by hand (README) -------------------------------------------------------

DEMO_ADDR="$HOST_IP:8443"
DEMO_HEALTH=127.0.0.1:19090

demo() {
  need_root
  all_running || die "the control plane is not up: run scripts/cluster.sh up first"
  local bin="$ROOT/target/debug/plate-policy" tools d="$STATE/demo"
  tools="$(bin_dir)"
  (cd "$ROOT" && cargo build --quiet -p plate-policy) || die "cargo build -p plate-policy failed"
  stop plate-policy
  rm -rf "$d"; mkdir -p "$d"
  # A serving certificate for the address the API server calls.
  "$bin" certs --out "$d/tls" --dns "$HOST_IP" >/dev/null
  : >"$STATE/logs/plate-policy.log"
  start plate-policy "$bin" serve --addr "$DEMO_ADDR" --metrics-addr "$DEMO_HEALTH" \
    --tls-cert "$d/tls/tls.crt" --tls-key "$d/tls/tls.key" \
    --kubeconfig "$STATE/admin.kubeconfig" --shutdown-delay-secs 0 --log-format text
  wait_for plate-policy 60 curl -sf "http://$DEMO_HEALTH/readyz" ||
    fail_with_log plate-policy "plate-policy did not become ready in 60 s"
  # The chart's webhook configuration (rules derived from the built-in set, kube-system
  # excluded), pointed at this process instead of the chart's Service.
  "$tools/helm" template plate-policy "$ROOT/charts/plate-policy" -n plate-system \
    --set tls.mode=existingSecret --set tls.existingSecret.name=unused \
    --set-file tls.existingSecret.caBundle="$d/tls/ca.crt" \
    -s templates/validatingwebhookconfiguration.yaml >"$d/webhook.yaml"
  local client
  client="{\"url\":\"https://$DEMO_ADDR/validate\",\"caBundle\":\"$(base64 -w0 "$d/tls/ca.crt")\"}"
  "$tools/kubectl" --kubeconfig "$STATE/admin.kubeconfig" patch --local -f "$d/webhook.yaml" \
    --type json -p "[{\"op\":\"replace\",\"path\":\"/webhooks/0/clientConfig\",\"value\":$client}]" \
    -o yaml >"$d/webhook-local.yaml"
  # Replaced, not applied: a configuration left by the chart (the cluster suite) has a
  # `service`, and a merge would keep it next to the `url`.
  "$tools/kubectl" --kubeconfig "$STATE/admin.kubeconfig" delete --ignore-not-found \
    -f "$d/webhook-local.yaml" >&2
  "$tools/kubectl" --kubeconfig "$STATE/admin.kubeconfig" create -f "$d/webhook-local.yaml" >&2
  say "plate-policy serves the built-in policies at https://$DEMO_ADDR (log: $STATE/logs/plate-policy.log)"
  print_export
  printf 'export PATH=%s:$PATH\n' "$tools"
}

case "${1:-}" in
  build) build; bin_dir ;;
  up) up ;;
  down) down ;;
  status) status ;;
  env) [ -f "$STATE/cluster.env" ] || die "not up (scripts/cluster.sh up)"; cat "$STATE/cluster.env" ;;
  demo) demo ;;
  *) die "usage: $0 build|up|down|status|env|demo" ;;
esac
