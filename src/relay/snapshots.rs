//! The live feed's snapshots: twice a second, what the relay is doing (mode, state, backlog,
//! throughput, latency, breaker, dead letters, fault), published to the feed's hub.

use super::activity::RelayActivity;
use super::backlog::BacklogGauge;
use crate::domain::timestamp;
use crate::publish::faults::FaultInjector;
use crate::resilience::breaker::CircuitBreaker;
use crate::store::DeadLetterStore;
use crate::telemetry::live::{LiveHub, SNAPSHOT_EVERY, Snapshot, Throughput};
use app::dto::RelayMode;
use chrono::Utc;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the snapshot task reads.
pub struct Sources {
    /// The backlog after the relay's checkpoint.
    pub backlog: Arc<BacklogGauge>,
    /// Pending dead letters.
    pub dead_letters: Arc<dyn DeadLetterStore>,
    pub activity: Arc<RelayActivity>,
    pub mode: watch::Receiver<RelayMode>,
    pub breaker: Arc<CircuitBreaker>,
    pub faults: Arc<FaultInjector>,
}

/// Takes a snapshot every [`SNAPSHOT_EVERY`] until `stop` is cancelled.
pub fn spawn(
    hub: Arc<LiveHub>,
    sources: Sources,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut throughput = Throughput::default();
        let mut ticks = tokio::time::interval(SNAPSHOT_EVERY);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = stop.cancelled() => break,
            }
            let activity = sources.activity.get();
            let Ok(counts) = sources.dead_letters.dead_letter_counts().await else {
                continue; // the store is busy: skip this snapshot
            };
            let backlog = sources.backlog.read().await.unwrap_or_default();
            let now = Utc::now();
            let (per_1s, per_10s) = throughput.sample(Instant::now(), hub.published_total());
            let (p50, p99) = hub.latency_percentiles();
            let fault = sources.faults.fault();
            let mode = *sources.mode.borrow();
            hub.publish_snapshot(Snapshot {
                at: timestamp(&now),
                mode,
                state: activity.state,
                published_total: hub.published_total(),
                events_per_second_1s: per_1s,
                events_per_second_10s: per_10s,
                latency_p50_ms: p50,
                latency_p99_ms: p99,
                pending: backlog.pending,
                oldest_pending_age_ms: backlog.oldest.map(|t| (now - t).num_milliseconds().max(0)),
                breaker: sources.breaker.state(),
                dlq_pending: counts.pending,
                fault: fault.is_active().then_some(fault),
            });
        }
    })
}
