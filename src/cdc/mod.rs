//! The streaming relay on ScyllaDB: reads the outbox table's CDC log with `scylla-cdc` and
//! publishes each new event through the same publisher, retry policy, circuit breaker and
//! dead letter queue as the polling relay.
//!
//! - [`decode`]: a CDC log row → the outbox event it inserted (pure, unit-tested).
//! - [`outlet`]: publishes one event with retries, back-pressure and dead-lettering; never
//!   fails because of the sink.
//! - [`consumer`]: the `Consumer` / `ConsumerFactory` the reader calls per stream.
//! - [`timing`]: window / safety / sleep intervals and their presets.
//! - [`reader`]: builds the reader from the saved checkpoints and restarts it after errors.
//! - [`relays`]: puts the lease, the switch and both relays together for start-up.
//! - [`switch`]: runs the polling or the CDC relay, as the relay mode asks, while this
//!   instance holds the relay [`lease`] (one relay per keyspace, however many instances).

pub mod consumer;
pub mod decode;
pub mod lease;
pub mod outlet;
pub mod reader;
pub mod relays;
pub mod switch;
pub mod timing;

/// Name under which the CDC relay records deliveries (and its newest position).
pub const CDC_RELAY_NAME: &str = "cdc";
/// The outbox table, whose CDC log the relay reads.
pub const OUTBOX_TABLE: &str = "outbox";
/// The table of scylla-cdc's table-backed checkpoint saver (see `schema/scylla/`).
pub const CHECKPOINT_TABLE: &str = "cdc_checkpoints";

/// Errors of the CDC relay. Publish failures are never among them: the outlet turns those into
/// retries, waits or dead letters.
#[derive(Debug, thiserror::Error)]
pub enum CdcError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The relay is stopping: a wait ended early.
    #[error("the relay is stopping")]
    Stopped,
    /// The scylla-cdc reader failed (restarted from its checkpoints by the supervisor).
    #[error("the CDC reader failed: {0}")]
    Reader(String),
    /// The reader would have to start before what the CDC log keeps, and events were written
    /// there (times since the Unix epoch): starting anyway would skip them.
    #[error(
        "the CDC log no longer holds events the relay has not read: those written from {} to \
         {} are past the log's retention. Switch the relay to polling (POST \
         /api/admin/relay/mode with {{\"mode\":\"polling\"}}): its index still holds them; \
         streaming, switched back on later, starts where polling got to",
        utc(*.from), utc(*.to)
    )]
    LogExpired {
        from: std::time::Duration,
        to: std::time::Duration,
    },
}

/// A time since the Unix epoch, written as a UTC timestamp.
fn utc(since_epoch: std::time::Duration) -> String {
    let micros = i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX);
    chrono::DateTime::from_timestamp_micros(micros).map_or_else(
        || format!("{since_epoch:?}"),
        |t| crate::domain::timestamp(&t),
    )
}
