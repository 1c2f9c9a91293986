//! Every CQL statement the store runs, by name ([`Stmt`]), with its text for a keyspace and
//! how it may be executed (consistency, whether the driver may retry it). The text is kept
//! apart from preparing, so it is unit-tested without a server.

use super::rows::{EVENT_COLUMNS, ORDER_COLUMNS};
use crate::store::StoreError;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
use scylla::value::CqlValue;

impl From<ExecutionError> for StoreError {
    /// Timeouts, unavailable replicas and overload may pass: retrying later can help. Anything
    /// else (a refused statement, say) is a bug or a broken cluster.
    fn from(e: ExecutionError) -> Self {
        let fatal = matches!(
            &e,
            ExecutionError::BadQuery(_)
                | ExecutionError::PrepareError(_)
                | ExecutionError::LastAttemptError(RequestAttemptError::DbError(
                    DbError::SyntaxError
                        | DbError::Invalid
                        | DbError::AlreadyExists { .. }
                        | DbError::Unauthorized
                        | DbError::AuthenticationError
                        | DbError::ConfigError,
                    _
                ))
        );
        if fatal {
            StoreError::Backend(e.to_string())
        } else {
            StoreError::Unavailable(e.to_string())
        }
    }
}

/// The order columns, then the event columns, without repeating `aggregate_id`.
pub fn order_and_event_columns() -> Vec<&'static str> {
    ORDER_COLUMNS
        .iter()
        .chain(EVENT_COLUMNS.iter().filter(|c| **c != "aggregate_id"))
        .copied()
        .collect()
}

/// The columns of a dead letter record after its key, in the order the store writes and
/// reads them (`id`, the event's position, comes first when read).
pub const DEAD_LETTER_COLUMNS: [&str; 20] = [
    "event_id",
    "event_type",
    "aggregate_type",
    "aggregate_id",
    "aggregate_version",
    "payload",
    "occurred_at",
    "schema_version",
    "error_kind",
    "error_message",
    "failure_count",
    "first_failed_at",
    "last_failed_at",
    "status",
    "discard_reason",
    "updated_at",
    "traceparent",
    "tracestate",
    "edited_payload",
    "edited_at",
];

/// How long one attempt to take, renew or release a lease may take.
pub const LEASE_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Every statement the store runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stmt {
    /// Writes the order's new state (static columns, no TTL); the first half of the commit.
    SaveOrder,
    /// Inserts the event row unless its version exists: the optimistic concurrency check;
    /// the second half of the commit.
    InsertEvent,
    /// The order (static columns) and all its events: one partition.
    SelectOrder,
    /// The order with its first event: one row, however many events it has.
    SelectOrderHead,
    /// A page of an order's events, newest first: those below a version, at most a limit.
    SelectEventPage,
    /// One event row, to check a pending-index entry against.
    SelectEvent,
    /// The same at LOCAL_SERIAL: completes (or cuts off) a lightweight transaction in flight.
    SelectEventSerial,
    /// The pending-index entry of an event, written before its commit.
    IndexEvent,
    /// Removes the entry of an event whose write is known not to have happened.
    UnindexEvent,
    /// Registers a pending-index bucket for the relay.
    AddBucket,
    /// The registered buckets in a range.
    Buckets,
    /// Pending-index entries of one bucket after a position, up to the horizon.
    Pending,
    /// How many entries one bucket holds after a position, and the oldest.
    CountPending,
    /// The listing entry of a new order.
    ListOrder,
    /// Registers a day of the listing.
    AddDay,
    /// The listing's days up to a day, newest first.
    Days,
    /// Listing entries of one day older than a cursor, newest first.
    Listed,
    /// Claims an idempotency key (a lightweight transaction) for the TTL bound last.
    ClaimKey,
    /// What a claimed idempotency key holds, at LOCAL_SERIAL (after a claim found it taken).
    SelectKey,
    /// Rewrites the readiness probe row.
    Probe,
    /// A relay's saved checkpoint.
    Checkpoint,
    /// Moves a relay's checkpoint.
    SaveCheckpoint,
    /// Records where an event went (expiring with the outbox).
    SaveDelivery,
    /// Where an event went.
    Delivery,
    /// scylla-cdc's checkpoint rows: every stream's, and the generation marker.
    CdcCheckpoints,
    /// Takes the free relay lease.
    TakeLease,
    /// Renews the relay lease, if its owner still holds it.
    RenewLease,
    /// Gives the relay lease up, if its owner still holds it.
    ReleaseLease,
    /// Claims a free position tag for this process.
    ClaimTag,
    /// Renews this process's position tag, if it still holds it.
    RenewTag,
    /// Gives the position tag up, if this process still holds it.
    ReleaseTag,
    /// Stores a dead letter unless its event has one.
    InsertDeadLetter,
    /// Dead letters below an id, newest first.
    DeadLetterPage,
    /// One dead letter.
    DeadLetter,
    /// A dead letter's replay attempts, oldest first.
    DeadLetterAttempts,
    /// Records a replay attempt.
    AddAttempt,
    /// Marks a pending dead letter replayed.
    MarkReplayed,
    /// Marks a pending dead letter discarded.
    Discard,
    /// Stores an operator's edited payload of a pending dead letter.
    EditDeadLetter,
    /// Id, status and event type of dead letters below an id, for the counts.
    DeadLetterStatuses,
    /// Writes a resolved dead letter again with a TTL, so it expires like published events.
    ExpireDeadLetter,
    /// Writes a resolved dead letter's attempt again with the same TTL.
    ExpireAttempt,
    /// Stores an audit entry in its day's partition.
    InsertAudit,
    /// Registers a day of the audit log.
    AddAuditDay,
    /// The audit log's days up to a day, newest first.
    AuditDays,
    /// Audit entries of one day below an id, newest first.
    AuditPage,
    /// Deletes a whole day of audit entries (retention).
    DeleteAuditDay,
    /// Removes a deleted day from the audit log's days.
    ForgetAuditDay,
}

impl Stmt {
    /// Every statement, prepared once at start-up.
    pub const ALL: [Stmt; 48] = [
        Stmt::SaveOrder,
        Stmt::InsertEvent,
        Stmt::SelectOrder,
        Stmt::SelectOrderHead,
        Stmt::SelectEventPage,
        Stmt::SelectEvent,
        Stmt::SelectEventSerial,
        Stmt::IndexEvent,
        Stmt::UnindexEvent,
        Stmt::AddBucket,
        Stmt::Buckets,
        Stmt::Pending,
        Stmt::CountPending,
        Stmt::ListOrder,
        Stmt::AddDay,
        Stmt::Days,
        Stmt::Listed,
        Stmt::ClaimKey,
        Stmt::SelectKey,
        Stmt::Probe,
        Stmt::Checkpoint,
        Stmt::SaveCheckpoint,
        Stmt::SaveDelivery,
        Stmt::Delivery,
        Stmt::CdcCheckpoints,
        Stmt::TakeLease,
        Stmt::RenewLease,
        Stmt::ReleaseLease,
        Stmt::ClaimTag,
        Stmt::RenewTag,
        Stmt::ReleaseTag,
        Stmt::InsertDeadLetter,
        Stmt::DeadLetterPage,
        Stmt::DeadLetter,
        Stmt::DeadLetterAttempts,
        Stmt::AddAttempt,
        Stmt::MarkReplayed,
        Stmt::Discard,
        Stmt::EditDeadLetter,
        Stmt::DeadLetterStatuses,
        Stmt::ExpireDeadLetter,
        Stmt::ExpireAttempt,
        Stmt::InsertAudit,
        Stmt::AddAuditDay,
        Stmt::AuditDays,
        Stmt::AuditPage,
        Stmt::DeleteAuditDay,
        Stmt::ForgetAuditDay,
    ];

    /// Its own request timeout, shorter than the store's: the leases (relay and position
    /// tags) promise to stop their holder well before the lease can pass to another, which
    /// only holds if one attempt to renew cannot take longer than this, whatever the settle
    /// interval makes the store's timeout.
    pub fn request_timeout(self) -> Option<std::time::Duration> {
        matches!(
            self,
            Stmt::TakeLease
                | Stmt::RenewLease
                | Stmt::ReleaseLease
                | Stmt::ClaimTag
                | Stmt::RenewTag
                | Stmt::ReleaseTag
        )
        .then_some(LEASE_REQUEST_TIMEOUT)
    }

    /// Read at LOCAL_SERIAL rather than LOCAL_QUORUM.
    pub fn serial(self) -> bool {
        matches!(self, Stmt::SelectEventSerial | Stmt::SelectKey)
    }

    /// Whether running it twice has the effect of running it once, so the driver may retry
    /// it after a timeout: every read, and the writes that put the same values under their
    /// own key. Lightweight transactions and the attempt log (a new row each time) are not.
    pub fn idempotent(self) -> bool {
        !matches!(
            self,
            Stmt::InsertEvent
                | Stmt::ClaimKey
                | Stmt::TakeLease
                | Stmt::RenewLease
                | Stmt::ReleaseLease
                | Stmt::ClaimTag
                | Stmt::RenewTag
                | Stmt::ReleaseTag
                | Stmt::InsertDeadLetter
                | Stmt::AddAttempt
                | Stmt::MarkReplayed
                | Stmt::Discard
                | Stmt::EditDeadLetter
        )
    }

    /// Its CQL for keyspace `ks` (checked by `schema::check_keyspace` before it gets here).
    pub fn cql(self, ks: &str) -> String {
        let order_and_event = order_and_event_columns().join(", ");
        let events = EVENT_COLUMNS.join(", ");
        let letters = format!(
            "SELECT id, {} FROM {ks}.dead_letters WHERE shard = 0",
            DEAD_LETTER_COLUMNS.join(", ")
        );
        match self {
            Stmt::SaveOrder => format!(
                "UPDATE {ks}.outbox SET customer_id = ?, status = ?, version = ?, items = ?, \
                 cancel_reason = ?, created_at = ?, updated_at = ?, last_position = ? \
                 WHERE aggregate_id = ?"
            ),
            Stmt::InsertEvent => format!(
                "INSERT INTO {ks}.outbox ({events}) VALUES ({}) IF NOT EXISTS USING TTL ?",
                marks(EVENT_COLUMNS.len())
            ),
            Stmt::SelectOrder => {
                format!("SELECT {order_and_event} FROM {ks}.outbox WHERE aggregate_id = ?")
            }
            Stmt::SelectOrderHead => {
                format!("SELECT {order_and_event} FROM {ks}.outbox WHERE aggregate_id = ? LIMIT 1")
            }
            Stmt::SelectEventPage => format!(
                "SELECT {order_and_event} FROM {ks}.outbox WHERE aggregate_id = ? \
                 AND aggregate_version < ? ORDER BY aggregate_version DESC LIMIT ?"
            ),
            Stmt::SelectEvent | Stmt::SelectEventSerial => format!(
                "SELECT {events} FROM {ks}.outbox WHERE aggregate_id = ? AND aggregate_version = ?"
            ),
            Stmt::IndexEvent => format!(
                "INSERT INTO {ks}.outbox_by_time (bucket, position, event_id, aggregate_id, \
                 aggregate_version) VALUES (?, ?, ?, ?, ?) USING TTL ?"
            ),
            Stmt::UnindexEvent => format!(
                "DELETE FROM {ks}.outbox_by_time WHERE bucket = ? AND position = ? \
                 AND event_id = ?"
            ),
            Stmt::AddBucket => {
                format!("INSERT INTO {ks}.outbox_buckets (shard, bucket) VALUES (0, ?) USING TTL ?")
            }
            Stmt::Buckets => format!(
                "SELECT bucket FROM {ks}.outbox_buckets WHERE shard = 0 AND bucket >= ? \
                 AND bucket <= ?"
            ),
            Stmt::Pending => format!(
                "SELECT position, event_id, aggregate_id, aggregate_version \
                 FROM {ks}.outbox_by_time WHERE bucket = ? AND position > ? AND position <= ? \
                 LIMIT ?"
            ),
            Stmt::CountPending => format!(
                "SELECT count(*), min(position) FROM {ks}.outbox_by_time \
                 WHERE bucket = ? AND position > ?"
            ),
            Stmt::ListOrder => {
                format!("INSERT INTO {ks}.orders_by_day (day, seq, order_id) VALUES (?, ?, ?)")
            }
            Stmt::AddDay => format!("INSERT INTO {ks}.order_days (shard, day) VALUES (0, ?)"),
            Stmt::Days => format!("SELECT day FROM {ks}.order_days WHERE shard = 0 AND day <= ?"),
            Stmt::Listed => format!(
                "SELECT seq, order_id FROM {ks}.orders_by_day WHERE day = ? AND seq < ? LIMIT ?"
            ),
            Stmt::ClaimKey => format!(
                "INSERT INTO {ks}.idempotency_keys (key, fingerprint, order_id, created_at) \
                 VALUES (?, ?, ?, ?) IF NOT EXISTS USING TTL ?"
            ),
            Stmt::SelectKey => {
                format!("SELECT fingerprint, order_id FROM {ks}.idempotency_keys WHERE key = ?")
            }
            Stmt::Probe => {
                format!("INSERT INTO {ks}.store_probe (id, checked_at) VALUES (1, ?)")
            }
            Stmt::Checkpoint => {
                format!("SELECT position FROM {ks}.relay_checkpoints WHERE relay = ?")
            }
            Stmt::SaveCheckpoint => format!(
                "INSERT INTO {ks}.relay_checkpoints (relay, position, updated_at) VALUES (?, ?, ?)"
            ),
            Stmt::SaveDelivery => format!(
                "INSERT INTO {ks}.deliveries (position, topic, partition, log_offset, \
                 published_at) VALUES (?, ?, ?, ?, ?) USING TTL ?"
            ),
            Stmt::Delivery => format!(
                "SELECT topic, partition, log_offset, published_at FROM {ks}.deliveries \
                 WHERE position = ?"
            ),
            Stmt::CdcCheckpoints => {
                format!("SELECT stream_id, generation, time FROM {ks}.cdc_checkpoints")
            }
            Stmt::TakeLease => format!(
                "INSERT INTO {ks}.relay_lease (name, owner) VALUES ('main', ?) IF NOT EXISTS \
                 USING TTL ?"
            ),
            Stmt::RenewLease => format!(
                "UPDATE {ks}.relay_lease USING TTL ? SET owner = ? WHERE name = 'main' \
                 IF owner = ?"
            ),
            Stmt::ReleaseLease => {
                format!("DELETE FROM {ks}.relay_lease WHERE name = 'main' IF owner = ?")
            }
            Stmt::ClaimTag => format!(
                "INSERT INTO {ks}.position_tags (tag, owner) VALUES (?, ?) IF NOT EXISTS \
                 USING TTL ?"
            ),
            Stmt::RenewTag => format!(
                "UPDATE {ks}.position_tags USING TTL ? SET owner = ? WHERE tag = ? IF owner = ?"
            ),
            Stmt::ReleaseTag => {
                format!("DELETE FROM {ks}.position_tags WHERE tag = ? IF owner = ?")
            }
            Stmt::InsertDeadLetter => format!(
                "INSERT INTO {ks}.dead_letters (shard, id, {}, traceparent, tracestate, status, \
                 updated_at) VALUES (0, {}, 'pending', ?) IF NOT EXISTS",
                DEAD_LETTER_COLUMNS[..13].join(", "),
                marks(16)
            ),
            Stmt::DeadLetterPage => format!("{letters} AND id < ? LIMIT ?"),
            Stmt::DeadLetter => format!("{letters} AND id = ?"),
            Stmt::DeadLetterAttempts => format!(
                "SELECT attempt, attempted_at, outcome, detail FROM {ks}.dead_letter_attempts \
                 WHERE dead_letter_id = ?"
            ),
            Stmt::AddAttempt => format!(
                "INSERT INTO {ks}.dead_letter_attempts (dead_letter_id, attempt, attempted_at, \
                 outcome, detail) VALUES (?, now(), ?, ?, ?)"
            ),
            Stmt::MarkReplayed => format!(
                "UPDATE {ks}.dead_letters SET status = 'replayed', updated_at = ? \
                 WHERE shard = 0 AND id = ? IF status = 'pending'"
            ),
            Stmt::Discard => format!(
                "UPDATE {ks}.dead_letters SET status = 'discarded', discard_reason = ?, \
                 updated_at = ? WHERE shard = 0 AND id = ? IF status = 'pending'"
            ),
            Stmt::EditDeadLetter => format!(
                "UPDATE {ks}.dead_letters SET edited_payload = ?, edited_at = ?, updated_at = ? \
                 WHERE shard = 0 AND id = ? IF status = 'pending'"
            ),
            Stmt::DeadLetterStatuses => format!(
                "SELECT id, status, event_type FROM {ks}.dead_letters WHERE shard = 0 \
                 AND id < ? LIMIT ?"
            ),
            Stmt::ExpireDeadLetter => format!(
                "INSERT INTO {ks}.dead_letters (shard, id, {}) VALUES (0, ?, {}) USING TTL ?",
                DEAD_LETTER_COLUMNS.join(", "),
                marks(DEAD_LETTER_COLUMNS.len())
            ),
            Stmt::ExpireAttempt => format!(
                "INSERT INTO {ks}.dead_letter_attempts (dead_letter_id, attempt, attempted_at, \
                 outcome, detail) VALUES (?, ?, ?, ?, ?) USING TTL ?"
            ),
            Stmt::InsertAudit => format!(
                "INSERT INTO {ks}.audit_log (day, id, at, session, address, action, target, \
                 status, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            Stmt::AddAuditDay => format!("INSERT INTO {ks}.audit_days (shard, day) VALUES (0, ?)"),
            Stmt::AuditDays => {
                format!("SELECT day FROM {ks}.audit_days WHERE shard = 0 AND day <= ?")
            }
            Stmt::AuditPage => format!(
                "SELECT id, at, session, address, action, target, status, outcome \
                 FROM {ks}.audit_log WHERE day = ? AND id < ? LIMIT ?"
            ),
            Stmt::DeleteAuditDay => format!("DELETE FROM {ks}.audit_log WHERE day = ?"),
            Stmt::ForgetAuditDay => {
                format!("DELETE FROM {ks}.audit_days WHERE shard = 0 AND day = ?")
            }
        }
    }
}

/// `n` bind markers, comma-separated.
fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Whether a lightweight transaction applied (the `[applied]` column of its first row).
pub fn applied(rows: &[Vec<Option<CqlValue>>]) -> Result<bool, StoreError> {
    match rows.first().and_then(|r| r.first()) {
        Some(Some(CqlValue::Boolean(applied))) => Ok(*applied),
        other => Err(StoreError::Corrupt(format!(
            "a conditional write answered without [applied]: {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_bind_every_value_and_never_filter() {
        assert_eq!(
            Stmt::InsertEvent.cql("shop").matches('?').count(),
            EVENT_COLUMNS.len() + 1
        );
        assert!(
            Stmt::InsertEvent
                .cql("shop")
                .contains("IF NOT EXISTS USING TTL ?")
        );
        for stmt in Stmt::ALL {
            let s = stmt.cql("shop");
            assert!(s.contains("shop."), "{s}");
            assert!(!s.to_uppercase().contains("ALLOW FILTERING"), "{s}");
            // The one unrestricted read: scylla-cdc's small table of one row per stream.
            if s.starts_with("SELECT") && stmt != Stmt::CdcCheckpoints {
                assert!(s.contains(" WHERE "), "reads one partition: {s}");
            }
        }
    }

    #[test]
    fn every_read_may_be_retried_and_no_conditional_write_may() {
        for stmt in Stmt::ALL {
            let s = stmt.cql("shop");
            if s.starts_with("SELECT") {
                assert!(stmt.idempotent(), "{stmt:?}");
            }
            if s.contains(" IF ") || s.contains("now()") {
                assert!(!stmt.idempotent(), "{stmt:?}");
            }
        }
        assert!(Stmt::SelectEventSerial.serial() && Stmt::SelectKey.serial());
        assert!(!Stmt::SelectEvent.serial());
    }

    #[test]
    fn dead_letters_are_written_and_rewritten_with_every_column() {
        // The key, the record's first 13 columns, its trace, and when it was written.
        let insert = Stmt::InsertDeadLetter.cql("shop");
        assert_eq!(insert.matches('?').count(), 17);
        // The rewrite with a TTL must cover every column, or the row outlives it.
        let rewrite = Stmt::ExpireDeadLetter.cql("shop");
        for column in DEAD_LETTER_COLUMNS {
            assert!(rewrite.contains(column), "{column}");
        }
        assert_eq!(rewrite.matches('?').count(), DEAD_LETTER_COLUMNS.len() + 2);
    }

    #[test]
    fn the_order_read_selects_each_column_once() {
        let columns = order_and_event_columns();
        let mut unique = columns.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), columns.len());
        assert_eq!(columns.len(), ORDER_COLUMNS.len() + EVENT_COLUMNS.len() - 1);
    }
}
