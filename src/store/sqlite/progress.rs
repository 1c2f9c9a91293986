//! The relay's reads and writes: events after a position, checkpoints, delivery records.

use super::rows::{bad_column, event_columns, first_rows, parse_time, read_event};
use crate::domain::timestamp;
use crate::domain::{DeliveryRecord, StoredEvent};
use crate::store::StoreError;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;

/// The events after a position, in commit order: read through [`first_rows`].
pub(super) const EVENTS_AFTER: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM outbox WHERE position > ?1 ORDER BY position"
);

/// Up to `limit` events with a position above `after`, in commit order.
pub fn events_after(
    conn: &Connection,
    after: u64,
    limit: u32,
) -> Result<Vec<StoredEvent>, StoreError> {
    first_rows(
        conn,
        EVENTS_AFTER,
        params![after],
        limit as usize,
        read_event,
    )
}

/// The saved checkpoint of `relay` (0 when it never published).
pub fn checkpoint(conn: &Connection, relay: &str) -> Result<u64, StoreError> {
    let found: Option<u64> = conn
        .prepare_cached("SELECT position FROM relay_checkpoints WHERE relay = ?1")?
        .query_row(params![relay], |r| r.get(0))
        .optional()?;
    Ok(found.unwrap_or(0))
}

/// Events per `delivery_batches` row: 3,000 bytes of entries, which SQLite keeps in the row's
/// page. A looked-up row is read whole, and the order page looks up one per event; a whole
/// 500-event batch (15 KB) would spill into overflow pages, read for every lookup.
const EVENTS_PER_ROW: usize = 100;

/// Records where events went and moves the checkpoint, in the caller's transaction: the
/// deliveries as `delivery_batches` rows of up to [`EVENTS_PER_ROW`] events, then the
/// checkpoint, which never moves backwards.
pub fn record(
    conn: &Connection,
    relay: &str,
    position: u64,
    deliveries: &[(u64, DeliveryRecord)],
) -> Result<(), StoreError> {
    let mut insert = conn.prepare_cached(
        "INSERT OR REPLACE INTO delivery_batches (first_position, last_position, topics, \
         entries) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for chunk in deliveries.chunks(EVENTS_PER_ROW) {
        let (first, last) = (chunk[0].0, chunk[chunk.len() - 1].0);
        let (topics, entries) = batch::encode(chunk)?;
        insert.execute(params![first, last, topics, entries])?;
    }
    conn.prepare_cached(
        "INSERT INTO relay_checkpoints (relay, position, updated_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (relay) DO UPDATE SET position = max(position, excluded.position), \
         updated_at = excluded.updated_at",
    )?
    .execute(params![relay, position, timestamp(&chrono::Utc::now())])?;
    Ok(())
}

/// Records where the event at `position` went on its own (a replay), replacing an earlier
/// single record; it is found before any batch's.
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

/// Delivery records of the given positions: a single record if there is one, else the entry
/// of the batch that holds the position.
pub fn deliveries(
    conn: &Connection,
    positions: &[u64],
) -> Result<HashMap<u64, DeliveryRecord>, StoreError> {
    let mut single = conn.prepare_cached(
        "SELECT topic, partition, log_offset, published_at FROM deliveries WHERE position = ?1",
    )?;
    let mut batches = conn.prepare_cached(
        "SELECT last_position, topics, entries FROM delivery_batches \
         WHERE first_position <= ?1 ORDER BY first_position DESC LIMIT 1",
    )?;
    let mut found = HashMap::new();
    for &position in positions {
        let row: Option<(String, Option<i32>, Option<i64>, String)> = single
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
            continue;
        }
        // Searched where SQLite holds the row, without copying it out.
        let in_batch = batches
            .query_row(params![position], |r| {
                let last: u64 = r.get(0)?;
                if position > last {
                    return Ok(None);
                }
                let topics = r.get_ref(1)?.as_str().map_err(|e| bad_column(1, e))?;
                let entries = r.get_ref(2)?.as_blob().map_err(|e| bad_column(2, e))?;
                batch::find(topics, entries, position).map_err(|e| bad_column(2, e))
            })
            .optional()?
            .flatten();
        if let Some(record) = in_batch {
            found.insert(position, record);
        }
    }
    Ok(found)
}

/// The packed form of a batch's deliveries in `delivery_batches`: per event, in commit order,
/// the position (u64), the topic's index in the batch's topic list (u16), the partition (i32,
/// `i32::MIN` for none), the offset (i64, `i64::MIN` for none) and the acknowledgement time in
/// microseconds since the epoch (i64), all little-endian.
mod batch {
    use super::super::rows::corrupt;
    use crate::domain::DeliveryRecord;
    use crate::store::StoreError;

    const ENTRY: usize = 8 + 2 + 4 + 8 + 8;

    /// The topic list (one per line) and the entries of `deliveries`, which are in commit
    /// order.
    pub fn encode(deliveries: &[(u64, DeliveryRecord)]) -> Result<(String, Vec<u8>), StoreError> {
        let mut topics: Vec<&str> = Vec::new();
        let mut entries = Vec::with_capacity(deliveries.len() * ENTRY);
        for (position, d) in deliveries {
            let index = match topics.iter().position(|t| *t == d.topic) {
                Some(i) => i,
                None => {
                    if d.topic.contains('\n') {
                        return Err(StoreError::Backend(format!("topic {:?}", d.topic)));
                    }
                    topics.push(&d.topic);
                    topics.len() - 1
                }
            };
            let index = u16::try_from(index)
                .map_err(|_| StoreError::Backend("more than 65,536 topics in a batch".into()))?;
            entries.extend_from_slice(&position.to_le_bytes());
            entries.extend_from_slice(&index.to_le_bytes());
            entries.extend_from_slice(&d.partition.unwrap_or(i32::MIN).to_le_bytes());
            entries.extend_from_slice(&d.offset.unwrap_or(i64::MIN).to_le_bytes());
            entries.extend_from_slice(&d.published_at.timestamp_micros().to_le_bytes());
        }
        Ok((topics.join("\n"), entries))
    }

    /// The record of `position` in a batch's `topics` and `entries`, if the batch has it.
    pub fn find(
        topics: &str,
        entries: &[u8],
        position: u64,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        if !entries.len().is_multiple_of(ENTRY) {
            return Err(corrupt("delivery batch", "entries of the wrong length"));
        }
        let entry = |i: usize| &entries[i * ENTRY..(i + 1) * ENTRY];
        let position_of = |e: &[u8]| u64::from_le_bytes(e[..8].try_into().expect("8 bytes"));
        // Entries are in commit order: search by position.
        let (mut low, mut high) = (0, entries.len() / ENTRY);
        let e = loop {
            if low >= high {
                return Ok(None);
            }
            let middle = low + (high - low) / 2;
            match position_of(entry(middle)).cmp(&position) {
                std::cmp::Ordering::Less => low = middle + 1,
                std::cmp::Ordering::Greater => high = middle,
                std::cmp::Ordering::Equal => break entry(middle),
            }
        };
        let index = u16::from_le_bytes(e[8..10].try_into().expect("2 bytes"));
        let partition = i32::from_le_bytes(e[10..14].try_into().expect("4 bytes"));
        let offset = i64::from_le_bytes(e[14..22].try_into().expect("8 bytes"));
        let micros = i64::from_le_bytes(e[22..30].try_into().expect("8 bytes"));
        let topic = topics
            .split('\n')
            .nth(usize::from(index))
            .ok_or_else(|| corrupt("delivery batch", format_args!("topic {index}")))?;
        let published_at = chrono::DateTime::from_timestamp_micros(micros)
            .ok_or_else(|| corrupt("delivery batch", format_args!("time {micros}")))?;
        Ok(Some(DeliveryRecord {
            topic: topic.to_string(),
            partition: (partition != i32::MIN).then_some(partition),
            offset: (offset != i64::MIN).then_some(offset),
            published_at,
        }))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn record(topic: &str, partition: Option<i32>, offset: Option<i64>) -> DeliveryRecord {
            DeliveryRecord {
                topic: topic.into(),
                partition,
                offset,
                published_at: chrono::DateTime::from_timestamp_micros(1_764_408_143_123_456)
                    .unwrap(),
            }
        }

        #[test]
        fn every_entry_of_a_batch_is_found_again_and_nothing_else() {
            let deliveries = vec![
                (3, record("a", Some(0), Some(7))),
                (4, record("b", Some(2), Some(0))),
                (9, record("a", None, None)),
                (10, record("a", Some(1), Some(i64::MAX - 1))),
            ];
            let (topics, entries) = encode(&deliveries).unwrap();
            assert_eq!(topics, "a\nb");
            for (position, d) in &deliveries {
                assert_eq!(
                    find(&topics, &entries, *position).unwrap().as_ref(),
                    Some(d)
                );
            }
            for missing in [0, 5, 8, 11] {
                assert_eq!(find(&topics, &entries, missing).unwrap(), None);
            }
            assert!(find(&topics, &entries[1..], 3).is_err(), "a damaged blob");
        }
    }
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
    conn.prepare_cached(
        "DELETE FROM delivery_batches WHERE first_position <= ?1 AND last_position <= ?1",
    )?
    .execute(params![last])?;
    Ok(deleted as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A migrated database with `events` outbox rows at positions 1, 2, …, all long past.
    fn database(events: u64) -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        for position in 1..=events {
            conn.execute(
                "INSERT INTO outbox (event_id, aggregate_type, aggregate_id, aggregate_version, \
                 event_type, payload, occurred_at, schema_version) \
                 VALUES (?1, 'order', ?1, 1, 'OrderCreated', '{}', '2020-01-01T00:00:00.000000Z', 1)",
                params![format!("event-{position}")],
            )
            .unwrap();
        }
        conn
    }

    fn delivered(topic: &str, partition: Option<i32>, offset: Option<i64>) -> DeliveryRecord {
        DeliveryRecord {
            topic: topic.into(),
            partition,
            offset,
            published_at: crate::domain::parse_timestamp("2026-11-29T09:30:00.123456Z").unwrap(),
        }
    }

    fn count(conn: &Connection, table: &str) -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_batch_is_one_row_each_event_is_found_and_a_replay_record_comes_first() {
        let conn = database(6);
        // Event 3 was dead-lettered: the batch skips it.
        let batch = vec![
            (1, delivered("orders", Some(0), Some(10))),
            (2, delivered("orders", Some(2), Some(4))),
            (4, delivered("payments", None, None)),
        ];
        record(&conn, "main", 4, &batch).unwrap();
        record(
            &conn,
            "main",
            6,
            &[(6, delivered("orders", Some(1), Some(0)))],
        )
        .unwrap();
        assert_eq!(count(&conn, "delivery_batches"), 2);
        assert_eq!(count(&conn, "deliveries"), 0);
        let found = deliveries(&conn, &[1, 2, 3, 4, 5, 6]).unwrap();
        let expected: HashMap<u64, DeliveryRecord> = batch
            .into_iter()
            .chain([(6, delivered("orders", Some(1), Some(0)))])
            .collect();
        assert_eq!(found, expected, "3 and 5 were never delivered");
        // The dead letter of 3 is replayed: its own record.
        let replayed = delivered("orders", Some(0), Some(11));
        record_delivery(&conn, 3, &replayed).unwrap();
        assert_eq!(deliveries(&conn, &[3]).unwrap()[&3], replayed);
        assert_eq!(checkpoint(&conn, "main").unwrap(), 6);
    }

    #[test]
    fn a_large_batch_is_kept_in_rows_of_a_hundred_events() {
        let conn = database(250);
        let batch: Vec<(u64, DeliveryRecord)> = (1..=250)
            .map(|p| (p, delivered("orders", Some(0), Some(p as i64))))
            .collect();
        record(&conn, "main", 250, &batch).unwrap();
        assert_eq!(count(&conn, "delivery_batches"), 3);
        let positions: Vec<u64> = (1..=250).collect();
        assert_eq!(
            deliveries(&conn, &positions).unwrap(),
            batch.into_iter().collect()
        );
    }

    #[test]
    fn retention_deletes_the_batches_its_events_went_with() {
        let conn = database(5);
        record(
            &conn,
            "main",
            2,
            &[
                (1, delivered("t", None, None)),
                (2, delivered("t", None, None)),
            ],
        )
        .unwrap();
        record(
            &conn,
            "main",
            4,
            &[
                (3, delivered("t", None, None)),
                (4, delivered("t", None, None)),
            ],
        )
        .unwrap();
        let now = chrono::Utc::now();
        // Up to position 3: the first batch goes, the second holds event 4 still.
        assert_eq!(delete_published(&conn, "main", &now, 3).unwrap(), 3);
        assert_eq!(count(&conn, "delivery_batches"), 1);
        assert_eq!(deliveries(&conn, &[4]).unwrap().len(), 1);
        assert_eq!(delete_published(&conn, "main", &now, 10).unwrap(), 1);
        assert_eq!(count(&conn, "delivery_batches"), 0);
        assert_eq!(count(&conn, "outbox"), 1, "event 5 is not published");
    }
}
