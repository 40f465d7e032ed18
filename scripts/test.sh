#!/usr/bin/env bash
# Runs every test of plate-policy on a fresh machine that has only the Rust and Go
# toolchains: installs what the tests need (idempotently), checks formatting and lints,
# runs the unit, end-to-end and policy-suite tests, then the cluster suite against a real
# control plane (scripts/cluster.sh; a new machine builds it once, ~20 min, then it is
# cached). `.ci/run` calls exactly this. PLATE_SKIP_CLUSTER=1 leaves the cluster suite out
# (a laptop without root); CI never sets it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain and wasm target"
# rust-toolchain.toml names the target, but CI may run with RUSTUP_AUTO_INSTALL=0.
rustup target add wasm32-unknown-unknown >/dev/null
rustup component add rustfmt clippy >/dev/null 2>&1 || true

step "Prometheus and promtool (Debian package) for the metrics test"
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
prometheus --version 2>&1 | head -n 1

step "docker-registry and htpasswd (Debian packages) for the OCI tests"
if ! command -v docker-registry >/dev/null 2>&1 || ! command -v htpasswd >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    docker-registry apache2-utils >/dev/null
fi
docker-registry --version 2>&1 | head -n 1

step "cargo fmt --check"
cargo fmt --all -- --check

step "Go policies: gofmt, go vet, go test (the Go SDK and the Go modules)"
command -v go >/dev/null 2>&1 || { echo "Go is needed (Go policies, the cluster harness)" >&2; exit 1; }
go version
GO_MODULES=(policies/sdk-go policies/trusted-registries/go policies/testing/go-hostile)
unformatted="$(gofmt -l "${GO_MODULES[@]}")"
[ -z "$unformatted" ] || { printf 'not gofmt-clean:\n%s\n' "$unformatted" >&2; exit 1; }
for module in "${GO_MODULES[@]}"; do
  (cd "$module" && go vet ./... && GOOS=wasip1 GOARCH=wasm go vet ./... && go test ./...)
done

step "cosign (built once from the Go module proxy) for the signature tests"
# Pinned; tests/support/registry.rs names the same version. Cached per user, like the
# cluster harness's binaries; a cold build takes a few minutes of CPU.
COSIGN_VERSION=v2.6.5
COSIGN_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/plate-policy/cosign/$COSIGN_VERSION"
if [ ! -x "$COSIGN_DIR/bin/cosign" ]; then
  rm -rf "$COSIGN_DIR/bin.tmp"
  GOBIN="$COSIGN_DIR/bin.tmp" CGO_ENABLED=0 nice -n 10 \
    go install -ldflags "-s -w" "github.com/sigstore/cosign/v2/cmd/cosign@$COSIGN_VERSION"
  mv "$COSIGN_DIR/bin.tmp" "$COSIGN_DIR/bin"
fi
export PLATE_COSIGN="$COSIGN_DIR/bin/cosign"
"$PLATE_COSIGN" version 2>/dev/null | grep -m1 GitVersion || true

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo test (unit, end-to-end)"
cargo test --workspace

step "Helm chart: render with Helm's engine, lint, validate against Kubernetes schemas"
bash scripts/chart-tests.sh

step "plate-policy test policies (policy suites)"
cargo run --quiet -p plate-policy -- test policies

if [ "${PLATE_SKIP_CLUSTER:-0}" = 1 ]; then
  step "cluster suite skipped (PLATE_SKIP_CLUSTER=1)"
  exit 0
fi

step "cluster suite: kube-apiserver, the chart installed with helm, replicas in network namespaces"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
# down also clears what a crashed earlier run left; up builds what is missing.
$SUDO bash scripts/cluster.sh down >/dev/null 2>&1 || true
trap '$SUDO bash scripts/cluster.sh down || true' EXIT
$SUDO bash scripts/cluster.sh up
# The replicas are network namespaces and private mounts: the suite runs as root.
cargo test -p plate-policy --test cluster --no-run --quiet
$SUDO env "PATH=$PATH" "HOME=$HOME" cargo test -p plate-policy --test cluster -- --ignored --test-threads=1
