//! Prometheus metrics. One [`Metrics`] per application (tests run many side by side), passed
//! to the code paths that update them; `GET /metrics` renders it together with the gauges
//! read at scrape time (backlog, dead letters, breaker state, checkpoint).
//!
//! Names follow the outbox/CDC conventions operators already alert on (`cdc_*`, `retry_*`,
//! `dlq_*`, `circuit_breaker_*`) plus the relay's lag and latency.

use crate::domain::EventType;
use crate::publish::{ConsumerGroups, FailureKind};
use app::dto::{BreakerState, RelayMode, ReplayAttemptOutcome};

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Buckets for latencies from a millisecond to a minute, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Every metric the application exports.
pub struct Metrics {
    registry: Registry,
    /// Events acknowledged by the sink, by event type and relay mode.
    pub events_processed: IntCounterVec,
    /// Failed publishes of events, by event type and reason (`transient`, `unanswered`,
    /// `permanent`).
    pub events_failed: IntCounterVec,
    /// Time one publish call took, observed once per event it carried.
    pub processing_duration: Histogram,
    /// Retries scheduled, by operation (`publish`, `replay`).
    pub retry_attempts: IntCounterVec,
    /// Events that succeeded after at least one failed attempt.
    pub retry_success: IntCounterVec,
    /// Events dead-lettered after failing their attempts while the sink took other messages.
    pub retry_failure: IntCounterVec,
    /// Events sent to the dead letter queue (a counter: promtool refuses the `_total` suffix
    /// on a gauge, so the pending count is `dlq_messages_pending`).
    pub dlq_messages: IntCounter,
    /// Pending dead letters (set at scrape time).
    pub dlq_pending: IntGauge,
    /// Pending dead letters per event type (set at scrape time).
    pub dlq_by_event_type: IntGaugeVec,
    /// Replays by outcome (`delivered`, `failed`).
    pub dlq_replays: IntCounterVec,
    /// 0 closed, 1 open, 2 half-open (set at scrape time).
    pub breaker_state: IntGauge,
    /// Breaker transitions, counted as they happen.
    pub breaker_transitions: IntCounterVec,
    /// Committed events after the relay's checkpoint (set at scrape time).
    pub outbox_pending: IntGauge,
    /// Age of the oldest of them: the lag to alert on (set at scrape time).
    pub outbox_oldest_age: prometheus::Gauge,
    /// The span of the CDC log the streaming relay needs but the log no longer keeps (0
    /// normally): the relay refuses to start over it. Alert on anything above 0.
    pub cdc_unreadable_seconds: prometheus::Gauge,
    /// Commit → sink acknowledgement per event, by relay mode.
    pub end_to_end_latency: HistogramVec,
    /// The relay's saved position (set at scrape time).
    pub checkpoint: IntGauge,
    /// The configured poll interval, so alerts can judge polling latency against it.
    pub poll_interval: prometheus::Gauge,
    /// 1 on the instance that runs the relay (always, on the embedded store), else 0: the
    /// backlog gauges are counted there only (set at scrape time).
    pub relay_owner: IntGauge,
    /// Messages each consumer group has still to read on each outbox topic (Kafka only; set
    /// at scrape time, through [`Metrics::set_consumer_lag`]).
    pub consumer_group_lag: IntGaugeVec,
    /// Committed order changes, by event type.
    pub orders: IntCounterVec,
    /// HTTP requests by method, matched route and status.
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
}

/// Registers `metric` (built from constant, valid names) in `registry` and returns it.
fn register<M: Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<M>,
) -> M {
    let metric = metric.expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            register(&registry, IntCounterVec::new(Opts::new(name, help), labels))
        };
        let gauge = |name: &str, help: &str| register(&registry, IntGauge::new(name, help));
        let latency = |name: &str, help: &str| {
            HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec())
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            register(&registry, HistogramVec::new(latency(name, help), labels))
        };
        let processing_duration = register(
            &registry,
            Histogram::with_opts(latency(
                "cdc_processing_duration_seconds",
                "Time the publish call took, observed once per event it carried.",
            )),
        );
        let dlq_by_event_type = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "dlq_messages_by_event_type",
                    "Pending dead letters per event type.",
                ),
                &["event_type"],
            ),
        );
        let outbox_oldest_age = register(
            &registry,
            prometheus::Gauge::new(
                "outbox_oldest_pending_age_seconds",
                "Age of the oldest committed event the relay has not handled yet.",
            ),
        );
        let poll_interval = register(
            &registry,
            prometheus::Gauge::new(
                "relay_poll_interval_seconds",
                "The polling relay's configured interval (POLL_INTERVAL).",
            ),
        );
        let cdc_unreadable_seconds = register(
            &registry,
            prometheus::Gauge::new(
                "cdc_log_unreadable_seconds",
                "Span of the CDC log the streaming relay needs but the log no longer keeps (0 normally).",
            ),
        );
        let consumer_group_lag = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "outbox_consumer_group_lag",
                    "Messages a consumer group has still to read on an outbox topic (Kafka).",
                ),
                &["group", "topic"],
            ),
        );
        let dlq_messages = register(
            &registry,
            IntCounter::new(
                "dlq_messages_total",
                "Events sent to the dead letter queue.",
            ),
        );
        Self {
            events_processed: counter(
                "cdc_events_processed_total",
                "Events the sink acknowledged.",
                &["event_type", "mode"],
            ),
            events_failed: counter(
                "cdc_events_failed_total",
                "Failed publishes of events.",
                &["event_type", "reason"],
            ),
            processing_duration,
            retry_attempts: counter(
                "retry_attempts_total",
                "Retries scheduled after a transient failure.",
                &["operation"],
            ),
            retry_success: counter(
                "retry_success_total",
                "Events that succeeded after failing before.",
                &["operation"],
            ),
            retry_failure: counter(
                "retry_failure_total",
                "Events dead-lettered after failing their attempts while the sink took other messages.",
                &["operation"],
            ),
            dlq_messages,
            dlq_pending: gauge("dlq_messages_pending", "Pending dead letters."),
            dlq_by_event_type,
            dlq_replays: counter(
                "dlq_replays_total",
                "Dead letter replays by outcome.",
                &["outcome"],
            ),
            breaker_state: gauge(
                "circuit_breaker_state",
                "Circuit breaker around the sink: 0 closed, 1 open, 2 half-open.",
            ),
            breaker_transitions: counter(
                "circuit_breaker_transitions_total",
                "Circuit breaker state changes.",
                &["from_state", "to_state"],
            ),
            outbox_pending: gauge(
                "outbox_pending_events",
                "Committed events after the relay's checkpoint.",
            ),
            outbox_oldest_age,
            cdc_unreadable_seconds,
            end_to_end_latency: histogram(
                "relay_end_to_end_latency_seconds",
                "From the event's commit to the sink's acknowledgement.",
                &["mode"],
            ),
            checkpoint: gauge(
                "relay_checkpoint_position",
                "The last commit position the relay handled.",
            ),
            poll_interval,
            consumer_group_lag,
            relay_owner: gauge(
                "relay_owner",
                "1 on the instance that runs the relay (the backlog gauges are counted there), else 0.",
            ),
            orders: counter(
                "orders_total",
                "Committed order changes, by event type.",
                &["event_type"],
            ),
            http_requests: counter(
                "http_requests_total",
                "HTTP requests by method, matched route and status.",
                &["method", "route", "status"],
            ),
            http_duration: histogram(
                "http_request_duration_seconds",
                "HTTP request handling time by method, matched route and status.",
                &["method", "route", "status"],
            ),
            registry,
        }
        .with_known_series()
    }

    /// Creates every series whose labels are known in advance at 0, so dashboards and alerts
    /// see them before the first event (Prometheus only exports series that exist).
    fn with_known_series(self) -> Self {
        for event_type in EventType::ALL.map(EventType::as_str) {
            self.orders.with_label_values(&[event_type]);
            self.dlq_by_event_type.with_label_values(&[event_type]);
            for mode in RelayMode::ALL {
                self.events_processed
                    .with_label_values(&[event_type, mode.as_str()]);
            }
            for reason in FailureKind::ALL.map(FailureKind::as_str) {
                self.events_failed.with_label_values(&[event_type, reason]);
            }
        }
        for mode in RelayMode::ALL {
            self.end_to_end_latency.with_label_values(&[mode.as_str()]);
        }
        self.retry_attempts.with_label_values(&["publish"]);
        self.retry_success.with_label_values(&["publish"]);
        self.retry_failure.with_label_values(&["publish"]);
        for outcome in ReplayAttemptOutcome::ALL {
            self.dlq_replays.with_label_values(&[outcome.as_str()]);
        }
        use BreakerState::{Closed, HalfOpen, Open};
        for (from, to) in [
            (Closed, Open),
            (Open, HalfOpen),
            (HalfOpen, Open),
            (HalfOpen, Closed),
        ] {
            self.breaker_transitions
                .with_label_values(&[from.as_str(), to.as_str()]);
        }
        self
    }

    /// Sets `outbox_consumer_group_lag` to each group's lag per topic (the sum over its
    /// partitions). Without `groups` (no Kafka, or no broker answered) the series are
    /// removed, so no stale lag is exported.
    pub fn set_consumer_lag(&self, groups: Option<&ConsumerGroups>) {
        self.consumer_group_lag.reset();
        for p in groups.map_or(&[][..], |g| &g.partitions) {
            self.consumer_group_lag
                .with_label_values(&[p.group.as_str(), p.topic.as_str()])
                .add(p.lag);
        }
    }

    /// Everything in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding never fails");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::ConsumerLag;

    #[test]
    fn consumer_lag_is_summed_per_group_and_topic_and_forgotten_when_unknown() {
        let metrics = Metrics::new();
        let row = |group: &str, partition, lag| ConsumerLag {
            group: group.into(),
            topic: "outbox.event.order".into(),
            partition,
            committed: Some(0),
            end: lag,
            lag,
        };
        let groups = ConsumerGroups {
            partitions: vec![
                row("billing", 0, 3),
                row("billing", 1, 4),
                row("audit", 0, 0),
            ],
            truncated: false,
        };
        metrics.set_consumer_lag(Some(&groups));
        let text = metrics.render();
        for series in [
            r#"outbox_consumer_group_lag{group="billing",topic="outbox.event.order"} 7"#,
            r#"outbox_consumer_group_lag{group="audit",topic="outbox.event.order"} 0"#,
        ] {
            assert!(
                text.lines().any(|l| l == series),
                "missing `{series}` in:\n{text}"
            );
        }
        metrics.set_consumer_lag(None);
        assert!(!metrics.render().contains("outbox_consumer_group_lag{"));
    }

    #[test]
    fn series_with_known_labels_are_exported_at_zero_before_anything_happens() {
        let text = Metrics::new().render();
        let mut expected = vec![
            "retry_attempts_total{operation=\"publish\"} 0".to_string(),
            "retry_success_total{operation=\"publish\"} 0".to_string(),
            "retry_failure_total{operation=\"publish\"} 0".to_string(),
            "dlq_replays_total{outcome=\"delivered\"} 0".to_string(),
            "dlq_replays_total{outcome=\"failed\"} 0".to_string(),
            "dlq_messages_total 0".to_string(),
            "dlq_messages_pending 0".to_string(),
            "circuit_breaker_state 0".to_string(),
        ];
        for (from, to) in [
            ("closed", "open"),
            ("open", "half_open"),
            ("half_open", "open"),
            ("half_open", "closed"),
        ] {
            expected.push(format!(
                "circuit_breaker_transitions_total{{from_state=\"{from}\",to_state=\"{to}\"}} 0"
            ));
        }
        for mode in ["polling", "streaming"] {
            expected.push(format!(
                "relay_end_to_end_latency_seconds_count{{mode=\"{mode}\"}} 0"
            ));
        }
        for event_type in ["OrderCreated", "OrderItemsUpdated", "OrderCancelled"] {
            expected.push(format!("orders_total{{event_type=\"{event_type}\"}} 0"));
            expected.push(format!(
                "dlq_messages_by_event_type{{event_type=\"{event_type}\"}} 0"
            ));
            for mode in ["polling", "streaming"] {
                expected.push(format!(
                    "cdc_events_processed_total{{event_type=\"{event_type}\",mode=\"{mode}\"}} 0"
                ));
            }
            for reason in ["transient", "unanswered", "permanent"] {
                expected.push(format!(
                    "cdc_events_failed_total{{event_type=\"{event_type}\",reason=\"{reason}\"}} 0"
                ));
            }
        }
        let lines: Vec<&str> = text.lines().collect();
        for series in &expected {
            assert!(
                lines.contains(&series.as_str()),
                "missing `{series}` in:\n{text}"
            );
        }
    }
}
