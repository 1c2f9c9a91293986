//! Every CQL statement the store runs, prepared once at start-up, and the helpers that run
//! them and read their rows.

use super::rows::{EVENT_COLUMNS, ORDER_COLUMNS};
use crate::store::StoreError;
use scylla::client::session::Session;
use scylla::errors::{DbError, ExecutionError, PrepareError, RequestAttemptError};
use scylla::frame::types::Consistency;
use scylla::response::query_result::QueryResult;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlValue, Row};

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

/// The CQL text of every statement, for `keyspace` (kept apart from preparing, so the text
/// is unit-tested without a server).
pub struct Cql {
    /// Checked by `schema::check_keyspace` before it gets here.
    pub keyspace: String,
}

impl Cql {
    /// Writes the order's new state (static columns, no TTL).
    pub fn save_order(&self) -> String {
        format!(
            "UPDATE {}.outbox SET customer_id = ?, status = ?, version = ?, items = ?, \
             cancel_reason = ?, created_at = ?, updated_at = ?, last_position = ? \
             WHERE aggregate_id = ?",
            self.keyspace
        )
    }

    /// Inserts the event row unless its version exists: the optimistic concurrency check.
    pub fn insert_event(&self) -> String {
        format!(
            "INSERT INTO {}.outbox ({}) VALUES ({}) IF NOT EXISTS USING TTL ?",
            self.keyspace,
            EVENT_COLUMNS.join(", "),
            vec!["?"; EVENT_COLUMNS.len()].join(", ")
        )
    }

    /// The order (static columns) and all its events: one partition.
    pub fn select_order(&self) -> String {
        format!(
            "SELECT {} FROM {}.outbox WHERE aggregate_id = ?",
            order_and_event_columns().join(", "),
            self.keyspace
        )
    }

    /// The order (static columns) with its first event: one row, however many events it has.
    pub fn select_order_head(&self) -> String {
        format!(
            "SELECT {} FROM {}.outbox WHERE aggregate_id = ? LIMIT 1",
            order_and_event_columns().join(", "),
            self.keyspace
        )
    }

    /// A page of an order's events, newest first: those below a version, at most a limit.
    pub fn select_event_page(&self) -> String {
        format!(
            "SELECT {} FROM {}.outbox WHERE aggregate_id = ? AND aggregate_version < ? \
             ORDER BY aggregate_version DESC LIMIT ?",
            order_and_event_columns().join(", "),
            self.keyspace
        )
    }

    /// One event row, to check a pending-index entry against.
    pub fn select_event(&self) -> String {
        format!(
            "SELECT {} FROM {}.outbox WHERE aggregate_id = ? AND aggregate_version = ?",
            EVENT_COLUMNS.join(", "),
            self.keyspace
        )
    }

    /// The pending-index entry of an event, written before its commit.
    pub fn index_event(&self) -> String {
        format!(
            "INSERT INTO {}.outbox_by_time (bucket, position, event_id, aggregate_id, \
             aggregate_version) VALUES (?, ?, ?, ?, ?) USING TTL ?",
            self.keyspace
        )
    }

    /// Registers a pending-index bucket for the relay.
    pub fn add_bucket(&self) -> String {
        format!(
            "INSERT INTO {}.outbox_buckets (shard, bucket) VALUES (0, ?) USING TTL ?",
            self.keyspace
        )
    }

    /// The registered buckets in a range.
    pub fn buckets(&self) -> String {
        format!(
            "SELECT bucket FROM {}.outbox_buckets WHERE shard = 0 AND bucket >= ? AND bucket <= ?",
            self.keyspace
        )
    }

    /// Pending-index entries of one bucket after a position, up to the horizon.
    pub fn pending(&self) -> String {
        format!(
            "SELECT position, event_id, aggregate_id, aggregate_version FROM {}.outbox_by_time \
             WHERE bucket = ? AND position > ? AND position <= ? LIMIT ?",
            self.keyspace
        )
    }

    /// How many entries one bucket holds after a position, and the oldest.
    pub fn count_pending(&self) -> String {
        format!(
            "SELECT count(*), min(position) FROM {}.outbox_by_time \
             WHERE bucket = ? AND position > ?",
            self.keyspace
        )
    }

    /// The listing entry of a new order.
    pub fn list_order(&self) -> String {
        format!(
            "INSERT INTO {}.orders_by_day (day, seq, order_id) VALUES (?, ?, ?)",
            self.keyspace
        )
    }

    /// Registers a day of the listing.
    pub fn add_day(&self) -> String {
        format!(
            "INSERT INTO {}.order_days (shard, day) VALUES (0, ?)",
            self.keyspace
        )
    }

    /// The listing's days up to a day, newest first.
    pub fn days(&self) -> String {
        format!(
            "SELECT day FROM {}.order_days WHERE shard = 0 AND day <= ?",
            self.keyspace
        )
    }

    /// Listing entries of one day older than a cursor, newest first.
    pub fn listed(&self) -> String {
        format!(
            "SELECT seq, order_id FROM {}.orders_by_day WHERE day = ? AND seq < ? LIMIT ?",
            self.keyspace
        )
    }

    /// Claims an idempotency key (a lightweight transaction) for the TTL bound last.
    pub fn claim_key(&self) -> String {
        format!(
            "INSERT INTO {}.idempotency_keys (key, fingerprint, order_id, created_at) \
             VALUES (?, ?, ?, ?) IF NOT EXISTS USING TTL ?",
            self.keyspace
        )
    }

    /// What a claimed idempotency key holds.
    pub fn select_key(&self) -> String {
        format!(
            "SELECT fingerprint, order_id FROM {}.idempotency_keys WHERE key = ?",
            self.keyspace
        )
    }

    /// Rewrites the readiness probe row.
    pub fn probe(&self) -> String {
        format!(
            "INSERT INTO {}.store_probe (id, checked_at) VALUES (1, ?)",
            self.keyspace
        )
    }

    /// A relay's saved checkpoint.
    pub fn checkpoint(&self) -> String {
        format!(
            "SELECT position FROM {}.relay_checkpoints WHERE relay = ?",
            self.keyspace
        )
    }

    /// Moves a relay's checkpoint.
    pub fn save_checkpoint(&self) -> String {
        format!(
            "INSERT INTO {}.relay_checkpoints (relay, position, updated_at) VALUES (?, ?, ?)",
            self.keyspace
        )
    }

    /// Records where an event went.
    pub fn save_delivery(&self) -> String {
        format!(
            "INSERT INTO {}.deliveries (position, topic, partition, log_offset, published_at) \
             VALUES (?, ?, ?, ?, ?)",
            self.keyspace
        )
    }

    /// Takes the free relay lease.
    pub fn take_lease(&self) -> String {
        format!(
            "INSERT INTO {}.relay_lease (name, owner) VALUES ('main', ?) IF NOT EXISTS \
             USING TTL ?",
            self.keyspace
        )
    }

    /// Renews the relay lease, if its owner still holds it.
    pub fn renew_lease(&self) -> String {
        format!(
            "UPDATE {}.relay_lease USING TTL ? SET owner = ? WHERE name = 'main' IF owner = ?",
            self.keyspace
        )
    }

    /// Gives the relay lease up, if its owner still holds it.
    pub fn release_lease(&self) -> String {
        format!(
            "DELETE FROM {}.relay_lease WHERE name = 'main' IF owner = ?",
            self.keyspace
        )
    }

    /// Every CDC stream's checkpoint time (scylla-cdc's own table).
    pub fn cdc_checkpoints(&self) -> String {
        format!("SELECT time FROM {}.cdc_checkpoints", self.keyspace)
    }

    /// Where an event went.
    pub fn delivery(&self) -> String {
        format!(
            "SELECT topic, partition, log_offset, published_at FROM {}.deliveries \
             WHERE position = ?",
            self.keyspace
        )
    }
}

/// The store's prepared statements, each the [`Cql`] text of the same name.
pub struct Statements {
    pub save_order: PreparedStatement,
    pub insert_event: PreparedStatement,
    pub select_order: PreparedStatement,
    pub select_order_head: PreparedStatement,
    pub select_event_page: PreparedStatement,
    /// The event row at LOCAL_SERIAL: completes a lightweight transaction still in flight.
    pub select_event_serial: PreparedStatement,
    pub select_event: PreparedStatement,
    pub index_event: PreparedStatement,
    pub add_bucket: PreparedStatement,
    pub buckets: PreparedStatement,
    pub pending: PreparedStatement,
    pub count_pending: PreparedStatement,
    pub list_order: PreparedStatement,
    pub add_day: PreparedStatement,
    pub days: PreparedStatement,
    pub listed: PreparedStatement,
    pub claim_key: PreparedStatement,
    /// The key's row at LOCAL_SERIAL, after a claim found it taken.
    pub select_key: PreparedStatement,
    pub probe: PreparedStatement,
    pub checkpoint: PreparedStatement,
    pub save_checkpoint: PreparedStatement,
    pub save_delivery: PreparedStatement,
    pub delivery: PreparedStatement,
    pub cdc_checkpoints: PreparedStatement,
    pub take_lease: PreparedStatement,
    pub renew_lease: PreparedStatement,
    pub release_lease: PreparedStatement,
}

impl Statements {
    /// Prepares every statement once, at start-up.
    pub async fn prepare(session: &Session, cql: &Cql) -> Result<Self, PrepareError> {
        let p = |text: String| session.prepare(text);
        let serial = |mut s: PreparedStatement| {
            s.set_consistency(Consistency::LocalSerial);
            s
        };
        Ok(Self {
            save_order: p(cql.save_order()).await?,
            insert_event: p(cql.insert_event()).await?,
            select_order: p(cql.select_order()).await?,
            select_order_head: p(cql.select_order_head()).await?,
            select_event_page: p(cql.select_event_page()).await?,
            select_event_serial: serial(p(cql.select_event()).await?),
            select_event: p(cql.select_event()).await?,
            index_event: p(cql.index_event()).await?,
            add_bucket: p(cql.add_bucket()).await?,
            buckets: p(cql.buckets()).await?,
            pending: p(cql.pending()).await?,
            count_pending: p(cql.count_pending()).await?,
            list_order: p(cql.list_order()).await?,
            add_day: p(cql.add_day()).await?,
            days: p(cql.days()).await?,
            listed: p(cql.listed()).await?,
            claim_key: p(cql.claim_key()).await?,
            select_key: serial(p(cql.select_key()).await?),
            probe: p(cql.probe()).await?,
            checkpoint: p(cql.checkpoint()).await?,
            save_checkpoint: p(cql.save_checkpoint()).await?,
            save_delivery: p(cql.save_delivery()).await?,
            delivery: p(cql.delivery()).await?,
            cdc_checkpoints: p(cql.cdc_checkpoints()).await?,
            take_lease: p(cql.take_lease()).await?,
            renew_lease: p(cql.renew_lease()).await?,
            release_lease: p(cql.release_lease()).await?,
        })
    }
}

/// The rows of a result, as column values.
pub fn rows(result: QueryResult) -> Result<Vec<Vec<Option<CqlValue>>>, StoreError> {
    let rows = result
        .into_rows_result()
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    rows.rows::<Row>()
        .map_err(|e| StoreError::Backend(e.to_string()))?
        .map(|r| {
            r.map(|row| row.columns)
                .map_err(|e| StoreError::Corrupt(e.to_string()))
        })
        .collect()
}

/// Whether a lightweight transaction applied (the `[applied]` column of its first row).
pub fn applied(result: QueryResult) -> Result<bool, StoreError> {
    let rows = rows(result)?;
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
        let cql = Cql {
            keyspace: "shop".into(),
        };
        let insert = cql.insert_event();
        assert_eq!(insert.matches('?').count(), EVENT_COLUMNS.len() + 1);
        assert!(insert.contains("IF NOT EXISTS USING TTL ?"));
        let all = [
            cql.save_order(),
            insert,
            cql.select_order(),
            cql.select_event(),
            cql.index_event(),
            cql.add_bucket(),
            cql.buckets(),
            cql.pending(),
            cql.count_pending(),
            cql.list_order(),
            cql.add_day(),
            cql.days(),
            cql.listed(),
            cql.claim_key(),
            cql.select_key(),
            cql.probe(),
            cql.checkpoint(),
            cql.save_checkpoint(),
            cql.save_delivery(),
            cql.delivery(),
            cql.take_lease(),
            cql.renew_lease(),
            cql.release_lease(),
        ];
        for s in &all {
            assert!(s.contains("shop."), "{s}");
            assert!(!s.to_uppercase().contains("ALLOW FILTERING"), "{s}");
        }
        for s in all.iter().filter(|s| s.starts_with("SELECT")) {
            assert!(s.contains(" WHERE "), "reads one partition: {s}");
        }
        // The one unrestricted read: scylla-cdc's small table of one row per stream.
        assert_eq!(
            cql.cdc_checkpoints(),
            "SELECT time FROM shop.cdc_checkpoints"
        );
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
