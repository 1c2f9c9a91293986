//! The relay: reads committed outbox events after its checkpoint, publishes them, and moves
//! the checkpoint only after the sink acknowledged them (at-least-once).
//!
//! [`Relay::step`] does one round and reports what happened, so tests drive it
//! deterministically; [`runner`] drives it in production, in polling or streaming mode, and
//! restarts it after failures.

pub mod activity;
pub mod backlog;
pub mod replay;
pub mod restart;
pub mod retention;
pub mod runner;
pub mod snapshots;
pub mod suspension;
#[cfg(test)]
pub(crate) mod test_support;

use crate::domain::{DeliveryRecord, StoredEvent};
use crate::publish::{Delivery, Encoder, FailureKind, Pending, PublishError, Publisher};
use crate::resilience::Resilience;
use crate::resilience::breaker::{BreakerState, CircuitBreaker};
use crate::resilience::policy::{self, Attempt, Decision, Tally};
use crate::store::dead_letters::NewDeadLetter;

use crate::store::{OutboxLog, RELAY_NAME, StoreError};
use crate::telemetry::Telemetry;
use crate::telemetry::live::dead_letter_event;
use app::dto::{DlqAction, RelayMode};
use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `count` events were acknowledged and `dead_lettered` given up on; the checkpoint is
    /// now `checkpoint`.
    Published {
        count: usize,
        dead_lettered: usize,
        checkpoint: u64,
    },
    /// Nothing new after the checkpoint.
    Idle,
    /// The event at `position` failed transiently for the `attempt`-th time; the events
    /// acknowledged before it are recorded. Try again after `delay`.
    Retrying {
        position: u64,
        attempt: u32,
        delay: Duration,
        error: String,
    },
    /// The circuit breaker is open: nothing was read or sent and the checkpoint stays. Try
    /// again after `retry_in`.
    Paused { retry_in: Duration },
}

/// Why a step failed: only the store can make it fail; sink failures are outcomes.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The event at the head of the stream that keeps failing transiently.
#[derive(Debug, Clone)]
struct Failing {
    position: u64,
    tally: Tally,
    first_failed_at: DateTime<Utc>,
}

/// How much the relay reads and sends at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Most events read and sent per batch.
    pub size: u32,
    /// Most batches handed to the sink and not yet recorded. With 2 the relay reads and
    /// enqueues the next batch while the sink acknowledges the previous one and the store
    /// records it, so neither waits for the other; 1 handles one batch at a time.
    pub depth: u32,
}

impl Batching {
    /// One batch of `size` at a time.
    pub fn serial(size: u32) -> Self {
        Self { size, depth: 1 }
    }
}

/// A batch handed to the sink whose outcomes are still to come.
struct InFlight {
    events: Vec<StoredEvent>,
    outcomes: Pending,
    sent_at: std::time::Instant,
    /// The send-order ticket of the first event; the others follow it.
    first_ticket: u64,
}

impl InFlight {
    fn last_position(&self) -> u64 {
        self.events.last().map_or(0, |e| e.position)
    }
}

/// The relay's state between steps.
pub struct Relay {
    /// Where the relay reads committed events and records its progress.
    log: Arc<dyn OutboxLog>,
    publisher: Arc<dyn Publisher>,
    encoder: Encoder,
    resilience: Resilience,
    telemetry: Telemetry,
    /// The mode the runner drives it in, for the metrics' `mode` label.
    mode: RelayMode,
    batching: Batching,
    /// The last position handled (acknowledged or dead-lettered), as saved in the store.
    checkpoint: u64,
    /// Batches handed to the sink and not yet recorded, oldest first; all after the
    /// checkpoint, in commit order.
    in_flight: VecDeque<InFlight>,
    failing: Option<Failing>,
}

impl Relay {
    /// A relay resuming from its saved checkpoint.
    pub async fn resume(
        log: Arc<dyn OutboxLog>,
        publisher: Arc<dyn Publisher>,
        encoder: Encoder,
        resilience: Resilience,
        telemetry: Telemetry,
        batching: Batching,
    ) -> Result<Self, StoreError> {
        let checkpoint = log.checkpoint(RELAY_NAME).await?;
        Ok(Self {
            log,
            publisher,
            encoder,
            resilience,
            telemetry,
            mode: RelayMode::Streaming,
            batching: Batching {
                size: batching.size.max(1),
                depth: batching.depth.max(1),
            },
            checkpoint,
            in_flight: VecDeque::new(),
            failing: None,
        })
    }

    pub fn checkpoint(&self) -> u64 {
        self.checkpoint
    }

    /// Tells the relay which mode drives it (it labels the metrics).
    pub fn set_mode(&mut self, mode: RelayMode) {
        self.mode = mode;
    }

    /// Publishes the next batch after the checkpoint, in commit order.
    ///
    /// Acknowledged events are recorded and the checkpoint moves past them. An event the sink
    /// refuses for good is dead-lettered (the rest of the stream goes on). At the first
    /// transient failure the step stops and the event is retried after a backoff delay; it is
    /// dead-lettered only once it has failed its attempts while the sink took messages sent
    /// after it (`resilience::policy`). While the breaker is open nothing is sent, nothing is
    /// dead-lettered and the checkpoint stays.
    ///
    /// With a pipeline ([`Batching::depth`] above 1) a step first tops it up, reading and
    /// sending the batches after the last one sent, then records the oldest batch's
    /// outcomes; the batches behind it stay in flight for the next steps.
    pub async fn step(&mut self) -> Result<Outcome, RelayError> {
        let breaker = Arc::clone(&self.resilience.breaker);
        if self.in_flight.is_empty()
            && let Some(retry_in) = breaker.refusing()
        {
            return Ok(Outcome::Paused { retry_in });
        }
        if let Some(paused) = self.fill(&breaker).await? {
            return Ok(paused);
        }
        let Some(batch) = self.in_flight.pop_front() else {
            // Nothing to send, but a breaker that is not closed still wants its probes: ask
            // the sink whether it is back, so the breaker closes while the relay is idle.
            if breaker.state() != BreakerState::Closed && breaker.try_acquire().is_ok() {
                match self.publisher.probe().await {
                    Ok(()) => breaker.on_success(),
                    Err(e) => breaker.on_failure(&e.message),
                }
            }
            return Ok(Outcome::Idle);
        };
        self.complete(batch, &breaker).await
    }

    /// Waits for the batches still in flight and records them: how a stopping relay leaves
    /// nothing sent but unrecorded behind.
    pub async fn finish(&mut self) -> Result<(), RelayError> {
        let breaker = Arc::clone(&self.resilience.breaker);
        while let Some(batch) = self.in_flight.pop_front() {
            self.complete(batch, &breaker).await?;
        }
        Ok(())
    }

    /// Reads and sends batches after the last one sent until the pipeline is full. Returns
    /// `Paused` if the breaker refuses while nothing is in flight.
    async fn fill(&mut self, breaker: &CircuitBreaker) -> Result<Option<Outcome>, RelayError> {
        let size = self.batching.size;
        while self.in_flight.len() < self.batching.depth as usize {
            let after = match self.in_flight.back() {
                None => self.checkpoint,
                // A short batch means the relay had caught up: reading ahead would find at
                // most what the next step picks up anyway.
                Some(last) if last.events.len() < size as usize => break,
                // A recovering sink gets one batch at a time.
                Some(_) if breaker.state() != BreakerState::Closed => break,
                Some(last) => last.last_position(),
            };
            let events = self.log.events_after(after, size).await?;
            if events.is_empty() {
                break;
            }
            if let Err(refusal) = breaker.try_acquire() {
                if !self.in_flight.is_empty() {
                    break;
                }
                return Ok(Some(Outcome::Paused {
                    retry_in: refusal.wait(),
                }));
            }
            let messages = events.iter().map(|e| self.encoder.message(e)).collect();
            let sent_at = std::time::Instant::now();
            let first_ticket = self.resilience.sent.issue(events.len());
            let outcomes = self.publisher.send(messages).await;
            self.in_flight.push_back(InFlight {
                events,
                outcomes,
                sent_at,
                first_ticket,
            });
        }
        Ok(None)
    }

    /// Waits for `batch`'s outcomes and records them, deciding about each failed event with
    /// the failure policy. At the first failed event that is not dead-lettered the step stops:
    /// the batches behind it are awaited and dropped, and sent again after it.
    async fn complete(
        &mut self,
        batch: InFlight,
        breaker: &CircuitBreaker,
    ) -> Result<Outcome, RelayError> {
        let InFlight {
            events,
            outcomes,
            sent_at,
            first_ticket,
        } = batch;
        let mut results = outcomes.await;
        results.resize_with(events.len(), || {
            Err(PublishError::unanswered("the sink reported no outcome"))
        });
        let publish_time = sent_at.elapsed().as_secs_f64();
        let sent = Arc::clone(&self.resilience.sent);
        let ticket = |i: usize| first_ticket + i as u64;
        for (i, result) in results.iter().enumerate() {
            if result.is_ok() {
                sent.taken(ticket(i));
            }
        }
        let first_failure = results
            .iter()
            .position(|r| r.as_ref().is_err_and(|e| e.kind != FailureKind::Permanent));
        if first_failure.is_some() {
            // The batches behind will be sent again after the failed event; what the sink
            // took of them still tells whether it takes messages.
            for behind in self.in_flight.drain(..) {
                for (i, result) in behind.outcomes.await.iter().enumerate() {
                    if result.is_ok() {
                        sent.taken(behind.first_ticket + i as u64);
                    }
                }
            }
        }
        // The sink's health, once per call: it failed only if its first failure was not
        // followed by anything it took.
        let health = match first_failure.map(|i| (i, &results[i])) {
            Some((i, Err(e))) => {
                let later = sent.took_later_than(ticket(i));
                (
                    policy::health(Attempt::Failed(e.kind), later),
                    e.message.as_str(),
                )
            }
            _ => (policy::health(Attempt::Acknowledged, false), ""),
        };
        breaker.report(health.0, health.1);
        let now = Utc::now();
        let deliveries = self.telemetry.deliveries(self.mode);
        let mut done = Done::default();
        let mut stopped = None;
        let (spans, took) = (&self.telemetry.spans, sent_at.elapsed());
        for (i, (event, result)) in events.iter().zip(results).enumerate() {
            spans.publish(event, took, &result);
            let error = match result {
                Ok(d) => {
                    tracing::debug!(
                        order_id = %event.envelope.aggregate_id,
                        event_id = %event.envelope.event_id,
                        position = event.position,
                        topic = %d.topic,
                        partition = ?d.partition,
                        offset = ?d.offset,
                        trace_id = event.envelope.trace.as_ref().map_or("", |t| t.trace_id()),
                        "published"
                    );
                    deliveries.delivered(event, &d.topic, publish_time, now);
                    self.count_retried(event);
                    done.acknowledge(event.position, d, now);
                    continue;
                }
                Err(e) => e,
            };
            self.telemetry
                .publish_failed(event.envelope.event_type.as_str(), error.kind);
            let (before, first_failed_at) = self.failures_of(event.position, now);
            let (decision, tally) = policy::decide(
                Attempt::Failed(error.kind),
                sent.took_later_than(ticket(i)),
                before,
                breaker.view(),
                &self.resilience.retry,
                fastrand::f64(),
            );
            let retrying = |kind| {
                self.telemetry
                    .metrics
                    .retry_attempts
                    .with_label_values(&[kind])
            };
            let outcome = match decision {
                Decision::DeadLetter => {
                    if error.kind != FailureKind::Permanent {
                        let exhausted = &self.telemetry.metrics.retry_failure;
                        exhausted.with_label_values(&["publish"]).inc();
                    }
                    done.dead_letter(event.clone(), error, tally.failures, first_failed_at, now);
                    continue;
                }
                Decision::Retry { after } => {
                    retrying("publish").inc();
                    Outcome::Retrying {
                        position: event.position,
                        attempt: tally.failures,
                        delay: after,
                        error: error.message,
                    }
                }
                Decision::Pause { wait } => Outcome::Paused { retry_in: wait },
                Decision::Acknowledge => unreachable!("a failed attempt is never acknowledged"),
            };
            self.failing = Some(Failing {
                position: event.position,
                tally,
                first_failed_at,
            });
            stopped = Some(outcome);
            break;
        }
        let (count, dead_lettered) = (done.acknowledged.len(), done.dead_letters.len());
        self.save(done).await?;
        Ok(stopped.unwrap_or(Outcome::Published {
            count,
            dead_lettered,
            checkpoint: self.checkpoint,
        }))
    }

    /// Counts a success after retries if the acknowledged `event` had failed before.
    fn count_retried(&self, event: &StoredEvent) {
        if self
            .failing
            .as_ref()
            .is_some_and(|f| f.position == event.position)
        {
            let success = &self.telemetry.metrics.retry_success;
            success.with_label_values(&["publish"]).inc();
        }
    }

    /// The earlier failures of the event at `position`, and when the first of them happened
    /// (`now` if this is its first).
    fn failures_of(&self, position: u64, now: DateTime<Utc>) -> (Tally, DateTime<Utc>) {
        match &self.failing {
            Some(f) if f.position == position => (f.tally, f.first_failed_at),
            _ => (Tally::default(), now),
        }
    }

    /// Records what this step finished and moves the checkpoint past it.
    async fn save(&mut self, done: Done) -> Result<(), StoreError> {
        let Some(last) = done.last else {
            return Ok(());
        };
        // The dead letters are announced once they are stored; they are rare, so only they
        // are copied.
        self.log
            .record_progress(
                RELAY_NAME,
                last,
                done.acknowledged,
                done.dead_letters.clone(),
            )
            .await?;
        self.checkpoint = last;
        self.telemetry
            .metrics
            .dlq_messages
            .inc_by(done.dead_letters.len() as u64);
        for letter in &done.dead_letters {
            let event = dead_letter_event(DlqAction::Added, None, &letter.event);
            self.telemetry.live.send(event);
        }
        if self.failing.as_ref().is_some_and(|f| f.position <= last) {
            self.failing = None;
        }
        Ok(())
    }
}

/// The events a step finished with, in commit order.
#[derive(Default)]
struct Done {
    acknowledged: Vec<(u64, DeliveryRecord)>,
    dead_letters: Vec<NewDeadLetter>,
    /// The last finished position.
    last: Option<u64>,
}

impl Done {
    fn acknowledge(&mut self, position: u64, d: Delivery, at: DateTime<Utc>) {
        self.acknowledged.push((position, d.recorded_at(at)));
        self.last = Some(position);
    }

    fn dead_letter(
        &mut self,
        event: StoredEvent,
        error: PublishError,
        failures: u32,
        first_failed_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        tracing::warn!(
            position = event.position,
            event_id = %event.envelope.event_id,
            aggregate_id = %event.envelope.aggregate_id,
            error = %error,
            "dead-lettered; later events of this aggregate go on without it"
        );
        self.last = Some(event.position);
        (self.dead_letters).push(NewDeadLetter::new(
            event,
            error,
            failures,
            first_failed_at,
            now,
        ));
    }
}
