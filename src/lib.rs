//! The outbox console server: a transactional order writer with an outbox, its JSON API, and
//! the server side of the Leptos UI.
//!
//! Every order change and its domain event are committed in one atomic write by a single
//! group-commit writer; each event gets a gap-free commit position, and the relay publishes the
//! events in that order, moving its checkpoint only after the sink acknowledged them.
//!
//! # Layout
//!
//! The modules form layers, listed bottom up: each uses only those above it in this list
//! (`tests/api/layers.rs` checks it), so a reader can learn them in this order.
//!
//! 1. [`domain`]: the order aggregate, value types (parse, don't validate), events as
//!    committed (`StoredEvent`) and where they were delivered, the one timestamp text format
//!    (`domain/timestamp.rs`), the W3C trace context an event keeps (`domain/trace.rs`), and
//!    configuration secrets that never show in `Debug` output (`domain/secret.rs`). Pure.
//! 2. [`publish`]: the publisher seam (`Publisher`, `Message`, transient vs permanent
//!    `PublishError`), how an event becomes a message — topic routing and the outbox or
//!    CloudEvents layout (`publish/encoding.rs`) — the embedded topic log's seam and sink
//!    (`publish/local.rs`),
//!    the Kafka sink (`publish/kafka.rs`) and the fault-injecting wrapper (`publish/faults.rs`).
//! 3. [`store`]: the store's role traits and their SQLite (`store/sqlite/`) and ScyllaDB
//!    (`store/scylla/`) implementations; dead letter records and their failure groups
//!    (`store/dead_letters.rs`) and the operators' audit log (`store/audit.rs`).
//! 4. [`resilience`]: retry delays with backoff and jitter (`resilience/retry.rs`), the
//!    circuit breaker (`resilience/breaker.rs`), and the failure policy every publisher path
//!    applies (`resilience/policy.rs`). The decisions are pure; `Resilience::publish_one`
//!    is the one place that calls the sink.
//! 5. [`telemetry`]: logs (`telemetry/logs.rs`), Prometheus metrics (`telemetry/metrics.rs`),
//!    OTLP span export (`telemetry/spans.rs`), the live feed's hub (`telemetry/live.rs`), and
//!    `Telemetry`, what publishers report to.
//! 6. [`relay`]: the relay step function with its send-ahead pipeline (`relay/mod.rs`), its
//!    supervised runner with the polling and streaming modes and operator suspension
//!    (`relay/runner.rs`), the operator's suspension (`relay/suspension.rs`), what it is doing
//!    (`relay/activity.rs`), dead letter replay (`relay/replay.rs`), the live feed's snapshots
//!    (`relay/snapshots.rs`), and retention (`relay/retention.rs`).
//! 7. [`cdc`]: the streaming relay on ScyllaDB (scylla-cdc consumer, outlet, supervised
//!    reader, relay lease and the switch between the two relays).
//! 8. [`config`]: every setting, from flags or environment variables, grouped per subsystem,
//!    with durations written one way (`config/duration.rs`).
//! 9. [`views`]: domain → DTO conversions shared by the API and the UI.
//! 10. [`ui`]: the server side of the UI's server functions (implements `app::api::OrdersApi`).
//! 11. [`http`]: the axum router: JSON API (`http/orders.rs`, `http/topics.rs`), admin
//!     endpoints for the relay and faults (`http/admin.rs`) and the dead letter queue
//!     (`http/dlq.rs`) behind authentication by bearer token or console session
//!     (`http/auth.rs`, `http/session.rs`) with a per-address limit on wrong tokens
//!     (`http/throttle.rs`), the console's sign-in and page guard (`http/console.rs`), health
//!     probes (`http/health.rs`), security headers (`http/headers.rs`), `/metrics`
//!     (`http/metrics.rs`), the SSE live feed
//!     (`http/live.rs`), request ids (`http/request_id.rs`), the request's trace context
//!     (`http/trace.rs`), the layer every answer passes through (`http/edge.rs`: request id,
//!     trace, span, security headers, metrics), the request limits (`http/bounded.rs`), the
//!     audit of operator actions (`http/audit.rs`), the OpenAPI document
//!     (`http/openapi.rs`), `AppError`, extractors, and the Leptos page routes.
//! 12. [`startup`]: `Application::build` (open the stores, build the sink, the relay's parts,
//!     the background tasks, the admin secret) and `run_until_stopped` (graceful shutdown with
//!     cancellation tokens and a task tracker), used by `main` and the tests.
//!
//! The UI itself lives in the `app` crate of this workspace, with the DTOs and enums the
//! server, the console and the tests share (`app::dto`); `schema/sqlite/` and
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
