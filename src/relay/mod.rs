//! The relay: reads committed outbox events after its checkpoint, publishes them, and moves
//! the checkpoint only after the sink acknowledged them (at-least-once).
//!
//! [`Relay::step`] does one round and reports what happened, so tests drive it
//! deterministically; [`runner`] drives it in production, in polling or streaming mode, and
//! restarts it after failures.

pub mod activity;
pub mod replay;
pub mod retention;
pub mod runner;
pub mod snapshots;

use crate::domain::{DeliveryRecord, StoredEvent};
use crate::publish::{
    Delivery, FailureKind, Message, Pending, PublishError, Publisher, TopicRouter,
};
use crate::resilience::breaker::{BreakerState, CircuitBreaker, Refusal};
use crate::store::dead_letters::NewDeadLetter;

use crate::resilience::retry::RetryConfig;
use crate::store::{OutboxStore, RELAY_NAME, StoreError};
use crate::telemetry::Telemetry;
use crate::telemetry::live::LiveEvent;
use app::dto::RelayMode;
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
    failures: u32,
    first_failed_at: DateTime<Utc>,
}

/// What the relay needs besides the store and the sink.
#[derive(Debug, Clone)]
pub struct Resilience {
    pub retry: RetryConfig,
    pub breaker: Arc<CircuitBreaker>,
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
}

impl InFlight {
    fn last_position(&self) -> u64 {
        self.events.last().map_or(0, |e| e.position)
    }
}

/// The relay's state between steps.
pub struct Relay {
    store: Arc<dyn OutboxStore>,
    publisher: Arc<dyn Publisher>,
    topics: TopicRouter,
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
        store: Arc<dyn OutboxStore>,
        publisher: Arc<dyn Publisher>,
        topics: TopicRouter,
        resilience: Resilience,
        telemetry: Telemetry,
        batching: Batching,
    ) -> Result<Self, StoreError> {
        let checkpoint = store.checkpoint(RELAY_NAME).await?;
        Ok(Self {
            store,
            publisher,
            topics,
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
    /// transient failure the step stops: the event is retried after a backoff delay, and
    /// dead-lettered once its attempts run out while the breaker stays closed. While the
    /// breaker is open nothing is sent, nothing is dead-lettered and the checkpoint stays.
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
            let events = self.store.events_after(after, size).await?;
            if events.is_empty() {
                break;
            }
            if let Err(refusal) = breaker.try_acquire() {
                if !self.in_flight.is_empty() {
                    break;
                }
                let retry_in = match refusal {
                    Refusal::Open { retry_in } => retry_in,
                    Refusal::ProbesBusy => PROBE_WAIT,
                };
                return Ok(Some(Outcome::Paused { retry_in }));
            }
            let messages = events
                .iter()
                .map(|e| Message::from_event(e, &self.topics))
                .collect();
            let sent_at = std::time::Instant::now();
            let outcomes = self.publisher.send(messages).await;
            self.in_flight.push_back(InFlight {
                events,
                outcomes,
                sent_at,
            });
        }
        Ok(None)
    }

    /// Waits for `batch`'s outcomes and records them. After a transient failure the batches
    /// behind it are awaited and dropped: they are sent again, after the failed event.
    async fn complete(
        &mut self,
        batch: InFlight,
        breaker: &CircuitBreaker,
    ) -> Result<Outcome, RelayError> {
        let InFlight {
            events,
            outcomes,
            sent_at,
        } = batch;
        let results = outcomes.await;
        let publish_time = sent_at.elapsed().as_secs_f64();
        let now = Utc::now();
        let mut done = Done::default();
        let mut stopped = None;
        for (event, result) in events
            .iter()
            .zip(results.into_iter().chain(std::iter::repeat_with(|| {
                Err(PublishError::transient("the sink reported no outcome"))
            })))
        {
            let event_type = event.envelope.event_type.as_str();
            match result {
                Ok(d) => {
                    tracing::debug!(
                        order_id = %event.envelope.aggregate_id,
                        event_id = %event.envelope.event_id,
                        position = event.position,
                        topic = %d.topic,
                        partition = ?d.partition,
                        offset = ?d.offset,
                        "published"
                    );
                    self.count_delivery(event, &d.topic, publish_time, now);
                    done.acknowledge(event.position, d, now);
                }
                Err(e) if e.kind == FailureKind::Permanent => {
                    self.telemetry.publish_failed(event_type, e.kind);
                    let (failures, first) = self.failures_of(event.position, now);
                    done.dead_letter(event.clone(), e, failures, first, now);
                }
                Err(e) => {
                    self.telemetry.publish_failed(event_type, e.kind);
                    stopped = Some((event, e));
                    break;
                }
            }
        }
        // The sink's health: a transient failure with nothing acknowledged counts against it;
        // anything acknowledged, or only refused messages, counts for it.
        match &stopped {
            Some((_, e)) if done.acknowledged.is_empty() => breaker.on_failure(&e.message),
            _ => breaker.on_success(),
        }
        let interrupted = stopped.is_some();
        let outcome =
            stopped.and_then(|(event, error)| self.after_failure(event, error, &mut done, now));
        let (count, dead_lettered) = (done.acknowledged.len(), done.dead_letters.len());
        self.save(done).await?;
        if interrupted {
            for behind in self.in_flight.drain(..) {
                behind.outcomes.await;
            }
        }
        Ok(outcome.unwrap_or(Outcome::Published {
            count,
            dead_lettered,
            checkpoint: self.checkpoint,
        }))
    }

    /// What to do about the event that failed transiently: pause while the breaker is not
    /// closed, retry while attempts remain, else dead-letter it (`None`: the step goes on as
    /// published).
    fn after_failure(
        &mut self,
        event: &StoredEvent,
        error: PublishError,
        done: &mut Done,
        now: DateTime<Utc>,
    ) -> Option<Outcome> {
        let breaker = &self.resilience.breaker;
        let (failures, first) = self.failures_of(event.position, now);
        if breaker.state() != BreakerState::Closed {
            // The sink is down, not this event: pause, and count its attempts afresh
            // afterwards (it stays marked as failed, for `retry_success_total`).
            self.failing = Some(Failing {
                position: event.position,
                failures: 0,
                first_failed_at: first,
            });
            Some(Outcome::Paused {
                retry_in: breaker.refusing().unwrap_or(PROBE_WAIT),
            })
        } else if self.resilience.retry.may_retry(failures) {
            self.telemetry
                .metrics
                .retry_attempts
                .with_label_values(&["publish"])
                .inc();
            self.failing = Some(Failing {
                position: event.position,
                failures,
                first_failed_at: first,
            });
            Some(Outcome::Retrying {
                position: event.position,
                attempt: failures,
                delay: self.resilience.retry.delay(failures),
                error: error.message,
            })
        } else {
            self.telemetry
                .metrics
                .retry_failure
                .with_label_values(&["publish"])
                .inc();
            done.dead_letter(event.clone(), error, failures, first, now);
            None
        }
    }

    /// Counts an acknowledged event, and a success after retries if it had failed before.
    fn count_delivery(
        &self,
        event: &StoredEvent,
        topic: &str,
        publish_time: f64,
        acked: DateTime<Utc>,
    ) {
        let mode = self.mode.as_str();
        self.telemetry
            .delivered(event, topic, mode, publish_time, acked);
        if self
            .failing
            .as_ref()
            .is_some_and(|f| f.position == event.position)
        {
            let success = &self.telemetry.metrics.retry_success;
            success.with_label_values(&["publish"]).inc();
        }
    }

    /// Failures of the event at `position` including the one just seen, and when the first
    /// of them happened.
    fn failures_of(&self, position: u64, now: DateTime<Utc>) -> (u32, DateTime<Utc>) {
        match &self.failing {
            Some(f) if f.position == position => (f.failures + 1, f.first_failed_at),
            _ => (1, now),
        }
    }

    /// Records what this step finished and moves the checkpoint past it.
    async fn save(&mut self, done: Done) -> Result<(), StoreError> {
        let Some(last) = done.last else {
            return Ok(());
        };
        // The dead letters are announced once they are stored; they are rare, so only they
        // are copied.
        self.store
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
            let event = LiveEvent::dead_letter("added", None, &letter.event);
            self.telemetry.live.send(event);
        }
        if self.failing.as_ref().is_some_and(|f| f.position <= last) {
            self.failing = None;
        }
        Ok(())
    }
}

/// How long to wait when another probe holds the half-open breaker's only slot.
const PROBE_WAIT: Duration = Duration::from_millis(50);

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
        self.acknowledged.push((
            position,
            DeliveryRecord {
                topic: d.topic,
                partition: d.partition,
                offset: d.offset,
                published_at: at,
            },
        ));
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
