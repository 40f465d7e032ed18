#!/usr/bin/env bash
# What the webhook adds to a user's write, through the real kube-apiserver of the cluster
# harness (docs/performance.md, "Through the API server"): server-side dry-run creates of
# a 3-container Deployment, alternating a namespace the webhook judges and one it never
# sees, with the shipped policy set and with an empty one. Release build.
#
#   bash bench/apiserver.sh                  # 500 requests per series
#   PLATE_LATENCY_ROUNDS=2000 bash bench/apiserver.sh
#   BIN=/tmp/plate-policy-before bash bench/apiserver.sh   # the replicas run another build
#
# Starts the control plane if it is not up, and leaves it as it found it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
started=0
if ! $SUDO bash scripts/cluster.sh status >/dev/null 2>&1; then
  $SUDO bash scripts/cluster.sh up
  started=1
fi
cargo test --release -p plate-policy --test cluster_latency --no-run --quiet
status=0
$SUDO env "PATH=$PATH" "HOME=$HOME" ${PLATE_LATENCY_ROUNDS:+PLATE_LATENCY_ROUNDS=$PLATE_LATENCY_ROUNDS} ${BIN:+PLATE_REPLICA_BIN=$(realpath "$BIN")} \
  cargo test --release -p plate-policy --test cluster_latency -- --ignored --nocapture --test-threads=1 || status=$?
[ "$started" = 0 ] || $SUDO bash scripts/cluster.sh down
exit "$status"
