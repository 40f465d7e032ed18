#!/usr/bin/env bash
# The largest AdmissionReview the API server sends for objects etcd can store (issue
# 15 point 8; the figures and the default --max-body-bytes in docs/security.md). Runs
# tests/cluster/reviewsize, which encodes objects with the API server's own
# serializers (Kubernetes v1.37.2, from the cluster harness's Go module): each shape
# grown until its stored protobuf fills etcd's default 1.5 MiB request limit, then
# sent as an UPDATE (object and oldObject). Needs Go; the modules come from the Go
# module proxy on the first run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../tests/cluster"
nice -n 5 go run ./reviewsize
