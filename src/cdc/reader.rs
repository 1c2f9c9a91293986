//! Runs the CDC log reader and restarts it from its checkpoints after an error.
//!
//! The reader saves, per stream, how far it consumed (scylla-cdc's table-backed checkpoint
//! saver). On start the builder would take `max(checkpoint, start_timestamp)` with
//! `start_timestamp` defaulting to *now*, skipping whatever was written while the relay was
//! down; so the start is set explicitly to the oldest saved checkpoint ([`start_timestamp`]).

use super::consumer::OutboxConsumerFactory;
use super::outlet::Outlet;
use super::timing::CdcTiming;
use super::{CHECKPOINT_TABLE, CdcError, OUTBOX_TABLE};
use crate::relay::activity::{RelayActivity, RelayState};
use crate::relay::runner::pause;
use crate::store::scylla::ScyllaStore;
use scylla_cdc::checkpoints::TableBackedCheckpointSaver;
use scylla_cdc::log_reader::CDCLogReaderBuilder;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long the CDC log keeps changes (`cdc = {'ttl': …}` in `schema/scylla/`): nothing older
/// can be read.
pub const CDC_LOG_TTL: Duration = Duration::from_secs(86_400);
/// First and longest wait before a failed reader is restarted.
const RESTART_MIN: Duration = Duration::from_millis(500);
const RESTART_MAX: Duration = Duration::from_secs(30);
/// A reader that ran this long counts as healthy: its next failure restarts quickly again.
const HEALTHY_RUN: Duration = Duration::from_secs(60);
/// How often the reader's low-water mark is refreshed for the status page and metrics.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// How long a stopping reader may take to finish the rows in flight.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Where the reader starts: the oldest saved stream checkpoint (each stream then resumes at
/// its own, later one). Without checkpoints, where the oldest event the polling relay has not
/// published may be (`first_unpolled`, or now when there is none), less `settle` for writes
/// in flight. Never before the log's retention, which holds nothing older.
pub fn start_timestamp(
    saved: &[Duration],
    first_unpolled: Option<Duration>,
    now: Duration,
    settle: Duration,
) -> Duration {
    let start = match saved.iter().min() {
        Some(oldest) => *oldest,
        None => first_unpolled.unwrap_or(now).saturating_sub(settle),
    };
    start.max(now.saturating_sub(CDC_LOG_TTL))
}

/// A position every event below which the reader has consumed, for the backlog gauges: the
/// oldest stream checkpoint, less `settle` (an event's position is taken before its write,
/// at most about `settle` earlier). `None` before the first checkpoint.
pub fn low_water_mark(saved: &[Duration], settle: Duration) -> Option<u64> {
    let oldest = saved.iter().min()?.saturating_sub(settle);
    let micros = i64::try_from(oldest.as_micros()).ok()?;
    chrono::DateTime::from_timestamp_micros(micros).map(crate::store::scylla::position::first_at)
}

/// What the reader needs.
pub struct CdcRelay {
    /// The store whose `outbox` log the reader reads (its session, keyspace and tables).
    pub store: Arc<ScyllaStore>,
    pub timing: CdcTiming,
    /// Publishes what the consumers decode.
    pub outlet: Arc<Outlet>,
    /// Where the reader reports what it is doing, for the status page.
    pub activity: Arc<RelayActivity>,
}

/// Starts the supervised reader; it runs until `stop` is cancelled.
pub fn spawn(relay: CdcRelay, stop: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(supervise(relay, stop))
}

async fn supervise(relay: CdcRelay, stop: CancellationToken) {
    let (fastest, slowest) = relay.timing.latency();
    tracing::info!(?fastest, ?slowest, "CDC relay starting");
    let mut backoff = RESTART_MIN;
    loop {
        let started = std::time::Instant::now();
        let error = match run(&relay, stop.clone()).await {
            Ok(()) => break,
            Err(e) => e,
        };
        if started.elapsed() > HEALTHY_RUN {
            backoff = RESTART_MIN;
        }
        tracing::warn!(%error, retry_in = ?backoff, "CDC reader stopped; restarting from its checkpoints");
        relay
            .activity
            .set(RelayState::Starting, None, Some(error.to_string()));
        if !pause(backoff, &stop).await {
            break;
        }
        backoff = (backoff * 2).min(RESTART_MAX);
    }
    relay.outlet.publisher.close();
    relay.activity.set(RelayState::Stopped, None, None);
    tracing::info!("CDC relay stopped");
}

/// One life of the reader: until it fails, or until `stop` (then `Ok`).
async fn run(relay: &CdcRelay, stop: CancellationToken) -> Result<(), CdcError> {
    let reader_error = |e: anyhow::Error| CdcError::Reader(format!("{e:#}"));
    let store = &relay.store;
    let saved = store.cdc_checkpoints().await?;
    let first_unpolled = if saved.is_empty() {
        store.first_unpolled().await?
    } else {
        None
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let start = start_timestamp(&saved, first_unpolled, now, store.settle());
    let saver = TableBackedCheckpointSaver::builder()
        .session(store.session())
        .keyspace(store.keyspace())
        .table_name(CHECKPOINT_TABLE)
        .create_table(false)
        .build()
        .await
        .map_err(reader_error)?;
    let (mut reader, mut handle) = CDCLogReaderBuilder::new()
        .session(store.session())
        .keyspace(store.keyspace())
        .table_name(OUTBOX_TABLE)
        .start_timestamp(start)
        .window_size(relay.timing.window)
        .safety_interval(relay.timing.safety)
        .sleep_interval(relay.timing.sleep)
        .consumer_factory(Arc::new(OutboxConsumerFactory {
            outlet: Arc::clone(&relay.outlet),
        }))
        .should_load_progress(true)
        .should_save_progress(true)
        .checkpoint_saver(Arc::new(saver))
        .build()
        .await
        .map_err(reader_error)?;
    relay.activity.set(RelayState::Running, None, None);
    let mut progress = tokio::time::interval(PROGRESS_EVERY);
    let ended = loop {
        let woke = tokio::select! {
            result = &mut handle => Some(Some(result)),
            () = stop.cancelled() => Some(None),
            _ = progress.tick() => None,
        };
        if let Some(ended) = woke {
            break ended;
        }
        let mark = low_water_mark(&store.cdc_checkpoints().await?, store.settle());
        relay.activity.set(RelayState::Running, mark, None);
    };
    match ended {
        Some(result) => result.map_err(reader_error),
        None => {
            reader.stop();
            // Consumers waiting on the sink end at once on the same stop signal; a reader
            // still waiting out its safety interval is dropped (which cancels it).
            let _ = tokio::time::timeout(STOP_GRACE, handle).await;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Duration = Duration::from_secs(1_800_000_000);
    const SETTLE: Duration = Duration::from_secs(4);

    #[test]
    fn the_reader_starts_at_the_oldest_saved_checkpoint() {
        let saved = [
            NOW - Duration::from_secs(40),
            NOW - Duration::from_secs(600),
            NOW,
        ];
        let unpolled = Some(NOW - Duration::from_secs(7200));
        assert_eq!(
            start_timestamp(&saved, unpolled, NOW, SETTLE),
            NOW - Duration::from_secs(600)
        );
    }

    #[test]
    fn without_checkpoints_it_starts_before_the_oldest_unpublished_event() {
        let unpolled = Some(NOW - Duration::from_secs(300));
        assert_eq!(
            start_timestamp(&[], unpolled, NOW, SETTLE),
            NOW - Duration::from_secs(304)
        );
        assert_eq!(start_timestamp(&[], None, NOW, SETTLE), NOW - SETTLE);
    }

    #[test]
    fn it_never_starts_before_the_log_retention() {
        let saved = [NOW - 3 * CDC_LOG_TTL];
        assert_eq!(
            start_timestamp(&saved, None, NOW, SETTLE),
            NOW - CDC_LOG_TTL
        );
        let unpolled = Some(NOW - 2 * CDC_LOG_TTL);
        assert_eq!(
            start_timestamp(&[], unpolled, NOW, SETTLE),
            NOW - CDC_LOG_TTL
        );
    }

    #[test]
    fn the_low_water_mark_trails_the_oldest_checkpoint_by_the_settle_interval() {
        use crate::store::scylla::position::time_of;
        let t = Duration::from_secs(1_800_000_000);
        let saved = [t + Duration::from_secs(9), t];
        let mark = low_water_mark(&saved, Duration::from_secs(4)).unwrap();
        let expected = chrono::DateTime::from_timestamp(1_800_000_000 - 4, 0).unwrap();
        assert_eq!(time_of(mark), expected);
        assert_eq!(low_water_mark(&[], Duration::from_secs(4)), None);
    }
}
