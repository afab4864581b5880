//go:build tools

// Package tools pins the Kubernetes commands this module builds, so `go mod tidy` keeps them:
// the test control plane (kube-apiserver, kubectl) and the one-node test cluster's node
// components (kubelet, kube-controller-manager, kube-scheduler, kube-proxy).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
