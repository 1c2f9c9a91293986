//! `GET /metrics` (Prometheus text format) and the middleware that counts and times every
//! HTTP request by method, matched route (never the raw path) and status.

use super::AppState;
use super::error::AppError;
use crate::domain::EventType;
use crate::publish::Publisher;
use crate::resilience::breaker::BreakerState;
use crate::telemetry::metrics::Metrics;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::time::Instant;

/// Refreshes the gauges that describe state (backlog, dead letters, breaker, checkpoint),
/// then renders every metric.
pub async fn scrape(State(state): State<AppState>) -> Result<Response, AppError> {
    let m = &state.metrics;
    let checkpoint = state.relay.activity.get().checkpoint;
    // Counted where the relay runs (0 elsewhere), and never a failed scrape.
    let backlog = state.relay.backlog.read().await.unwrap_or_default();
    m.relay_owner
        .set(i64::from(state.relay.backlog.runs_relay()));
    let counts = state.dead_letters.dead_letter_counts().await?;
    m.checkpoint
        .set(i64::try_from(checkpoint).unwrap_or(i64::MAX));
    m.outbox_pending
        .set(i64::try_from(backlog.pending).unwrap_or(i64::MAX));
    m.outbox_oldest_age.set(backlog.oldest.map_or(0.0, |t| {
        (chrono::Utc::now() - t).num_milliseconds().max(0) as f64 / 1e3
    }));
    m.dlq_pending
        .set(i64::try_from(counts.pending).unwrap_or(i64::MAX));
    for event_type in EventType::ALL.map(EventType::as_str) {
        let n = counts
            .pending_by_event_type
            .get(event_type)
            .copied()
            .unwrap_or(0);
        m.dlq_by_event_type
            .with_label_values(&[event_type])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    m.breaker_state
        .set(breaker_gauge(state.relay.breaker.state()));
    let groups = state.relay.faults.consumer_groups().await;
    if let Some(Err(e)) = &groups {
        tracing::debug!(error = %e, "consumer group lag not read");
    }
    m.set_consumer_lag(groups.as_ref().and_then(|g| g.as_ref().ok()));
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.render(),
    )
        .into_response())
}

/// The value of the `circuit_breaker_state` gauge: 0 closed, 1 open, 2 half-open.
fn breaker_gauge(state: BreakerState) -> i64 {
    match state {
        BreakerState::Closed => 0,
        BreakerState::Open => 1,
        BreakerState::HalfOpen => 2,
    }
}

/// The `method` label: the standard methods by name, any other token `other` (every token is
/// a valid method, so raw methods would let a client create series without bound).
fn method_label(method: &Method) -> &'static str {
    static KNOWN: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|known| *known == method)
        .map_or("other", Method::as_str)
}

/// One request being counted and timed. Unmatched paths are labelled `unmatched` and
/// unknown methods `other`, so scanners cannot create a series per path or method.
pub struct Counted {
    /// Cheap clones (an `Arc<str>` and, for standard methods, no allocation at all).
    route: Option<MatchedPath>,
    method: Method,
    started: Instant,
}

impl Counted {
    /// Starts counting `request`.
    pub fn start(request: &Request) -> Self {
        Self {
            route: request.extensions().get::<MatchedPath>().cloned(),
            method: request.method().clone(),
            started: Instant::now(),
        }
    }

    /// Counts the request as answered with `status`, and its time, which it returns.
    pub fn finish(self, metrics: &Metrics, status: StatusCode) -> std::time::Duration {
        let route = self.route.as_ref().map_or("unmatched", MatchedPath::as_str);
        let labels = [method_label(&self.method), route, status.as_str()];
        let elapsed = self.started.elapsed();
        metrics.http_requests.with_label_values(&labels).inc();
        metrics
            .http_duration
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
        elapsed
    }
}
