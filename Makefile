# Swell: see README.md. The two set-up commands are `make demo` and `make test`.
SHELL := /bin/bash
CLUSTER_DIR ?= $(HOME)/.cache/swell/clusters/make

.PHONY: demo test build tools cluster cluster-down lint fmt bench-metrics

demo: ## Bring up a local control plane, show it working, tear it down.
	hack/demo.sh

test: ## Every test, against a real control plane and local AWS.
	hack/test.sh

build:
	cargo build --release --bin swell

tools: ## Build (or reuse) the pinned Kubernetes, etcd, kwok, kubectl and helm binaries.
	hack/build-tools.sh >/dev/null

cluster: ## Start a local cluster that stays up; prints the lines to use it.
	@hack/cluster.sh up --dir $(CLUSTER_DIR)
	@echo "# stop it with: make cluster-down"

cluster-down:
	@hack/cluster.sh down $(CLUSTER_DIR)

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

bench-metrics: ## Latency and throughput of the external metrics API at 100, 1,000 and 10,000 ScaledObjects.
	cargo bench -p swell-metrics-api --bench metrics
