//! The embedded store as the benches set it up: the server's write settings, the order they
//! create, a backlog committed before any server runs, and the server's relay run in-process.
#![allow(dead_code, reason = "each bench uses a part of it")]

use app::dto::RelayMode;
use futures::future::join_all;
use outbox::domain::{NewOrder, RawItem, TraceContext};
use outbox::publish::Encoder;
use outbox::publish::local::LocalLogPublisher;
use outbox::relay::Batching;
use outbox::relay::runner::{self, RelaySettings};
use outbox::relay::suspension::Suspension;
use outbox::resilience::Resilience;
use outbox::resilience::breaker::{BreakerConfig, CircuitBreaker};
use outbox::resilience::retry::RetryConfig;
use outbox::store::sqlite::{SqliteOptions, SqliteStore, Synchronous};
use outbox::store::{Command, OrderStore, OutboxStore};
use outbox::telemetry::Telemetry;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The customer of every order the benches create.
pub const CUSTOMER: &str = "0193a5e0-7d1c-7b3a-9c4e-2f5d6a7b8c9d";

/// The server's default store settings (durable writes) on `dir`.
pub fn store_options(dir: &Path) -> SqliteOptions {
    SqliteOptions {
        data_dir: dir.to_path_buf(),
        synchronous: Synchronous::Full,
        max_batch: 512,
        queue_capacity: 8192,
        readers: 4,
    }
}

/// A one-item order creation.
pub fn create() -> Command {
    let items = [RawItem {
        sku: "B-1".into(),
        quantity: 1,
        unit_price_cents: 999,
    }];
    Command::Create {
        order: NewOrder::parse(CUSTOMER, &items).expect("valid order"),
        idempotency_key: None,
    }
}

/// A new trace context, as the server starts for a request that sent none: the direct
/// creates store and relay one as the HTTP creates do, so the two differ only by HTTP.
pub fn trace() -> Option<TraceContext> {
    Some(TraceContext::continue_or_start(None))
}

/// Commits `count` creates into `store`, `concurrency` at a time.
pub async fn create_many(store: &Arc<SqliteStore>, count: usize, concurrency: usize) {
    let next = Arc::new(AtomicUsize::new(0));
    join_all((0..concurrency).map(|_| {
        let (store, next) = (Arc::clone(store), Arc::clone(&next));
        async move {
            while next.fetch_add(1, Ordering::Relaxed) < count {
                store.apply_traced(create(), trace()).await.expect("create");
            }
        }
    }))
    .await;
}

/// The database of the store in `dir`, opened beside whoever writes it.
pub fn database(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join(outbox::store::sqlite::DATABASE_FILE)).expect("database")
}

/// The relay's saved checkpoint in `conn`'s database (0 before its first save).
pub fn checkpoint(conn: &rusqlite::Connection) -> i64 {
    conn.query_row(
        "SELECT coalesce(max(position), 0) FROM relay_checkpoints",
        [],
        |r| r.get(0),
    )
    .unwrap_or(0)
}

/// Opens a new store in `dir` and commits `events` creates into it (64 at a time).
pub async fn prefill(dir: &Path, events: usize) -> Arc<SqliteStore> {
    let store = Arc::new(SqliteStore::open(&store_options(dir)).expect("store opens"));
    create_many(&store, events, 64).await;
    store
}

/// The server's default relay (streaming into the embedded topic log), run in this process.
pub struct InProcessRelay {
    stop: CancellationToken,
    task: JoinHandle<()>,
    /// Held so the relay's mode channel stays open.
    _mode: tokio::sync::watch::Sender<RelayMode>,
}

impl InProcessRelay {
    /// Starts the relay over `store`.
    pub fn spawn(store: Arc<SqliteStore>) -> Self {
        let outbox: Arc<dyn OutboxStore> = store.clone();
        let (mode_tx, mode) = tokio::sync::watch::channel(RelayMode::Streaming);
        let settings = RelaySettings {
            mode,
            suspension: Suspension::default(),
            poll_interval: Duration::from_millis(500),
            batching: Batching {
                size: 500,
                depth: 2,
            },
            encoder: Encoder::default(),
            resilience: Resilience::new(
                RetryConfig::default(),
                Arc::new(CircuitBreaker::new(BreakerConfig::default())),
            ),
            activity: Arc::default(),
            telemetry: Telemetry::default(),
        };
        let stop = CancellationToken::new();
        let task = runner::spawn(
            outbox,
            Arc::new(LocalLogPublisher::new(store)),
            settings,
            stop.clone(),
        );
        Self {
            stop,
            task,
            _mode: mode_tx,
        }
    }

    /// Stops the relay and waits until it has.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}
