//! Integration tests: one binary. Each test spawns the application on port 0 with its own
//! temporary data directory (`helpers::spawn_app`), or the real server binary (`crash`).
//! The ScyllaDB tests (`scylla`, and the `scylla` instance of the store contract) need
//! `SCYLLA_URI`; without it they report themselves skipped on stderr.

mod admin;
mod bad_input;
mod broker;
mod cdc_outlet;
mod concurrency;
mod console;
mod crash;
mod frozen_broker;
mod hardening;
mod helpers;
mod idempotency;
mod kafka;
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
