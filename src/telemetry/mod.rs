//! Logs, metrics and the live feed.

pub mod live;
pub mod logs;
pub mod metrics;

use std::sync::Arc;

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
