//! W3C trace context from the request to the published record, and the CloudEvents format:
//! an order request's `traceparent` (and `tracestate`) is stored with its event and sent as
//! record headers, by both relay modes, into the embedded log and into Kafka (tansu), and
//! again by a dead-letter replay; `EVENT_FORMAT=cloudevents` lays the same events out in the
//! CloudEvents 1.0 Kafka binding's binary mode; with an OTLP endpoint, the request, the
//! commit and the publish are exported as spans of the same trace.

use crate::broker::{Broker, consume};
use crate::helpers::{TestApp, eventually, order_body, spawn_app_with};
use crate::kafka::app_on;
use crate::topic_check::Consumed;
use app::dto::{
    DeadLetterPageDto, DeadLetterStatus, Fault, OrderDetailDto, OrderDto, TopicMessageDto,
    TopicMessagesDto,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span as ProtoSpan;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use reqwest::StatusCode;
use serde_json::json;
use std::sync::{Arc, Mutex};

/// A caller's context: trace `4bf9…4736`, the caller's span `00f0…02b7`, sampled.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACESTATE: &str = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";

/// POSTs an order with `headers`; the order as answered.
async fn create_with(app: &TestApp, headers: &[(&str, &str)]) -> OrderDto {
    let mut request = app
        .client
        .post(app.url("/api/orders"))
        .json(&order_body(&["TRACE-1"]));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

/// The embedded log's messages, once `expected` are there.
async fn log_messages(app: &TestApp, expected: usize) -> Vec<TopicMessageDto> {
    eventually("the events are on the embedded log", || async {
        // 404 until the relay created the topic with its first message.
        let response = app
            .get("/api/topics/outbox.event.order/messages?limit=1000")
            .await;
        response.status() == StatusCode::OK
            && response
                .json::<TopicMessagesDto>()
                .await
                .is_ok_and(|page| page.messages.len() >= expected)
    })
    .await;
    let page: TopicMessagesDto = app
        .get_ok("/api/topics/outbox.event.order/messages?limit=1000")
        .await;
    page.messages
}

/// `traceparent` continues the caller's trace with the server's own span as the parent.
fn assert_continues_caller(traceparent: &str) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!((parts[0], parts[1], parts[3]), ("00", TRACE_ID, "01"));
    assert_ne!(
        parts[2], CALLER_SPAN,
        "the request's own span is the parent"
    );
    assert_eq!(parts[2].len(), 16);
}

async fn the_request_trace_reaches_the_embedded_log(mode: &str) {
    let app = spawn_app_with(&["--relay-mode", mode, "--poll-interval", "50ms"]).await;
    let traced = create_with(
        &app,
        &[("traceparent", TRACEPARENT), ("tracestate", TRACESTATE)],
    )
    .await;
    // A change of the same order in another trace keeps its own.
    let other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    let response = app
        .client
        .post(app.url(&format!("/api/orders/{}/cancel", traced.id)))
        .header("traceparent", other)
        .json(&json!({"reason": "traced", "expected_version": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // No context sent: the server starts a trace of its own.
    let untraced = create_with(&app, &[]).await;

    let messages = log_messages(&app, 3).await;
    let of = |id: &str, version: &str| {
        messages
            .iter()
            .find(|m| m.key == id && m.headers["aggregate_version"] == version)
            .unwrap_or_else(|| panic!("{id} v{version} on the log"))
            .headers
            .clone()
    };
    let created = of(&traced.id, "1");
    assert_continues_caller(&created["traceparent"]);
    assert_eq!(created["tracestate"], TRACESTATE);
    let cancelled = of(&traced.id, "2");
    assert!(
        cancelled["traceparent"].starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
        "{cancelled:?}"
    );
    assert!(
        cancelled["traceparent"].ends_with("-00"),
        "unsampled stays so"
    );
    assert!(!cancelled.contains_key("tracestate"));
    let fresh = of(&untraced.id, "1");
    assert_eq!(fresh["traceparent"].len(), 55);
    assert!(!fresh["traceparent"].contains(TRACE_ID));

    // The order's events show their trace ids.
    let detail: OrderDetailDto = app.get_ok(&format!("/api/orders/{}", traced.id)).await;
    let ids: Vec<Option<&str>> = detail
        .events
        .iter()
        .map(|e| e.trace_id.as_deref())
        .collect();
    assert_eq!(
        ids,
        [Some("0af7651916cd43dd8448eb211c80319c"), Some(TRACE_ID)]
    );
}

#[tokio::test]
async fn the_streaming_relay_sends_the_request_trace_with_the_record() {
    the_request_trace_reaches_the_embedded_log("streaming").await;
}

#[tokio::test]
async fn the_polling_relay_sends_the_request_trace_with_the_record() {
    the_request_trace_reaches_the_embedded_log("polling").await;
}

/// Malformed, oversized or hostile context headers never fail a request: an invalid
/// `traceparent` starts a new trace (and its `tracestate` is dropped), an unusable
/// `tracestate` is dropped.
#[tokio::test]
async fn hostile_trace_headers_start_a_new_trace_and_are_not_echoed() {
    let app = spawn_app_with(&[]).await;
    let long_state = format!("a={}", "x".repeat(600));
    let cases: [(&str, &str); 5] = [
        (
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "a=1",
        ),
        (
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "a=1",
        ),
        (
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "a=1",
        ),
        ("<script>alert(1)</script>", "a=1"),
        (TRACEPARENT, &long_state),
    ];
    for (traceparent, tracestate) in cases {
        create_with(
            &app,
            &[("traceparent", traceparent), ("tracestate", tracestate)],
        )
        .await;
    }
    let messages = log_messages(&app, cases.len()).await;
    for (m, (sent, _)) in messages.iter().zip(cases) {
        let traceparent = &m.headers["traceparent"];
        assert_eq!(traceparent.len(), 55, "{traceparent}");
        assert!(!m.headers.contains_key("tracestate"), "{:?}", m.headers);
        if sent == TRACEPARENT {
            assert_continues_caller(traceparent);
        } else {
            assert!(!traceparent.contains(TRACE_ID), "{sent} → {traceparent}");
        }
    }
}

/// With Kafka (tansu) and the CloudEvents format, a real Kafka client reads records in the
/// binary mode of the CloudEvents Kafka binding, the payload as the value and the request's
/// trace in `traceparent`; the exported publish span belongs to that trace, a child of the
/// span the record names.
#[tokio::test]
async fn kafka_records_are_cloudevents_that_carry_the_request_trace() {
    let broker = Broker::start().await;
    let collector = Collector::start().await;
    let app = app_on(
        &broker,
        "streaming",
        &[
            "--event-format",
            "cloudevents",
            "--cloudevents-source",
            "urn:shop:orders",
            "--otel-exporter-otlp-endpoint",
            &collector.address,
        ],
    )
    .await;
    let order = create_with(
        &app,
        &[("traceparent", TRACEPARENT), ("tracestate", TRACESTATE)],
    )
    .await;
    let messages: Vec<Consumed> = consume(&broker.address, 1).await;
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    let detail: OrderDetailDto = app.get_ok(&format!("/api/orders/{}", order.id)).await;
    let event = &detail.events[0];
    let h = &m.headers;
    assert_eq!(h["ce_specversion"], "1.0");
    assert_eq!(h["ce_id"], event.event_id);
    assert_eq!(h["ce_source"], "urn:shop:orders");
    assert_eq!(h["ce_type"], "OrderCreated");
    assert_eq!(h["ce_time"], event.occurred_at);
    assert_eq!(h["ce_subject"], order.id);
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["ce_aggregateversion"], "1");
    assert!(!h.contains_key("event_id"), "no outbox headers: {h:?}");
    assert_eq!(m.key, order.id);
    assert_eq!(m.value, event.payload, "the payload is the record's value");
    assert_continues_caller(&h["traceparent"]);
    assert_eq!(h["tracestate"], TRACESTATE);
    let publish = collector.span(TRACE_ID, "outbox.event.order publish").await;
    let named = h["traceparent"].split('-').nth(2).unwrap();
    assert_eq!(hex(&publish.parent_span_id), named);
    assert_eq!(attribute(&publish, "messaging.message.id"), event.event_id);
    let server = collector.span(TRACE_ID, "POST").await;
    assert_eq!(hex(&server.span_id), named);
    assert_eq!(hex(&server.parent_span_id), CALLER_SPAN);
}

/// A dead letter keeps its event's trace, and its replay publishes in the configured format
/// with the same `traceparent` the first attempt would have sent.
#[tokio::test]
async fn a_replayed_dead_letter_keeps_its_trace_and_the_format() {
    let app = spawn_app_with(&["--event-format", "cloudevents"]).await;
    app.set_fault(Fault::Poison {
        event_type: Some("OrderCreated".into()),
        every_n: None,
    })
    .await;
    let order = create_with(&app, &[("traceparent", TRACEPARENT)]).await;
    let page = eventually_dead_lettered(&app).await;
    let letter = &page.items[0];
    assert_eq!(letter.event.trace_id.as_deref(), Some(TRACE_ID));
    app.set_fault(Fault::None {}).await;
    let replayed: app::dto::DeadLetterDto = app
        .admin_post(&format!("/api/admin/dlq/{}/replay", letter.id), None::<()>)
        .await;
    assert_eq!(replayed.status, DeadLetterStatus::Replayed);
    let messages = log_messages(&app, 1).await;
    let h: &std::collections::BTreeMap<String, String> = &messages[0].headers;
    assert_eq!(h["ce_id"], letter.event.event_id);
    assert_eq!(h["ce_subject"], order.id);
    assert_continues_caller(&h["traceparent"]);
    let stored: String = rusqlite::Connection::open(app.db_path())
        .unwrap()
        .query_row("SELECT traceparent FROM outbox", [], |r| r.get(0))
        .unwrap();
    assert_eq!(h["traceparent"], stored);
}

async fn eventually_dead_lettered(app: &TestApp) -> DeadLetterPageDto {
    eventually("the event is dead-lettered", || async {
        let page: DeadLetterPageDto = app.admin_get("/api/admin/dlq?status=pending").await;
        !page.items.is_empty()
    })
    .await;
    app.admin_get("/api/admin/dlq?status=pending").await
}

/// Spans as an OTLP/HTTP collector receives them: the test decodes every export request's
/// protobuf body with the OpenTelemetry protocol's own message types.
struct Collector {
    /// Base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` takes it.
    address: String,
    spans: Arc<Mutex<Vec<(String, ProtoSpan)>>>,
}

impl Collector {
    async fn start() -> Collector {
        let spans: Arc<Mutex<Vec<(String, ProtoSpan)>>> = Arc::default();
        let kept = Arc::clone(&spans);
        let receive = move |body: axum::body::Bytes| {
            let kept = Arc::clone(&kept);
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("an OTLP export");
                for resource in request.resource_spans {
                    let service = resource
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|a| a.key == "service.name")
                        .map(|a| format!("{:?}", a.value))
                        .unwrap_or_default();
                    for scope in resource.scope_spans {
                        let spans = scope.spans.into_iter().map(|s| (service.clone(), s));
                        kept.lock().unwrap().extend(spans);
                    }
                }
                axum::http::StatusCode::OK
            }
        };
        let app = axum::Router::new().route("/v1/traces", axum::routing::post(receive));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Collector { address, spans }
    }

    /// The span named `name` of the trace `trace_id` (hex), once it arrived.
    async fn span(&self, trace_id: &str, name: &str) -> ProtoSpan {
        let find = || {
            self.spans
                .lock()
                .unwrap()
                .iter()
                .find(|(_, s)| hex(&s.trace_id) == trace_id && s.name == name)
                .map(|(_, s)| s.clone())
        };
        eventually(&format!("span {name:?} of {trace_id} is exported"), || {
            let found = find().is_some();
            async move { found }
        })
        .await;
        find().unwrap()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &ProtoSpan, key: &str) -> String {
    let value = span
        .attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| v.value.as_ref())
        .unwrap_or_else(|| panic!("{} has no {key}", span.name));
    match value {
        AnyValue::StringValue(s) => s.clone(),
        AnyValue::IntValue(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}

/// With `OTEL_EXPORTER_OTLP_ENDPOINT` set, the request, its commit and the relay's publish are
/// exported as spans of the caller's trace: the request's server span is the child of the
/// caller's span and is the parent the record's `traceparent` names; the commit and the
/// publish are its children. Without a caller's context the request starts the trace.
#[tokio::test]
async fn spans_are_exported_over_otlp_from_the_request_to_the_publish() {
    let collector = Collector::start().await;
    let app = spawn_app_with(&[
        "--otel-exporter-otlp-endpoint",
        &collector.address,
        "--otel-service-name",
        "outbox-under-test",
    ])
    .await;
    let order = create_with(&app, &[("traceparent", TRACEPARENT)]).await;
    let untraced = create_with(&app, &[]).await;
    let messages = log_messages(&app, 2).await;
    let record = |id: &str| {
        let m = messages.iter().find(|m| m.key == id).expect("on the log");
        let parts: Vec<String> = m.headers["traceparent"]
            .split('-')
            .map(str::to_owned)
            .collect();
        (
            parts[1].clone(),
            parts[2].clone(),
            m.headers["event_id"].clone(),
        )
    };

    let (trace_id, parent, event_id) = record(&order.id);
    assert_eq!(trace_id, TRACE_ID);
    let server = collector.span(TRACE_ID, "POST").await;
    assert_eq!(
        hex(&server.span_id),
        parent,
        "the record names the request's span"
    );
    assert_eq!(hex(&server.parent_span_id), CALLER_SPAN);
    assert_eq!(server.kind, SpanKind::Server as i32);
    assert_eq!(attribute(&server, "url.path"), "/api/orders");
    assert_eq!(attribute(&server, "http.response.status_code"), "201");
    let commit = collector.span(TRACE_ID, "outbox commit").await;
    assert_eq!(hex(&commit.parent_span_id), parent);
    let publish = collector.span(TRACE_ID, "outbox.event.order publish").await;
    assert_eq!(hex(&publish.parent_span_id), parent);
    assert_eq!(publish.kind, SpanKind::Producer as i32);
    assert_eq!(attribute(&publish, "messaging.message.id"), event_id);
    assert_eq!(
        attribute(&publish, "messaging.destination.name"),
        "outbox.event.order"
    );
    assert!(publish.start_time_unix_nano >= commit.start_time_unix_nano);
    let service = collector.spans.lock().unwrap()[0].0.clone();
    assert!(service.contains("outbox-under-test"), "{service}");

    // No caller: the server span is the root of a new trace the record continues.
    let (fresh, root, _) = record(&untraced.id);
    let server = collector.span(&fresh, "POST").await;
    assert_eq!(hex(&server.span_id), root);
    assert!(server.parent_span_id.is_empty(), "a root span");
    collector.span(&fresh, "outbox.event.order publish").await;
}
