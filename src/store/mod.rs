//! The store seam: applying an order command together with its outbox event in one atomic
//! write, and reading orders back.
//!
//! [`OutboxStore`] is the trait the rest of the program uses; [`sqlite`] is the embedded
//! implementation, [`scylla`] the scale-out one.

pub mod audit;
pub mod dead_letters;
pub mod scylla;
pub mod sqlite;

use crate::domain::{
    CancelReason, DeliveryRecord, NewOrder, Order, OrderId, OrderItems, Payload, StoredEvent,
    TraceContext, Version,
};
use crate::store::audit::{AuditEntry, AuditQuery, NewAuditEntry};
use crate::store::dead_letters::{
    DeadLetter, DeadLetterCounts, DeadLetterFilter, DeadLetterStatus, NewDeadLetter, ReplayOutcome,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use tokio::sync::watch;

/// The checkpoint row of the relay that reads the outbox in commit order (both modes on the
/// embedded store, the polling relay on ScyllaDB); retention deletes only what it published.
pub const RELAY_NAME: &str = "main";

/// Longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// A client-chosen key that makes an order creation safe to retry: 1 to 255 visible ASCII
/// characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.len() > MAX_IDEMPOTENCY_KEY_LEN {
            return Err(format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters"));
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("may contain only visible ASCII characters".into());
        }
        Ok(Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// SHA-256 of the validated request: "the same request" means the same customer and items,
/// however the JSON was spelled. Stored with an idempotency key.
pub fn fingerprint(order: &NewOrder) -> String {
    let canonical = serde_json::to_vec(order).expect("a validated order always serialises");
    Sha256::digest(&canonical)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A change to apply through the transactional writer.
#[derive(Debug, Clone)]
pub enum Command {
    Create {
        order: NewOrder,
        idempotency_key: Option<IdempotencyKey>,
    },
    ReplaceItems {
        id: OrderId,
        items: OrderItems,
        expected_version: Version,
    },
    Cancel {
        id: OrderId,
        reason: CancelReason,
        expected_version: Version,
    },
}

/// What a successful [`OutboxStore::apply`] did.
#[derive(Debug, Clone)]
pub enum Applied {
    /// The change and its event were committed durably.
    Written { order: Order, event: StoredEvent },
    /// An idempotent retry of an earlier creation: nothing new was written.
    Replayed { order: Order },
}

impl Applied {
    pub fn order(&self) -> &Order {
        match self {
            Applied::Written { order, .. } | Applied::Replayed { order } => order,
        }
    }
}

/// Which of an order's events to read: the newest `limit` below version `before` (the newest
/// of all when `None`), so an order with any number of changes is read a page at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPage {
    pub before: Option<Version>,
    pub limit: u32,
}

impl EventPage {
    /// The newest `limit` events.
    pub fn latest(limit: u32) -> Self {
        Self {
            before: None,
            limit,
        }
    }

    /// The page below `cursor`, the opaque string an earlier page returned (a version > 1).
    pub fn parse(cursor: Option<&str>, limit: u32) -> Result<Self, String> {
        let before = match cursor {
            None => None,
            Some(text) => match text.parse::<Version>() {
                Ok(v) if v > 1 => Some(v),
                _ => return Err("cursor must be a value returned as next_cursor".into()),
            },
        };
        Ok(Self { before, limit })
    }

    /// The cursor of the next (older) page after `events` (newest first), if older events
    /// remain. An order's versions run from 1 without gaps, so the oldest version shown says
    /// whether there is more without another query.
    pub fn next_cursor(events: &[StoredEvent]) -> Option<Version> {
        let oldest = events.last()?.envelope.aggregate_version;
        (oldest > 1).then_some(oldest)
    }
}

/// Where a page of the order list starts: orders strictly older than this cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderCursor(pub u64);

impl OrderCursor {
    /// Cursors are the opaque strings earlier pages returned (positive integers).
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Self(n)),
            _ => Err("cursor must be a value returned as next_cursor".into()),
        }
    }
}

/// One page of the order list, newest first.
#[derive(Debug, Clone)]
pub struct OrderPage {
    pub orders: Vec<Order>,
    /// Present when older orders remain.
    pub next: Option<OrderCursor>,
}

/// The events the relay has not handled yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    pub pending: u64,
    pub oldest: Option<DateTime<Utc>>,
}

/// Errors of the store layer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The thing named (`order`, `dead letter`) does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A dead letter was already replayed or discarded.
    #[error("the dead letter is {}, not pending", .0.as_str())]
    NotPending(DeadLetterStatus),
    #[error(transparent)]
    Domain(#[from] crate::domain::DomainError),
    #[error("the idempotency key was already used for a different request")]
    IdempotencyKeyReused,
    /// The write queue is full: the caller should retry later.
    #[error("the writer is overloaded")]
    Overloaded,
    /// The writer task is gone (it panicked or the store is shutting down).
    #[error("the writer has stopped")]
    WriterStopped,
    /// The database is busy or locked by someone else: retrying later may succeed.
    #[error("the database is temporarily unavailable: {0}")]
    Unavailable(String),
    /// A stored row could not be decoded: a bug or tampering, never the client's fault.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Backend(String),
}

impl StoreError {
    /// Whether trying again later may succeed (the store was busy, unreachable or slow).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Overloaded | StoreError::Unavailable(_))
    }
}

/// Orders: the transactional writer (an order change and its outbox event in one atomic
/// write) and the reads of the order API and pages.
#[async_trait]
pub trait OrderStore: Send + Sync + 'static {
    /// Applies `command`: the order change and its outbox event are committed in one atomic
    /// write, or nothing is written. Returns once the write is durable.
    async fn apply(&self, command: Command) -> Result<Applied, StoreError> {
        self.apply_traced(command, None).await
    }

    /// [`OrderStore::apply`], with the trace context of the request that asked for it stored
    /// with the event (and published with it).
    async fn apply_traced(
        &self,
        command: Command,
        trace: Option<TraceContext>,
    ) -> Result<Applied, StoreError>;

    /// The order and the events `page` asks for, newest first, or `None`. Read together, so
    /// the events match the order's state.
    async fn order(
        &self,
        id: OrderId,
        page: EventPage,
    ) -> Result<Option<(Order, Vec<StoredEvent>)>, StoreError>;

    /// Up to `limit` orders older than `before` (or the newest), newest first.
    async fn orders(
        &self,
        limit: u32,
        before: Option<OrderCursor>,
    ) -> Result<OrderPage, StoreError>;

    /// Proves the store takes durable writes right now (readiness).
    async fn check_writable(&self) -> Result<(), StoreError>;
}

/// The outbox as the relays see it: committed events in order, each relay's checkpoint, and
/// where published events went.
#[async_trait]
pub trait OutboxLog: Send + Sync + 'static {
    /// Up to `limit` committed events with a position above `after`, in commit order.
    async fn events_after(&self, after: u64, limit: u32) -> Result<Vec<StoredEvent>, StoreError>;

    /// The last position `relay` saved (0 if none).
    async fn checkpoint(&self, relay: &str) -> Result<u64, StoreError>;

    /// Durably records where events went, stores the events given up on as dead letters, and
    /// moves `relay`'s checkpoint to `position`, all in one write. Call it only once every
    /// event up to `position` is either acknowledged by the sink or in `dead_letters`.
    async fn record_progress(
        &self,
        relay: &str,
        position: u64,
        deliveries: Vec<(u64, DeliveryRecord)>,
        dead_letters: Vec<NewDeadLetter>,
    ) -> Result<(), StoreError>;

    /// How many events wait after `checkpoint`, and when the oldest of them occurred.
    async fn backlog(&self, checkpoint: u64) -> Result<Backlog, StoreError>;

    /// Delivery records of the events at `positions` (absent ones are not yet published).
    async fn deliveries(
        &self,
        positions: Vec<u64>,
    ) -> Result<HashMap<u64, DeliveryRecord>, StoreError>;

    /// The newest committed position, updated after every commit (the streaming relay's
    /// wake-up call).
    fn commits(&self) -> watch::Receiver<u64>;
}

/// The dead letter queue: what operators review, replay and discard.
#[async_trait]
pub trait DeadLetterStore: Send + Sync + 'static {
    /// Dead letters matching `filter`, newest first (without their attempts).
    async fn dead_letters(&self, filter: DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError>;

    /// One dead letter with its replay attempts, or `None`.
    async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetter>, StoreError>;

    /// Records a replay attempt of pending dead letter `id`; a delivery also marks it
    /// `replayed` and records where the event went. Fails with `NotPending` otherwise.
    async fn record_replay(
        &self,
        id: i64,
        outcome: ReplayOutcome,
    ) -> Result<DeadLetter, StoreError>;

    /// Marks pending dead letter `id` as `discarded` with `reason`.
    async fn discard_dead_letter(&self, id: i64, reason: String) -> Result<DeadLetter, StoreError>;

    /// Stores `payload` as pending dead letter `id`'s edited payload (replacing an earlier
    /// edit), beside the original. Fails with `NotPending` unless the record is pending.
    async fn edit_dead_letter_payload(
        &self,
        id: i64,
        payload: Payload,
    ) -> Result<DeadLetter, StoreError>;

    async fn dead_letter_counts(&self) -> Result<DeadLetterCounts, StoreError>;
}

/// Deleting what is no longer kept, in small batches.
#[async_trait]
pub trait RetentionStore: Send + Sync + 'static {
    /// Deletes up to `limit` of the oldest events that `relay` already published and that
    /// occurred before `before`; unpublished events are never deleted. Returns the count.
    async fn delete_published(
        &self,
        relay: &str,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError>;

    /// Deletes up to `limit` of the oldest idempotency keys recorded before `before`, so the
    /// keys do not pile up forever; a key used again after that creates a new order. Returns
    /// the count. (ScyllaDB expires its keys by TTL instead and returns 0.)
    async fn delete_idempotency_keys(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError>;

    /// Deletes up to `limit` of the dead letters that were replayed or discarded before
    /// `before`, with their attempts; pending ones are never deleted. Returns the count.
    /// (ScyllaDB writes a resolved record again with the outbox TTL instead and returns 0.)
    async fn delete_resolved_dead_letters(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError>;

    /// Deletes up to `limit` of the oldest audit entries recorded before `before`
    /// (`AUDIT_RETENTION` ago); younger ones are never deleted. Returns the count (on
    /// ScyllaDB, of whole days of entries).
    async fn delete_audit_entries(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError>;
}

/// The audit log of operator actions (`http::audit` writes it, the console reads it).
#[async_trait]
pub trait AuditLog: Send + Sync + 'static {
    /// Stores one entry.
    async fn record_audit(&self, entry: NewAuditEntry) -> Result<(), StoreError>;

    /// Up to `query.limit` entries matching `query`, newest first. (ScyllaDB has no index
    /// by action: with a filter it reads past the entries that do not match.)
    async fn audit_entries(&self, query: AuditQuery) -> Result<Vec<AuditEntry>, StoreError>;
}

/// A whole store: every role. Start-up opens one and hands each part of the program the
/// roles it uses (an `Arc<dyn OutboxStore>` coerces to any of them).
pub trait OutboxStore:
    OrderStore + OutboxLog + DeadLetterStore + RetentionStore + AuditLog
{
}

impl<T: OrderStore + OutboxLog + DeadLetterStore + RetentionStore + AuditLog + ?Sized> OutboxStore
    for T
{
}
