//! The embedded topic log: the sink when no Kafka brokers are configured. Published messages
//! are appended durably to per-topic logs in the embedded store, so `make run` shows the
//! whole pipeline with nothing installed.

use super::{Delivery, Message, PublishError, Publisher};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// A topic and how much it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSummary {
    pub topic: String,
    /// Messages still in the log (retention deletes the oldest).
    pub messages: u64,
    /// The oldest offset still in the log.
    pub first_offset: i64,
    /// The offset the next message will get.
    pub next_offset: i64,
}

/// A message as stored in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedMessage {
    pub offset: i64,
    pub key: String,
    pub value: serde_json::Value,
    /// The envelope headers by name.
    pub headers: std::collections::BTreeMap<String, String>,
    pub appended_at: DateTime<Utc>,
}

/// Why the embedded log could not be read or appended to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The database is busy or its writer is overloaded: retrying later may succeed.
    #[error("the embedded log is temporarily unavailable: {0}")]
    Unavailable(String),
    /// Anything else (a broken database, a stored row that cannot be read).
    #[error("the embedded log failed: {0}")]
    Failed(String),
}

/// Storage for the embedded log (implemented by the embedded store).
#[async_trait]
pub trait TopicLog: Send + Sync + 'static {
    /// Appends durably, in order; returns each message's offset.
    async fn append(&self, messages: Vec<Message>) -> Result<Vec<Delivery>, LogError>;
    async fn topics(&self) -> Result<Vec<TopicSummary>, LogError>;
    /// One topic's summary, without looking at the others.
    async fn topic(&self, topic: String) -> Result<Option<TopicSummary>, LogError>;
    async fn read(
        &self,
        topic: String,
        from_offset: i64,
        limit: u32,
    ) -> Result<Vec<LoggedMessage>, LogError>;

    /// Retention: deletes up to `limit` of each topic's oldest messages that were appended
    /// before `before` or are beyond its newest `keep`, like Kafka's `retention.ms` and
    /// `retention.bytes`. Returns how many were deleted.
    async fn prune(&self, before: DateTime<Utc>, keep: u64, limit: u32) -> Result<u64, LogError>;
}

/// Publishes into a [`TopicLog`].
pub struct LocalLogPublisher {
    log: Arc<dyn TopicLog>,
}

impl LocalLogPublisher {
    pub fn new(log: Arc<dyn TopicLog>) -> Self {
        Self { log }
    }
}

#[async_trait]
impl Publisher for LocalLogPublisher {
    async fn publish(&self, batch: &[Message]) -> Vec<Result<Delivery, PublishError>> {
        match self.log.append(batch.to_vec()).await {
            Ok(deliveries) => deliveries.into_iter().map(Ok).collect(),
            // One transaction: all of the batch failed. A log error is a broken or busy
            // database, never the message's fault.
            Err(e) => batch
                .iter()
                .map(|_| Err(PublishError::transient(e.to_string())))
                .collect(),
        }
    }

    fn name(&self) -> &'static str {
        "embedded-log"
    }
}
