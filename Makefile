# llmgate — the everyday commands. `make help` lists them.

CARGO   ?= cargo
BIN     := target/release/llmgate
DB_URL  ?= sqlite://llmgate.db
RUN_ARGS ?= --demo

.DEFAULT_GOAL := help
.PHONY: help build run demo test check fmt clippy db-backup clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build the release binary (target/release/llmgate)
	$(CARGO) build --release --locked

run: build ## Run the gateway (default: with the demo upstream; RUN_ARGS='--config llmgate.toml' for yours)
	$(BIN) serve $(RUN_ARGS)

test: ## Run every test (unit and integration)
	$(CARGO) test --locked --all-targets

check: ## Formatting, lints and tests: what CI runs
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	$(MAKE) test

fmt: ## Format the code
	$(CARGO) fmt --all

clippy: ## Lint with warnings as errors
	$(CARGO) clippy --locked --all-targets -- -D warnings

db-backup: build ## Snapshot the live database to backups/llmgate-<UTC time>.db
	@mkdir -p backups
	$(BIN) backup --database $(DB_URL) backups/llmgate-$$(date -u +%Y%m%dT%H%M%SZ).db

clean: ## Remove build output
	$(CARGO) clean
