//! The ScyllaDB store: the scale-out implementation of [`OutboxStore`].
//!
//! - [`schema`]: the CQL in `schema/scylla/`, applied at start-up.
//! - [`position`]: how commit positions are made without a single writer; `tags`: the node
//!   tag each process holds exclusively for them.
//! - `commands`: order commands (pending index, then a conditional single-partition batch).
//! - `orders`: reading one order, and the order list.
//! - `progress`: the polling relay's reads through the pending index, checkpoints, deliveries.
//! - [`cdc_progress`]: what the CDC reader starts from (its saved progress, the polling
//!   relay's).
//! - `dead_letters`: the dead letter queue; `lease`: the relay lease.
//! - [`rows`]: decoding `outbox` rows (shared with the CDC relay), `statements`: the CQL.
//! - `cluster`: the seam where statements run (the driver's session, or a test's script).
//!
//! `docs/SCYLLA.md` explains the data model and its trade-offs.

mod audit;
pub mod cdc_progress;
pub(crate) mod cluster;
mod commands;
mod dead_letters;
mod lease;
mod orders;
pub mod position;
mod progress;
pub mod rows;
pub mod schema;
pub(crate) mod statements;
mod tags;

use super::audit::{AuditEntry, AuditQuery, NewAuditEntry};
use super::{
    Applied, AuditLog, Backlog, Command, DeadLetterStore, EventPage, OrderCursor, OrderPage,
    OrderStore, OutboxLog, RetentionStore, StoreError,
};
use crate::domain::{DeliveryRecord, Order, OrderId, Payload, Secret, StoredEvent, TraceContext};
use crate::store::dead_letters::{
    DeadLetter, DeadLetterCounts, DeadLetterFilter, NewDeadLetter, ReplayOutcome,
};

use async_trait::async_trait;
use chrono::{SubsecRound, Utc};
use cluster::{Cluster, Row, SessionCluster, values};
use position::Clock;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::frame::types::{Consistency, SerialConsistency};
use statements::Stmt;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How to reach the cluster and lay out the data.
#[derive(Debug, Clone)]
pub struct ScyllaOptions {
    /// Contact points (`host:port`); the driver discovers the rest of the cluster.
    pub nodes: Vec<String>,
    /// Created at start-up if missing; each test uses its own.
    pub keyspace: String,
    /// Password authentication, when the cluster requires it.
    pub credentials: Option<(String, Secret)>,
    /// TLS to the cluster, when set.
    pub tls: Option<TlsOptions>,
    /// Replicas per row, used when the keyspace is created.
    pub replication_factor: u8,
    /// How long outbox events (and their index entries) live: longer than any relay outage.
    pub outbox_ttl: Duration,
    /// How long idempotency keys live (they expire by TTL here, not by the retention sweep).
    pub idempotency_key_ttl: Duration,
    /// How far behind now the polling relay reads, so writes in flight have committed.
    pub settle: Duration,
    /// How old an announced event that has not committed must be before the polling relay
    /// settles its outcome with a LOCAL_SERIAL read (at least `settle` plus clock skew).
    pub orphan_timeout: Duration,
}

/// TLS settings for the connection to the cluster.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// CA certificates (PEM) to trust; the system's when unset.
    pub ca_file: Option<PathBuf>,
}

/// Errors while connecting and preparing the store.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] openssl::error::ErrorStack),
    #[error("cannot connect to ScyllaDB: {0}")]
    Connect(Box<scylla::errors::NewSessionError>),
    #[error(transparent)]
    Schema(Box<schema::SchemaError>),
    #[error("cannot prepare statements: {0}")]
    Prepare(Box<scylla::errors::PrepareError>),
    #[error("{0} must be between 1 second and 68 years, not {1:?}")]
    Ttl(&'static str, Duration),
    #[error("cannot claim a position tag: {0}")]
    Tag(StoreError),
}

/// `ttl` as CQL TTL seconds: at least one, and within what CQL accepts.
fn cql_ttl(setting: &'static str, ttl: Duration) -> Result<i32, OpenError> {
    i32::try_from(ttl.as_secs())
        .ok()
        .filter(|s| *s > 0)
        .ok_or(OpenError::Ttl(setting, ttl))
}

/// How long one read of the CDC reader may take at least (its queries read whole windows of
/// the log).
const CDC_READ_TIMEOUT_MIN: Duration = Duration::from_secs(30);

/// The CDC reader's request timeout: well above the store's, which is short on purpose.
pub fn cdc_read_timeout(settle: Duration) -> Duration {
    CDC_READ_TIMEOUT_MIN.max(2 * write_timeout(settle))
}

/// The store's request timeout: half the settle interval, so a write the polling relay might
/// already have read past fails instead of landing behind it.
pub fn write_timeout(settle: Duration) -> Duration {
    settle / 2
}

/// A session to the cluster whose requests run under `profile`.
async fn connect(options: &ScyllaOptions, profile: ExecutionProfile) -> Result<Session, OpenError> {
    let mut builder = SessionBuilder::new()
        .known_nodes(&options.nodes)
        .default_execution_profile_handle(profile.into_handle());
    if let Some((user, password)) = &options.credentials {
        builder = builder.user(user, password.expose());
    }
    if let Some(tls) = &options.tls {
        let mut context = openssl::ssl::SslContextBuilder::new(openssl::ssl::SslMethod::tls())?;
        context.set_verify(openssl::ssl::SslVerifyMode::PEER);
        match &tls.ca_file {
            Some(file) => context.set_ca_file(file)?,
            None => context.set_default_verify_paths()?,
        }
        builder = builder.tls_context(Some(context.build()));
    }
    builder
        .build()
        .await
        .map_err(|e| OpenError::Connect(Box::new(e)))
}

/// The ScyllaDB implementation of [`OutboxStore`].
pub struct ScyllaStore {
    /// Runs the statements.
    cluster: Arc<dyn Cluster>,
    /// The CDC reader's own session, whose reads get [`cdc_read_timeout`] rather than the
    /// store's write timeout (none when a test scripts the cluster).
    cdc_session: Option<Arc<Session>>,
    keyspace: String,
    clock: Clock,
    /// The node tag in this process's positions, held exclusively.
    tag: tags::PositionTag,
    ttl_seconds: i32,
    /// The idempotency keys' TTL, in seconds.
    key_ttl_seconds: i32,
    settle: Duration,
    orphan_timeout: Duration,
    /// The newest position this process committed (the trait's commit feed; writes of other
    /// instances do not move it).
    head: watch::Sender<u64>,
    /// The last day this process registered in the order listing.
    listed_day: commands::Registered,
    /// The last pending-index bucket this process registered.
    indexed_bucket: commands::Registered,
    /// `(after, through)`: the pending index holds nothing publishable in that range.
    scanned: Mutex<Option<(u64, u64)>>,
}

impl ScyllaStore {
    /// Connects, applies the schema and prepares every statement.
    pub async fn open(options: &ScyllaOptions) -> Result<Self, OpenError> {
        let store_profile = ExecutionProfile::builder()
            .consistency(Consistency::LocalQuorum)
            .serial_consistency(Some(SerialConsistency::LocalSerial))
            // Below the settle interval: a write the relay might miss fails instead.
            .request_timeout(Some(write_timeout(options.settle)))
            .build();
        let session = Arc::new(connect(options, store_profile).await?);
        let topology = schema::Topology::of(&session, &options.keyspace);
        let warnings = schema::check_replication(options.replication_factor, &topology)
            .map_err(|e| OpenError::Schema(Box::new(e)))?;
        for warning in warnings {
            tracing::error!(%warning, "ScyllaDB replication");
        }
        schema::apply(&session, &options.keyspace, options.replication_factor)
            .await
            .map_err(|e| OpenError::Schema(Box::new(e)))?;
        let cluster = SessionCluster::prepare(Arc::clone(&session), &options.keyspace)
            .await
            .map_err(|e| OpenError::Prepare(Box::new(e)))?;
        // The CDC reader reads whole windows of the log: one slow read must not fail it the
        // way a slow write should fail, so it gets its own connections and timeout.
        let cdc_profile = ExecutionProfile::builder()
            .consistency(Consistency::LocalQuorum)
            .request_timeout(Some(cdc_read_timeout(options.settle)))
            .build();
        let cdc_session = connect(options, cdc_profile).await?;
        let mut store = Self::with_cluster(Arc::new(cluster), options)?;
        store.cdc_session = Some(Arc::new(cdc_session));
        store.claim_tag().await.map_err(OpenError::Tag)?;
        Ok(store)
    }

    /// The store over `cluster`, without connecting: how unit tests run it on a script.
    fn with_cluster(cluster: Arc<dyn Cluster>, options: &ScyllaOptions) -> Result<Self, OpenError> {
        let (head, _) = watch::channel(0);
        Ok(Self {
            cluster,
            cdc_session: None,
            keyspace: options.keyspace.clone(),
            clock: Clock::default(),
            tag: Default::default(),
            ttl_seconds: cql_ttl("OUTBOX_TTL", options.outbox_ttl)?,
            key_ttl_seconds: cql_ttl("IDEMPOTENCY_KEY_TTL", options.idempotency_key_ttl)?,
            settle: options.settle,
            orphan_timeout: options
                .orphan_timeout
                .max(options.settle + position::CLOCK_SKEW_MARGIN),
            head,
            listed_day: Default::default(),
            indexed_bucket: Default::default(),
            scanned: Mutex::new(None),
        })
    }

    /// Runs `stmt` with `values`.
    async fn run(&self, stmt: Stmt, values: Row) -> Result<Vec<Row>, StoreError> {
        self.cluster.run(stmt, values).await
    }

    /// The CDC reader's session (`None` only for a scripted cluster).
    pub fn cdc_session(&self) -> Option<Arc<Session>> {
        self.cdc_session.clone()
    }

    /// How far behind now the polling relay reads (writes older than this have settled).
    pub fn settle(&self) -> Duration {
        self.settle
    }

    /// The keyspace, which the CDC relay reads too.
    pub fn keyspace(&self) -> &str {
        &self.keyspace
    }
}

#[async_trait]
impl OrderStore for ScyllaStore {
    async fn apply_traced(
        &self,
        command: Command,
        trace: Option<TraceContext>,
    ) -> Result<Applied, StoreError> {
        // Stored timestamps keep microseconds; truncating here makes the answer equal the row.
        let now = Utc::now().trunc_subsecs(6);
        match command {
            Command::Create {
                order,
                idempotency_key,
            } => self.create(order, idempotency_key, trace, now).await,
            Command::ReplaceItems {
                id,
                items,
                expected_version,
            } => {
                self.change(id, trace, now, |o| {
                    o.replace_items(items.clone(), expected_version, now)
                })
                .await
            }
            Command::Cancel {
                id,
                reason,
                expected_version,
            } => {
                self.change(id, trace, now, |o| {
                    o.cancel(reason.clone(), expected_version, now)
                })
                .await
            }
        }
    }

    async fn order(
        &self,
        id: OrderId,
        page: EventPage,
    ) -> Result<Option<(Order, Vec<StoredEvent>)>, StoreError> {
        self.order_page(id, page).await
    }

    async fn orders(
        &self,
        limit: u32,
        before: Option<OrderCursor>,
    ) -> Result<OrderPage, StoreError> {
        self.page(limit, before).await
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        self.run(Stmt::Probe, values![rows::micros(&Utc::now())])
            .await?;
        Ok(())
    }
}

#[async_trait]
impl OutboxLog for ScyllaStore {
    async fn events_after(&self, after: u64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        self.pending_events(after, limit).await
    }

    async fn checkpoint(&self, relay: &str) -> Result<u64, StoreError> {
        self.saved_checkpoint(relay).await
    }

    async fn record_progress(
        &self,
        relay: &str,
        position: u64,
        deliveries: Vec<(u64, DeliveryRecord)>,
        letters: Vec<NewDeadLetter>,
    ) -> Result<(), StoreError> {
        self.insert_dead_letters(&letters).await?;
        let saves = deliveries.iter().map(|(p, d)| self.save_delivery(*p, d));
        futures::future::try_join_all(saves).await?;
        self.save_checkpoint(relay, position).await
    }

    async fn backlog(&self, checkpoint: u64) -> Result<Backlog, StoreError> {
        self.pending_backlog(checkpoint).await
    }

    async fn deliveries(
        &self,
        positions: Vec<u64>,
    ) -> Result<HashMap<u64, DeliveryRecord>, StoreError> {
        self.load_deliveries(positions).await
    }

    fn commits(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }
}

#[async_trait]
impl DeadLetterStore for ScyllaStore {
    async fn dead_letters(&self, filter: DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError> {
        self.list_dead_letters(&filter).await
    }

    async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetter>, StoreError> {
        self.get_dead_letter(id).await
    }

    async fn record_replay(
        &self,
        id: i64,
        outcome: ReplayOutcome,
    ) -> Result<DeadLetter, StoreError> {
        self.replayed(id, &outcome).await
    }

    async fn discard_dead_letter(&self, id: i64, reason: String) -> Result<DeadLetter, StoreError> {
        self.discard(id, &reason).await
    }

    async fn edit_dead_letter_payload(
        &self,
        id: i64,
        payload: Payload,
    ) -> Result<DeadLetter, StoreError> {
        self.edit_payload(id, &payload).await
    }

    async fn dead_letter_counts(&self) -> Result<DeadLetterCounts, StoreError> {
        self.count_dead_letters().await
    }
}

#[async_trait]
impl RetentionStore for ScyllaStore {
    /// Outbox rows expire by their TTL (`OUTBOX_TTL`), so the retention sweep has nothing to
    /// delete here.
    async fn delete_published(
        &self,
        _relay: &str,
        _before: chrono::DateTime<Utc>,
        _limit: u32,
    ) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// Nothing to sweep: the keys are written with `IDEMPOTENCY_KEY_TTL` as their TTL.
    async fn delete_idempotency_keys(
        &self,
        _before: chrono::DateTime<Utc>,
        _limit: u32,
    ) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// Nothing to sweep: a record is written again with `OUTBOX_TTL` once it is resolved.
    async fn delete_resolved_dead_letters(
        &self,
        _before: chrono::DateTime<Utc>,
        _limit: u32,
    ) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// Deletes whole days of entries, each older than `before` (counts days, not entries).
    async fn delete_audit_entries(
        &self,
        before: chrono::DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        self.delete_audit_days(before, limit).await
    }
}

#[async_trait]
impl AuditLog for ScyllaStore {
    async fn record_audit(&self, entry: NewAuditEntry) -> Result<(), StoreError> {
        self.insert_audit(&entry).await
    }

    async fn audit_entries(&self, query: AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit_page(&query).await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::cluster::Cluster;
    use super::*;

    /// Settings for a store over a scripted cluster.
    pub fn options() -> ScyllaOptions {
        ScyllaOptions {
            nodes: Vec::new(),
            keyspace: "shop".into(),
            credentials: None,
            tls: None,
            replication_factor: 3,
            outbox_ttl: Duration::from_secs(7 * 86_400),
            idempotency_key_ttl: Duration::from_secs(86_400),
            settle: Duration::from_secs(4),
            orphan_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn the_cdc_reader_waits_longer_than_a_write() {
        for settle in [200, 4_000, 60_000, 600_000].map(Duration::from_millis) {
            assert!(
                cdc_read_timeout(settle) >= 2 * write_timeout(settle),
                "{settle:?}"
            );
            assert!(cdc_read_timeout(settle) >= Duration::from_secs(30));
        }
    }

    #[test]
    fn the_orphan_timeout_is_never_below_the_settle_interval_plus_a_second() {
        let secs = Duration::from_secs;
        // (SCYLLA_SETTLE, SCYLLA_ORPHAN_TIMEOUT) → the timeout the polling relay uses.
        for (settle, orphan, used) in [
            (secs(4), secs(1), secs(5)),
            (secs(4), secs(5), secs(5)),
            (secs(4), secs(30), secs(30)),
            (secs(60), secs(5), secs(61)),
        ] {
            let options = ScyllaOptions {
                settle,
                orphan_timeout: orphan,
                ..options()
            };
            let cluster = Arc::new(cluster::fake::FakeCluster::default());
            let store = ScyllaStore::with_cluster(cluster, &options).unwrap();
            assert_eq!(
                store.orphan_timeout, used,
                "settle {settle:?}, orphan {orphan:?}"
            );
        }
    }

    /// A store whose statements `cluster` answers, holding a position tag.
    pub async fn scripted(cluster: Arc<dyn Cluster>) -> ScyllaStore {
        let store = ScyllaStore::with_cluster(cluster, &options()).expect("valid options");
        store.claim_tag().await.expect("a free tag");
        store
    }

    /// The request every [`create`] and [`create_keyed`] makes.
    pub fn new_order() -> crate::domain::NewOrder {
        let items = [crate::domain::RawItem {
            sku: "A".into(),
            quantity: 1,
            unit_price_cents: 1,
        }];
        crate::domain::NewOrder::parse("0193a5e0-7d1c-7b3a-9c4e-2f5d6a7b8c9d", &items).unwrap()
    }

    /// An order creation.
    pub fn create() -> Command {
        Command::Create {
            order: new_order(),
            idempotency_key: None,
        }
    }

    /// An order creation under the idempotency key `key`.
    pub fn create_keyed(key: &str) -> Command {
        Command::Create {
            order: new_order(),
            idempotency_key: Some(crate::store::IdempotencyKey::parse(key).unwrap()),
        }
    }

    /// The `outbox` row (order and event columns, as the order reads select them) that the
    /// last commit on `fake` wrote: what reading that order back finds.
    pub fn last_committed(fake: &cluster::fake::FakeCluster) -> Row {
        // `SaveOrder` binds these columns, in this order; `InsertEvent` the event columns.
        const SAVED: [&str; 9] = [
            "customer_id",
            "status",
            "version",
            "items",
            "cancel_reason",
            "created_at",
            "updated_at",
            "last_position",
            "aggregate_id",
        ];
        let order = fake.values(Stmt::SaveOrder).pop().expect("a commit");
        let event = fake.values(Stmt::InsertEvent).pop().expect("a commit");
        statements::order_and_event_columns()
            .iter()
            .map(|name| {
                let saved = SAVED.iter().position(|c| c == name).map(|i| &order[i]);
                let written = rows::EVENT_COLUMNS.iter().position(|c| c == name);
                saved
                    .or_else(|| written.map(|i| &event[i]))
                    .unwrap_or_else(|| panic!("column {name} is not written"))
                    .clone()
            })
            .collect()
    }
}
