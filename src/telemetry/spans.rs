//! Span export over OTLP (`OTEL_EXPORTER_OTLP_ENDPOINT`): the HTTP request, the store commit
//! and each relay publish, as OpenTelemetry spans of the request's W3C trace. Unset, nothing
//! is built and every call here is one branch.
//!
//! Spans are recorded when their work is over, with the times it started and ended, so no
//! span object lives across the store's or the sink's awaits. The request span is the
//! exception: it is started first, because its span id is the parent that the stored event,
//! the published record's `traceparent` and the commit and publish spans all name.

use crate::domain::{StoredEvent, TraceContext};
use crate::publish::{Delivery, PublishError};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider, Span,
};
use std::time::{Duration, SystemTime};

/// How long finished spans wait to be sent together (the SDK's default is 5 s).
const EXPORT_DELAY: Duration = Duration::from_millis(500);

/// Where spans go, if anywhere.
#[derive(Default)]
pub struct Spans(Option<Exporter>);

impl std::fmt::Debug for Spans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spans")
            .field("exported", &self.is_on())
            .finish()
    }
}

/// The tracer and the provider that owns its batch processor.
struct Exporter {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

/// The exporter could not be built (a malformed endpoint, say).
#[derive(Debug, thiserror::Error)]
#[error("cannot export spans to {endpoint}: {reason}")]
pub struct SpanExportError {
    endpoint: String,
    reason: String,
}

/// What a finished span says about its outcome.
pub enum Outcome<'a> {
    Ok,
    Failed(&'a str),
}

/// A request's server span, ended when the response is ready.
pub struct RequestSpan(Span);

impl RequestSpan {
    /// Ends the span with the response's status (5xx marks it failed).
    pub fn finish(mut self, status: u16) {
        self.0.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
        if status >= 500 {
            self.0.set_status(Status::error("server error"));
        }
        self.0.end();
    }
}

impl Spans {
    /// Exports to the OTLP/HTTP (protobuf) collector at `endpoint` (a base URL such as
    /// `http://collector:4318`; `/v1/traces` is appended), naming the service `service`.
    pub fn otlp(endpoint: &str, service: &str) -> Result<Self, SpanExportError> {
        let traces = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(&traces)
            .build()
            .map_err(|e| SpanExportError {
                endpoint: traces.clone(),
                reason: e.to_string(),
            })?;
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_scheduled_delay(EXPORT_DELAY)
                    .build(),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(service.to_owned())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("outbox");
        tracing::info!(endpoint = %traces, "exporting spans over OTLP");
        Ok(Self(Some(Exporter { provider, tracer })))
    }

    /// Whether spans are exported at all.
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Starts the server span of a request that sent `caller` (its parsed `traceparent`),
    /// and returns the request's trace context (this span as the parent) with it. Without an
    /// exporter there is no span, and the context is [`TraceContext::continue_or_start`]'s.
    pub fn request(
        &self,
        caller: Option<TraceContext>,
        method: &str,
        path: &str,
    ) -> (TraceContext, Option<RequestSpan>) {
        let Some(export) = &self.0 else {
            return (TraceContext::continue_or_start(caller.as_ref()), None);
        };
        let parent = caller.as_ref().map_or_else(Context::new, remote);
        let span = export
            .tracer
            // Named by the method alone: the path holds ids, and span names must stay few.
            .span_builder(method.to_owned())
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", method.to_owned()),
                KeyValue::new("url.path", path.to_owned()),
            ])
            .start_with_context(&export.tracer, &parent);
        let context = span.span_context();
        let (trace_id, span_id) = (
            u128::from_be_bytes(context.trace_id().to_bytes()),
            u64::from_be_bytes(context.span_id().to_bytes()),
        );
        let trace = TraceContext::for_span(caller.as_ref(), span_id, trace_id);
        (trace, Some(RequestSpan(span)))
    }

    /// Records the store commit of a request's change, a child of the request's span.
    pub fn commit(&self, trace: &TraceContext, started: SystemTime, outcome: Outcome<'_>) {
        self.record(
            trace,
            "outbox commit",
            SpanKind::Internal,
            started,
            Vec::new(),
            outcome,
        );
    }

    /// Records the publish of `event` that took `took` until now, with its `result`. A child
    /// of the span that caused the event (the one its record's `traceparent` names); nothing
    /// for an event without a trace.
    pub fn publish(
        &self,
        event: &StoredEvent,
        took: Duration,
        result: &Result<Delivery, PublishError>,
    ) {
        let (Some(_), Some(trace)) = (&self.0, &event.envelope.trace) else {
            return;
        };
        let started = SystemTime::now() - took;
        let id = KeyValue::new("messaging.message.id", event.envelope.event_id.to_string());
        let (name, attributes, outcome) = match result {
            Ok(Delivery { topic, .. }) => (
                format!("{topic} publish"),
                vec![
                    KeyValue::new("messaging.operation.type", "send"),
                    KeyValue::new("messaging.destination.name", topic.to_owned()),
                    id,
                ],
                Outcome::Ok,
            ),
            Err(error) => (
                "outbox publish".to_owned(),
                vec![KeyValue::new("messaging.operation.type", "send"), id],
                Outcome::Failed(&error.message),
            ),
        };
        self.record(
            trace,
            &name,
            SpanKind::Producer,
            started,
            attributes,
            outcome,
        );
    }

    /// A span that ended now, child of `trace`'s parent span.
    fn record(
        &self,
        trace: &TraceContext,
        name: &str,
        kind: SpanKind,
        started: SystemTime,
        attributes: Vec<KeyValue>,
        outcome: Outcome<'_>,
    ) {
        let Some(export) = &self.0 else {
            return;
        };
        let mut span = export
            .tracer
            .span_builder(name.to_owned())
            .with_kind(kind)
            .with_start_time(started)
            .with_attributes(attributes)
            .start_with_context(&export.tracer, &remote(trace));
        if let Outcome::Failed(reason) = outcome {
            span.set_status(Status::error(reason.to_owned()));
        }
        span.end();
    }

    /// Sends the spans still waiting; called once when the server stops.
    pub fn shutdown(&self) {
        if let Some(export) = &self.0
            && let Err(error) = export.provider.shutdown()
        {
            tracing::warn!(%error, "span export did not shut down cleanly");
        }
    }
}

/// `trace`'s span as the remote parent of a new span.
fn remote(trace: &TraceContext) -> Context {
    let (trace_id, span_id, flags) = trace.ids();
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(trace_id),
        SpanId::from(span_id),
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn without_an_exporter_a_request_continues_or_starts_a_trace() {
        let spans = Spans::default();
        assert!(!spans.is_on());
        let caller = TraceContext::parse(CALLER, Some("a=1"));
        let (trace, span) = spans.request(caller, "POST", "/api/orders");
        assert!(span.is_none());
        assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(trace.span_id(), "00f067aa0ba902b7");
        assert_eq!(trace.tracestate(), Some("a=1"));
        let (fresh, _) = spans.request(None, "GET", "/healthz");
        assert_ne!(fresh.trace_id(), trace.trace_id());
    }

    #[tokio::test]
    async fn with_an_exporter_the_request_span_is_the_parent_the_context_names() {
        // Nothing listens there: spans are built and dropped on export, never blocking.
        let spans = Spans::otlp("http://127.0.0.1:9", "test").unwrap();
        let caller = TraceContext::parse(CALLER, None);
        let (trace, span) = spans.request(caller, "POST", "/api/orders");
        let span = span.expect("a server span");
        let context = span.0.span_context().clone();
        assert_eq!(
            format!("{:032x}", context.trace_id()),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(format!("{:016x}", context.span_id()), trace.span_id());
        span.finish(201);
        tokio::task::spawn_blocking(move || spans.shutdown())
            .await
            .unwrap();
    }
}
