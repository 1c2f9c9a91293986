//! SQL statements and row decoding for the SQLite store. All statements are parameterised and
//! cached per connection.

use crate::domain::{
    AGGREGATE_TYPE_ORDER, CancelReason, CustomerId, EventEnvelope, EventType, Order, OrderId,
    OrderItems, OrderStatus, Payload, RawItem, timestamp,
};
use crate::domain::{StoredEvent, TraceContext};
use crate::store::{EventPage, IdempotencyKey, OrderCursor, OrderPage, StoreError};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Params, Row, params};
use uuid::Uuid;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
        if let rusqlite::Error::FromSqlConversionFailure(column, _, detail) = &e {
            return corrupt(&format!("column {column}"), detail);
        }
        match e.sqlite_error_code() {
            Some(DatabaseBusy | DatabaseLocked) => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Backend(e.to_string()),
        }
    }
}

/// The columns [`OrderRow::read`] reads, in its order. A macro, so that the statements are
/// joined by `concat!` when compiled rather than formatted on every call.
macro_rules! order_columns {
    () => {
        "seq, id, customer_id, status, version, items, cancel_reason, created_at, updated_at"
    };
}
/// The columns [`read_event`] reads, in its order (a macro for the same reason).
macro_rules! event_columns {
    () => {
        "position, event_id, aggregate_type, aggregate_id, aggregate_version, event_type, \
         payload, occurred_at, schema_version, traceparent, tracestate"
    };
}
pub(super) use event_columns;
/// How many columns `event_columns!()` has: a row's own columns follow them.
pub(super) const EVENT_COLUMN_COUNT: usize = 11;

/// The first `limit` rows of the cached statement `sql`, in its order, read by `read`.
///
/// The limit is applied here rather than as a bound `LIMIT ?`: the bundled SQLite (built with
/// STAT4) lets a bound LIMIT steer the query plan, so it compiles such a statement again every
/// time it is run — about 100,000 instructions for the relay's read, more than the rows it
/// returns (callgrind, issue 19). Only for statements whose ORDER BY comes from the index
/// their WHERE walks, so that no sort precedes the first row and reading stops after `limit`
/// rows (`tests::paging_reads_walk_an_index_without_sorting` checks their plans).
pub(super) fn first_rows<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    limit: usize,
    read: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    Ok(conn
        .prepare_cached(sql)?
        .query_map(params, read)?
        .take(limit)
        .collect::<Result<_, _>>()?)
}

pub(super) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {detail}"))
}

pub(super) fn parse_time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    crate::domain::parse_timestamp(text).ok_or_else(|| corrupt("timestamp", text))
}

fn parse_uuid(text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|e| corrupt("uuid", e))
}

/// The raw columns of an `orders` row, decoded into an [`Order`] by [`OrderRow::decode`].
struct OrderRow {
    seq: u64,
    id: String,
    customer_id: String,
    status: String,
    version: u32,
    items: String,
    cancel_reason: Option<String>,
    created_at: String,
    updated_at: String,
}

impl OrderRow {
    fn read(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            seq: r.get(0)?,
            id: r.get(1)?,
            customer_id: r.get(2)?,
            status: r.get(3)?,
            version: r.get(4)?,
            items: r.get(5)?,
            cancel_reason: r.get(6)?,
            created_at: r.get(7)?,
            updated_at: r.get(8)?,
        })
    }

    /// Re-validates everything read back: a bad row is reported, never trusted.
    fn decode(self) -> Result<Order, StoreError> {
        let raw: Vec<RawItem> =
            serde_json::from_str(&self.items).map_err(|e| corrupt("items", e))?;
        Ok(Order {
            id: OrderId(parse_uuid(&self.id)?),
            customer_id: CustomerId::parse(&self.customer_id)
                .map_err(|e| corrupt("customer_id", e))?,
            items: OrderItems::parse(&raw).map_err(|e| corrupt("items", e))?,
            status: OrderStatus::parse(&self.status)
                .ok_or_else(|| corrupt("status", &self.status))?,
            version: self.version,
            cancel_reason: self
                .cancel_reason
                .map(|r| CancelReason::parse(&r).map_err(|e| corrupt("cancel_reason", e)))
                .transpose()?,
            created_at: parse_time(&self.created_at)?,
            updated_at: parse_time(&self.updated_at)?,
        })
    }
}

/// A value the store wrote that does not decode, as the row reader's error: the caller gets
/// it as [`StoreError::Corrupt`].
pub(super) fn bad_column(column: usize, detail: impl std::fmt::Display) -> rusqlite::Error {
    let detail: Box<dyn std::error::Error + Send + Sync> = detail.to_string().into();
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, detail)
}

/// An event from a row of `event_columns!()`. The text columns are decoded where they lie in
/// the row, without copying them first: the relay reads every event this way.
pub(super) fn read_event(r: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    let text = |i: usize| -> rusqlite::Result<&str> {
        r.get_ref(i)?.as_str().map_err(|e| bad_column(i, e))
    };
    let uuid = |i: usize| -> rusqlite::Result<Uuid> {
        let bytes = r.get_ref(i)?.as_bytes().map_err(|e| bad_column(i, e))?;
        Uuid::try_parse_ascii(bytes).map_err(|e| bad_column(i, format_args!("uuid: {e}")))
    };
    let aggregate_type = text(2)?;
    if aggregate_type != AGGREGATE_TYPE_ORDER {
        return Err(bad_column(
            2,
            format_args!("aggregate_type {aggregate_type:?}"),
        ));
    }
    let event_type = text(5)?;
    let occurred_at = text(7)?;
    let traceparent: Option<&str> = r
        .get_ref(9)?
        .as_str_or_null()
        .map_err(|e| bad_column(9, e))?;
    let tracestate: Option<&str> = r
        .get_ref(10)?
        .as_str_or_null()
        .map_err(|e| bad_column(10, e))?;
    Ok(StoredEvent {
        position: r.get(0)?,
        envelope: EventEnvelope {
            event_id: uuid(1)?,
            aggregate_type: AGGREGATE_TYPE_ORDER,
            aggregate_id: OrderId(uuid(3)?),
            aggregate_version: r.get(4)?,
            event_type: EventType::parse(event_type)
                .ok_or_else(|| bad_column(5, format_args!("event_type {event_type:?}")))?,
            payload: Payload::from_stored(r.get(6)?).map_err(|e| bad_column(6, e))?,
            occurred_at: crate::domain::parse_timestamp(occurred_at)
                .ok_or_else(|| bad_column(7, format_args!("timestamp {occurred_at:?}")))?,
            schema_version: r.get(8)?,
            trace: traceparent.and_then(|t| TraceContext::parse(t, tracestate)),
        },
    })
}

/// Loads one order.
pub fn load_order(conn: &Connection, id: OrderId) -> Result<Option<Order>, StoreError> {
    conn.prepare_cached(concat!(
        "SELECT ",
        order_columns!(),
        " FROM orders WHERE id = ?1"
    ))?
    .query_row(params![id.to_string()], OrderRow::read)
    .optional()?
    .map(OrderRow::decode)
    .transpose()
}

/// An order's events below a version, newest first: read through [`first_rows`].
pub(super) const ORDER_EVENTS: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM outbox WHERE aggregate_id = ?1 AND aggregate_version < ?2 \
     ORDER BY aggregate_version DESC"
);

/// Loads the events of one order that `page` asks for (through the index on aggregate id and
/// version: no more rows than the page), newest first.
pub fn load_events(
    conn: &Connection,
    id: OrderId,
    page: EventPage,
) -> Result<Vec<StoredEvent>, StoreError> {
    let before = page.before.map_or(i64::MAX, i64::from);
    first_rows(
        conn,
        ORDER_EVENTS,
        params![id.to_string(), before],
        page.limit as usize,
        read_event,
    )
}

/// Orders below a sequence number, newest first: read through [`first_rows`].
pub(super) const ORDER_PAGE: &str = concat!(
    "SELECT ",
    order_columns!(),
    " FROM orders WHERE seq < ?1 ORDER BY seq DESC"
);

/// One page of orders, newest first.
pub fn load_page(
    conn: &Connection,
    limit: u32,
    before: Option<OrderCursor>,
) -> Result<OrderPage, StoreError> {
    let before = before.map_or(i64::MAX, |c| c.0.min(i64::MAX as u64) as i64);
    let mut rows = first_rows(
        conn,
        ORDER_PAGE,
        params![before],
        limit as usize + 1,
        OrderRow::read,
    )?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = more.then(|| OrderCursor(rows.last().map_or(0, |r| r.seq)));
    let orders = rows
        .into_iter()
        .map(OrderRow::decode)
        .collect::<Result<_, _>>()?;
    Ok(OrderPage { orders, next })
}

fn items_json(order: &Order) -> Result<String, StoreError> {
    serde_json::to_string(&order.items).map_err(|e| StoreError::Backend(e.to_string()))
}

/// Inserts a new order row.
pub fn insert_order(conn: &Connection, order: &Order) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO orders (id, customer_id, status, version, items, cancel_reason, \
         created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        order.id.to_string(),
        order.customer_id.to_string(),
        order.status.as_str(),
        order.version,
        items_json(order)?,
        order.cancel_reason.as_ref().map(|r| r.as_str()),
        timestamp(&order.created_at),
        timestamp(&order.updated_at),
    ])?;
    Ok(())
}

/// Writes the new state of an existing order, guarded by its previous version.
pub fn update_order(conn: &Connection, order: &Order) -> Result<(), StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE orders SET status = ?2, version = ?3, items = ?4, cancel_reason = ?5, \
             updated_at = ?6 WHERE id = ?1 AND version = ?7",
        )?
        .execute(params![
            order.id.to_string(),
            order.status.as_str(),
            order.version,
            items_json(order)?,
            order.cancel_reason.as_ref().map(|r| r.as_str()),
            timestamp(&order.updated_at),
            order.version - 1,
        ])?;
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::Backend(format!(
            "order {} changed under the single writer",
            order.id
        )))
    }
}

/// Appends an event to the outbox and returns its commit position.
pub fn insert_event(conn: &Connection, event: &EventEnvelope) -> Result<u64, StoreError> {
    conn.prepare_cached(
        "INSERT INTO outbox (event_id, aggregate_type, aggregate_id, aggregate_version, \
         event_type, payload, occurred_at, schema_version, traceparent, tracestate) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        event.event_id.to_string(),
        event.aggregate_type,
        event.aggregate_id.to_string(),
        event.aggregate_version,
        event.event_type.as_str(),
        event.payload.as_str(),
        timestamp(&event.occurred_at),
        event.schema_version,
        event.trace.as_ref().map(TraceContext::traceparent),
        event.trace.as_ref().and_then(TraceContext::tracestate),
    ])?;
    Ok(conn.last_insert_rowid() as u64)
}

/// The fingerprint and order recorded for an idempotency key, if any.
pub fn find_idempotency_key(
    conn: &Connection,
    key: &IdempotencyKey,
) -> Result<Option<(String, OrderId)>, StoreError> {
    let found: Option<(String, String)> = conn
        .prepare_cached("SELECT fingerprint, order_id FROM idempotency_keys WHERE key = ?1")?
        .query_row(params![key.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    found
        .map(|(fp, id)| Ok((fp, OrderId(parse_uuid(&id)?))))
        .transpose()
}

/// Records an idempotency key for a newly created order.
pub fn insert_idempotency_key(
    conn: &Connection,
    key: &IdempotencyKey,
    fingerprint: &str,
    order: &Order,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO idempotency_keys (key, fingerprint, order_id, created_at) \
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        key.as_str(),
        fingerprint,
        order.id.to_string(),
        timestamp(&order.created_at)
    ])?;
    Ok(())
}

/// Deletes up to `limit` of the oldest idempotency keys recorded before `before`.
pub fn delete_idempotency_keys(
    conn: &Connection,
    before: &chrono::DateTime<chrono::Utc>,
    limit: u32,
) -> Result<u64, StoreError> {
    let deleted = conn
        .prepare_cached(
            "DELETE FROM idempotency_keys WHERE key IN (SELECT key FROM idempotency_keys \
             WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)",
        )?
        .execute(params![timestamp(before), limit])?;
    Ok(deleted as u64)
}

/// Rewrites the probe row (readiness).
pub fn touch_probe(conn: &Connection) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE store_probe SET checked_at = ?1 WHERE id = 1")?
        .execute(params![timestamp(&Utc::now())])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{progress, schema, topic_log};
    use super::*;
    use rusqlite::StatementStatus;

    fn migrated() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::migrate(&mut conn).unwrap();
        conn
    }

    /// The statements read through [`first_rows`] carry no LIMIT, so each must start at the
    /// page's first row: an index walk in the ORDER BY's order, never a sort of every match.
    #[test]
    fn paging_reads_walk_an_index_without_sorting() {
        let conn = migrated();
        for sql in [
            progress::EVENTS_AFTER,
            topic_log::READ,
            ORDER_EVENTS,
            ORDER_PAGE,
        ] {
            let mut explain = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let unbound = std::iter::repeat_n(rusqlite::types::Null, explain.parameter_count());
            let plan: Vec<String> = explain
                .query_map(rusqlite::params_from_iter(unbound), |r| r.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(
                plan.iter().any(|step| step.contains(" USING ")),
                "{sql}: {plan:?}"
            );
            assert!(
                plan.iter().all(|step| !step.contains("TEMP B-TREE")),
                "{sql}: {plan:?}"
            );
        }
    }

    /// The relay's read is compiled once per connection, whatever batch size it asks for
    /// (a bound `LIMIT ?` made SQLite compile it again on every call).
    #[test]
    fn the_relays_read_is_compiled_once() {
        let conn = migrated();
        for (after, limit) in [(0, 500), (3, 20), (3, 500), (9, 1)] {
            progress::events_after(&conn, after, limit).unwrap();
        }
        let stmt = conn.prepare_cached(progress::EVENTS_AFTER).unwrap();
        assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0);
    }

    /// Reading stops at the limit, and a short table gives what it has.
    #[test]
    fn first_rows_reads_at_most_the_limit() {
        let conn = migrated();
        conn.execute_batch("CREATE TABLE n (v INTEGER); INSERT INTO n VALUES (1), (2), (3);")
            .unwrap();
        let sql = "SELECT v FROM n ORDER BY v";
        let read = |r: &Row<'_>| r.get::<_, i64>(0);
        assert_eq!(first_rows(&conn, sql, [], 2, read).unwrap(), [1, 2]);
        assert_eq!(first_rows(&conn, sql, [], 10, read).unwrap(), [1, 2, 3]);
        assert!(first_rows(&conn, sql, [], 0, read).unwrap().is_empty());
    }
}
