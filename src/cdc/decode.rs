//! CDC log rows of the outbox table → outbox events. Only `RowInsert` deltas are events: the
//! static-row updates that carry the order's state, deletions and expirations are ignored.

use crate::domain::StoredEvent;
use crate::store::scylla::rows::{self, Columns, DecodeError};
use scylla::value::CqlValue;
use scylla_cdc::consumer::{CDCRow, OperationType};

/// The event a CDC row inserted, `None` for any other operation.
pub fn decode(
    operation: &OperationType,
    row: &impl Columns,
) -> Result<Option<StoredEvent>, DecodeError> {
    match operation {
        OperationType::RowInsert => rows::event(row).map(Some),
        _ => Ok(None),
    }
}

/// A CDC row's columns by name; asking for a column the log does not have is an error (the
/// library itself would panic).
pub struct CdcColumns<'r, 's>(pub &'r CDCRow<'s>);

impl Columns for CdcColumns<'_, '_> {
    fn column(&self, name: &'static str) -> Result<Option<&CqlValue>, DecodeError> {
        if self.0.column_exists(name) {
            Ok(self.0.get_value(name).as_ref())
        } else {
            Err(DecodeError::Missing(name))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::scylla::rows::tests::event_row;
    use scylla::frame::response::result::{ColumnSpec, ColumnType, NativeType, TableSpec};
    use scylla::response::query_result::ColumnSpecs;
    use scylla::value::{CqlTimeuuid, Row};
    use scylla_cdc::consumer::CDCRowSchema;

    /// The CDC log's own columns, as scylla-cdc reads them.
    const CDC_COLUMNS: [&str; 6] = [
        "cdc$stream_id",
        "cdc$time",
        "cdc$batch_seq_no",
        "cdc$end_of_batch",
        "cdc$operation",
        "cdc$ttl",
    ];

    /// scylla-cdc's schema of a log whose data columns are `columns` (types do not matter to
    /// it: it maps names to positions).
    pub fn log_schema(columns: &[&'static str]) -> CDCRowSchema {
        let table = TableSpec::borrowed("shop", "outbox_scylla_cdc_log");
        let specs: Vec<ColumnSpec<'static>> = CDC_COLUMNS
            .iter()
            .chain(columns)
            .map(|name| {
                ColumnSpec::borrowed(name, ColumnType::Native(NativeType::Int), table.clone())
            })
            .collect();
        CDCRowSchema::new(ColumnSpecs::new(&specs))
    }

    /// A log row of `operation` carrying `values` for the schema's data columns.
    pub fn log_row(
        schema: &CDCRowSchema,
        operation: OperationType,
        values: Vec<Option<CqlValue>>,
    ) -> CDCRow<'_> {
        let mut columns = vec![
            Some(CqlValue::Blob(vec![7; 16])),
            Some(CqlValue::Timeuuid(CqlTimeuuid::from(
                uuid::Uuid::from_u128(0x1f0c_0000_0000_1000_8000_0000_0000_0001),
            ))),
            Some(CqlValue::Int(0)),
            Some(CqlValue::Boolean(true)),
            Some(CqlValue::TinyInt(operation as i8)),
            None,
        ];
        columns.extend(values);
        CDCRow::from_row(Row { columns }, schema)
    }

    /// The data columns of an outbox event row, and their values.
    pub fn event_columns() -> (Vec<&'static str>, Vec<Option<CqlValue>>) {
        let row = event_row();
        let names = crate::store::scylla::rows::EVENT_COLUMNS.to_vec();
        let values = names.iter().map(|n| row.0[n].clone()).collect();
        (names, values)
    }

    #[test]
    fn a_logged_insert_decodes_through_the_library_row() {
        let (names, values) = event_columns();
        let schema = log_schema(&names);
        let row = log_row(&schema, OperationType::RowInsert, values);
        let event = decode(&row.operation, &CdcColumns(&row)).unwrap().unwrap();
        assert_eq!(event.position, 4242);
        assert_eq!(event.envelope.event_type.as_str(), "OrderCreated");
    }

    #[test]
    fn a_log_without_a_column_is_an_error_not_a_panic() {
        let (mut names, mut values) = event_columns();
        let at = names.iter().position(|n| *n == "payload").unwrap();
        names.remove(at);
        values.remove(at);
        let schema = log_schema(&names);
        let row = log_row(&schema, OperationType::RowInsert, values);
        assert_eq!(
            decode(&row.operation, &CdcColumns(&row)).unwrap_err(),
            DecodeError::Missing("payload")
        );
    }

    #[test]
    fn a_row_insert_is_an_event() {
        let event = decode(&OperationType::RowInsert, &event_row())
            .unwrap()
            .expect("an event");
        assert_eq!(event.position, 4242);
        assert_eq!(event.envelope.aggregate_version, 1);
    }

    #[test]
    fn other_operations_are_ignored() {
        for op in [
            OperationType::PreImage,
            OperationType::RowUpdate,
            OperationType::RowDelete,
            OperationType::PartitionDelete,
            OperationType::PostImage,
        ] {
            assert_eq!(decode(&op, &event_row()).unwrap(), None, "{op}");
        }
    }

    #[test]
    fn a_broken_insert_is_an_error_naming_the_column() {
        let mut row = event_row();
        row.0.remove("payload");
        assert_eq!(
            decode(&OperationType::RowInsert, &row).unwrap_err(),
            DecodeError::Missing("payload")
        );
        let mut row = event_row();
        row.0
            .insert("event_id", Some(CqlValue::Text("not a uuid".into())));
        assert!(matches!(
            decode(&OperationType::RowInsert, &row),
            Err(DecodeError::WrongType {
                column: "event_id",
                expected: "uuid",
                found: "text"
            })
        ));
    }
}
