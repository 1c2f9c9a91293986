//! The publisher seam: turning outbox events into sink messages and handing them to a sink.
//!
//! [`Message`] is what every sink receives: Debezium-outbox-router style topic, key = the
//! aggregate id (so one aggregate's events stay in order), value = the payload, and the
//! envelope fields as headers. [`local`] is the embedded topic log, [`kafka`] the Kafka sink.

pub mod faults;
pub mod kafka;
pub mod local;

use crate::domain::{DeliveryRecord, StoredEvent};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

/// Default topic template: orders go to `outbox.event.order`.
pub const DEFAULT_TOPIC_TEMPLATE: &str = "outbox.event.{aggregate_type}";

/// One message for a sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    /// The aggregate id: all events of one aggregate share a key, hence a partition.
    pub key: String,
    /// The event payload as JSON text.
    pub value: String,
    /// Envelope fields, in a fixed order.
    pub headers: Vec<(&'static str, String)>,
}

impl Message {
    /// The message for `event`, routed by `topics`.
    pub fn from_event(event: &StoredEvent, topics: &TopicRouter) -> Self {
        let e = &event.envelope;
        // Ids are written straight into a buffer, and text copied with `to_owned`: both
        // through `Display` (what `to_string` uses) cost several times as much per event.
        let text = |id: &uuid::Uuid| {
            let mut buffer = uuid::Uuid::encode_buffer();
            id.hyphenated().encode_lower(&mut buffer).to_owned()
        };
        let key = text(&e.aggregate_id.0);
        Self {
            topic: topics.topic_for(e.aggregate_type),
            value: e.payload.as_str().to_owned(),
            headers: vec![
                ("event_id", text(&e.event_id)),
                ("event_type", e.event_type.as_str().to_owned()),
                ("aggregate_type", e.aggregate_type.to_owned()),
                ("aggregate_id", key.clone()),
                ("aggregate_version", e.aggregate_version.to_string()),
                ("occurred_at", crate::domain::timestamp(&e.occurred_at)),
                ("schema_version", e.schema_version.to_string()),
                ("content-type", "application/json".to_owned()),
            ],
            key,
        }
    }

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

    /// A short name for logs and status pages.
    fn name(&self) -> &'static str;

    /// Sends whatever is still buffered; called once when the relay stops.
    fn close(&self) {}
}

/// Topic routing by template; `{aggregate_type}` is replaced by the event's aggregate type.
#[derive(Debug, Clone)]
pub struct TopicRouter {
    /// The template split at each `{aggregate_type}`, so routing a message is one join
    /// instead of a search through the template.
    parts: Vec<String>,
    /// The topic of orders (today's only aggregate), joined once.
    orders: String,
}

impl TopicRouter {
    /// A router for `template`; it must contain `{aggregate_type}` and give a valid Kafka
    /// topic name (1–249 characters of `A-Za-z0-9._-`).
    pub fn new(template: &str) -> Result<Self, String> {
        if !template.contains("{aggregate_type}") {
            return Err("the topic template must contain {aggregate_type}".into());
        }
        let sample = template.replace("{aggregate_type}", crate::domain::AGGREGATE_TYPE_ORDER);
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if sample.is_empty() || sample.len() > 249 || !sample.chars().all(valid) {
            return Err(format!("{sample:?} is not a valid topic name"));
        }
        Ok(Self {
            parts: template
                .split("{aggregate_type}")
                .map(str::to_string)
                .collect(),
            orders: sample,
        })
    }

    pub fn topic_for(&self, aggregate_type: &str) -> String {
        if aggregate_type == crate::domain::AGGREGATE_TYPE_ORDER {
            return self.orders.clone();
        }
        self.parts.join(aggregate_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_route_by_aggregate_type() {
        let r = TopicRouter::new(DEFAULT_TOPIC_TEMPLATE).unwrap();
        assert_eq!(r.topic_for("order"), "outbox.event.order");
        assert_eq!(
            TopicRouter::new("{aggregate_type}.{aggregate_type}")
                .unwrap()
                .topic_for("order"),
            "order.order"
        );
        assert_eq!(
            TopicRouter::new("events-{aggregate_type}")
                .unwrap()
                .topic_for("order"),
            "events-order"
        );
        assert!(TopicRouter::new("static-topic").is_err());
        assert!(TopicRouter::new("bad topic {aggregate_type}").is_err());
        assert!(TopicRouter::new(&format!("{}{{aggregate_type}}", "x".repeat(249))).is_err());
    }
}
