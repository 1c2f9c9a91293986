//! The embedded topic log's SQL: append-only per-topic logs with offsets from 0.

use super::rows::{corrupt, first_rows, parse_time};
use crate::domain::timestamp;
use crate::publish::local::{LoggedMessage, TopicSummary};
use crate::publish::{Delivery, Message};
use crate::store::StoreError;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;

/// Appends `messages` in order, each at the next offset of its topic, and moves the topics'
/// heads in the same transaction.
pub fn append(conn: &Connection, messages: &[Message]) -> Result<Vec<Delivery>, StoreError> {
    // Per topic touched: (first offset of this append, next offset after it).
    let mut next: HashMap<&str, (i64, i64)> = HashMap::new();
    let mut head = conn.prepare_cached("SELECT next_offset FROM topic_heads WHERE topic = ?1")?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO topic_messages (topic, log_offset, message_key, value, headers, appended_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let now = timestamp(&chrono::Utc::now());
    let mut deliveries = Vec::with_capacity(messages.len());
    for m in messages {
        let offset = match next.get(m.topic.as_str()) {
            Some(&(_, o)) => o,
            None => head
                .query_row(params![m.topic], |r| r.get(0))
                .optional()?
                .unwrap_or(0),
        };
        let headers = serde_json::to_string(&HeadersJson(&m.headers))
            .map_err(|e| StoreError::Backend(format!("cannot write headers: {e}")))?;
        insert.execute(params![m.topic, offset, m.key, m.value, headers, now])?;
        next.entry(&m.topic).or_insert((offset, offset)).1 = offset + 1;
        deliveries.push(Delivery {
            topic: m.topic.clone(),
            partition: Some(0),
            offset: Some(offset),
        });
    }
    let mut moved = conn.prepare_cached(
        "INSERT INTO topic_heads (topic, messages, first_offset, next_offset) \
         VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (topic) DO UPDATE SET messages = messages + excluded.messages, \
         next_offset = excluded.next_offset",
    )?;
    for (topic, (first, after)) in next {
        moved.execute(params![topic, after - first, first, after])?;
    }
    Ok(deliveries)
}

/// A message's headers as the JSON object the `headers` column holds, written straight from
/// the list (building a `serde_json::Value` first cost more than the rest of the append).
struct HeadersJson<'a>(&'a [(&'static str, String)]);

impl serde::Serialize for HeadersJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

fn summary(r: &rusqlite::Row<'_>) -> rusqlite::Result<TopicSummary> {
    Ok(TopicSummary {
        topic: r.get(0)?,
        messages: r.get(1)?,
        first_offset: r.get(2)?,
        next_offset: r.get(3)?,
    })
}

/// Every topic with its size and offsets: one row per topic, whatever the log holds.
pub fn topics(conn: &Connection) -> Result<Vec<TopicSummary>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT topic, messages, first_offset, next_offset FROM topic_heads ORDER BY topic",
    )?;
    let rows = stmt.query_map([], summary)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One topic; `None` if nothing was ever appended to it.
pub fn topic(conn: &Connection, topic: &str) -> Result<Option<TopicSummary>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT topic, messages, first_offset, next_offset FROM topic_heads WHERE topic = ?1",
    )?;
    Ok(stmt.query_row(params![topic], summary).optional()?)
}

/// Deletes up to `limit` of the oldest messages of each topic that were appended before
/// `before`, or that are beyond the newest `keep` of their topic, and moves the topics' first
/// offsets. Returns how many were deleted.
pub fn prune(
    conn: &Connection,
    before: &chrono::DateTime<chrono::Utc>,
    keep: u64,
    limit: u32,
) -> Result<u64, StoreError> {
    let cutoff = timestamp(before);
    let heads: Vec<TopicSummary> = topics(conn)?;
    let mut young = conn.prepare_cached(
        "SELECT log_offset FROM topic_messages WHERE topic = ?1 AND log_offset >= ?2 \
         AND appended_at >= ?3 ORDER BY log_offset LIMIT 1",
    )?;
    let mut delete = conn.prepare_cached(
        "DELETE FROM topic_messages WHERE topic = ?1 AND log_offset >= ?2 AND log_offset < ?3",
    )?;
    let mut moved = conn.prepare_cached(
        "UPDATE topic_heads SET first_offset = ?2, messages = messages - ?3 WHERE topic = ?1",
    )?;
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    let mut total = 0;
    for head in heads {
        let first_young: i64 = young
            .query_row(params![head.topic, head.first_offset, cutoff], |r| r.get(0))
            .optional()?
            .unwrap_or(head.next_offset);
        let bound = first_young
            .max(head.next_offset.saturating_sub(keep))
            .min(head.first_offset.saturating_add(i64::from(limit)));
        if bound <= head.first_offset {
            continue;
        }
        let deleted = delete.execute(params![head.topic, head.first_offset, bound])?;
        moved.execute(params![head.topic, bound, deleted])?;
        total += deleted as u64;
    }
    Ok(total)
}

/// A topic's messages from an offset on: read through [`first_rows`].
pub(super) const READ: &str = "SELECT log_offset, message_key, value, headers, appended_at \
     FROM topic_messages WHERE topic = ?1 AND log_offset >= ?2 ORDER BY log_offset";

/// Up to `limit` messages of `topic` from `from_offset` on.
pub fn read(
    conn: &Connection,
    topic: &str,
    from_offset: i64,
    limit: u32,
) -> Result<Vec<LoggedMessage>, StoreError> {
    let rows = first_rows(
        conn,
        READ,
        params![topic, from_offset],
        limit as usize,
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        },
    )?;
    rows.into_iter()
        .map(|(offset, key, value, headers, at)| {
            Ok(LoggedMessage {
                offset,
                key,
                value: serde_json::from_str(&value).map_err(|e| corrupt("message value", e))?,
                headers: serde_json::from_str(&headers)
                    .map_err(|e| corrupt("message headers", e))?,
                appended_at: parse_time(&at)?,
            })
        })
        .collect()
}
