# Roost: the front door. `make help` lists every target.
SHELL := /bin/bash
CARGO ?= cargo
PORT ?= 7181
DATA_DIR ?= ./roost-data
CLIENTS_DIR ?= $(HOME)/.cache/roost/clients
# Where cargo puts binaries: CARGO_TARGET_DIR when set (CI's is outside the clone), else ./target.
TARGET_DIR = $(or $(CARGO_TARGET_DIR),target)

.PHONY: help setup build run test test-unit test-clients clients gen gen-check lint fmt clean bench deps-up deps-down run-cluster stop-cluster test-it crds crds-check helm-check k8s-apiserver test-operator

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

setup: ## Fetch libchdb.so (npm registry, cached in ~/.cache/roost) and build the roost binary
	@scripts/fetch-libchdb.sh
	$(CARGO) build --release -p roost-server

build: ## Build everything (debug)
	$(CARGO) build --workspace --all-targets

run: setup ## Set up, then run `roost local` on 127.0.0.1:$(PORT) with data in $(DATA_DIR)
	ROOST_PORT=$(PORT) ROOST_DATA_DIR=$(DATA_DIR) $(TARGET_DIR)/release/roost local

deps-up: ## Distributed mode's dependencies on loopback: NATS (JetStream) and PostgreSQL (checked; started or installed only when missing), the ClickHouse test cluster
	@scripts/cluster.sh deps-up

deps-down: ## Stop the ClickHouse test cluster, and NATS/PostgreSQL only if deps-up started them
	@scripts/cluster.sh deps-down

run-cluster: deps-up ## Build release (unless ROOST_BIN names a binary) and start every role as its own `roost serve` process (gateway on 127.0.0.1:$(PORT), gRPC from 127.0.0.1:50051, ROOST_CLUSTER_TRANSPORT=nats|grpc, PostgreSQL database roost; state in ~/.cache/roost/cluster)
	@[ -n "$$ROOST_BIN" ] || $(CARGO) build --release -p roost-server
	ROOST_PORT=$(PORT) scripts/cluster.sh up

stop-cluster: ## Stop the processes run-cluster started
	@scripts/cluster.sh down

test-it: deps-up ## The distributed tests: role processes over NATS or gRPC on PostgreSQL and the ClickHouse cluster, catalog change facts reaching query replicas, the events queue under faults
	ROOST_TEST_REQUIRE_CLICKHOUSE=1 $(CARGO) nextest run --workspace -E 'binary(cluster) | binary(cluster_catalog_changes) | binary(events_queue)'

clients: ## Install the real Tinybird clients the tests drive (both tb CLIs, the Python SDK, verdin, @tinybirdco/sdk, mockingbird; cached)
	@scripts/install-clients.sh "$(CLIENTS_DIR)"

test: clients ## Every test: unit, integration against chDB, HTTP, and the real tb CLI
	@scripts/fetch-libchdb.sh
	ROOST_TB_BIN="$(CLIENTS_DIR)/tb/bin/tb" ROOST_TB_FORWARD_BIN="$(CLIENTS_DIR)/forward/bin/tb" ROOST_CLIENTS_DIR="$(CLIENTS_DIR)" scripts/test.sh

test-clients: clients ## Only the real-client suites (tb_*, sdk_*, mockingbird); ends with `N passed, N failed`
	@scripts/fetch-libchdb.sh
	ROOST_TB_BIN="$(CLIENTS_DIR)/tb/bin/tb" ROOST_TB_FORWARD_BIN="$(CLIENTS_DIR)/forward/bin/tb" ROOST_CLIENTS_DIR="$(CLIENTS_DIR)" scripts/test-clients.sh

bench: ## Build release and run roost-bench: Roost against its raw engine (BENCH_ARGS="--rows 200000 --requests 300"; ROOST_BENCH_CLICKHOUSE_URL=http://... for a ClickHouse server)
	@scripts/fetch-libchdb.sh
	$(CARGO) build --release -p roost-server -p roost-bench
	$(TARGET_DIR)/release/roost-bench --roost-bin $(TARGET_DIR)/release/roost $(BENCH_ARGS)

gen: ## Regenerate the prost and tonic gRPC code and the reflection descriptors of proto/*.proto (committed; no protoc needed)
	$(CARGO) run -q -p roost-proto-gen

gen-check: gen ## Fail when the committed generated code is stale
	@git diff --exit-code -- proto/src/gen || { echo "proto/src/gen is stale: run make gen and commit"; exit 1; }

crds: ## Regenerate the operator's CRD YAML (crds/ and the chart's copy; committed)
	$(CARGO) run -q -p roost-operator --bin crdgen > crds/roost.dev.yaml
	cp crds/roost.dev.yaml helm/roost/crds/roost.dev.yaml

crds-check: crds ## Fail when the committed CRD YAML is stale
	@git diff --exit-code -- crds helm/roost/crds || { echo "the CRDs are stale: run make crds and commit"; exit 1; }

helm-check: ## helm lint + template, then kubernetes-validate --strict on the output (tools from PyPI, cached)
	@scripts/helm-check.sh

k8s-apiserver: ## Build (cached in ~/.cache/roost) and start the CRD-only Kubernetes API server the operator tests use
	@scripts/k8s-apiserver.sh up

test-operator: ## The operator's tests: unit, mocked API, real ClickHouse cluster, real API server, Helm chart
	@scripts/k8s-apiserver.sh up >/dev/null
	ROOST_TEST_REQUIRE_K8S=1 ROOST_TEST_REQUIRE_CLICKHOUSE=1 ROOST_TEST_REQUIRE_HELM=1 $(CARGO) nextest run --workspace -E 'package(roost-operator)'

lint: ## rustfmt and clippy, warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

clean: ## Remove build output and the local data directory
	$(CARGO) clean
	rm -rf $(DATA_DIR)
