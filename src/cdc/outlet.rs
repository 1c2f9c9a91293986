//! Publishing one event from the CDC log: the polling relay's decisions, per event.
//!
//! Acknowledged → recorded. Refused for good → dead-lettered. Failing transiently → retried
//! with backoff, and dead-lettered once its attempts run out while the breaker stays closed.
//! While the breaker is open the outlet waits (back-pressure: the stream reader waits with
//! it), so a broker outage never floods the dead letter queue. Only the store or a stop can
//! end a delivery without an outcome.

use super::{CDC_RELAY_NAME, CdcError};
use crate::domain::{DeliveryRecord, StoredEvent};
use crate::publish::{Delivery, FailureKind, Message, PublishError, Publisher, TopicRouter};
use crate::store::dead_letters::NewDeadLetter;
use app::dto::RelayMode;

use crate::relay::Resilience;
use crate::resilience::breaker::{BreakerState, Refusal};

use crate::store::{OutboxStore, StoreError};
use crate::telemetry::Telemetry;
use crate::telemetry::live::LiveEvent;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long to wait when another probe holds the half-open breaker's only slot.
const PROBE_WAIT: Duration = Duration::from_millis(50);

/// Everything a CDC consumer needs to publish an event.
pub struct Outlet {
    /// Where deliveries and dead letters are recorded.
    pub store: Arc<dyn OutboxStore>,
    /// The relay's sink (with the fault injector), shared with the polling relay.
    pub publisher: Arc<dyn Publisher>,
    pub topics: TopicRouter,
    /// The same retry policy and circuit breaker as the polling relay.
    pub resilience: Resilience,
    /// Metrics and the live feed, labelled `streaming`.
    pub telemetry: Telemetry,
    /// True once the relay should stop; waits end early on it.
    pub stop: watch::Receiver<bool>,
    /// True while an operator has suspended the relay; nothing is sent meanwhile.
    pub hold: watch::Receiver<bool>,
}

impl Outlet {
    /// Publishes `event` until it is acknowledged or dead-lettered, and records which.
    pub async fn deliver(&self, event: StoredEvent) -> Result<(), CdcError> {
        let breaker = &self.resilience.breaker;
        let message = Message::from_event(&event, &self.topics);
        let mut failures = 0;
        let mut first_failed_at = None;
        loop {
            self.while_suspended().await?;
            if let Err(refusal) = breaker.try_acquire() {
                let wait = match refusal {
                    Refusal::Open { retry_in } => retry_in,
                    Refusal::ProbesBusy => PROBE_WAIT,
                };
                self.pause(wait).await?;
                continue;
            }
            let started = Instant::now();
            let result = self
                .publisher
                .publish(std::slice::from_ref(&message))
                .await
                .into_iter()
                .next()
                .unwrap_or_else(|| Err(PublishError::transient("the sink reported no outcome")));
            let now = Utc::now();
            let error = match result {
                Ok(delivery) => {
                    breaker.on_success();
                    let mode = RelayMode::Streaming.as_str();
                    let publish_time = started.elapsed().as_secs_f64();
                    (self.telemetry).delivered(&event, &delivery.topic, mode, publish_time, now);
                    if first_failed_at.is_some() {
                        let success = &self.telemetry.metrics.retry_success;
                        success.with_label_values(&["publish"]).inc();
                    }
                    return Ok(self.acknowledge(&event, delivery, now).await?);
                }
                Err(error) => error,
            };
            (self.telemetry).publish_failed(event.envelope.event_type.as_str(), error.kind);
            failures += 1;
            let first = *first_failed_at.get_or_insert(now);
            if error.kind == FailureKind::Permanent {
                breaker.on_success();
                return Ok(self.dead_letter(event, error, failures, first, now).await?);
            }
            breaker.on_failure(&error.message);
            if breaker.state() != BreakerState::Closed {
                // The sink is down, not this event: wait for it, and count afresh afterwards.
                failures = 0;
                continue;
            }
            let metrics = &self.telemetry.metrics;
            if self.resilience.retry.may_retry(failures) {
                metrics.retry_attempts.with_label_values(&["publish"]).inc();
                tracing::warn!(position = event.position, attempt = failures, error = %error, "publish failed; retrying");
                self.pause(self.resilience.retry.delay(failures)).await?;
            } else {
                metrics.retry_failure.with_label_values(&["publish"]).inc();
                return Ok(self.dead_letter(event, error, failures, first, now).await?);
            }
        }
    }

    /// Waits while an operator has suspended the relay, or fails at once if it is stopping.
    async fn while_suspended(&self) -> Result<(), CdcError> {
        let (mut hold, mut stop) = (self.hold.clone(), self.stop.clone());
        if !*hold.borrow() {
            return Ok(());
        }
        tokio::select! {
            _ = hold.wait_for(|h| !*h) => Ok(()),
            Ok(_) = stop.wait_for(|s| *s) => Err(CdcError::Stopped),
        }
    }

    /// Waits `delay`, or fails at once if the relay is stopping.
    async fn pause(&self, delay: Duration) -> Result<(), CdcError> {
        let mut stop = self.stop.clone();
        tokio::select! {
            () = tokio::time::sleep(delay) => Ok(()),
            _ = stop.wait_for(|s| *s) => Err(CdcError::Stopped),
        }
    }

    async fn acknowledge(
        &self,
        event: &StoredEvent,
        d: Delivery,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let record = DeliveryRecord {
            topic: d.topic,
            partition: d.partition,
            offset: d.offset,
            published_at: at,
        };
        self.store
            .record_progress(
                CDC_RELAY_NAME,
                event.position,
                vec![(event.position, record)],
                Vec::new(),
            )
            .await
    }

    async fn dead_letter(
        &self,
        event: StoredEvent,
        error: PublishError,
        failures: u32,
        first_failed_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        tracing::warn!(
            position = event.position,
            event_id = %event.envelope.event_id,
            error = %error,
            "dead-lettered from the CDC stream"
        );
        let letter = NewDeadLetter::new(event, error, failures, first_failed_at, now);
        let position = letter.event.position;
        self.store
            .record_progress(CDC_RELAY_NAME, position, Vec::new(), vec![letter.clone()])
            .await?;
        self.telemetry.metrics.dlq_messages.inc();
        self.telemetry
            .live
            .send(LiveEvent::dead_letter("added", None, &letter.event));
        Ok(())
    }
}
