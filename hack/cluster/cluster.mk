# Targets of the one-node test cluster (hack/cluster/); included by the Makefile.
#   make cluster-images   build the images (base, processor, operator, example app) into OCI archives
#   make cluster-up       images + the node, left running (state in $(CLUSTER_DIR))
#   make cluster-test     the end-to-end tests on a node of their own (brought up and torn down)
#   make cluster-down     tear the node down
# With a node up, `TASKQUEUE_CLUSTER_REUSE=1 make cluster-test` runs the tests on it and leaves
# it up. Needs root; hack/cluster/install-packages.sh installs the Debian packages.

CLUSTER_DIR ?= /tmp/taskqueue-cluster
CLUSTER_IMAGES ?= $(CLUSTER_DIR)-images
NODE_COMPONENTS := etcd kube-apiserver kubectl helm kubelet kube-controller-manager \
	kube-scheduler kube-proxy pause coredns

.PHONY: cluster-packages cluster-build cluster-images cluster-up cluster-down cluster-test

cluster-packages:
	hack/cluster/install-packages.sh

cluster-build: cluster-packages
	@hack/envtest/build.sh $(NODE_COMPONENTS)
	@hack/keda/build.sh

cluster-images: cluster-build $(STAMP)
	hack/cluster/images.sh $(CLUSTER_IMAGES)

cluster-up: cluster-images
	TASKQUEUE_CLUSTER_DIR=$(CLUSTER_DIR) hack/cluster/up.sh $(CLUSTER_IMAGES)/*.tar

cluster-down:
	TASKQUEUE_CLUSTER_DIR=$(CLUSTER_DIR) hack/cluster/down.sh

cluster-test: cluster-build $(STAMP)
	TASKQUEUE_CLUSTER_DIR=$(CLUSTER_DIR) $(BIN)/pytest tests/cluster $(PYTEST_ARGS)
