//! What every request and response passes through, as one tower service: the request id,
//! the trace context (`trace`) and the log span (`request_id`), the security headers (`headers`), the request metrics
//! (`metrics`) and a debug line per answer. It calls the route directly; as three `from_fn`
//! middlewares and tower-http's trace layer, each cloned the whole boxed route stack beneath
//! it on every request, which cost more than reading the request.

use super::{headers, metrics, request_id, trace};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::spans::Spans;
use axum::extract::Request;
use axum::response::Response;
use futures::future::BoxFuture;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use tracing::Instrument;

/// Wraps routes in [`Edge`].
#[derive(Clone)]
pub struct EdgeLayer {
    metrics: Arc<Metrics>,
    spans: Arc<Spans>,
}

impl EdgeLayer {
    /// Counts requests in `metrics` and exports their server spans to `spans`.
    pub fn new(metrics: Arc<Metrics>, spans: Arc<Spans>) -> Self {
        Self { metrics, spans }
    }
}

impl<S> tower::Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            metrics: Arc::clone(&self.metrics),
            spans: Arc::clone(&self.spans),
        }
    }
}

/// A route with its request id, span, security headers and metrics.
#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    metrics: Arc<Metrics>,
    spans: Arc<Spans>,
}

impl<S> tower::Service<Request> for Edge<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let id = request_id::assign(&mut request);
        let (trace, server_span) = trace::assign(&mut request, &self.spans);
        let span = request_id::span(&id, trace.trace_id(), &request);
        let admin_data = headers::is_admin_data(request.uri().path());
        let counted = metrics::Counted::start(&request);
        let answer = span.in_scope(|| self.inner.call(request));
        let metrics = Arc::clone(&self.metrics);
        Box::pin(async move {
            let Ok(mut response) = answer.instrument(span.clone()).await;
            response.headers_mut().insert(request_id::HEADER, id);
            headers::secure(response.headers_mut(), admin_data);
            let elapsed = counted.finish(&metrics, response.status());
            if let Some(server_span) = server_span {
                server_span.finish(response.status().as_u16());
            }
            span.in_scope(|| {
                tracing::debug!(
                    status = response.status().as_u16(),
                    latency_ms = elapsed.as_secs_f64() * 1e3,
                    "answered"
                );
            });
            Ok(response)
        })
    }
}
