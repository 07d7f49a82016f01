# llmgate — the everyday commands. `make help` lists them.

CARGO   ?= cargo
BIN     := target/release/llmgate
DB_URL  ?= sqlite://llmgate.db
RUN_ARGS ?= --demo

.DEFAULT_GOAL := help
.PHONY: help build run test screenshots check fmt clippy test-coverage db-backup docker-build docker-run clean \
	bench perf bench-chat bench-streams bench-cluster bench-quick bench-latency bench-instructions bench-summary bench-micro soak soak-streams profile profile-breakdown

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build the release binary (target/release/llmgate)
	$(CARGO) build --release --locked

run: build ## Run the gateway (default: with the demo upstream; RUN_ARGS='--config llmgate.toml' for yours)
	$(BIN) serve $(RUN_ARGS)

test: ## Run every test: unit, integration (on SQLite, then on PostgreSQL), the Python SDK suite, the web console in Chromium and the Codex CLI end to end (tools installed by tests/setup.sh)
	bash tests/setup.sh
	$(CARGO) test --locked --all-targets
	@echo "== the integration suite again, storing in PostgreSQL (a throwaway cluster on loopback)"
	LLMGATE_TEST_DATABASE=postgres $(CARGO) test --locked --test api
	bash tests/sdk/run.sh
	bash tests/ui/run.sh
	bash tests/codex/run.sh
	@echo "== the diagnosis build's own code (jemalloc's figures on /metrics; Cargo.toml, feature jemalloc-diagnostics)"
	$(CARGO) test --locked --lib --features jemalloc-diagnostics telemetry::metrics

screenshots: ## Refresh the README's screenshots of the web console (docs/screenshots/) with the browser test
	bash tests/setup.sh
	LLMGATE_UI_SCREENSHOTS=$(CURDIR)/docs/screenshots bash tests/ui/run.sh

check: ## Formatting, lints and tests: what CI runs
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	$(CARGO) clippy --locked --lib --features jemalloc-diagnostics -- -D warnings
	$(MAKE) test

fmt: ## Format the code
	$(CARGO) fmt --all

clippy: ## Lint with warnings as errors
	$(CARGO) clippy --locked --all-targets -- -D warnings

test-coverage: ## Line coverage of the test suite as HTML in target/coverage (installs cargo-tarpaulin once)
	@command -v cargo-tarpaulin >/dev/null || $(CARGO) install --locked cargo-tarpaulin
	$(CARGO) tarpaulin --engine llvm --out Html --output-dir target/coverage --skip-clean

db-backup: build ## Snapshot the live database to backups/llmgate-<UTC time>.db
	@mkdir -p backups
	$(BIN) backup --database $(DB_URL) backups/llmgate-$$(date -u +%Y%m%dT%H%M%SZ).db

BENCH_SECONDS ?= 10
BENCH_REQUESTS ?= 2000
SOAK_SECONDS  ?= 600
SOAK_MODE     ?= requests

bench: ## Load bench vs nginx, the mock and the floor proxies, then the streams at scale, then the budget table (target/bench/budget-*.json)
	bash benches/setup.sh
	$(CARGO) build --release --locked
	BENCH_SECONDS=$(BENCH_SECONDS) $(CARGO) bench --locked --bench load

perf: bench ## Same as bench

bench-chat: ## make bench without the streams at scale: chat and c=1/c=256 stream phases and their lines of the budget
	bash benches/setup.sh
	$(CARGO) build --release --locked
	BENCH_SECONDS=$(BENCH_SECONDS) $(CARGO) bench --locked --bench load -- --chat

bench-streams: ## 1,000 and 10,000 concurrent long streams, directly, through nginx, llmgate and the floors (the last part of make bench)
	bash benches/setup.sh
	$(CARGO) build --release --locked
	$(CARGO) bench --locked --bench load -- --streams

bench-cluster: ## Three replicas on PostgreSQL + Redis (started from Debian's binaries) under one round-robin load generator: the figures of #20 (CLUSTER_DB=sqlite for one shared SQLite file)
	$(CARGO) build --release --locked
	$(CARGO) bench --locked --bench load -- --cluster

bench-quick: ## Only c=64 chat, llmgate, nginx and the floor proxies in turn for BENCH_ROUNDS rounds: medians of CPU/request
	bash benches/setup.sh
	$(CARGO) build --release --locked
	BENCH_SECONDS=$(BENCH_SECONDS) $(CARGO) bench --locked --bench load -- --quick

bench-latency: ## Only the c=1 chat and stream phases, every server in turn for BENCH_ROUNDS rounds (LLMGATE_BIN_B: a second gateway binary beside the first): medians beside nginx's
	bash benches/setup.sh
	$(CARGO) build --release --locked
	BENCH_SECONDS=$(BENCH_SECONDS) $(CARGO) bench --locked --bench load -- --latency

profile: ## perf record of llmgate under the c=64 chat load: self and inclusive time by symbol in target/bench
	@command -v perf >/dev/null || { echo "make profile needs perf (Debian package linux-perf)" >&2; exit 2; }
	bash benches/setup.sh
	$(CARGO) build --release --locked
	BENCH_SECONDS=$(BENCH_SECONDS) $(CARGO) bench --locked --bench load -- --profile
	python3 benches/breakdown.py "$$(ls -t target/bench/profile-*.data | head -n 1)"

profile-breakdown: ## Share of CPU by system call and by part of the request path, from the newest profile
	python3 benches/breakdown.py "$$(ls -t target/bench/profile-*.data | head -n 1)"

bench-instructions: ## Instructions, system calls and context switches per chat request (callgrind, perf stat), llmgate and the bare axum + reqwest floor: steady on a busy machine
	$(CARGO) build --release --locked
	bash benches/instructions.sh --floor "$$($(CARGO) build --release --locked --bench load --message-format=json \
		| python3 -c 'import json, sys; print([m["executable"] for m in map(json.loads, sys.stdin) if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "load" and m.get("executable")][-1])')" \
		target/release/llmgate $(BENCH_REQUESTS)

bench-summary: ## Medians of every bench run under target/bench (llmgate beside nginx; needs jq)
	bash benches/summary.sh target/bench/bench-*.json

bench-micro: ## Criterion micro-benchmarks of the hot path (key lookup, routing, request head, SSE, usage)
	$(CARGO) bench --locked --bench gateway --bench usage

soak: ## Soak for SOAK_SECONDS (default 600) at half llmgate's c=64 throughput; reports RSS growth (SOAK_MODE=streams: soak-streams)
ifeq ($(SOAK_MODE),streams)
	$(MAKE) soak-streams
else
	$(CARGO) build --release --locked
	SOAK_SECONDS=$(SOAK_SECONDS) $(CARGO) bench --locked --bench load -- --soak
endif

soak-streams: ## Soak with SOAK_STREAMS (2,000) paced streams renewed as they end for SOAK_SECONDS: RSS, open files, every stream recorded
	$(CARGO) build --release --locked
	SOAK_SECONDS=$(SOAK_SECONDS) $(CARGO) bench --locked --bench load -- --soak-streams

IMAGE ?= llmgate:latest

docker-build: ## Build the container image (needs a running Docker engine)
	@docker info >/dev/null 2>&1 || { echo "docker-build needs a running Docker engine (docker info failed)"; exit 1; }
	docker build -t $(IMAGE) .

docker-run: ## Run the image on :8080 with ./llmgate.toml and a named volume for the database
	@docker info >/dev/null 2>&1 || { echo "docker-run needs a running Docker engine (docker info failed)"; exit 1; }
	docker run --rm -p 8080:8080 -v llmgate-data:/data \
		$$( [ -f llmgate.toml ] && echo "-v $$PWD/llmgate.toml:/etc/llmgate.toml:ro -e LLMGATE_CONFIG=/etc/llmgate.toml" ) \
		$(IMAGE)

clean: ## Remove build output
	$(CARGO) clean
