//! Domain events and the envelope they travel in (the outbox row).

use super::order::Order;
use super::trace::TraceContext;
use super::values::{CustomerId, OrderId, OrderItems, Version};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// `aggregate_type` of every order event; also the topic suffix of the relay to come.
pub const AGGREGATE_TYPE_ORDER: &str = "order";
/// Version of the payload shapes below; bump it when a payload changes incompatibly.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// What happened to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderEvent {
    Created,
    ItemsUpdated,
    Cancelled,
}

/// The `event_type` names as they appear on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    OrderCreated,
    OrderItemsUpdated,
    OrderCancelled,
}

impl EventType {
    /// Every event type, for metrics that list them up front.
    pub const ALL: [EventType; 3] = [
        Self::OrderCreated,
        Self::OrderItemsUpdated,
        Self::OrderCancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderCreated => "OrderCreated",
            Self::OrderItemsUpdated => "OrderItemsUpdated",
            Self::OrderCancelled => "OrderCancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "OrderCreated" => Some(Self::OrderCreated),
            "OrderItemsUpdated" => Some(Self::OrderItemsUpdated),
            "OrderCancelled" => Some(Self::OrderCancelled),
            _ => None,
        }
    }
}

/// An event's payload: a JSON object, as text. It stays text from the store to the sink, so
/// relaying an event never parses and re-serialises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload(String);

/// Stored payload text that is not shaped like a JSON object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a JSON object: {0:.40}")]
pub struct NotAnObject(String);

impl Payload {
    /// Payload text read back from storage. This program wrote it by serialising a JSON
    /// object, so only its shape is checked (an object's braces at both ends), which catches
    /// a truncated or foreign value; parsing every byte again was a quarter of the relay's
    /// work of reading an event.
    pub fn from_stored(text: String) -> Result<Self, NotAnObject> {
        let trimmed = text.trim_ascii();
        if trimmed.starts_with('{') && trimmed.ends_with('}') {
            Ok(Self(text))
        } else {
            Err(NotAnObject(text))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The payload parsed, for views that show it as a tree; text that does not parse (a
    /// damaged row) is shown as a string rather than hidden.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or_else(|_| Value::String(self.0.clone()))
    }
}

/// One outbox row: a domain event with everything a consumer needs to route, order and
/// de-duplicate it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventEnvelope {
    /// UUIDv7, unique per event: consumers drop duplicates by it.
    pub event_id: Uuid,
    pub aggregate_type: &'static str,
    /// Kafka key of the relay to come: all events of one order share it, so they keep order.
    pub aggregate_id: OrderId,
    /// The order's version after this event: events of one order are numbered 1, 2, 3, …
    pub aggregate_version: Version,
    pub event_type: EventType,
    /// JSON object describing the change; always carries `order_id`.
    pub payload: Payload,
    pub occurred_at: DateTime<Utc>,
    pub schema_version: u32,
    /// The W3C trace context of the request that caused the event, sent with the published
    /// record so consumers continue its trace. `None` for events stored before traces were.
    pub trace: Option<TraceContext>,
}

impl EventEnvelope {
    /// Describes `order` (already in its new state) as the event `kind`.
    pub(super) fn for_order(order: &Order, kind: OrderEvent, now: DateTime<Utc>) -> Self {
        // Serialised straight from the order's fields (keys in alphabetical order, as a JSON
        // map writes them): building a `serde_json::Value` first cost twice as much.
        let (event_type, payload) = match kind {
            OrderEvent::Created => (
                EventType::OrderCreated,
                serde_json::to_string(&CreatedPayload {
                    customer_id: &order.customer_id,
                    items: &order.items,
                    order_id: &order.id,
                    total_cents: order.total_cents(),
                }),
            ),
            OrderEvent::ItemsUpdated => (
                EventType::OrderItemsUpdated,
                serde_json::to_string(&ItemsUpdatedPayload {
                    items: &order.items,
                    order_id: &order.id,
                    total_cents: order.total_cents(),
                }),
            ),
            OrderEvent::Cancelled => (
                EventType::OrderCancelled,
                serde_json::to_string(&CancelledPayload {
                    order_id: &order.id,
                    reason: order.cancel_reason.as_ref().map(|r| r.as_str()),
                }),
            ),
        };
        Self {
            event_id: Uuid::now_v7(),
            aggregate_type: AGGREGATE_TYPE_ORDER,
            aggregate_id: order.id,
            aggregate_version: order.version,
            event_type,
            payload: Payload(payload.expect("order fields always serialise")),
            occurred_at: now,
            schema_version: EVENT_SCHEMA_VERSION,
            trace: None,
        }
    }
}

/// The payload of `OrderCreated`.
#[derive(Serialize)]
struct CreatedPayload<'a> {
    customer_id: &'a CustomerId,
    items: &'a OrderItems,
    order_id: &'a OrderId,
    total_cents: u64,
}

/// The payload of `OrderItemsUpdated`.
#[derive(Serialize)]
struct ItemsUpdatedPayload<'a> {
    items: &'a OrderItems,
    order_id: &'a OrderId,
    total_cents: u64,
}

/// The payload of `OrderCancelled`.
#[derive(Serialize)]
struct CancelledPayload<'a> {
    order_id: &'a OrderId,
    reason: Option<&'a str>,
}

/// An outbox event as committed, with its commit position.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Unique and increasing along each aggregate's versions; the relay's checkpoint is one
    /// of these. The embedded store's are gap-free and in commit order; ScyllaDB's are taken
    /// from the writer's clock (see `store::scylla::position`), so they have gaps and the
    /// polling relay reads them only once they have settled.
    pub position: u64,
    pub envelope: EventEnvelope,
}

/// Where a published event went, recorded together with the relay's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub topic: String,
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    /// When the sink acknowledged it.
    pub published_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_payloads_must_be_shaped_like_an_object() {
        for good in [r#"{"order_id":"x"}"#, "{}", " {\"a\":[1]}\n"] {
            assert_eq!(Payload::from_stored(good.into()).unwrap().as_str(), good);
        }
        for bad in ["", "{not json", "[1,2]", "null", "\"text\"", "}{"] {
            assert!(Payload::from_stored(bad.into()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_damaged_payload_is_shown_as_its_text() {
        let damaged = Payload::from_stored("{\"a\":}".into()).unwrap();
        assert_eq!(damaged.to_value(), Value::String("{\"a\":}".into()));
        let fine = Payload::from_stored("{\"a\":1}".into()).unwrap();
        assert_eq!(fine.to_value(), serde_json::json!({"a": 1}));
    }
}
