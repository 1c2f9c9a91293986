//! Logs and metrics (and, later, the live feed).

pub mod logs;
pub mod metrics;
