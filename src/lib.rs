//! The outbox console server: a transactional order writer with an outbox, its JSON API, and
//! the server side of the Leptos UI.
//!
//! Every order change and its domain event are committed in one atomic write by a single
//! group-commit writer; each event gets a gap-free commit position, and the relay publishes the
//! events in that order, moving its checkpoint only after the sink acknowledged them.
//!
//! # Layout
//!
//! - [`config`]: every setting, from flags or environment variables.
//! - [`domain`]: the order aggregate, value types (parse, don't validate) and events. Pure.
//! - [`store`]: the `OutboxStore` seam and its SQLite implementation (`store/sqlite/`: schema
//!   migrations, the group-commit writer, order commands, relay progress, dead letters, the
//!   topic log's SQL, the read pool, SQL rows) and its ScyllaDB implementation
//!   (`store/scylla/`: schema, positions, commands, the pending index, dead letters).
//! - [`cdc`]: the streaming relay on ScyllaDB (scylla-cdc consumer, outlet, supervised reader).
//! - [`publish`]: the publisher seam (`Publisher`, `Message`, topic routing, transient vs
//!   permanent `PublishError`), the embedded topic log sink (`publish/local.rs`), the Kafka
//!   sink with its error classification and broker offsets (`publish/kafka.rs`), and the
//!   fault-injecting wrapper
//!   (`publish/faults.rs`).
//! - [`relay`]: the relay step function with its send-ahead pipeline and its retry / pause /
//!   dead-letter decisions (`relay/mod.rs`), its supervised runner with the polling and
//!   streaming modes and operator suspension
//!   (`relay/runner.rs`), what it is doing for the status page (`relay/activity.rs`), and
//!   retention of published events and expired idempotency keys (`relay/retention.rs`).
//! - [`resilience`]: retry delays with backoff and jitter (`resilience/retry.rs`), the circuit
//!   breaker (`resilience/breaker.rs`), and the dead letter queue's types and replay
//!   (`resilience/dlq.rs`; its SQL is `store/sqlite/dead_letters.rs`).
//! - [`http`]: the axum router: JSON API (`http/orders.rs`, `http/topics.rs`), admin endpoints
//!   for the relay and faults (`http/admin.rs`) and the dead letter queue (`http/dlq.rs`)
//!   behind authentication by bearer token or console session (`http/auth.rs`,
//!   `http/session.rs`) with a per-address limit on wrong tokens (`http/throttle.rs`), the
//!   console's sign-in, sign-out and page guard (`http/console.rs`),
//!   health probes (`http/health.rs`),
//!   `/metrics` and request metrics (`http/metrics.rs`), the SSE live feed (`http/live.rs`),
//!   request ids (`http/request_id.rs`), `AppError`, extractors, and the Leptos page routes.
//! - [`ui`]: the server side of the UI's server functions (implements `app::api::OrdersApi`).
//! - [`views`]: domain → DTO conversions shared by the API and the UI.
//! - [`telemetry`]: logs (`telemetry/logs.rs`: JSON or text, `RUST_LOG`), Prometheus
//!   metrics (`telemetry/metrics.rs`), the live feed's hub and snapshots
//!   (`telemetry/live.rs`), and `Telemetry`, what the relay and its helpers report to.
//! - [`startup`]: `Application::build` / `run_until_stopped`, used by `main` and the tests.
//!
//! The UI itself lives in the `app` crate of this workspace; `schema/sqlite/` and
//! `schema/scylla/` hold the SQL and the CQL; `docs/SCYLLA.md` explains the ScyllaDB backend.

pub mod cdc;
pub mod config;
pub mod domain;
pub mod http;
pub mod publish;
pub mod relay;
pub mod resilience;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod ui;
pub mod views;
