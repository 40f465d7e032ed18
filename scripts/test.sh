#!/usr/bin/env bash
# Runs every test of plate-policy on a fresh machine that has only the Rust toolchain:
# installs what the tests need (idempotently), checks formatting and lints, runs the
# unit, end-to-end and policy-suite tests. `.ci/run` calls exactly this.
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

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo test (unit, end-to-end)"
cargo test --workspace

step "Helm chart: render with Helm's engine, lint, validate against Kubernetes schemas"
bash scripts/chart-tests.sh

step "plate-policy test policies (policy suites)"
cargo run --quiet -p plate-policy -- test policies
