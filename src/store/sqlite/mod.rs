//! The embedded store: one SQLite file in WAL mode, written by a single group-commit writer
//! (`writer`) and read through a small pool of read-only connections (`read_pool`).

mod audit;
mod commands;
mod dead_letters;
mod progress;
mod read_pool;
mod rows;
mod schema;
mod topic_log;
mod writer;

pub use schema::MigrationError;

use super::audit::{AuditEntry, AuditQuery, NewAuditEntry};
use super::{
    Applied, AuditLog, Backlog, Command, DeadLetterStore, EventPage, OrderCursor, OrderPage,
    OrderStore, OutboxLog, RetentionStore, StoreError,
};
use crate::domain::{DeliveryRecord, Order, OrderId, Payload, StoredEvent, TraceContext};
use crate::publish::local::{LogError, LoggedMessage, TopicLog, TopicSummary};
use crate::publish::{Delivery, Message};
use crate::store::dead_letters::{
    DeadLetter, DeadLetterCounts, DeadLetterFilter, NewDeadLetter, ReplayOutcome,
};

use async_trait::async_trait;
use read_pool::ReadPool;
use rusqlite::Connection;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};
use writer::Job;

/// File name of the database inside the data directory.
pub const DATABASE_FILE: &str = "outbox.sqlite3";

/// SQLite `synchronous` levels we allow. `Full` makes every acknowledged write durable even on
/// power loss; `Normal` in WAL mode can lose the last commits on power loss (not on a process
/// crash) and is offered only for measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Synchronous {
    Full,
    Normal,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        }
    }
}

/// How to open the embedded store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Directory that holds the database file; created if missing.
    pub data_dir: PathBuf,
    pub synchronous: Synchronous,
    /// Most requests committed in one transaction.
    pub max_batch: usize,
    /// Requests that may wait for the writer before new ones are refused as overloaded.
    pub queue_capacity: usize,
    /// Read-only connections for queries.
    pub readers: usize,
}

/// Errors while opening the store.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open database: {0}")]
    Open(#[from] rusqlite::Error),
    #[error(transparent)]
    Migration(#[from] MigrationError),
    #[error("cannot open read connections: {0}")]
    Readers(StoreError),
    #[error("cannot start the writer thread: {0}")]
    Thread(std::io::Error),
}

/// The SQLite implementation of [`OutboxStore`].
pub struct SqliteStore {
    /// Queue into the writer thread. Dropping the last handle stops the writer.
    jobs: mpsc::Sender<Job>,
    readers: Arc<ReadPool>,
    /// The newest committed outbox position, published by the writer after each commit.
    head: watch::Receiver<u64>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database, applies migrations and starts the writer.
    pub fn open(options: &SqliteOptions) -> Result<Self, OpenError> {
        std::fs::create_dir_all(&options.data_dir).map_err(|source| OpenError::DataDir {
            path: options.data_dir.clone(),
            source,
        })?;
        let path = options.data_dir.join(DATABASE_FILE);
        let mut conn = open_writer(&path, options.synchronous)?;
        schema::migrate(&mut conn)?;
        let newest = writer::newest_position(&conn).map_err(OpenError::Readers)?;
        let readers = ReadPool::new(path, options.readers.max(1)).map_err(OpenError::Readers)?;
        let (jobs, rx) = mpsc::channel(options.queue_capacity.max(1));
        let (head_tx, head) = watch::channel(newest);
        let max_batch = options.max_batch.max(1);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer::run(conn, rx, max_batch, head_tx))
            .map_err(OpenError::Thread)?;
        Ok(Self {
            jobs,
            readers: Arc::new(readers),
            head,
        })
    }

    /// Runs `work` in the writer's next batch and waits until it is committed (or failed).
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .try_send(writer::job(work, tx))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => StoreError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => StoreError::WriterStopped,
            })?;
        rx.await.map_err(|_| StoreError::WriterStopped)?
    }
}

fn open_writer(path: &Path, synchronous: Synchronous) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open(path)?;
    // WAL: readers never block the writer and one commit is one sequential append + fsync.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", synchronous.pragma())?;
    conn.pragma_update(None, "busy_timeout", 5000)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

#[async_trait]
impl OrderStore for SqliteStore {
    async fn apply_traced(
        &self,
        command: Command,
        trace: Option<TraceContext>,
    ) -> Result<Applied, StoreError> {
        self.write(move |conn| commands::apply(conn, command, trace))
            .await
    }

    async fn order(
        &self,
        id: OrderId,
        page: EventPage,
    ) -> Result<Option<(Order, Vec<StoredEvent>)>, StoreError> {
        self.readers
            .read(move |conn| {
                // One read transaction, so the order and its events are from the same commit.
                conn.execute_batch("BEGIN")?;
                let result = rows::load_order(conn, id).and_then(|order| {
                    order
                        .map(|o| Ok((o, rows::load_events(conn, id, page)?)))
                        .transpose()
                });
                conn.execute_batch("COMMIT")?;
                result
            })
            .await
    }

    async fn orders(
        &self,
        limit: u32,
        before: Option<OrderCursor>,
    ) -> Result<OrderPage, StoreError> {
        self.readers
            .read(move |conn| rows::load_page(conn, limit, before))
            .await
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        self.write(rows::touch_probe).await
    }
}

#[async_trait]
impl OutboxLog for SqliteStore {
    async fn events_after(&self, after: u64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        self.readers
            .read(move |conn| progress::events_after(conn, after, limit))
            .await
    }

    async fn checkpoint(&self, relay: &str) -> Result<u64, StoreError> {
        let relay = relay.to_string();
        self.readers
            .read(move |conn| progress::checkpoint(conn, &relay))
            .await
    }

    async fn record_progress(
        &self,
        relay: &str,
        position: u64,
        deliveries: Vec<(u64, DeliveryRecord)>,
        letters: Vec<NewDeadLetter>,
    ) -> Result<(), StoreError> {
        let relay = relay.to_string();
        self.write(move |conn| {
            dead_letters::insert(conn, &letters)?;
            progress::record(conn, &relay, position, &deliveries)
        })
        .await
    }

    async fn backlog(&self, checkpoint: u64) -> Result<Backlog, StoreError> {
        self.readers
            .read(move |conn| dead_letters::backlog(conn, checkpoint))
            .await
    }

    async fn deliveries(
        &self,
        positions: Vec<u64>,
    ) -> Result<HashMap<u64, DeliveryRecord>, StoreError> {
        self.readers
            .read(move |conn| progress::deliveries(conn, &positions))
            .await
    }

    fn commits(&self) -> watch::Receiver<u64> {
        self.head.clone()
    }
}

#[async_trait]
impl DeadLetterStore for SqliteStore {
    async fn dead_letters(&self, filter: DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError> {
        self.readers
            .read(move |conn| dead_letters::list(conn, &filter))
            .await
    }

    async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetter>, StoreError> {
        self.readers
            .read(move |conn| dead_letters::get(conn, id))
            .await
    }

    async fn record_replay(
        &self,
        id: i64,
        outcome: ReplayOutcome,
    ) -> Result<DeadLetter, StoreError> {
        self.write(move |conn| dead_letters::record_replay(conn, id, &outcome))
            .await
    }

    async fn discard_dead_letter(&self, id: i64, reason: String) -> Result<DeadLetter, StoreError> {
        self.write(move |conn| dead_letters::discard(conn, id, &reason))
            .await
    }

    async fn edit_dead_letter_payload(
        &self,
        id: i64,
        payload: Payload,
    ) -> Result<DeadLetter, StoreError> {
        self.write(move |conn| dead_letters::edit_payload(conn, id, &payload))
            .await
    }

    async fn dead_letter_counts(&self) -> Result<DeadLetterCounts, StoreError> {
        self.readers.read(dead_letters::counts).await
    }
}

#[async_trait]
impl RetentionStore for SqliteStore {
    async fn delete_published(
        &self,
        relay: &str,
        before: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let relay = relay.to_string();
        self.write(move |conn| progress::delete_published(conn, &relay, &before, limit))
            .await
    }

    async fn delete_idempotency_keys(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        self.write(move |conn| rows::delete_idempotency_keys(conn, &before, limit))
            .await
    }

    async fn delete_resolved_dead_letters(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        self.write(move |conn| dead_letters::delete_resolved(conn, &before, limit))
            .await
    }

    async fn delete_audit_entries(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        self.write(move |conn| audit::delete_older(conn, &before, limit))
            .await
    }
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn record_audit(&self, entry: NewAuditEntry) -> Result<(), StoreError> {
        self.write(move |conn| audit::insert(conn, &entry)).await
    }

    async fn audit_entries(&self, query: AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        self.readers
            .read(move |conn| audit::list(conn, &query))
            .await
    }
}

#[async_trait]
impl TopicLog for SqliteStore {
    async fn append(&self, messages: Vec<Message>) -> Result<Vec<Delivery>, LogError> {
        Ok(self
            .write(move |conn| topic_log::append(conn, &messages))
            .await?)
    }

    async fn topics(&self) -> Result<Vec<TopicSummary>, LogError> {
        Ok(self.readers.read(topic_log::topics).await?)
    }

    async fn topic(&self, topic: String) -> Result<Option<TopicSummary>, LogError> {
        Ok(self
            .readers
            .read(move |conn| topic_log::topic(conn, &topic))
            .await?)
    }

    async fn read(
        &self,
        topic: String,
        from_offset: i64,
        limit: u32,
    ) -> Result<Vec<LoggedMessage>, LogError> {
        Ok(self
            .readers
            .read(move |conn| topic_log::read(conn, &topic, from_offset, limit))
            .await?)
    }

    async fn prune(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        keep: u64,
        limit: u32,
    ) -> Result<u64, LogError> {
        Ok(self
            .write(move |conn| topic_log::prune(conn, &before, keep, limit))
            .await?)
    }
}

/// The embedded log's errors are the store's, in the log's terms.
impl From<StoreError> for LogError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Overloaded | StoreError::WriterStopped | StoreError::Unavailable(_) => {
                LogError::Unavailable(e.to_string())
            }
            other => LogError::Failed(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    fn options(dir: &Path, synchronous: Synchronous, queue_capacity: usize) -> SqliteOptions {
        SqliteOptions {
            data_dir: dir.to_path_buf(),
            synchronous,
            max_batch: 16,
            queue_capacity,
            readers: 1,
        }
    }

    #[test]
    fn the_writer_connection_uses_wal_and_the_chosen_synchronous_level() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DATABASE_FILE);
        for (level, expected) in [(Synchronous::Full, 2), (Synchronous::Normal, 1)] {
            let conn = open_writer(&path, level).unwrap();
            let pragma = |name: &str| -> String {
                conn.pragma_query_value(None, name, |r| r.get::<_, rusqlite::types::Value>(0))
                    .map(|v| match v {
                        rusqlite::types::Value::Integer(i) => i.to_string(),
                        rusqlite::types::Value::Text(t) => t,
                        other => format!("{other:?}"),
                    })
                    .unwrap()
            };
            assert_eq!(pragma("synchronous"), expected.to_string(), "{level:?}");
            assert_eq!(pragma("journal_mode"), "wal");
            assert_eq!(pragma("foreign_keys"), "1");
        }
    }

    #[tokio::test]
    async fn past_the_queue_capacity_writes_are_refused_as_overloaded() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&options(dir.path(), Synchronous::Full, 1)).unwrap();
        // The first job holds the writer until released.
        let (started_tx, started) = std::sync::mpsc::channel();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let holding = store.write(move |_| {
            started_tx.send(()).unwrap();
            held.recv().unwrap();
            Ok(())
        });
        let mut holding = Box::pin(holding);
        assert!((&mut holding).now_or_never().is_none());
        tokio::task::spawn_blocking(move || started.recv().unwrap())
            .await
            .unwrap();
        // The one place in the queue is taken; the next write is refused at once.
        let mut queued = Box::pin(store.write(|_| Ok(1)));
        assert!((&mut queued).now_or_never().is_none());
        let refused = store.write(|_| Ok(2)).await;
        assert!(
            matches!(refused, Err(StoreError::Overloaded)),
            "{refused:?}"
        );
        release.send(()).unwrap();
        holding.await.unwrap();
        assert_eq!(queued.await.unwrap(), 1);
        assert_eq!(store.write(|_| Ok(3)).await.unwrap(), 3, "room again");
    }
}
