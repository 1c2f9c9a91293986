//! Retention: a background task that deletes published outbox events older than the
//! retention period (and dead letters replayed or discarded that long ago), idempotency keys
//! older than their lifetime, and the embedded topic log's oldest messages (by age and
//! per-topic count), and audit log entries older than their retention, in small batches so it
//! never holds the writer for long. Unpublished events, pending dead letters and audit entries
//! younger than `AUDIT_RETENTION` are never deleted.

use crate::publish::local::TopicLog;
use crate::store::{RELAY_NAME, RetentionStore};
use chrono::{DateTime, Utc};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Rows deleted per write transaction.
const BATCH: u32 = 1000;

/// How long stored things are kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Published outbox events older than this are deleted, and dead letters resolved longer
    /// ago (`OUTBOX_RETENTION`).
    pub outbox: Duration,
    /// Idempotency keys older than this are deleted (`IDEMPOTENCY_KEY_TTL`).
    pub idempotency_keys: Duration,
    /// Embedded topic log messages older than this are deleted (`TOPIC_LOG_RETENTION`).
    pub topic_log: Duration,
    /// Each topic of the embedded log keeps at most this many messages
    /// (`TOPIC_LOG_MAX_MESSAGES`).
    pub topic_log_messages: u64,
    /// Audit log entries older than this are deleted (`AUDIT_RETENTION`).
    pub audit_log: Duration,
}

/// Starts the sweeper: every `interval`, delete what `retention` no longer keeps.
pub fn spawn(
    store: Arc<dyn RetentionStore>,
    topic_log: Arc<dyn TopicLog>,
    retention: Retention,
    interval: Duration,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let before = cutoff(retention.outbox);
            sweep("published outbox events", |limit| {
                store.delete_published(RELAY_NAME, before, limit)
            })
            .await;
            sweep("resolved dead letters", |limit| {
                store.delete_resolved_dead_letters(before, limit)
            })
            .await;
            let before = cutoff(retention.idempotency_keys);
            sweep("idempotency keys", |limit| {
                store.delete_idempotency_keys(before, limit)
            })
            .await;
            let before = cutoff(retention.audit_log);
            sweep("audit log entries", |limit| {
                store.delete_audit_entries(before, limit)
            })
            .await;
            let before = cutoff(retention.topic_log);
            sweep("embedded topic log messages", |limit| {
                topic_log.prune(before, retention.topic_log_messages, limit)
            })
            .await;
            if !super::runner::pause(interval, &stop).await {
                return;
            }
        }
    })
}

/// Now minus `age` (the distant past if `age` is beyond what a date can hold).
fn cutoff(age: Duration) -> DateTime<Utc> {
    let age = chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
    Utc::now()
        .checked_sub_signed(age)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Calls `delete` with [`BATCH`] until it deletes fewer, and logs the total of `what`.
async fn sweep<F, Fut, E>(what: &str, mut delete: F)
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<u64, E>>,
    E: std::fmt::Display,
{
    let mut total = 0;
    loop {
        match delete(BATCH).await {
            Ok(n) => {
                total += n;
                if n < u64::from(BATCH) {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention of {what} failed; trying again later");
                break;
            }
        }
    }
    if total > 0 {
        tracing::info!(deleted = total, "retention removed {what}");
    }
}
