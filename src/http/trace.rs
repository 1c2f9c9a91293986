//! W3C trace context at the edge: every request continues the caller's trace (`traceparent`,
//! `tracestate`) or starts one, with a span of its own (exported when spans are). The context
//! goes into the request's extensions, for the handlers that store it with an outbox event,
//! and its trace id into the request's log span.

use crate::domain::TraceContext;
use crate::telemetry::spans::{RequestSpan, Spans};
use axum::extract::{FromRequestParts, Request};
use axum::http::{HeaderMap, HeaderName, request::Parts};
use std::convert::Infallible;

/// The request's trace context, set on its extensions, and its server span when spans are
/// exported.
pub fn assign(request: &mut Request, spans: &Spans) -> (TraceContext, Option<RequestSpan>) {
    let (trace, span) = spans.request(
        caller(request.headers()),
        request.method().as_str(),
        request.uri().path(),
    );
    request.extensions_mut().insert(trace.clone());
    (trace, span)
}

/// The W3C headers, as names that need no parsing at each lookup.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The caller's context, if its `traceparent` is valid. Several `tracestate` headers are one
/// list, in order (RFC 9110 field combination), as the W3C specification asks.
fn caller(headers: &HeaderMap) -> Option<TraceContext> {
    let traceparent = headers.get(TRACEPARENT)?.to_str().ok()?;
    let mut states = headers.get_all(TRACESTATE).iter();
    let state = match (states.next(), states.next()) {
        (Some(one), None) => one.to_str().ok().map(str::to_owned),
        (None, _) => None,
        (Some(_), Some(_)) => headers
            .get_all(TRACESTATE)
            .iter()
            .map(|v| v.to_str().ok())
            .collect::<Option<Vec<_>>>()
            .map(|parts| parts.join(",")),
    };
    TraceContext::parse(traceparent, state.as_deref())
}

/// The trace context of the request, as a handler argument.
pub struct RequestTrace(pub TraceContext);

impl<S: Send + Sync> FromRequestParts<S> for RequestTrace {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        // Set by the edge for every request; a handler called without it starts a trace.
        Ok(Self(parts.extensions.get().cloned().unwrap_or_else(|| {
            TraceContext::continue_or_start(caller(&parts.headers).as_ref())
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn several_tracestate_headers_are_one_list() {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_static(PARENT));
        headers.append("tracestate", HeaderValue::from_static("a=1"));
        headers.append("tracestate", HeaderValue::from_static("b=2"));
        let trace = caller(&headers).unwrap();
        assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(trace.span_id(), "00f067aa0ba902b7", "the caller's own span");
        assert_eq!(trace.tracestate(), Some("a=1,b=2"));
    }

    #[test]
    fn a_request_without_a_valid_traceparent_has_no_caller() {
        assert_eq!(caller(&HeaderMap::new()), None);
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_static("00-nonsense"));
        headers.insert("tracestate", HeaderValue::from_static("a=1"));
        assert_eq!(caller(&headers), None);
    }
}
