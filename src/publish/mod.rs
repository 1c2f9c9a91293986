//! The publisher seam: turning outbox events into sink messages and handing them to a sink.
//!
//! [`Message`] is what every sink receives: Debezium-outbox-router style topic, key = the
//! aggregate id (so one aggregate's events stay in order), value = the payload, and the
//! envelope as headers, in the outbox or the CloudEvents layout ([`Encoder`]). [`local`] is
//! the embedded topic log, [`kafka`] the Kafka sink.

mod encoding;
pub mod faults;
pub mod kafka;
pub mod local;

pub use encoding::{
    DEFAULT_CLOUDEVENTS_SOURCE, DEFAULT_TOPIC_TEMPLATE, Encoder, EventFormat, TopicRouter,
    valid_source,
};

use crate::domain::DeliveryRecord;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

/// One message for a sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    /// The aggregate id: all events of one aggregate share a key, hence a partition.
    pub key: String,
    /// The event payload as JSON text.
    pub value: String,
    /// Envelope fields, in a fixed order (which depends on the [`EventFormat`]).
    pub headers: Vec<(&'static str, String)>,
    /// The event's id, whatever the format calls its header: the Kafka sink tracks
    /// deliveries still awaited by it.
    pub event_id: uuid::Uuid,
    /// The event's type name: what fault injection picks poisoned messages by.
    pub event_type: &'static str,
}

impl Message {
    /// The value of header `name`, if the message has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Where a sink put a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub topic: String,
    /// `None` where the sink has no partitions to speak of.
    pub partition: Option<i32>,
    pub offset: Option<i64>,
}

impl Delivery {
    /// What the store keeps of this delivery, acknowledged at `at`.
    pub fn recorded_at(self, at: DateTime<Utc>) -> DeliveryRecord {
        DeliveryRecord {
            topic: self.topic,
            partition: self.partition,
            offset: self.offset,
            published_at: at,
        }
    }
}

/// Whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Transport errors, leader changes, the broker being down: retry later.
    Transient,
    /// No answer within the wait: the message may still arrive (it stays queued in the sink's
    /// client), so the failure says nothing about the message itself. Retry later.
    Unanswered,
    /// The message itself is refused (too large, invalid topic, not authorised, cannot be
    /// serialised): retrying cannot help.
    Permanent,
}

impl FailureKind {
    /// Every kind, for metrics that list them up front.
    pub const ALL: [FailureKind; 3] = [Self::Transient, Self::Unanswered, Self::Permanent];

    /// The kind's name, as in the metrics' `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Unanswered => "unanswered",
            Self::Permanent => "permanent",
        }
    }
}

/// Why a sink refused or lost a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PublishError {
    pub kind: FailureKind,
    pub message: String,
}

impl PublishError {
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Transient,
            message: message.into(),
        }
    }

    pub fn unanswered(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Unanswered,
            message: message.into(),
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Permanent,
            message: message.into(),
        }
    }
}

/// One partition's offsets on the broker.
pub use app::dto::PartitionOffsetsDto as PartitionOffsets;

/// The consumer groups reading the sink's topics, with each partition's lag.
pub use app::dto::{ConsumerGroupsDto as ConsumerGroups, ConsumerLagDto as ConsumerLag};

/// Each message's outcome, in the order the messages were given.
pub type Outcomes = Vec<Result<Delivery, PublishError>>;

/// The wait for the outcomes of messages already handed to a sink.
pub type Pending = BoxFuture<'static, Outcomes>;

/// A sink for outbox messages.
#[async_trait]
pub trait Publisher: Send + Sync + 'static {
    /// Publishes `batch` in order and reports each message's outcome, in the same order.
    /// Messages with the same key must reach the sink in the order given.
    async fn publish(&self, batch: &[Message]) -> Outcomes;

    /// Hands `batch` to the sink and returns the wait for its outcomes, so the caller can
    /// hand over the next batch meanwhile (the relay's pipeline). Once this returns, the
    /// batch is ahead of every later batch in the sink's queue. The default publishes at
    /// once; a sink with its own send queue (Kafka) returns before the acknowledgements.
    async fn send(&self, batch: Vec<Message>) -> Pending {
        let outcomes = self.publish(&batch).await;
        Box::pin(std::future::ready(outcomes))
    }

    /// Checks that the sink can take messages, without sending any: how the relay probes a
    /// half-open circuit breaker while it has nothing to publish.
    async fn probe(&self) -> Result<(), PublishError> {
        Ok(())
    }

    /// The sink's own view of its topics' offsets, where it has one (Kafka); `None` for sinks
    /// that are browsed another way (the embedded log has its own API).
    async fn offsets(&self) -> Option<Result<Vec<PartitionOffsets>, PublishError>> {
        None
    }

    /// The consumer groups with committed offsets on the sink's topics and how far behind
    /// each is, where the sink has consumer groups (Kafka); `None` for sinks without them.
    async fn consumer_groups(&self) -> Option<Result<ConsumerGroups, PublishError>> {
        None
    }

    /// A short name for logs and status pages.
    fn name(&self) -> &'static str;

    /// Sends whatever is still buffered; called once when the relay stops.
    fn close(&self) {}
}
