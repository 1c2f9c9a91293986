//! The relay: reads committed outbox events after its checkpoint, publishes them, and moves
//! the checkpoint only after the sink acknowledged them (at-least-once).
//!
//! [`Relay::step`] does one round and reports what happened, so tests drive it
//! deterministically; [`runner`] drives it in production, in polling or streaming mode, and
//! restarts it after failures.

pub mod retention;
pub mod runner;

use crate::publish::{Message, PublishError, Publisher, TopicRouter};
use crate::store::{DeliveryRecord, OutboxStore, StoreError};
use chrono::Utc;
use std::sync::Arc;

/// Name of the relay's checkpoint row.
pub const RELAY_NAME: &str = "main";

/// How the relay learns of new events.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum RelayMode {
    /// Query for new events every poll interval.
    Polling,
    /// Wake up on every commit of the store and publish at once.
    Streaming,
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `count` events were acknowledged; the checkpoint is now `checkpoint`.
    Published { count: usize, checkpoint: u64 },
    /// Nothing new after the checkpoint.
    Idle,
}

/// Why a step failed. The checkpoint never passes an unacknowledged event.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("publishing the event at position {position} failed: {error}")]
    Publish { position: u64, error: PublishError },
}

/// The relay's state between steps.
pub struct Relay {
    store: Arc<dyn OutboxStore>,
    publisher: Arc<dyn Publisher>,
    topics: TopicRouter,
    /// Most events read and published per step.
    batch_size: u32,
    /// The last acknowledged position, as saved in the store.
    checkpoint: u64,
}

impl Relay {
    /// A relay resuming from its saved checkpoint.
    pub async fn resume(
        store: Arc<dyn OutboxStore>,
        publisher: Arc<dyn Publisher>,
        topics: TopicRouter,
        batch_size: u32,
    ) -> Result<Self, StoreError> {
        let checkpoint = store.checkpoint(RELAY_NAME).await?;
        Ok(Self {
            store,
            publisher,
            topics,
            batch_size: batch_size.max(1),
            checkpoint,
        })
    }

    pub fn checkpoint(&self) -> u64 {
        self.checkpoint
    }

    /// Publishes the next batch after the checkpoint, in commit order. Events acknowledged
    /// before the first failure are recorded and the checkpoint moves past them; the failed
    /// event and everything after it are retried by the next step.
    pub async fn step(&mut self) -> Result<Outcome, RelayError> {
        let events = self
            .store
            .events_after(self.checkpoint, self.batch_size)
            .await?;
        if events.is_empty() {
            return Ok(Outcome::Idle);
        }
        let messages: Vec<Message> = events
            .iter()
            .map(|e| Message::from_event(e, &self.topics))
            .collect();
        let mut results = self.publisher.publish(&messages).await.into_iter();
        let published_at = Utc::now();
        let mut acknowledged = Vec::with_capacity(events.len());
        let mut failure = None;
        for event in &events {
            match results.next() {
                Some(Ok(d)) => acknowledged.push((
                    event.position,
                    DeliveryRecord {
                        topic: d.topic,
                        partition: d.partition,
                        offset: d.offset,
                        published_at,
                    },
                )),
                Some(Err(error)) => {
                    failure = Some((event.position, error));
                    break;
                }
                None => {
                    let error = PublishError("the sink reported no outcome".into());
                    failure = Some((event.position, error));
                    break;
                }
            }
        }
        let count = acknowledged.len();
        if let Some(&(last, _)) = acknowledged.last() {
            self.store
                .record_progress(RELAY_NAME, last, acknowledged)
                .await?;
            self.checkpoint = last;
        }
        match failure {
            Some((position, error)) => Err(RelayError::Publish { position, error }),
            None => Ok(Outcome::Published {
                count,
                checkpoint: self.checkpoint,
            }),
        }
    }
}
