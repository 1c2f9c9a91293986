//! Logs, metrics and the live feed.

pub mod live;
pub mod logs;
pub mod metrics;

use crate::store::Applied;
use std::sync::Arc;

/// After a command was applied (through the API or the pages): counts the committed change,
/// puts the order on the request's span, and logs the event's ids, so one order can be
/// followed to the relay's `published` line. An idempotent replay counts nothing.
pub fn order_applied(metrics: &metrics::Metrics, applied: &Applied) {
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

/// Where the relay and its helpers report: metrics and the live feed.
#[derive(Debug, Clone)]
pub struct Telemetry {
    pub metrics: Arc<metrics::Metrics>,
    pub live: Arc<live::LiveHub>,
}

impl Default for Telemetry {
    /// Standalone telemetry (tests, benches): its live feed is never closed by a server.
    fn default() -> Self {
        Self {
            metrics: Arc::default(),
            live: Arc::new(live::LiveHub::new(tokio::sync::watch::channel(false).1)),
        }
    }
}
