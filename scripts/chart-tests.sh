#!/usr/bin/env bash
# Tests of the Helm chart (charts/plate-policy), offline: renders it with Helm's Go SDK
# (helm-python-sdk, no helm binary), validates every object against the Kubernetes
# schemas (kubernetes-validate) and runs tests/chart with pytest. Needs python3 (>= 3.10,
# x86_64 Linux: helm-python-sdk ships a manylinux_2_28 wheel) and,
# for one test, the plate-policy binary (target/debug/plate-policy or PLATE_POLICY_BIN;
# built with cargo if missing). Creates .venv in the repository root on first use.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV=.venv
# The versions these tests were written and run with.
PACKAGES=(
  "helm-python-sdk==0.2.2"
  "kubernetes-validate==1.37.0"
  "pytest==9.2.0"
  "pyyaml==6.0.4"
)

step() { printf '\n==> %s\n' "$*"; }

venv_ok() { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -m pip --version >/dev/null 2>&1; }

if ! venv_ok; then
  step "python virtual environment ($VENV)"
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    # Debian/Ubuntu ship venv separately (ensurepip is missing without it).
    rm -rf "$VENV"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
fi

step "test dependencies"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PACKAGES[@]}"

step "pytest tests/chart"
status=0
PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/chart "$@" || status=$?
exit "$status"
