//! How an outbox event becomes a sink message: its topic ([`TopicRouter`]) and its wire
//! format ([`EventFormat`]). Every path that publishes (both relay modes and dead-letter
//! replays) and every sink (Kafka, the embedded log) goes through one [`Encoder`], so they
//! all publish the same records.

use super::Message;
use crate::domain::{Payload, StoredEvent};

/// Default topic template: orders go to `outbox.event.order`.
pub const DEFAULT_TOPIC_TEMPLATE: &str = "outbox.event.{aggregate_type}";
/// Header that marks a record whose payload an operator edited before replaying it (in both
/// formats), so consumers can tell it from the event as first written.
pub const EDITED_HEADER: &str = "outbox_edited";

/// Default CloudEvents `source` of the events this service publishes.
pub const DEFAULT_CLOUDEVENTS_SOURCE: &str = "/outbox/orders";

/// The record layout (`EVENT_FORMAT`). Both carry the payload as the value and the
/// aggregate id as the key; they differ in the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EventFormat {
    /// Debezium outbox-router style: `event_id`, `event_type`, `aggregate_type`,
    /// `aggregate_id`, `aggregate_version`, `occurred_at`, `schema_version`, `content-type`.
    #[default]
    Outbox,
    /// CloudEvents 1.0, Kafka protocol binding, binary mode: `ce_specversion`, `ce_id`,
    /// `ce_source`, `ce_type`, `ce_time`, `ce_subject`, `content-type`, and the extension
    /// attributes `ce_aggregatetype`, `ce_aggregateversion` and `ce_schemaversion`.
    Cloudevents,
}

/// Builds the message of each event.
#[derive(Debug, Clone)]
pub struct Encoder {
    topics: TopicRouter,
    format: EventFormat,
    /// CloudEvents `source` attribute (`CLOUDEVENTS_SOURCE`).
    source: String,
}

impl Default for Encoder {
    /// The default template and format.
    fn default() -> Self {
        Self::new(
            TopicRouter::new(DEFAULT_TOPIC_TEMPLATE).expect("the default template is valid"),
            EventFormat::Outbox,
            DEFAULT_CLOUDEVENTS_SOURCE,
        )
    }
}

impl Encoder {
    pub fn new(topics: TopicRouter, format: EventFormat, source: &str) -> Self {
        Self {
            topics,
            format,
            source: source.to_owned(),
        }
    }

    pub fn topics(&self) -> &TopicRouter {
        &self.topics
    }

    /// The message for `event`. The trace context, when the event has one, goes in the W3C
    /// `traceparent` and `tracestate` headers in either format, so consumers continue the
    /// trace of the request that caused the event.
    pub fn message(&self, event: &StoredEvent) -> Message {
        let e = &event.envelope;
        // Ids are written straight into a buffer, and text copied with `to_owned`: both
        // through `Display` (what `to_string` uses) cost several times as much per event.
        let text = |id: &uuid::Uuid| {
            let mut buffer = uuid::Uuid::encode_buffer();
            id.hyphenated().encode_lower(&mut buffer).to_owned()
        };
        let key = text(&e.aggregate_id.0);
        let mut headers = Vec::with_capacity(11);
        match self.format {
            EventFormat::Outbox => headers.extend([
                ("event_id", text(&e.event_id)),
                ("event_type", e.event_type.as_str().to_owned()),
                ("aggregate_type", e.aggregate_type.to_owned()),
                ("aggregate_id", key.clone()),
                ("aggregate_version", e.aggregate_version.to_string()),
                ("occurred_at", crate::domain::timestamp(&e.occurred_at)),
                ("schema_version", e.schema_version.to_string()),
                ("content-type", "application/json".to_owned()),
            ]),
            EventFormat::Cloudevents => headers.extend([
                ("ce_specversion", "1.0".to_owned()),
                ("ce_id", text(&e.event_id)),
                ("ce_source", self.source.clone()),
                ("ce_type", e.event_type.as_str().to_owned()),
                ("ce_time", crate::domain::timestamp(&e.occurred_at)),
                ("ce_subject", key.clone()),
                ("content-type", "application/json".to_owned()),
                ("ce_aggregatetype", e.aggregate_type.to_owned()),
                ("ce_aggregateversion", e.aggregate_version.to_string()),
                ("ce_schemaversion", e.schema_version.to_string()),
            ]),
        }
        if let Some(trace) = &e.trace {
            headers.push(("traceparent", trace.traceparent().to_owned()));
            if let Some(state) = trace.tracestate() {
                headers.push(("tracestate", state.to_owned()));
            }
        }
        Message {
            topic: self.topics.topic_for(e.aggregate_type),
            value: e.payload.as_str().to_owned(),
            headers,
            key,
            event_id: e.event_id,
            event_type: e.event_type.as_str(),
        }
    }

    /// The message for `event` with the operator's edited `payload` as its value: the same
    /// key, `event_id` and envelope headers, plus `outbox_edited: true`.
    pub fn edited_message(&self, event: &StoredEvent, payload: &Payload) -> Message {
        let mut message = self.message(event);
        message.value = payload.as_str().to_owned();
        message.headers.push((EDITED_HEADER, "true".to_owned()));
        message
    }
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

/// Whether `source` can be a CloudEvents `source`: a non-empty URI reference, here printable
/// ASCII without spaces (it travels as a header value).
pub fn valid_source(source: &str) -> Result<String, String> {
    if !source.is_empty() && source.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(source.to_owned())
    } else {
        Err(format!(
            "{source:?} is not a URI reference (printable ASCII, no spaces)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        AGGREGATE_TYPE_ORDER, EventEnvelope, EventType, OrderId, Payload, StoredEvent, TraceContext,
    };

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn event(trace: Option<TraceContext>) -> StoredEvent {
        StoredEvent {
            position: 7,
            envelope: EventEnvelope {
                event_id: uuid::Uuid::parse_str("0193a5e0-0000-7000-8000-00000000e1e1").unwrap(),
                aggregate_type: AGGREGATE_TYPE_ORDER,
                aggregate_id: OrderId(
                    uuid::Uuid::parse_str("0193a5e0-0000-7000-8000-0000000000aa").unwrap(),
                ),
                aggregate_version: 3,
                event_type: EventType::OrderCancelled,
                payload: Payload::from_stored("{\"order_id\":\"x\"}".into()).unwrap(),
                occurred_at: crate::domain::parse_timestamp("2026-11-29T10:00:00.123456Z").unwrap(),
                schema_version: 1,
                trace,
            },
        }
    }

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

    #[test]
    fn the_outbox_format_carries_the_envelope_as_headers() {
        let m = Encoder::default().message(&event(None));
        assert_eq!(m.topic, "outbox.event.order");
        assert_eq!(m.key, "0193a5e0-0000-7000-8000-0000000000aa");
        assert_eq!(m.value, "{\"order_id\":\"x\"}");
        let names: Vec<&str> = m.headers.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            [
                "event_id",
                "event_type",
                "aggregate_type",
                "aggregate_id",
                "aggregate_version",
                "occurred_at",
                "schema_version",
                "content-type"
            ]
        );
        assert_eq!(m.header("occurred_at"), Some("2026-11-29T10:00:00.123456Z"));
        assert_eq!(m.header("traceparent"), None, "no trace, no header");
    }

    #[test]
    fn cloudevents_binary_mode_maps_the_envelope_to_ce_headers() {
        let trace = TraceContext::parse(TRACEPARENT, Some("a=1")).unwrap();
        let encoder = Encoder::new(
            TopicRouter::new(DEFAULT_TOPIC_TEMPLATE).unwrap(),
            EventFormat::Cloudevents,
            "/shop/orders",
        );
        let m = encoder.message(&event(Some(trace)));
        let expected = [
            ("ce_specversion", "1.0"),
            ("ce_id", "0193a5e0-0000-7000-8000-00000000e1e1"),
            ("ce_source", "/shop/orders"),
            ("ce_type", "OrderCancelled"),
            ("ce_time", "2026-11-29T10:00:00.123456Z"),
            ("ce_subject", "0193a5e0-0000-7000-8000-0000000000aa"),
            ("content-type", "application/json"),
            ("ce_aggregatetype", "order"),
            ("ce_aggregateversion", "3"),
            ("ce_schemaversion", "1"),
            ("traceparent", TRACEPARENT),
            ("tracestate", "a=1"),
        ];
        let got: Vec<(&str, &str)> = m.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(got, expected);
        assert_eq!(m.value, "{\"order_id\":\"x\"}", "the payload is the value");
        assert_eq!(m.event_type, "OrderCancelled");
    }

    #[test]
    fn an_edited_message_keeps_the_envelope_and_says_it_was_edited() {
        let edited = Payload::from_stored("{\"order_id\":\"x\",\"fixed\":true}".into()).unwrap();
        for format in [EventFormat::Outbox, EventFormat::Cloudevents] {
            let encoder = Encoder::new(
                TopicRouter::new(DEFAULT_TOPIC_TEMPLATE).unwrap(),
                format,
                DEFAULT_CLOUDEVENTS_SOURCE,
            );
            let original = encoder.message(&event(None));
            let m = encoder.edited_message(&event(None), &edited);
            assert_eq!(m.value, edited.as_str());
            assert_eq!(
                (&m.key, &m.topic, m.event_id),
                (&original.key, &original.topic, original.event_id)
            );
            assert_eq!(m.headers[..original.headers.len()], original.headers[..]);
            assert_eq!(m.header(EDITED_HEADER), Some("true"), "{format:?}");
            assert_eq!(original.header(EDITED_HEADER), None);
        }
    }

    #[test]
    fn sources_must_be_printable_without_spaces() {
        assert!(valid_source("/shop/orders").is_ok());
        assert!(valid_source("urn:shop:orders").is_ok());
        for bad in ["", "with space", "tab\there", "caf\u{e9}"] {
            assert!(valid_source(bad).is_err(), "{bad:?}");
        }
    }
}
