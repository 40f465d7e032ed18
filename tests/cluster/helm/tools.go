//go:build tools

// Package tools pins the helm CLI the cluster harness builds (scripts/cluster.sh).
// It is a module of its own: helm's dependency graph (client-go and friends at
// helm's versions) must not move the control plane's.
package tools

import (
	_ "helm.sh/helm/v4/cmd/helm"
)
