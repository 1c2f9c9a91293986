//! Logs, metrics, exported spans and the live feed.

pub mod live;
pub mod logs;
pub mod metrics;
pub mod spans;

use crate::domain::TraceContext;
use crate::domain::{EventType, StoredEvent};
use crate::publish::FailureKind;
use crate::resilience::breaker::Transition;
use crate::store::{Applied, Command, OrderStore, StoreError};
use app::dto::RelayMode;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// Applies `command` for a request (through the API or the pages) in its `trace`: the event
/// stores the trace context, the commit becomes a span of the request when spans are
/// exported, and the change is counted and logged ([`order_applied`]).
pub async fn apply_command(
    orders: &dyn OrderStore,
    metrics: &metrics::Metrics,
    spans: &spans::Spans,
    command: Command,
    trace: Option<TraceContext>,
) -> Result<Applied, StoreError> {
    let started = std::time::SystemTime::now();
    let commit_trace = if spans.is_on() { trace.clone() } else { None };
    let applied = orders.apply_traced(command, trace).await;
    if let Some(trace) = &commit_trace {
        let outcome = match &applied {
            Ok(_) => spans::Outcome::Ok,
            Err(_) => spans::Outcome::Failed("not committed"),
        };
        spans.commit(trace, started, outcome);
    }
    if let Ok(applied) = &applied {
        order_applied(metrics, applied);
    }
    applied
}

/// After a command was applied: counts the committed change, puts the order on the
/// request's span, and logs the event's ids, so one order can be followed to the relay's
/// `published` line. An idempotent replay counts nothing.
fn order_applied(metrics: &metrics::Metrics, applied: &Applied) {
    tracing::Span::current().record("order_id", tracing::field::display(&applied.order().id));
    if let Applied::Written { event, .. } = applied {
        let e = &event.envelope;
        metrics
            .orders
            .with_label_values(&[e.event_type.as_str()])
            .inc();
        tracing::debug!(
            order_id = %e.aggregate_id,
            event_id = %e.event_id,
            event_type = e.event_type.as_str(),
            position = event.position,
            "order change committed"
        );
    }
}

/// The metrics of acknowledged events for one relay mode; see [`Telemetry::deliveries`].
pub struct Deliveries {
    /// Acknowledged events, in the order of [`EventType::ALL`].
    processed: [prometheus::IntCounter; 3],
    duration: prometheus::Histogram,
    latency: prometheus::Histogram,
    live: Arc<live::LiveHub>,
}

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Deliveries")
    }
}

impl Deliveries {
    /// Counts one acknowledged event: throughput, publish time, commit → acknowledgement
    /// latency, and a live-feed sample.
    pub fn delivered(
        &self,
        event: &StoredEvent,
        topic: &str,
        publish_seconds: f64,
        acked: DateTime<Utc>,
    ) {
        let e = &event.envelope;
        let kind = EventType::ALL
            .iter()
            .position(|t| *t == e.event_type)
            .expect("every event type is in ALL");
        self.processed[kind].inc();
        self.duration.observe(publish_seconds);
        let micros = (acked - e.occurred_at).num_microseconds().unwrap_or(0);
        let latency = micros.max(0) as f64 / 1e6;
        self.latency.observe(latency);
        self.live.published(
            || live::LiveEvent::Published {
                event_id: e.event_id.to_string(),
                event_type: e.event_type.as_str().to_string(),
                topic: topic.to_string(),
                latency_ms: (latency * 1e3).round() as i64,
            },
            latency * 1e3,
        );
    }
}

/// Where the relay and its helpers report: metrics and the live feed.
#[derive(Debug, Clone)]
pub struct Telemetry {
    pub metrics: Arc<metrics::Metrics>,
    pub live: Arc<live::LiveHub>,
    /// Span export (OTLP): the relays and replays record each publish there.
    pub spans: Arc<spans::Spans>,
    /// The series of acknowledged events per relay mode, in the order of `RelayMode::ALL`,
    /// looked up once: finding a labelled series costs more than moving it.
    deliveries: Arc<Vec<Deliveries>>,
}

impl Default for Telemetry {
    /// Standalone telemetry (tests, benches): its live feed is never closed by a server.
    fn default() -> Self {
        Self::new(
            Arc::default(),
            Arc::new(live::LiveHub::new(Default::default(), 100)),
        )
    }
}

impl Telemetry {
    /// Telemetry reporting to `metrics` and `live`.
    pub fn new(metrics: Arc<metrics::Metrics>, live: Arc<live::LiveHub>) -> Self {
        let deliveries = RelayMode::ALL
            .iter()
            .map(|mode| {
                let (processed, mode) = (&metrics.events_processed, mode.as_str());
                Deliveries {
                    processed: EventType::ALL
                        .map(|t| processed.with_label_values(&[t.as_str(), mode])),
                    duration: metrics.processing_duration.clone(),
                    latency: metrics.end_to_end_latency.with_label_values(&[mode]),
                    live: Arc::clone(&live),
                }
            })
            .collect();
        Self {
            metrics,
            live,
            spans: Arc::default(),
            deliveries: Arc::new(deliveries),
        }
    }

    /// The same telemetry, exporting spans to `spans`.
    pub fn with_spans(self, spans: Arc<spans::Spans>) -> Self {
        Self { spans, ..self }
    }

    /// The series an acknowledged event moves when the relay in `mode` publishes it.
    pub fn deliveries(&self, mode: RelayMode) -> &Deliveries {
        let index = RelayMode::ALL
            .iter()
            .position(|m| *m == mode)
            .expect("every mode is in ALL");
        &self.deliveries[index]
    }

    /// Counts a circuit breaker transition and announces it on the live feed.
    pub fn breaker_transition(&self, t: &Transition) {
        let transitions = &self.metrics.breaker_transitions;
        transitions
            .with_label_values(&[t.from.as_str(), t.to.as_str()])
            .inc();
        self.live.send(live::LiveEvent::Breaker {
            at: crate::domain::timestamp(&t.at),
            from: t.from,
            to: t.to,
            reason: t.reason.clone(),
        });
    }

    /// Counts a failed publish of an `event_type` event.
    pub fn publish_failed(&self, event_type: &str, kind: FailureKind) {
        self.metrics
            .events_failed
            .with_label_values(&[event_type, kind.as_str()])
            .inc();
    }
}
