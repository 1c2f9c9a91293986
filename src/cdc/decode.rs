//! CDC log rows of the outbox table → outbox events. Only `RowInsert` deltas are events: the
//! static-row updates that carry the order's state, deletions and expirations are ignored.

use crate::store::StoredEvent;
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
mod tests {
    use super::*;
    use crate::store::scylla::rows::tests::event_row;

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
