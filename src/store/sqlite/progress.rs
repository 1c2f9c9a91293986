//! The relay's reads and writes: events after a position, checkpoints, delivery records.

use super::rows::{EventRow, parse_time};
use crate::domain::timestamp;
use crate::domain::{DeliveryRecord, StoredEvent};
use crate::store::StoreError;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;

/// Up to `limit` events with a position above `after`, in commit order.
pub fn events_after(
    conn: &Connection,
    after: u64,
    limit: u32,
) -> Result<Vec<StoredEvent>, StoreError> {
    let sql = format!(
        "SELECT {} FROM outbox WHERE position > ?1 ORDER BY position LIMIT ?2",
        EventRow::COLUMNS
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![after, limit], EventRow::read)?;
    rows.map(|r| r?.decode()).collect()
}

/// The saved checkpoint of `relay` (0 when it never published).
pub fn checkpoint(conn: &Connection, relay: &str) -> Result<u64, StoreError> {
    let found: Option<u64> = conn
        .prepare_cached("SELECT position FROM relay_checkpoints WHERE relay = ?1")?
        .query_row(params![relay], |r| r.get(0))
        .optional()?;
    Ok(found.unwrap_or(0))
}

/// Records where events went and moves the checkpoint, in the caller's transaction.
/// The checkpoint never moves backwards.
pub fn record(
    conn: &Connection,
    relay: &str,
    position: u64,
    deliveries: &[(u64, DeliveryRecord)],
) -> Result<(), StoreError> {
    for (position, d) in deliveries {
        record_delivery(conn, *position, d)?;
    }
    conn.prepare_cached(
        "INSERT INTO relay_checkpoints (relay, position, updated_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (relay) DO UPDATE SET position = max(position, excluded.position), \
         updated_at = excluded.updated_at",
    )?
    .execute(params![relay, position, timestamp(&chrono::Utc::now())])?;
    Ok(())
}

/// Records where the event at `position` went (replacing an earlier record).
pub fn record_delivery(
    conn: &Connection,
    position: u64,
    d: &DeliveryRecord,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO deliveries (position, topic, partition, log_offset, published_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        position,
        d.topic,
        d.partition,
        d.offset,
        timestamp(&d.published_at)
    ])?;
    Ok(())
}

/// Delivery records of the given positions.
pub fn deliveries(
    conn: &Connection,
    positions: &[u64],
) -> Result<HashMap<u64, DeliveryRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT topic, partition, log_offset, published_at FROM deliveries WHERE position = ?1",
    )?;
    let mut found = HashMap::new();
    for &position in positions {
        let row: Option<(String, Option<i32>, Option<i64>, String)> = stmt
            .query_row(params![position], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        if let Some((topic, partition, offset, at)) = row {
            let record = DeliveryRecord {
                topic,
                partition,
                offset,
                published_at: parse_time(&at)?,
            };
            found.insert(position, record);
        }
    }
    Ok(found)
}

/// Deletes up to `limit` of the oldest events that `relay` has published (position at or below
/// its checkpoint) and that occurred before `before`, with their delivery records. Events are
/// walked in commit order and the walk stops at the first one that is too young, so an event
/// is never deleted before it was handled, nor before its time. A dead-lettered event goes
/// too: its record holds a copy of the whole envelope, so a pending dead letter does not hold
/// retention back. Returns how many were deleted.
pub fn delete_published(
    conn: &Connection,
    relay: &str,
    before: &chrono::DateTime<chrono::Utc>,
    limit: u32,
) -> Result<u64, StoreError> {
    let published = checkpoint(conn, relay)?;
    let cutoff = timestamp(before);
    let mut stmt = conn.prepare_cached(
        "SELECT position, occurred_at FROM outbox WHERE position <= ?1 \
         ORDER BY position LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![published, limit], |r| {
        Ok((r.get::<_, u64>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut last = None;
    for row in rows {
        let (position, occurred_at) = row?;
        if occurred_at >= cutoff {
            break;
        }
        last = Some(position);
    }
    let Some(last) = last else { return Ok(0) };
    let deleted = conn
        .prepare_cached("DELETE FROM outbox WHERE position <= ?1")?
        .execute(params![last])?;
    conn.prepare_cached("DELETE FROM deliveries WHERE position <= ?1")?
        .execute(params![last])?;
    Ok(deleted as u64)
}
