//go:build tools

// Package tools pins the control-plane programs the cluster harness builds
// (scripts/cluster.sh): importing them here keeps them, and every module they
// need, in go.mod and go.sum. The build tag keeps this file out of every build.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
