//! The relay's backlog as the status page, the live feed and `/metrics` show it.
//!
//! Counting it reads the outbox after the relay's checkpoint, which only means something
//! where the relay runs: on ScyllaDB an instance that does not hold the relay lease has no
//! checkpoint of its own and would count every registered bucket. So the count is made only
//! where the relay runs, reused for a moment (each reader asking twice a second would count
//! the pending index twice a second per instance), and a failed count is never an error for
//! the reader: the last one stays.

use super::activity::RelayActivity;
use crate::store::{Backlog, OutboxLog};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;

/// The backlog, counted where the relay runs.
pub struct BacklogGauge {
    log: Arc<dyn OutboxLog>,
    /// Where the relay's checkpoint is.
    activity: Arc<RelayActivity>,
    /// Whether this instance runs the relay: always on the embedded store, the lease holder
    /// on ScyllaDB.
    runs_relay: watch::Receiver<bool>,
    /// How long a count is reused.
    fresh_for: Duration,
    /// The last count and when it was made; behind an async lock, so concurrent readers wait
    /// for one count instead of making one each.
    last: Mutex<Option<(Instant, Backlog)>>,
}

impl BacklogGauge {
    pub fn new(
        log: Arc<dyn OutboxLog>,
        activity: Arc<RelayActivity>,
        runs_relay: watch::Receiver<bool>,
        fresh_for: Duration,
    ) -> Self {
        Self {
            log,
            activity,
            runs_relay,
            fresh_for,
            last: Mutex::new(None),
        }
    }

    /// Whether this instance runs the relay.
    pub fn runs_relay(&self) -> bool {
        *self.runs_relay.borrow()
    }

    /// The backlog, or `None` where the relay does not run (or nothing could be counted yet).
    pub async fn read(&self) -> Option<Backlog> {
        if !self.runs_relay() {
            return None;
        }
        let mut last = self.last.lock().await;
        if let Some((at, backlog)) = *last
            && at.elapsed() < self.fresh_for
        {
            return Some(backlog);
        }
        match self.log.backlog(self.activity.get().checkpoint).await {
            Ok(backlog) => {
                *last = Some((Instant::now(), backlog));
                Some(backlog)
            }
            Err(error) => {
                tracing::warn!(%error, "cannot count the relay's backlog; showing the last count");
                last.map(|(_, backlog)| backlog)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::test_support::ScriptedLog;
    use crate::store::StoreError;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    /// A backlog of `pending` events, counted on request, or an error while `failing`.
    #[derive(Default)]
    struct Counted {
        pending: AtomicU64,
        counts: AtomicU64,
        failing: AtomicBool,
    }

    fn gauge(counted: &Arc<Counted>, owner: bool) -> (BacklogGauge, watch::Sender<bool>) {
        let state = Arc::clone(counted);
        let log = ScriptedLog {
            backlog: Box::new(move || {
                state.counts.fetch_add(1, Ordering::SeqCst);
                if state.failing.load(Ordering::SeqCst) {
                    return Err(StoreError::Unavailable("timed out (injected)".into()));
                }
                Ok(Backlog {
                    pending: state.pending.load(Ordering::SeqCst),
                    oldest: None,
                })
            }),
            ..Default::default()
        };
        let (tx, rx) = watch::channel(owner);
        let log: Arc<dyn OutboxLog> = Arc::new(log);
        let gauge = BacklogGauge::new(log, Default::default(), rx, Duration::from_secs(5));
        (gauge, tx)
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_instance_running_the_relay_counts_and_not_on_every_read() {
        let log = Arc::new(Counted::default());
        let (gauge, owner) = gauge(&log, false);
        assert_eq!(gauge.read().await, None);
        assert_eq!(
            log.counts.load(Ordering::SeqCst),
            0,
            "a standby never counts"
        );
        owner.send_replace(true);
        log.pending.store(7, Ordering::SeqCst);
        for _ in 0..10 {
            assert_eq!(gauge.read().await.map(|b| b.pending), Some(7));
        }
        assert_eq!(log.counts.load(Ordering::SeqCst), 1, "reused while fresh");
        tokio::time::advance(Duration::from_secs(6)).await;
        log.pending.store(9, Ordering::SeqCst);
        assert_eq!(gauge.read().await.map(|b| b.pending), Some(9));
        assert_eq!(log.counts.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_count_shows_the_last_one() {
        let log = Arc::new(Counted::default());
        let (gauge, _owner) = gauge(&log, true);
        log.failing.store(true, Ordering::SeqCst);
        assert_eq!(gauge.read().await, None, "nothing counted yet");
        log.failing.store(false, Ordering::SeqCst);
        log.pending.store(3, Ordering::SeqCst);
        assert_eq!(gauge.read().await.map(|b| b.pending), Some(3));
        tokio::time::advance(Duration::from_secs(6)).await;
        log.failing.store(true, Ordering::SeqCst);
        assert_eq!(gauge.read().await.map(|b| b.pending), Some(3));
    }
}
