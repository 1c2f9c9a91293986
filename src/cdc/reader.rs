//! Runs the CDC log reader and restarts it from its checkpoints after an error.
//!
//! The reader saves, per stream, how far it consumed (scylla-cdc's table-backed checkpoint
//! saver). On start the builder would take `max(checkpoint, start_timestamp)` with
//! `start_timestamp` defaulting to *now*, skipping whatever was written while the relay was
//! down; so the start is set explicitly ([`start_timestamp`]) from the saved progress and the
//! polling relay's. When that start lies before what the CDC log still keeps and events were
//! written in between, the reader refuses to start ([`CdcError::LogExpired`]) rather than
//! skip them: the polling relay, whose index outlives the log, can publish them.

use super::consumer::OutboxConsumerFactory;
use super::outlet::Outlet;
use super::timing::CdcTiming;
use super::{CHECKPOINT_TABLE, CdcError, OUTBOX_TABLE};
use crate::relay::activity::{RelayActivity, RelayState};
use crate::relay::restart::RestartBackoff;
use crate::relay::runner::pause;
use crate::store::scylla::ScyllaStore;
use crate::store::scylla::cdc_progress::CdcProgress;
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
/// How often scylla-cdc saves each stream's checkpoint (its default is 10 s). A reader that
/// fails sooner than this after every start would resume from the same old checkpoints
/// forever; the outlet no longer fails on store errors, and this keeps the rest short.
const SAVE_EVERY: Duration = Duration::from_secs(2);
/// How long a stopping reader may take to finish the rows in flight.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// What the reader's start depends on (times since the Unix epoch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartFacts {
    /// How far the reader consumed each stream of the current generation.
    pub streams: Vec<Duration>,
    /// Up to when the polling relay handled every event, if it ever ran.
    pub polled: Option<Duration>,
    /// When the oldest event the polling relay has not published may have been written
    /// (`None`: there is none).
    pub first_unpolled: Option<Duration>,
}

/// Where the reader starts: the oldest stream checkpoint of the current generation (each
/// stream then resumes at its own, later one), or, if the polling relay has since handled
/// events beyond it, where the polling relay got to. Without checkpoints: where the oldest
/// event the polling relay has not published may be (or now, when there is none). Positions
/// come from the writers' clocks, so the polling relay's marks are taken `settle` earlier.
pub fn start_timestamp(facts: &StartFacts, now: Duration, settle: Duration) -> Duration {
    let polled = facts.polled.map(|t| t.saturating_sub(settle));
    match (facts.streams.iter().min(), polled) {
        (Some(own), Some(polled)) => (*own).max(polled),
        (Some(own), None) => *own,
        (None, _) => facts.first_unpolled.unwrap_or(now).saturating_sub(settle),
    }
}

/// The part of the log the reader would need that the log no longer keeps: `Some((from,
/// to))` when `start` is before `now - CDC_LOG_TTL`.
pub fn expired_part(start: Duration, now: Duration) -> Option<(Duration, Duration)> {
    let kept_since = now.saturating_sub(CDC_LOG_TTL);
    (start < kept_since).then_some((start, kept_since))
}

/// A position every event below which the reader has consumed, for the backlog gauges: the
/// oldest checkpoint of the current generation's streams, less `settle` (an event's position
/// is taken before its write, at most about `settle` earlier). `None` before the first
/// checkpoint.
pub fn low_water_mark(progress: &CdcProgress, settle: Duration) -> Option<u64> {
    let oldest = progress.streams.iter().min()?.saturating_sub(settle);
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
    let mut backoff = RestartBackoff::new(RESTART_MIN, RESTART_MAX);
    loop {
        let started = tokio::time::Instant::now();
        let error = match run(&relay, stop.clone()).await {
            Ok(()) => break,
            Err(e) => e,
        };
        let wait = backoff.after_failure(started.elapsed() > HEALTHY_RUN);
        tracing::warn!(%error, retry_in = ?wait, "CDC reader stopped; restarting from its checkpoints");
        relay
            .activity
            .set(RelayState::Starting, None, Some(error.to_string()));
        if !pause(wait, &stop).await {
            break;
        }
    }
    relay.outlet.publisher.close();
    relay.activity.set(RelayState::Stopped, None, None);
    tracing::info!("CDC relay stopped");
}

/// Where this life of the reader starts: see [`start_timestamp`] and [`expired_part`].
async fn start(store: &ScyllaStore, now: Duration) -> Result<Duration, CdcError> {
    let progress = store.cdc_progress().await?;
    let facts = StartFacts {
        polled: store.polled_through().await?,
        first_unpolled: if progress.streams.is_empty() {
            store.first_unpolled().await?
        } else {
            None
        },
        streams: progress.streams,
    };
    let start = start_timestamp(&facts, now, store.settle());
    match expired_part(start, now) {
        None => Ok(start),
        Some((from, to)) if store.wrote_between(from, to).await? => {
            Err(CdcError::LogExpired { from, to })
        }
        // Nothing was written in the part the log dropped: start where it begins.
        Some((_, to)) => Ok(to),
    }
}

/// One life of the reader: until it fails, or until `stop` (then `Ok`).
async fn run(relay: &CdcRelay, stop: CancellationToken) -> Result<(), CdcError> {
    let reader_error = |e: anyhow::Error| CdcError::Reader(format!("{e:#}"));
    let store = &relay.store;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let unreadable = &relay.outlet.telemetry.metrics.cdc_unreadable_seconds;
    let start = match start(store, now).await {
        Err(CdcError::LogExpired { from, to }) => {
            unreadable.set((to - from).as_secs_f64());
            return Err(CdcError::LogExpired { from, to });
        }
        other => other?,
    };
    unreadable.set(0.0);
    let session = (store.cdc_session())
        .ok_or_else(|| CdcError::Reader("the store has no session for the CDC reader".into()))?;
    let saver = TableBackedCheckpointSaver::builder()
        .session(Arc::clone(&session))
        .keyspace(store.keyspace())
        .table_name(CHECKPOINT_TABLE)
        .create_table(false)
        .build()
        .await
        .map_err(reader_error)?;
    let (mut reader, mut handle) = CDCLogReaderBuilder::new()
        .session(session)
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
        .pause_between_saves(SAVE_EVERY)
        .checkpoint_saver(Arc::new(saver))
        .build()
        .await
        .map_err(reader_error)?;
    relay.activity.set(RelayState::Running, None, None);
    match watch_progress(&mut handle, &stop, store, &relay.activity).await {
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

/// Waits for the reader (`handle`) to end (`Some` of its result) or `stop` (`None`),
/// showing its low-water mark on the status page every [`PROGRESS_EVERY`]. A failed progress
/// read is logged and skipped: the figures are only for show, and the reader goes on
/// regardless.
async fn watch_progress<R>(
    handle: &mut R,
    stop: &CancellationToken,
    store: &ScyllaStore,
    activity: &RelayActivity,
) -> Option<R::Output>
where
    R: std::future::Future + Unpin,
{
    let mut ticks = tokio::time::interval(PROGRESS_EVERY);
    loop {
        tokio::select! {
            result = &mut *handle => return Some(result),
            () = stop.cancelled() => return None,
            _ = ticks.tick() => {}
        }
        match store.cdc_progress().await {
            Ok(progress) => {
                let mark = low_water_mark(&progress, store.settle());
                activity.set(RelayState::Running, mark, None);
            }
            Err(error) => tracing::warn!(%error, "cannot read the CDC reader's progress"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Duration = Duration::from_secs(1_800_000_000);
    const SETTLE: Duration = Duration::from_secs(4);

    fn facts(
        streams: &[Duration],
        polled: Option<Duration>,
        unpolled: Option<Duration>,
    ) -> StartFacts {
        StartFacts {
            streams: streams.to_vec(),
            polled,
            first_unpolled: unpolled,
        }
    }

    #[test]
    fn the_reader_starts_at_the_oldest_saved_checkpoint() {
        let saved = [
            NOW - Duration::from_secs(40),
            NOW - Duration::from_secs(600),
            NOW,
        ];
        let unpolled = Some(NOW - Duration::from_secs(7200));
        assert_eq!(
            start_timestamp(&facts(&saved, None, unpolled), NOW, SETTLE),
            NOW - Duration::from_secs(600)
        );
    }

    #[test]
    fn without_checkpoints_it_starts_before_the_oldest_unpublished_event() {
        let unpolled = Some(NOW - Duration::from_secs(300));
        assert_eq!(
            start_timestamp(&facts(&[], None, unpolled), NOW, SETTLE),
            NOW - Duration::from_secs(304)
        );
        assert_eq!(
            start_timestamp(&facts(&[], None, None), NOW, SETTLE),
            NOW - SETTLE
        );
    }

    #[test]
    fn what_the_polling_relay_published_since_is_not_read_again() {
        // The CDC relay stopped two days ago; the polling relay ran since, up to a minute ago.
        let old = [NOW - 2 * CDC_LOG_TTL];
        let polled = Some(NOW - Duration::from_secs(60));
        let start = start_timestamp(&facts(&old, polled, None), NOW, SETTLE);
        assert_eq!(start, NOW - Duration::from_secs(64));
        assert_eq!(expired_part(start, NOW), None);
        // And a polling mark older than the reader's own progress changes nothing.
        let recent = [NOW - Duration::from_secs(10)];
        let start = start_timestamp(&facts(&recent, Some(NOW - CDC_LOG_TTL), None), NOW, SETTLE);
        assert_eq!(start, NOW - Duration::from_secs(10));
    }

    #[test]
    fn a_start_before_the_logs_retention_is_reported_not_clamped() {
        let saved = [NOW - 3 * CDC_LOG_TTL];
        let start = start_timestamp(&facts(&saved, None, None), NOW, SETTLE);
        assert_eq!(
            expired_part(start, NOW),
            Some((NOW - 3 * CDC_LOG_TTL, NOW - CDC_LOG_TTL))
        );
        assert_eq!(expired_part(NOW - Duration::from_secs(5), NOW), None);
    }

    #[test]
    fn the_low_water_mark_trails_the_oldest_checkpoint_by_the_settle_interval() {
        use crate::store::scylla::position::time_of;
        let t = Duration::from_secs(1_800_000_000);
        let progress = CdcProgress {
            generation: Some(t - Duration::from_secs(3600)),
            streams: vec![t + Duration::from_secs(9), t],
        };
        let mark = low_water_mark(&progress, Duration::from_secs(4)).unwrap();
        let expected = chrono::DateTime::from_timestamp(1_800_000_000 - 4, 0).unwrap();
        assert_eq!(time_of(mark), expected);
        assert_eq!(low_water_mark(&CdcProgress::default(), SETTLE), None);
    }

    /// A checkpoint-table row: a stream of the generation started at `generation`, consumed
    /// up to `consumed`.
    fn stream_row(generation: Duration, consumed: Duration) -> crate::store::scylla::cluster::Row {
        use scylla::value::{CqlTimestamp, CqlValue};
        let millis = |d: Duration| CqlValue::Timestamp(CqlTimestamp(d.as_millis() as i64));
        vec![
            Some(CqlValue::Blob(vec![5; 16])),
            Some(millis(generation)),
            Some(millis(consumed)),
        ]
    }

    #[tokio::test(start_paused = true)]
    async fn every_5_s_the_low_water_mark_is_shown_and_a_failed_read_skipped() {
        use crate::store::scylla::cluster::fake::{FakeCluster, timeout};
        use crate::store::scylla::statements::Stmt;
        assert_eq!(PROGRESS_EVERY, Duration::from_secs(5));
        // Reads at 0, 5, 10, 15 s: the first and third fail; the others find the stream
        // consumed up to NOW + 5 s and NOW + 15 s.
        let fake = Arc::new(FakeCluster::default());
        let started = tokio::time::Instant::now();
        fake.respond(Stmt::CdcCheckpoints, move |_| {
            let at = started.elapsed();
            match at.as_secs() % 10 {
                0 => timeout(),
                _ => Ok(vec![stream_row(NOW, NOW + at)]),
            }
        });
        let store = crate::store::scylla::tests::scripted(fake.clone()).await;
        let activity = RelayActivity::default();
        let mark_at = |consumed: Duration| {
            let progress = CdcProgress {
                generation: None,
                streams: vec![consumed],
            };
            low_water_mark(&progress, store.settle()).unwrap()
        };
        let (done, mut handle) = tokio::sync::oneshot::channel::<&str>();
        let stop = CancellationToken::new();
        let watching = watch_progress(&mut handle, &stop, &store, &activity);
        let reader = async {
            tokio::time::sleep(Duration::from_secs(7)).await;
            assert_eq!(
                activity.get().checkpoint,
                mark_at(NOW + Duration::from_secs(5))
            );
            tokio::time::sleep(Duration::from_secs(10)).await;
            assert_eq!(
                activity.get().checkpoint,
                mark_at(NOW + Duration::from_secs(15))
            );
            // The reader ends on its own: its result, not a failed read, ends the watch.
            done.send("finished").unwrap();
        };
        let (ended, ()) = tokio::join!(watching, reader);
        assert_eq!(ended, Some(Ok("finished")));
        assert_eq!(fake.count(Stmt::CdcCheckpoints), 4);
    }

    /// A store whose checkpoint table holds one stream consumed up to `consumed`, whose
    /// polling relay never ran, and whose pending index has a bucket registered or not.
    async fn store_with(consumed: Duration, buckets: bool) -> ScyllaStore {
        use crate::store::scylla::cluster::fake::FakeCluster;
        use crate::store::scylla::statements::Stmt;
        use scylla::value::CqlValue;
        let fake = FakeCluster::default();
        let stream = stream_row(consumed - Duration::from_secs(60), consumed);
        fake.always(Stmt::CdcCheckpoints, Ok(vec![stream]));
        let bucket = vec![vec![Some(CqlValue::BigInt(1))]];
        fake.always(Stmt::Buckets, Ok(if buckets { bucket } else { Vec::new() }));
        crate::store::scylla::tests::scripted(Arc::new(fake)).await
    }

    #[tokio::test]
    async fn the_reader_refuses_to_skip_events_the_log_no_longer_holds() {
        let down_since = NOW - 2 * CDC_LOG_TTL;
        let store = store_with(down_since, true).await;
        match start(&store, NOW).await {
            Err(CdcError::LogExpired { from, to }) => {
                assert_eq!((from, to), (down_since, NOW - CDC_LOG_TTL));
            }
            other => panic!("expected LogExpired, got {other:?}"),
        }
        let message = CdcError::LogExpired {
            from: down_since,
            to: NOW - CDC_LOG_TTL,
        }
        .to_string();
        assert!(message.contains("Switch the relay to polling"), "{message}");
    }

    #[tokio::test]
    async fn with_nothing_written_in_the_dropped_part_it_starts_where_the_log_begins() {
        let store = store_with(NOW - 2 * CDC_LOG_TTL, false).await;
        assert_eq!(start(&store, NOW).await.unwrap(), NOW - CDC_LOG_TTL);
    }

    #[tokio::test]
    async fn a_generation_marker_alone_does_not_send_the_reader_into_the_future() {
        use crate::store::scylla::cluster::fake::FakeCluster;
        use crate::store::scylla::statements::Stmt;
        use scylla::value::{CqlTimestamp, CqlValue};
        // A start killed after scylla-cdc saved the generation and before any checkpoint.
        let marker = vec![
            Some(CqlValue::Blob(vec![0])),
            Some(CqlValue::Timestamp(CqlTimestamp(1_700_000_000_000))),
            Some(CqlValue::Timestamp(CqlTimestamp(i64::MAX))),
        ];
        let fake = FakeCluster::default();
        fake.always(Stmt::CdcCheckpoints, Ok(vec![marker]));
        let store = crate::store::scylla::tests::scripted(Arc::new(fake)).await;
        assert_eq!(start(&store, NOW).await.unwrap(), NOW - SETTLE);
    }

    /// A reader that cannot start (here: a store without a session) is restarted after
    /// 0.5, 1, 2, 4 s…, says why on the status page meanwhile, and stops when told to.
    #[tokio::test(start_paused = true)]
    async fn a_failing_reader_is_restarted_with_growing_waits() {
        use crate::store::scylla::cluster::fake::FakeCluster;
        use crate::store::scylla::statements::Stmt;
        let fake = Arc::new(FakeCluster::default());
        let store = Arc::new(crate::store::scylla::tests::scripted(fake.clone()).await);
        let stop = CancellationToken::new();
        let nowhere = Arc::new(crate::relay::test_support::Nowhere);
        let outlet = super::super::outlet::tests::outlet(store.clone(), nowhere, stop.clone());
        let activity = Arc::new(RelayActivity::default());
        let relay = CdcRelay {
            store,
            timing: super::super::timing::CdcPreset::Default.timing(),
            outlet: Arc::new(outlet),
            activity: Arc::clone(&activity),
        };
        let reader = spawn(relay, stop.clone());
        // Lives start at 0, 0.5, 1.5, 3.5 and 7.5 s.
        tokio::time::sleep(Duration::from_millis(7_600)).await;
        assert_eq!(fake.count(Stmt::CdcCheckpoints), 5);
        let shown = activity.get();
        assert_eq!(shown.state, RelayState::Starting);
        assert!(shown.last_error.unwrap_or_default().contains("no session"));
        tokio::time::sleep(Duration::from_millis(7_000)).await;
        assert_eq!(
            fake.count(Stmt::CdcCheckpoints),
            5,
            "the next one waits 8 s"
        );
        stop.cancel();
        reader.await.unwrap();
        assert_eq!(activity.get().state, RelayState::Stopped);
    }
}
