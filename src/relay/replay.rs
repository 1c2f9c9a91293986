//! Dead letter replay: publishes a record's original envelope (same `event_id`) through the
//! relay's sink and circuit breaker, and marks it `replayed` only after the sink acknowledged.

use crate::domain::DeliveryRecord;
use crate::publish::{FailureKind, Message, Publisher, TopicRouter};
use crate::resilience::breaker::{CircuitBreaker, Refusal};
use crate::store::dead_letters::{DeadLetter, DeadLetterStatus, ReplayOutcome};
use crate::store::{OutboxStore, StoreError};
use crate::telemetry::Telemetry;
use crate::telemetry::live::LiveEvent;
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;

/// Why a replay did not deliver.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no such dead letter")]
    NotFound,
    #[error("the dead letter is {}, not pending", .0.as_str())]
    NotPending(DeadLetterStatus),
    /// The circuit breaker is open: nothing was attempted.
    #[error("the sink is unavailable (circuit breaker open); retry in {} ms", .retry_in.as_millis())]
    SinkUnavailable { retry_in: Duration },
    /// The sink refused it; the attempt is recorded and the record stays pending.
    #[error("the sink did not acknowledge the event: {0}")]
    Failed(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ReplayError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            StoreError::NotPending(status) => Self::NotPending(status),
            other => Self::Store(other),
        }
    }
}

/// Publishes dead letters again, through the same sink and breaker as the relay.
pub struct Replayer {
    pub store: Arc<dyn OutboxStore>,
    pub publisher: Arc<dyn Publisher>,
    pub breaker: Arc<CircuitBreaker>,
    pub topics: TopicRouter,
    /// Counts replays by outcome and announces them.
    pub telemetry: Telemetry,
}

impl Replayer {
    /// Replays record `id`: publishes its original envelope and records the outcome.
    pub async fn replay(&self, id: i64) -> Result<DeadLetter, ReplayError> {
        let letter = self
            .store
            .dead_letter(id)
            .await?
            .ok_or(ReplayError::NotFound)?;
        if letter.status != DeadLetterStatus::Pending {
            return Err(ReplayError::NotPending(letter.status));
        }
        if let Err(refusal) = self.breaker.try_acquire() {
            let retry_in = match refusal {
                Refusal::Open { retry_in } => retry_in,
                Refusal::ProbesBusy => Duration::from_millis(100),
            };
            return Err(ReplayError::SinkUnavailable { retry_in });
        }
        let message = Message::from_event(&letter.failure.event, &self.topics);
        let result = self.publisher.publish(std::slice::from_ref(&message)).await;
        let outcome = match result.into_iter().next() {
            Some(Ok(d)) => {
                self.breaker.on_success();
                ReplayOutcome::Delivered(DeliveryRecord {
                    topic: d.topic,
                    partition: d.partition,
                    offset: d.offset,
                    published_at: Utc::now(),
                })
            }
            Some(Err(e)) => {
                if e.kind == FailureKind::Transient {
                    self.breaker.on_failure(&e.message);
                } else {
                    // A refused message says nothing about the sink's health.
                    self.breaker.on_success();
                }
                ReplayOutcome::Failed(e.message)
            }
            None => {
                self.breaker.on_failure("no outcome");
                ReplayOutcome::Failed("the sink reported no outcome".into())
            }
        };
        let failed = match &outcome {
            ReplayOutcome::Failed(e) => Some(e.clone()),
            ReplayOutcome::Delivered(_) => None,
        };
        let label = if failed.is_some() {
            "failed"
        } else {
            "delivered"
        };
        self.telemetry
            .metrics
            .dlq_replays
            .with_label_values(&[label])
            .inc();
        let letter = self.store.record_replay(id, outcome).await?;
        match failed {
            Some(e) => Err(ReplayError::Failed(e)),
            None => {
                let event = LiveEvent::dead_letter("replayed", Some(id), &letter.failure.event);
                self.telemetry.live.send(event);
                Ok(letter)
            }
        }
    }
}
