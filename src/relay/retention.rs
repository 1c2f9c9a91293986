//! Retention: a background task that deletes published outbox events older than the
//! retention period, and idempotency keys older than their lifetime, in small batches so it
//! never holds the writer for long. Unpublished events are never deleted.

use crate::store::{RELAY_NAME, RetentionStore, StoreError};
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
    /// Published outbox events older than this are deleted (`OUTBOX_RETENTION`).
    pub outbox: Duration,
    /// Idempotency keys older than this are deleted (`IDEMPOTENCY_KEY_TTL`).
    pub idempotency_keys: Duration,
}

/// Starts the sweeper: every `interval`, delete what `retention` no longer keeps.
pub fn spawn(
    store: Arc<dyn RetentionStore>,
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
            let before = cutoff(retention.idempotency_keys);
            sweep("idempotency keys", |limit| {
                store.delete_idempotency_keys(before, limit)
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
async fn sweep<F, Fut>(what: &str, mut delete: F)
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<u64, StoreError>>,
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
