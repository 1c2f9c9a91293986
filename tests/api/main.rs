//! Integration tests: one binary. Each test spawns the application on port 0 with its own
//! temporary data directory (`helpers::spawn_app`), or the real server binary (`crash`).
//! The live ScyllaDB tests (in `scylla`, and the `scylla` instance of the store contract)
//! are ignored unless run with `--include-ignored` (`make test-scylla`) against `SCYLLA_URI`.

mod admin;
mod audit;
mod bad_input;
mod broker;
mod cdc_outlet;
mod concurrency;
mod console;
mod consumer_lag;
mod contract;
mod crash;
mod dlq_groups;
mod event_path;
mod frozen_broker;
mod hardening;
mod helpers;
mod idempotency;
mod kafka;
mod kafka_producer;
mod layers;
mod live;
mod logs;
mod metrics;
mod monitoring;
mod orders;
mod relay;
mod resilience;
mod scylla;
mod store_contract;
mod topic_check;
mod trace_context;
