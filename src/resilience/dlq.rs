//! The dead letter queue: what a record holds, how operators filter records, and replay.
//!
//! The relay dead-letters an event only while the sink is healthy (a permanent error, or its
//! retries ran out with the circuit breaker closed), in the same store write that moves its
//! checkpoint past it. [`Replayer`] publishes a record's original envelope (same `event_id`)
//! and marks it `replayed` only after the sink acknowledged.

use super::breaker::{CircuitBreaker, Refusal};
use crate::domain::OrderId;
use crate::publish::{FailureKind, Message, PublishError, Publisher, TopicRouter};
use crate::store::{DeliveryRecord, OutboxStore, StoreError, StoredEvent};
use crate::telemetry::Telemetry;
use crate::telemetry::live::LiveEvent;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// Where a record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterStatus {
    /// Waiting for an operator.
    Pending,
    /// Published again and acknowledged.
    Replayed,
    /// Set aside on purpose, with a reason.
    Discarded,
}

impl DeadLetterStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Replayed => "replayed",
            Self::Discarded => "discarded",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "replayed" => Some(Self::Replayed),
            "discarded" => Some(Self::Discarded),
            _ => None,
        }
    }
}

/// Why an event was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterKind {
    /// The sink refused it for good (too large, invalid topic, not authorised, …).
    Permanent,
    /// It kept failing transiently while other events went through.
    RetriesExhausted,
}

impl DeadLetterKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Permanent => "permanent",
            Self::RetriesExhausted => "retries_exhausted",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "permanent" => Some(Self::Permanent),
            "retries_exhausted" => Some(Self::RetriesExhausted),
            _ => None,
        }
    }

    /// The kind for an event whose last failure was `failure`.
    pub fn after(failure: FailureKind) -> Self {
        match failure {
            FailureKind::Permanent => Self::Permanent,
            FailureKind::Transient => Self::RetriesExhausted,
        }
    }
}

/// What the relay hands the store when it gives up on an event.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDeadLetter {
    pub event: StoredEvent,
    pub kind: DeadLetterKind,
    /// The last error, as the sink reported it.
    pub error: String,
    pub failures: u32,
    pub first_failed_at: DateTime<Utc>,
    pub last_failed_at: DateTime<Utc>,
}

impl NewDeadLetter {
    /// The record for `event`, given up on after `failures` failures, the last being `error`.
    pub fn new(
        event: StoredEvent,
        error: PublishError,
        failures: u32,
        first_failed_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            event,
            kind: DeadLetterKind::after(error.kind),
            error: error.message,
            failures,
            first_failed_at,
            last_failed_at: now,
        }
    }
}

/// One replay attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayAttempt {
    pub at: DateTime<Utc>,
    pub delivered: bool,
    /// Where it went, or why it failed.
    pub detail: String,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub id: i64,
    /// The event (exactly what replay publishes) and how it failed.
    pub failure: NewDeadLetter,
    pub status: DeadLetterStatus,
    pub discard_reason: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// Oldest first; only filled when one record is read.
    pub attempts: Vec<ReplayAttempt>,
}

/// Which records to list (all conditions must hold), newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterFilter {
    pub event_type: Option<String>,
    pub aggregate_id: Option<OrderId>,
    /// Substring of the event id, payload or error message.
    pub text: Option<String>,
    pub status: Option<DeadLetterStatus>,
    /// Only records with an id below this (the cursor of the previous page).
    pub before_id: Option<i64>,
    pub limit: u32,
}

/// Records per status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterCounts {
    pub pending: u64,
    pub replayed: u64,
    pub discarded: u64,
    /// Pending records per event type.
    pub pending_by_event_type: std::collections::BTreeMap<String, u64>,
}

/// What a replay attempt did, for the store to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayOutcome {
    Delivered(DeliveryRecord),
    Failed(String),
}

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
