//! Order commands as they run on the writer connection: read the current state, let the
//! domain decide, write the change and its outbox event.

use super::rows;
use crate::domain::StoredEvent;
use crate::domain::{EventEnvelope, Order, OrderId, TraceContext};
use crate::store::{Applied, Command, StoreError};
use chrono::{SubsecRound, Utc};
use rusqlite::Connection;

/// Applies one command on the writer connection.
pub fn apply(
    conn: &Connection,
    command: Command,
    trace: Option<TraceContext>,
) -> Result<Applied, StoreError> {
    // Stored timestamps keep microseconds; truncating here makes the answer equal the row.
    let now = Utc::now().trunc_subsecs(6);
    match command {
        Command::Create {
            order,
            idempotency_key,
        } => {
            let fingerprint = idempotency_key
                .as_ref()
                .map(|_| crate::store::fingerprint(&order));
            if let (Some(key), Some(fp)) = (&idempotency_key, &fingerprint)
                && let Some((stored, id)) = rows::find_idempotency_key(conn, key)?
            {
                if &stored != fp {
                    return Err(StoreError::IdempotencyKeyReused);
                }
                let order = rows::load_order(conn, id)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("idempotency key points at missing order {id}"))
                })?;
                return Ok(Applied::Replayed { order });
            }
            let (order, mut event) = Order::create(OrderId::generate(), order, now);
            event.trace = trace;
            rows::insert_order(conn, &order)?;
            let position = rows::insert_event(conn, &event)?;
            if let (Some(key), Some(fp)) = (&idempotency_key, &fingerprint) {
                rows::insert_idempotency_key(conn, key, fp, &order)?;
            }
            Ok(written(order, event, position))
        }
        Command::ReplaceItems {
            id,
            items,
            expected_version,
        } => change(conn, id, trace, |o| {
            o.replace_items(items, expected_version, now)
        }),
        Command::Cancel {
            id,
            reason,
            expected_version,
        } => change(conn, id, trace, |o| o.cancel(reason, expected_version, now)),
    }
}

/// Loads an order, lets the state machine decide, and persists the new state with its event.
fn change(
    conn: &Connection,
    id: OrderId,
    trace: Option<TraceContext>,
    decide: impl FnOnce(&Order) -> Result<(Order, EventEnvelope), crate::domain::DomainError>,
) -> Result<Applied, StoreError> {
    let current = rows::load_order(conn, id)?.ok_or(StoreError::NotFound("order"))?;
    let (order, mut event) = decide(&current)?;
    event.trace = trace;
    rows::update_order(conn, &order)?;
    let position = rows::insert_event(conn, &event)?;
    Ok(written(order, event, position))
}

fn written(order: Order, envelope: EventEnvelope, position: u64) -> Applied {
    Applied::Written {
        order,
        event: StoredEvent { position, envelope },
    }
}
