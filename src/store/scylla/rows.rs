//! Decoding rows of the `outbox` table into domain values. Pure: it works on column values
//! however they were read (a query, or a CDC log row), so it is unit-tested without a server.
//! A missing, null or wrong-typed column is an error naming the column, never a panic.

use crate::domain::StoredEvent;
use crate::domain::{
    AGGREGATE_TYPE_ORDER, CancelReason, CustomerId, EventEnvelope, EventType, Order, OrderId,
    OrderItems, OrderStatus, Payload, RawItem, TraceContext,
};
use crate::store::StoreError;
use chrono::{DateTime, TimeZone, Utc};
use scylla::value::CqlValue;
use uuid::Uuid;

/// The event columns of `outbox`, in the order the store selects them.
pub const EVENT_COLUMNS: [&str; 11] = [
    "position",
    "event_id",
    "aggregate_type",
    "aggregate_id",
    "aggregate_version",
    "event_type",
    "payload",
    "occurred_at",
    "schema_version",
    "traceparent",
    "tracestate",
];

/// The order (static) columns of `outbox`, in the order the store selects them.
pub const ORDER_COLUMNS: [&str; 9] = [
    "aggregate_id",
    "customer_id",
    "status",
    "version",
    "items",
    "cancel_reason",
    "created_at",
    "updated_at",
    "last_position",
];

/// Why a row could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("column {0} is missing from the row")]
    Missing(&'static str),
    #[error("column {0} is null")]
    Null(&'static str),
    #[error("column {column} should be {expected}, found {found}")]
    WrongType {
        column: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("column {column} holds an invalid value: {reason}")]
    Invalid {
        column: &'static str,
        reason: String,
    },
}

impl From<DecodeError> for StoreError {
    fn from(e: DecodeError) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

/// Column values by name.
pub trait Columns {
    /// The value of `name`: an error if the row has no such column, `None` if it is null.
    fn column(&self, name: &'static str) -> Result<Option<&CqlValue>, DecodeError>;
}

/// A row read with an explicit column list.
pub struct NamedRow<'a> {
    /// The column names, in the order of the statement's select list.
    pub names: &'a [&'static str],
    /// The row's values in the same order (`None` = null).
    pub values: &'a [Option<CqlValue>],
}

impl Columns for NamedRow<'_> {
    fn column(&self, name: &'static str) -> Result<Option<&CqlValue>, DecodeError> {
        let index = self
            .names
            .iter()
            .position(|n| *n == name)
            .ok_or(DecodeError::Missing(name))?;
        Ok(self.values.get(index).and_then(Option::as_ref))
    }
}

/// The CQL type name of `value`, for error messages.
fn type_name(value: &CqlValue) -> &'static str {
    match value {
        CqlValue::Ascii(_) => "ascii",
        CqlValue::Boolean(_) => "boolean",
        CqlValue::Blob(_) => "blob",
        CqlValue::Int(_) => "int",
        CqlValue::BigInt(_) => "bigint",
        CqlValue::Text(_) => "text",
        CqlValue::Timestamp(_) => "timestamp",
        CqlValue::Timeuuid(_) => "timeuuid",
        CqlValue::Uuid(_) => "uuid",
        CqlValue::Double(_) => "double",
        CqlValue::Float(_) => "float",
        CqlValue::SmallInt(_) => "smallint",
        CqlValue::TinyInt(_) => "tinyint",
        _ => "another type",
    }
}

/// A non-null column converted by `get` (which returns `None` for the wrong type).
fn required<'r, T>(
    row: &'r impl Columns,
    name: &'static str,
    expected: &'static str,
    get: impl FnOnce(&'r CqlValue) -> Option<T>,
) -> Result<T, DecodeError> {
    let value = row.column(name)?.ok_or(DecodeError::Null(name))?;
    get(value).ok_or(DecodeError::WrongType {
        column: name,
        expected,
        found: type_name(value),
    })
}

pub(super) fn text<'r>(row: &'r impl Columns, name: &'static str) -> Result<&'r str, DecodeError> {
    required(row, name, "text", |v| v.as_text().map(String::as_str))
}

pub(super) fn uuid(row: &impl Columns, name: &'static str) -> Result<Uuid, DecodeError> {
    required(row, name, "uuid", CqlValue::as_uuid)
}

pub(super) fn int(row: &impl Columns, name: &'static str) -> Result<i32, DecodeError> {
    required(row, name, "int", CqlValue::as_int)
}

pub(super) fn bigint(row: &impl Columns, name: &'static str) -> Result<i64, DecodeError> {
    required(row, name, "bigint", CqlValue::as_bigint)
}

pub(super) fn invalid(column: &'static str, reason: impl ToString) -> DecodeError {
    DecodeError::Invalid {
        column,
        reason: reason.to_string(),
    }
}

/// A non-negative 32-bit column (versions).
pub(super) fn unsigned(row: &impl Columns, name: &'static str) -> Result<u32, DecodeError> {
    let n = int(row, name)?;
    u32::try_from(n).map_err(|_| invalid(name, format!("{n} is negative")))
}

/// Microseconds since the Unix epoch, as stored.
pub fn micros(t: &DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(super) fn time(row: &impl Columns, name: &'static str) -> Result<DateTime<Utc>, DecodeError> {
    from_micros(name, bigint(row, name)?)
}

/// `us` microseconds since the Unix epoch, as `column` stores them.
pub(super) fn from_micros(column: &'static str, us: i64) -> Result<DateTime<Utc>, DecodeError> {
    Utc.timestamp_micros(us)
        .single()
        .ok_or_else(|| invalid(column, format!("{us} is out of range")))
}

/// A text column that may be null.
pub(super) fn optional_text<'r>(
    row: &'r impl Columns,
    name: &'static str,
) -> Result<Option<&'r str>, DecodeError> {
    match row.column(name)? {
        None => Ok(None),
        Some(_) => text(row, name).map(Some),
    }
}

/// The outbox event of a row holding [`EVENT_COLUMNS`].
pub fn event(row: &impl Columns) -> Result<StoredEvent, DecodeError> {
    let aggregate_type = text(row, "aggregate_type")?;
    if aggregate_type != AGGREGATE_TYPE_ORDER {
        return Err(invalid("aggregate_type", aggregate_type));
    }
    let event_type = text(row, "event_type")?;
    let position = bigint(row, "position")?;
    Ok(StoredEvent {
        position: u64::try_from(position)
            .map_err(|_| invalid("position", format!("{position} is negative")))?,
        envelope: EventEnvelope {
            event_id: uuid(row, "event_id")?,
            aggregate_type: AGGREGATE_TYPE_ORDER,
            aggregate_id: OrderId(uuid(row, "aggregate_id")?),
            aggregate_version: unsigned(row, "aggregate_version")?,
            event_type: EventType::parse(event_type)
                .ok_or_else(|| invalid("event_type", event_type))?,
            payload: Payload::from_stored(text(row, "payload")?.to_string())
                .map_err(|e| invalid("payload", e))?,
            occurred_at: time(row, "occurred_at")?,
            schema_version: unsigned(row, "schema_version")?,
            trace: trace(row),
        },
    })
}

/// The event's trace context. Absent (an event from before the columns existed, or a CDC
/// row of a table not yet altered) or damaged, the event goes on without one.
fn trace(row: &impl Columns) -> Option<TraceContext> {
    let text = |name| optional_text(row, name).ok().flatten();
    TraceContext::parse(text("traceparent")?, text("tracestate"))
}

/// The order in the static columns of a row holding [`ORDER_COLUMNS`], with its newest event
/// position; `None` if the partition holds no order.
pub fn order(row: &impl Columns) -> Result<Option<(Order, u64)>, DecodeError> {
    if row.column("status")?.is_none() {
        return Ok(None);
    }
    let status = text(row, "status")?;
    let raw: Vec<RawItem> =
        serde_json::from_str(text(row, "items")?).map_err(|e| invalid("items", e))?;
    let customer = uuid(row, "customer_id")?.to_string();
    let cancel_reason = match row.column("cancel_reason")? {
        None => None,
        Some(_) => Some(
            CancelReason::parse(text(row, "cancel_reason")?)
                .map_err(|e| invalid("cancel_reason", e))?,
        ),
    };
    let order = Order {
        id: OrderId(uuid(row, "aggregate_id")?),
        customer_id: CustomerId::parse(&customer).map_err(|e| invalid("customer_id", e))?,
        items: OrderItems::parse(&raw).map_err(|e| invalid("items", e))?,
        status: OrderStatus::parse(status).ok_or_else(|| invalid("status", status))?,
        version: unsigned(row, "version")?,
        cancel_reason,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    };
    let last = bigint(row, "last_position")?;
    Ok(Some((order, last.max(0) as u64)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Column values by name, as a CDC row or a query would give them.
    pub struct MapRow(pub HashMap<&'static str, Option<CqlValue>>);

    impl Columns for MapRow {
        fn column(&self, name: &'static str) -> Result<Option<&CqlValue>, DecodeError> {
            self.0
                .get(name)
                .map(Option::as_ref)
                .ok_or(DecodeError::Missing(name))
        }
    }

    /// The columns of a valid `OrderCreated` event at position 4242.
    pub fn event_row() -> MapRow {
        let id = Uuid::parse_str("0193a5e0-0000-7000-8000-0000000000aa").unwrap();
        MapRow(HashMap::from([
            ("position", Some(CqlValue::BigInt(4242))),
            ("event_id", Some(CqlValue::Uuid(Uuid::now_v7()))),
            ("aggregate_type", Some(CqlValue::Text("order".into()))),
            ("aggregate_id", Some(CqlValue::Uuid(id))),
            ("aggregate_version", Some(CqlValue::Int(1))),
            ("event_type", Some(CqlValue::Text("OrderCreated".into()))),
            (
                "payload",
                Some(CqlValue::Text(format!("{{\"order_id\":\"{id}\"}}"))),
            ),
            ("occurred_at", Some(CqlValue::BigInt(1_764_240_767_123_456))),
            ("schema_version", Some(CqlValue::Int(1))),
            (
                "traceparent",
                Some(CqlValue::Text(
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
                )),
            ),
            ("tracestate", None),
        ]))
    }

    #[test]
    fn a_complete_row_decodes_into_its_event() {
        let event = event(&event_row()).unwrap();
        assert_eq!(event.position, 4242);
        assert_eq!(event.envelope.aggregate_version, 1);
        assert_eq!(event.envelope.event_type, EventType::OrderCreated);
        assert_eq!(
            crate::domain::timestamp(&event.envelope.occurred_at),
            "2025-11-27T10:52:47.123456Z"
        );
        assert_eq!(
            event.envelope.payload.to_value()["order_id"],
            "0193a5e0-0000-7000-8000-0000000000aa"
        );
        let trace = event.envelope.trace.expect("the stored trace context");
        assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(trace.tracestate(), None);
    }

    #[test]
    fn an_event_without_trace_columns_or_with_a_damaged_one_has_no_trace() {
        // A CDC row of a table from before the trace columns.
        let mut row = event_row();
        row.0.remove("traceparent");
        row.0.remove("tracestate");
        assert_eq!(event(&row).unwrap().envelope.trace, None);
        let mut row = event_row();
        row.0
            .insert("traceparent", Some(CqlValue::Text("garbage".into())));
        assert_eq!(event(&row).unwrap().envelope.trace, None);
        let mut row = event_row();
        row.0.insert("traceparent", Some(CqlValue::Int(1)));
        assert_eq!(event(&row).unwrap().envelope.trace, None);
    }

    #[test]
    fn missing_null_and_wrong_typed_columns_are_named() {
        let mut row = event_row();
        row.0.remove("event_id");
        assert_eq!(event(&row).unwrap_err(), DecodeError::Missing("event_id"));

        let mut row = event_row();
        row.0.insert("payload", None);
        assert_eq!(event(&row).unwrap_err(), DecodeError::Null("payload"));

        let mut row = event_row();
        row.0
            .insert("aggregate_version", Some(CqlValue::Text("1".into())));
        let e = event(&row).unwrap_err();
        assert_eq!(
            e,
            DecodeError::WrongType {
                column: "aggregate_version",
                expected: "int",
                found: "text"
            }
        );
        assert_eq!(
            e.to_string(),
            "column aggregate_version should be int, found text"
        );
    }

    #[test]
    fn invalid_values_are_refused() {
        for (column, value) in [
            ("event_type", CqlValue::Text("OrderShipped".into())),
            ("aggregate_type", CqlValue::Text("invoice".into())),
            ("payload", CqlValue::Text("{not json".into())),
            ("position", CqlValue::BigInt(-1)),
            ("aggregate_version", CqlValue::Int(-3)),
            ("occurred_at", CqlValue::BigInt(i64::MAX)),
        ] {
            let mut row = event_row();
            row.0.insert(column, Some(value));
            assert!(
                matches!(event(&row), Err(DecodeError::Invalid { column: c, .. }) if c == column),
                "{column}"
            );
        }
    }

    #[test]
    fn an_empty_partition_has_no_order() {
        let row = MapRow(HashMap::from([("status", None)]));
        assert_eq!(order(&row).unwrap(), None);
    }

    #[test]
    fn named_rows_find_columns_by_name() {
        let values = [Some(CqlValue::Int(7)), None];
        let row = NamedRow {
            names: &["a", "b"],
            values: &values,
        };
        assert_eq!(row.column("a").unwrap(), Some(&CqlValue::Int(7)));
        assert_eq!(row.column("b").unwrap(), None);
        assert_eq!(row.column("c").unwrap_err(), DecodeError::Missing("c"));
    }
}
