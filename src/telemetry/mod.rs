//! Logs (and, later, metrics and the live feed).

pub mod logs;
