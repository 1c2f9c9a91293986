//! Structured logs to stderr, filtered by `RUST_LOG` (default `info`): JSON lines for log
//! collectors, or human-readable text at a terminal (`LOG_FORMAT`). Each line carries the
//! fields of its spans: the HTTP request's `request_id` (and the `order_id` it touched), so
//! one id can be followed from a request to the relay's `published` line for its event.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Pretty,
}

/// Installs the global subscriber. Call once, first thing in `main`. Without a format, JSON
/// unless stderr is a terminal.
pub fn init(format: Option<LogFormat>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let format = format.unwrap_or(if std::io::stderr().is_terminal() {
        LogFormat::Pretty
    } else {
        LogFormat::Json
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .init(),
        LogFormat::Pretty => builder.init(),
    }
}
