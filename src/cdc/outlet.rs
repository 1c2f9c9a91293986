//! Publishing one event from the CDC log, with the same failure policy as the polling relay
//! (`resilience::policy`): acknowledged → recorded; refused for good → dead-lettered; failing
//! transiently → retried with backoff, and dead-lettered only once it has kept failing while
//! the sink took other messages. While the breaker is open the outlet waits (back-pressure:
//! the stream reader waits with it), so a broker outage never dead-letters anything. Recording
//! the outcome is retried while the store fails transiently (a timeout, an unavailable
//! replica): the stream waits, nothing is skipped, and the reader is not torn down. Only a
//! stop, or a store error that retrying cannot mend, ends a delivery without an outcome.

use super::{CDC_RELAY_NAME, CdcError};
use crate::domain::StoredEvent;
use crate::publish::{Encoder, FailureKind, PublishError, Publisher};
use crate::relay::runner::pause;
use crate::relay::suspension::SuspensionWatch;
use crate::resilience::Resilience;
use crate::resilience::policy::{self, Attempt, Decision, Tally};
use crate::store::dead_letters::NewDeadLetter;
use crate::store::{OutboxLog, StoreError};
use crate::telemetry::Telemetry;
use crate::telemetry::live::dead_letter_event;
use app::dto::{DlqAction, RelayMode};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// First and longest wait before recording an outcome again after a transient store error.
const STORE_RETRY_MIN: Duration = Duration::from_millis(100);
const STORE_RETRY_MAX: Duration = Duration::from_secs(5);

/// Everything a CDC consumer needs to publish an event.
pub struct Outlet {
    /// Where deliveries and dead letters are recorded.
    pub store: Arc<dyn OutboxLog>,
    /// The relay's sink (with the fault injector), shared with the polling relay.
    pub publisher: Arc<dyn Publisher>,
    pub encoder: Encoder,
    /// The same retry policy and circuit breaker as the polling relay.
    pub resilience: Resilience,
    /// Metrics and the live feed, labelled `streaming`.
    pub telemetry: Telemetry,
    /// Cancelled once the relay should stop; waits end early on it.
    pub stop: CancellationToken,
    /// The operator's suspension; nothing is sent while suspended.
    pub suspension: SuspensionWatch,
}

impl Outlet {
    /// Publishes `event` until it is acknowledged or dead-lettered, and records which.
    pub async fn deliver(&self, event: StoredEvent) -> Result<(), CdcError> {
        let (resilience, metrics) = (&self.resilience, &self.telemetry.metrics);
        let message = self.encoder.message(&event);
        let mut tally = Tally::default();
        let mut first_failed_at = None;
        // The ticket of the last failed attempt: what the sink took since then is the
        // evidence about this event (other streams publish meanwhile).
        let mut since = None;
        loop {
            self.while_suspended().await?;
            if let Err(refusal) = resilience.breaker.try_acquire() {
                self.pause(refusal.wait()).await?;
                continue;
            }
            let started = Instant::now();
            let (result, ticket) = resilience
                .publish_one(self.publisher.as_ref(), &message)
                .await;
            let now = Utc::now();
            (self.telemetry.spans).publish(&event, started.elapsed(), &result);
            let error = match result {
                Ok(delivery) => {
                    let publish_time = started.elapsed().as_secs_f64();
                    (self.telemetry.deliveries(RelayMode::Streaming)).delivered(
                        &event,
                        &delivery.topic,
                        publish_time,
                        now,
                    );
                    if first_failed_at.is_some() {
                        metrics.retry_success.with_label_values(&["publish"]).inc();
                    }
                    let record = delivery.recorded_at(now);
                    let deliveries = vec![(event.position, record)];
                    return self
                        .recorded(|| async {
                            (self.store)
                                .record_progress(
                                    CDC_RELAY_NAME,
                                    event.position,
                                    deliveries.clone(),
                                    Vec::new(),
                                )
                                .await
                        })
                        .await;
                }
                Err(error) => error,
            };
            (self.telemetry).publish_failed(event.envelope.event_type.as_str(), error.kind);
            let first = *first_failed_at.get_or_insert(now);
            let later = resilience
                .sent
                .took_later_than(*since.get_or_insert(ticket));
            since = Some(ticket);
            let decision;
            (decision, tally) = policy::decide(
                Attempt::Failed(error.kind),
                later,
                tally,
                resilience.breaker.view(),
                &resilience.retry,
                fastrand::f64(),
            );
            match decision {
                Decision::DeadLetter => {
                    if error.kind != FailureKind::Permanent {
                        metrics.retry_failure.with_label_values(&["publish"]).inc();
                    }
                    let failures = tally.failures;
                    return self.dead_letter(event, error, failures, first, now).await;
                }
                Decision::Retry { after } => {
                    metrics.retry_attempts.with_label_values(&["publish"]).inc();
                    tracing::warn!(position = event.position, attempt = tally.failures, error = %error, "publish failed; retrying");
                    self.pause(after).await?;
                }
                // The sink is down, not this event: wait for it.
                Decision::Pause { wait } => self.pause(wait).await?,
                Decision::Acknowledge => unreachable!("a failed attempt is never acknowledged"),
            }
        }
    }

    /// Waits while an operator has suspended the relay, or fails at once if it is stopping.
    async fn while_suspended(&self) -> Result<(), CdcError> {
        let mut suspension = self.suspension.clone();
        if !suspension.check() {
            return Ok(());
        }
        tokio::select! {
            () = suspension.resumed() => Ok(()),
            () = self.stop.cancelled() => Err(CdcError::Stopped),
        }
    }

    /// Waits `delay`, or fails at once if the relay is stopping.
    async fn pause(&self, delay: Duration) -> Result<(), CdcError> {
        if pause(delay, &self.stop).await {
            Ok(())
        } else {
            Err(CdcError::Stopped)
        }
    }

    /// Runs `write` until it succeeds, waiting with backoff while the store fails
    /// transiently: the stream waits with it (back-pressure, never a skip).
    async fn recorded<F, Fut>(&self, write: F) -> Result<(), CdcError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(), StoreError>>,
    {
        let mut wait = STORE_RETRY_MIN;
        loop {
            match write().await {
                Ok(()) => return Ok(()),
                Err(error) if error.is_transient() => {
                    tracing::warn!(%error, retry_in = ?wait, "cannot record a CDC delivery; retrying");
                    self.pause(wait).await?;
                    wait = (wait * 2).min(STORE_RETRY_MAX);
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    async fn dead_letter(
        &self,
        event: StoredEvent,
        error: PublishError,
        failures: u32,
        first_failed_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), CdcError> {
        tracing::warn!(
            position = event.position,
            event_id = %event.envelope.event_id,
            error = %error,
            "dead-lettered from the CDC stream"
        );
        let letter = NewDeadLetter::new(event, error, failures, first_failed_at, now);
        let position = letter.event.position;
        self.recorded(|| async {
            (self.store)
                .record_progress(CDC_RELAY_NAME, position, Vec::new(), vec![letter.clone()])
                .await
        })
        .await?;
        self.telemetry.metrics.dlq_messages.inc();
        self.telemetry
            .live
            .send(dead_letter_event(DlqAction::Added, None, &letter.event));
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::publish::{Delivery, Message, Outcomes};
    use crate::resilience::breaker::CircuitBreaker;
    use crate::store::scylla::cluster::fake::{Answer, FakeCluster, timeout};
    use crate::store::scylla::rows::{self, tests::event_row};
    use crate::store::scylla::statements::Stmt;
    use crate::store::scylla::tests::scripted;
    use async_trait::async_trait;
    use std::sync::Mutex;

    /// An outlet with the default retry policy and breaker, recording into `store`,
    /// publishing to `publisher`, until `stop`.
    pub fn outlet(
        store: Arc<dyn OutboxLog>,
        publisher: Arc<dyn Publisher>,
        stop: CancellationToken,
    ) -> Outlet {
        Outlet {
            store,
            publisher,
            encoder: Encoder::default(),
            resilience: Resilience::new(
                Default::default(),
                Arc::new(CircuitBreaker::new(Default::default())),
            ),
            telemetry: Default::default(),
            stop,
            suspension: crate::relay::suspension::Suspension::default().watch(),
        }
    }

    /// A sink that takes every message.
    struct Takes;

    #[async_trait]
    impl Publisher for Takes {
        async fn publish(&self, batch: &[Message]) -> Outcomes {
            let delivery = |m: &Message| Delivery {
                topic: m.topic.clone(),
                partition: Some(0),
                offset: Some(0),
            };
            batch.iter().map(|m| Ok(delivery(m))).collect()
        }

        fn name(&self) -> &'static str {
            "takes"
        }
    }

    /// An outlet over a ScyllaDB store whose `n`th delivery write (from 0) answers
    /// `answer(n)`, and when each write was tried (on the tokio clock).
    async fn recording_into(
        answer: impl Fn(usize) -> Answer + Send + Sync + 'static,
    ) -> (
        Outlet,
        Arc<FakeCluster>,
        Arc<Mutex<Vec<tokio::time::Instant>>>,
    ) {
        let fake = Arc::new(FakeCluster::default());
        let tried = Arc::new(Mutex::new(Vec::new()));
        let times = Arc::clone(&tried);
        fake.respond(Stmt::SaveDelivery, move |_| {
            let mut times = times.lock().unwrap();
            times.push(tokio::time::Instant::now());
            answer(times.len() - 1)
        });
        let store = Arc::new(scripted(fake.clone()).await);
        let outlet = outlet(store, Arc::new(Takes), CancellationToken::new());
        (outlet, fake, tried)
    }

    fn event() -> StoredEvent {
        rows::event(&event_row()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_timeout_while_recording_is_retried_with_backoff_from_100_ms_to_5_s() {
        let (outlet, fake, tried) =
            recording_into(|n| if n < 8 { timeout() } else { Ok(Vec::new()) }).await;
        outlet.deliver(event()).await.unwrap();
        let tried = tried.lock().unwrap();
        let waits: Vec<_> = tried.windows(2).map(|w| w[1] - w[0]).collect();
        let expected = [100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000].map(Duration::from_millis);
        assert_eq!(waits, expected);
        assert_eq!(
            fake.count(Stmt::SaveCheckpoint),
            1,
            "recorded once it got through"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn only_a_stop_or_a_store_error_retrying_cannot_mend_ends_a_delivery() {
        // A store that refuses the write for good: the delivery ends at once, with that error.
        let refused = || Err(StoreError::Backend("refused (injected)".into()));
        let (outlet, fake, _) = recording_into(move |_| refused()).await;
        let delivered = tokio::time::timeout(STORE_RETRY_MIN, outlet.deliver(event()))
            .await
            .expect("ends without waiting");
        assert!(
            matches!(delivered, Err(CdcError::Store(StoreError::Backend(_)))),
            "{delivered:?}"
        );
        assert_eq!(fake.count(Stmt::SaveDelivery), 1, "not retried");
        // A store that keeps timing out: the delivery waits, however long, until the stop.
        let (outlet, fake, tried) = recording_into(|_| timeout()).await;
        let waited = Duration::from_secs(600);
        let stopping = async {
            tokio::time::sleep(waited).await;
            outlet.stop.cancel();
        };
        let delivering = tokio::time::timeout(waited + STORE_RETRY_MIN, outlet.deliver(event()));
        let (delivered, ()) = tokio::join!(delivering, stopping);
        let delivered = delivered.expect("ended by the stop");
        assert!(matches!(delivered, Err(CdcError::Stopped)), "{delivered:?}");
        // Up to 3.2 s in the first 6.3 s, then every 5 s.
        assert_eq!(tried.lock().unwrap().len(), 7 + (600_000 - 6_300) / 5_000);
        assert_eq!(fake.count(Stmt::SaveCheckpoint), 0);
    }
}
