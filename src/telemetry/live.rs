//! The live feed behind `GET /api/live`: a snapshot of the relay every 500 ms (aggregates
//! only) and discrete events as they happen (breaker transitions, dead letters, published
//! samples at a bounded rate).
//!
//! Snapshots go through a `watch` channel (a slow client only ever sees the newest one) and
//! discrete events through a bounded `broadcast` channel (a slow client skips what it
//! missed); neither ever waits for a client, so the relay is never slowed by one.

use crate::domain::StoredEvent;
use app::dto::DlqAction;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often a snapshot is taken.
pub const SNAPSHOT_EVERY: Duration = Duration::from_millis(500);
/// Discrete events a slow client may fall behind by before it skips some.
pub const EVENT_BUFFER: usize = 256;
/// Latency samples are kept this long, and at most this many.
const LATENCY_WINDOW: Duration = Duration::from_secs(60);
const LATENCY_SAMPLES: usize = 20_000;
/// At most one `published` sample per this interval.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

pub use app::dto::LiveEvent;

/// A dead letter event about `event`.
pub fn dead_letter_event(action: DlqAction, id: Option<i64>, event: &StoredEvent) -> LiveEvent {
    let e = &event.envelope;
    LiveEvent::Dlq {
        action,
        id,
        event_id: e.event_id.to_string(),
        event_type: e.event_type.as_str().to_string(),
        aggregate_id: e.aggregate_id.to_string(),
    }
}

/// What every client gets twice a second (the browser reads the same type).
pub use app::dto::LiveSnapshotDto as Snapshot;

/// The feed's shared state: written by the relay, the breaker and the DLQ paths, read by
/// the snapshot task and the SSE handler.
pub struct LiveHub {
    events: broadcast::Sender<LiveEvent>,
    snapshots: watch::Sender<Option<Snapshot>>,
    /// Events acknowledged since start, for the throughput figures.
    published: AtomicU64,
    /// (when, commit → publish in ms) of recent events.
    latencies: Mutex<VecDeque<(Instant, f64)>>,
    last_sample: Mutex<Option<Instant>>,
    /// Cancelled when the server starts shutting down; open streams end then.
    closing: CancellationToken,
    /// One permit per open stream: bounds the clients.
    clients: Arc<Semaphore>,
}

impl std::fmt::Debug for LiveHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveHub")
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl LiveHub {
    /// A hub whose streams end on `closing`, with at most `max_clients` open at once.
    pub fn new(closing: CancellationToken, max_clients: usize) -> Self {
        Self {
            events: broadcast::channel(EVENT_BUFFER).0,
            snapshots: watch::channel(None).0,
            published: AtomicU64::new(0),
            latencies: Mutex::new(VecDeque::new()),
            last_sample: Mutex::new(None),
            closing,
            clients: Arc::new(Semaphore::new(max_clients)),
        }
    }

    /// Sends a discrete event to whoever listens (nobody is fine).
    pub fn send(&self, event: LiveEvent) {
        let _ = self.events.send(event);
    }

    /// Records one acknowledged event; emits it as a `published` sample if the last sample is
    /// old enough.
    pub fn published(&self, sample: impl FnOnce() -> LiveEvent, latency_ms: f64) {
        self.published.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        {
            let mut l = lock(&self.latencies);
            l.push_back((now, latency_ms));
            while l.len() > LATENCY_SAMPLES
                || l.front().is_some_and(|(t, _)| now - *t > LATENCY_WINDOW)
            {
                l.pop_front();
            }
        }
        let mut last = lock(&self.last_sample);
        if last.is_none_or(|t| now - t >= SAMPLE_EVERY) {
            *last = Some(now);
            drop(last);
            self.send(sample());
        }
    }

    pub fn published_total(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// p50 and p99 of the last minute's latencies, in ms.
    pub fn latency_percentiles(&self) -> (Option<f64>, Option<f64>) {
        let now = Instant::now();
        let mut values: Vec<f64> = lock(&self.latencies)
            .iter()
            .filter(|(t, _)| now - *t <= LATENCY_WINDOW)
            .map(|(_, v)| *v)
            .collect();
        if values.is_empty() {
            return (None, None);
        }
        // Two selections instead of a sort: this runs twice a second over up to 20,000
        // samples. The p99 rank is at or above the p50 rank, so it is found among the rest.
        let rank = |p: f64| ((values.len() - 1) as f64 * p).round() as usize;
        let (p50, p99) = (rank(0.50), rank(0.99));
        let (_, median, above) = values.select_nth_unstable_by(p50, f64::total_cmp);
        let median = *median;
        let p99 = if p99 == p50 {
            median
        } else {
            *above
                .select_nth_unstable_by(p99 - p50 - 1, f64::total_cmp)
                .1
        };
        (Some(median), Some(p99))
    }

    pub fn publish_snapshot(&self, snapshot: Snapshot) {
        self.snapshots.send_replace(Some(snapshot));
    }

    pub fn snapshots(&self) -> watch::Receiver<Option<Snapshot>> {
        self.snapshots.subscribe()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.events.subscribe()
    }

    pub fn closing(&self) -> CancellationToken {
        self.closing.clone()
    }

    /// A place for one more stream, or `None` when `max_clients` are open.
    pub fn join(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.clients).try_acquire_owned().ok()
    }
}

/// Throughput over the last 1 s and 10 s from samples of the published counter.
#[derive(Debug, Default)]
pub struct Throughput(VecDeque<(Instant, u64)>);

impl Throughput {
    /// Adds a sample and returns (events/s over 1 s, over 10 s).
    pub fn sample(&mut self, now: Instant, total: u64) -> (f64, f64) {
        self.0.push_back((now, total));
        while self
            .0
            .front()
            .is_some_and(|(t, _)| now - *t > Duration::from_secs(11))
        {
            self.0.pop_front();
        }
        let rate = |window: Duration| {
            let oldest = self.0.iter().find(|(t, _)| now - *t <= window);
            match oldest {
                Some((t, n)) if now > *t => (total - n) as f64 / (now - *t).as_secs_f64(),
                _ => 0.0,
            }
        };
        (rate(Duration::from_secs(1)), rate(Duration::from_secs(10)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LiveEvent {
        LiveEvent::Published {
            event_id: "e".into(),
            event_type: "OrderCreated".into(),
            topic: "t".into(),
            latency_ms: 1,
        }
    }

    #[test]
    fn throughput_is_measured_over_the_last_second_and_the_last_ten() {
        let start = Instant::now();
        let mut rates = Throughput::default();
        let at = |ms: u64| start + Duration::from_millis(ms);
        // 100 events every 500 ms for 12 s: 200 a second on both windows.
        let mut total = 0;
        for tick in 0..=24 {
            let now = at(tick * 500);
            let (one, ten) = rates.sample(now, total);
            if tick >= 20 {
                assert_eq!((one, ten), (200.0, 200.0), "tick {tick}");
            }
            total += 100;
        }
        total -= 100;
        // Then nothing for 2 s: the 1 s rate drops to 0, the 10 s one to 8 s' worth of 10.
        let (one, ten) = rates.sample(at(12_000 + 1_000), total);
        assert_eq!(one, 0.0);
        assert!(ten > 0.0);
        let (one, ten) = rates.sample(at(12_000 + 2_000), total);
        assert_eq!((one, ten), (0.0, 160.0));
    }

    #[tokio::test(start_paused = true)]
    async fn latency_percentiles_cover_the_last_minute_only() {
        let hub = LiveHub::new(tokio_util::sync::CancellationToken::new(), 1);
        assert_eq!(hub.latency_percentiles(), (None, None));
        for ms in 1..=100 {
            hub.published(sample, 1_000.0 + f64::from(ms));
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        for ms in 1..=100 {
            hub.published(sample, f64::from(ms));
        }
        assert_eq!(hub.latency_percentiles(), (Some(1_001.0), Some(1_098.0)));
        // 31 s later the first hundred are over a minute old and no longer count.
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(hub.latency_percentiles(), (Some(51.0), Some(99.0)));
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(hub.latency_percentiles(), (None, None));
    }

    /// However fast events are published, the feed carries at most one `published` sample per
    /// 200 ms (every event still counts in the totals and latencies).
    #[tokio::test(start_paused = true)]
    async fn published_samples_are_capped_at_five_a_second() {
        let hub = LiveHub::new(tokio_util::sync::CancellationToken::new(), 1);
        let mut feed = hub.subscribe();
        for _ in 0..1000 {
            hub.published(sample, 1.0);
        }
        tokio::time::advance(SAMPLE_EVERY).await;
        for _ in 0..1000 {
            hub.published(sample, 1.0);
        }
        let mut sent = 0;
        while feed.try_recv().is_ok() {
            sent += 1;
        }
        assert_eq!(sent, 2);
        assert_eq!(hub.published_total(), 2000);
    }
}
