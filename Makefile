# Two commands: `make run` serves the app on the embedded default; `make test` runs every check.
# Both install what is missing first (scripts/setup.sh; a second run skips what is there).

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(CURDIR)/end2end/node_modules/.bin:$(PATH)

# The Kafka tests' broker: tansu with SQLite storage (so it can restart with its topics),
# installed by scripts/setup.sh into a folder named by version and features.
TANSU_VERSION := 0.6.0
TANSU := $(HOME)/.cache/outbox-tools/tansu-$(TANSU_VERSION)-sqlite/bin/tansu
export TANSU_VERSION TANSU

# kcat runs on the librdkafka of this confluent-kafka wheel (scripts/kcat; setup fetches it once).
CONFLUENT_KAFKA_VERSION := 2.16.1
KCAT_LIBRDKAFKA := $(HOME)/.cache/outbox-tools/confluent-kafka-$(CONFLUENT_KAFKA_VERSION)-librdkafka
export CONFLUENT_KAFKA_VERSION KCAT_LIBRDKAFKA

# schemathesis (from PyPI, in a venv named by version) checks the JSON API against its OpenAPI
# document in `make contract`; scripts/setup.sh installs it.
SCHEMATHESIS_VERSION := 4.32.5
SCHEMATHESIS_VENV := $(HOME)/.cache/outbox-tools/schemathesis-$(SCHEMATHESIS_VERSION)
export SCHEMATHESIS_VERSION SCHEMATHESIS_VENV

LEPTOS_SITE_ADDR ?= 127.0.0.1:3000
DATA_DIR ?= ./data
export LEPTOS_SITE_ADDR DATA_DIR

.PHONY: run test setup-run setup-test build-release build-debug test-binaries fmt-check clippy rust-tests contract e2e bench bench-orders bench-relay bench-scale bench-cpu test-scylla test-scylla-cluster

## run: install what is missing, build (release, with wasm-opt) and serve on the embedded store
run: setup-run build-release
	@echo "Serving on http://$(LEPTOS_SITE_ADDR) (data in $(DATA_DIR)); Ctrl-C stops it."
	LEPTOS_SITE_ROOT=target/site ./target/release/outbox

## test: install what is missing, then format, clippy, Rust tests, the API contract
## (schemathesis) and Playwright in Chromium
test: setup-test fmt-check clippy rust-tests contract e2e

setup-run:
	@scripts/setup.sh run

setup-test:
	@scripts/setup.sh test

build-release:
	cargo leptos build --release

# cargo-leptos compiles debug builds with `--cfg erase_components`, on the server and in the
# browser bundle alike, and the two must match or hydration fails. The Rust tests and the e2e
# server are built with the same flag, so they share one build of every dependency; when
# cargo-leptos built the e2e server itself, a clean `make test` compiled them all twice
# (about 5 minutes).
DEBUG_RUSTFLAGS := --cfg erase_components

# The debug server is the binary `cargo test` builds for the integration tests (same flag,
# same features), so after `rust-tests` this builds nothing.
test-binaries:
	RUSTFLAGS="$(DEBUG_RUSTFLAGS)" cargo test --workspace --no-run

# The browser bundle through cargo-leptos, and the debug server.
build-debug: test-binaries
	cargo leptos build --frontend-only

fmt-check:
	cargo fmt --all -- --check

clippy:
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p app --lib --features hydrate --target wasm32-unknown-unknown -- -D warnings

rust-tests:
	RUSTFLAGS="$(DEBUG_RUSTFLAGS)" cargo test --workspace

## test-scylla: the ScyllaDB suites against SCYLLA_URI=host:port (KAFKA_BROKERS, else tansu):
## `make test` reports them ignored; here they run, and fail without SCYLLA_URI
test-scylla:
	RUSTFLAGS="$(DEBUG_RUSTFLAGS)" cargo test --test api scylla -- --include-ignored --skip losing_one_of_three_nodes

## test-scylla-cluster: node loss on a three-node cluster (`docker compose --profile cluster`):
## SCYLLA_CLUSTER_URI=host:port, SCYLLA_STOP_NODE=<a shell command that stops one node>
test-scylla-cluster:
	RUSTFLAGS="$(DEBUG_RUSTFLAGS)" cargo test --test api losing_one_of_three_nodes -- --ignored

## contract: schemathesis fuzzes every operation of the debug server's OpenAPI document
## (scripts/api-contract.sh: its own port and data dir; CONTRACT_MAX_EXAMPLES, CONTRACT_SEED)
contract: test-binaries
	scripts/api-contract.sh

## e2e: Playwright against the debug build (the config starts the server on its own data dir)
e2e: build-debug
	cd end2end && npx playwright test

## bench: every bench; docs/BENCHMARKS.md has their reports
bench: bench-orders bench-relay bench-scale bench-cpu

## bench-orders: HTTP load against the release server, beside the direct-store baseline
bench-orders:
	cargo bench --bench orders -- $(BENCH_ARGS)

## bench-scale: the same reads timed on 1,000 and on 100,000 orders (cost per page, not per data)
bench-scale:
	cargo bench --bench scale -- $(SCALE_BENCH_ARGS)

## bench-cpu: instructions per relayed event and per created order, counted by callgrind
bench-cpu:
	@scripts/setup.sh bench
	cargo bench --bench cpu -- $(CPU_BENCH_ARGS)

## bench-relay: backlog drain into tansu beside a raw producer; latency per relay mode; RSS
bench-relay:
	@scripts/setup.sh bench
	cargo bench --bench relay -- $(RELAY_BENCH_ARGS)
