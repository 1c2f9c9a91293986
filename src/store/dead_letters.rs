//! Dead letters as the store keeps them: what a record holds, where it stands, how operators
//! filter them, and what a replay attempt did.
//!
//! The relay dead-letters an event only for a permanent error, or when it keeps failing while
//! the sink accepts other messages (see `resilience::policy`), in the same store write that
//! moves its checkpoint past it.

use crate::domain::{DeliveryRecord, OrderId, StoredEvent};
use crate::publish::{FailureKind, PublishError};
use chrono::{DateTime, Utc};

pub use app::dto::{DeadLetterKind, DeadLetterStatus};

/// The kind of a dead letter whose last failure was `failure`.
pub fn kind_after(failure: FailureKind) -> DeadLetterKind {
    match failure {
        FailureKind::Permanent => DeadLetterKind::Permanent,
        FailureKind::Transient | FailureKind::Unanswered => DeadLetterKind::RetriesExhausted,
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
            kind: kind_after(error.kind),
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
