//! Dead letter replay, edit and discard: a replay publishes a record's original envelope (same
//! `event_id`) through the relay's sink and circuit breaker, and marks it `replayed` only
//! after the sink acknowledged; an edit stores a corrected payload, which replays then publish
//! (same envelope, plus the `outbox_edited` header); a discard sets it aside with a reason.
//!
//! One record, one action at a time: replay, edit and discard first claim the record, so of two
//! calls racing on it, one wins and the other gets [`ReplayError::InProgress`] (409) without
//! publishing anything; the store's own compare-and-set (`pending` → `replayed` or
//! `discarded`) refuses whatever comes after. A record's event is published at most once by
//! these calls.

use crate::domain::Payload;
use crate::publish::{Encoder, Publisher};
use crate::resilience::Resilience;
use crate::resilience::policy::{self, Attempt, Decision, Tally};
use crate::store::dead_letters::{DeadLetter, DeadLetterStatus, ReplayOutcome};
use crate::store::{DeadLetterStore, StoreError};
use crate::telemetry::Telemetry;
use crate::telemetry::live::dead_letter_event;
use app::dto::{DlqAction, ReplayAttemptOutcome};
use chrono::Utc;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Why a replay did not deliver.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no such dead letter")]
    NotFound,
    #[error("the dead letter is {}, not pending", .0.as_str())]
    NotPending(DeadLetterStatus),
    /// Another replay or discard of the same record is under way.
    #[error("another request is replaying or discarding this dead letter")]
    InProgress,
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
            StoreError::NotFound(_) => Self::NotFound,
            StoreError::NotPending(status) => Self::NotPending(status),
            other => Self::Store(other),
        }
    }
}

/// The records an action is under way on.
#[derive(Debug, Default)]
pub struct Claims(Mutex<HashSet<i64>>);

/// One record claimed; dropping it lets the record go.
struct Claim<'c> {
    claims: &'c Claims,
    id: i64,
}

impl Claims {
    fn claim(&self, id: i64) -> Result<Claim<'_>, ReplayError> {
        let mut taken = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if taken.insert(id) {
            Ok(Claim { claims: self, id })
        } else {
            Err(ReplayError::InProgress)
        }
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut taken = self.claims.0.lock().unwrap_or_else(PoisonError::into_inner);
        taken.remove(&self.id);
    }
}

/// Publishes dead letters again, through the same sink and breaker as the relay, or sets
/// them aside.
pub struct Replayer {
    /// Where the records are read and their replays recorded.
    pub store: Arc<dyn DeadLetterStore>,
    pub publisher: Arc<dyn Publisher>,
    /// The relay's breaker and send order: a replay is one more publish through that sink.
    pub resilience: Resilience,
    pub encoder: Encoder,
    /// Counts replays by outcome and announces them.
    pub telemetry: Telemetry,
    /// The records a replay or discard is under way on.
    pub claims: Claims,
}

impl Replayer {
    /// Replays record `id`: publishes its original envelope (with the edited payload, if an
    /// operator edited it) and records the outcome. A
    /// failed replay is recorded and leaves the record pending, whatever the failure policy
    /// would do with a relayed event (an operator asked for this one attempt).
    pub async fn replay(&self, id: i64) -> Result<DeadLetter, ReplayError> {
        let _claim = self.claims.claim(id)?;
        let letter = self
            .store
            .dead_letter(id)
            .await?
            .ok_or(ReplayError::NotFound)?;
        if letter.status != DeadLetterStatus::Pending {
            return Err(ReplayError::NotPending(letter.status));
        }
        let breaker = &self.resilience.breaker;
        if let Err(refusal) = breaker.try_acquire() {
            return Err(ReplayError::SinkUnavailable {
                retry_in: refusal.wait(),
            });
        }
        let event = &letter.failure.event;
        let message = match &letter.edit {
            Some(edit) => self.encoder.edited_message(event, &edit.payload),
            None => self.encoder.message(event),
        };
        let started = std::time::Instant::now();
        let (result, ticket) = self
            .resilience
            .publish_one(self.publisher.as_ref(), &message)
            .await;
        (self.telemetry.spans).publish(event, started.elapsed(), &result);
        let later = self.resilience.sent.took_later_than(ticket);
        let attempt = match &result {
            Ok(_) => Attempt::Acknowledged,
            Err(e) => Attempt::Failed(e.kind),
        };
        let (decision, _) = policy::decide(
            attempt,
            later,
            Tally::default(),
            breaker.view(),
            &self.resilience.retry,
            0.0,
        );
        let outcome = match (decision, result) {
            (Decision::Acknowledge, Ok(d)) => ReplayOutcome::Delivered(d.recorded_at(Utc::now())),
            (_, Err(e)) => ReplayOutcome::Failed(e.message),
            (_, Ok(_)) => unreachable!("only an acknowledged publish is acknowledged"),
        };
        let failed = match &outcome {
            ReplayOutcome::Failed(e) => Some(e.clone()),
            ReplayOutcome::Delivered(_) => None,
        };
        let label = if failed.is_some() {
            ReplayAttemptOutcome::Failed
        } else {
            ReplayAttemptOutcome::Delivered
        };
        self.telemetry
            .metrics
            .dlq_replays
            .with_label_values(&[label.as_str()])
            .inc();
        let letter = self.store.record_replay(id, outcome).await?;
        match failed {
            Some(e) => Err(ReplayError::Failed(e)),
            None => {
                let event = dead_letter_event(DlqAction::Replayed, Some(id), &letter.failure.event);
                self.telemetry.live.send(event);
                Ok(letter)
            }
        }
    }

    /// Stores `payload` as pending record `id`'s edited payload, for its next replay.
    pub async fn edit(&self, id: i64, payload: Payload) -> Result<DeadLetter, ReplayError> {
        let _claim = self.claims.claim(id)?;
        Ok(self.store.edit_dead_letter_payload(id, payload).await?)
    }

    /// Sets pending record `id` aside with `reason`.
    pub async fn discard(&self, id: i64, reason: String) -> Result<DeadLetter, ReplayError> {
        let _claim = self.claims.claim(id)?;
        let letter = self.store.discard_dead_letter(id, reason).await?;
        let event = dead_letter_event(DlqAction::Discarded, Some(id), &letter.failure.event);
        self.telemetry.live.send(event);
        Ok(letter)
    }
}
