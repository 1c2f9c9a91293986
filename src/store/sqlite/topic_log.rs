//! The embedded topic log's SQL: append-only per-topic logs with offsets from 0.

use super::rows::{corrupt, parse_time};
use crate::domain::timestamp;
use crate::publish::local::{LoggedMessage, TopicSummary};
use crate::publish::{Delivery, Message};
use crate::store::StoreError;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;

/// Appends `messages` in order, each at the next offset of its topic.
pub fn append(conn: &Connection, messages: &[Message]) -> Result<Vec<Delivery>, StoreError> {
    let mut next: HashMap<&str, i64> = HashMap::new();
    let mut last =
        conn.prepare_cached("SELECT max(log_offset) FROM topic_messages WHERE topic = ?1")?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO topic_messages (topic, log_offset, message_key, value, headers, appended_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let now = timestamp(&chrono::Utc::now());
    let mut deliveries = Vec::with_capacity(messages.len());
    for m in messages {
        let offset = match next.get(m.topic.as_str()) {
            Some(&o) => o,
            None => {
                let max: Option<i64> = last
                    .query_row(params![m.topic], |r| r.get(0))
                    .optional()?
                    .flatten();
                max.map_or(0, |o| o + 1)
            }
        };
        let headers: serde_json::Map<String, serde_json::Value> = m
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone().into()))
            .collect();
        insert.execute(params![
            m.topic,
            offset,
            m.key,
            m.value,
            serde_json::Value::Object(headers).to_string(),
            now
        ])?;
        next.insert(&m.topic, offset + 1);
        deliveries.push(Delivery {
            topic: m.topic.clone(),
            partition: Some(0),
            offset: Some(offset),
        });
    }
    Ok(deliveries)
}

/// Every topic with its message count.
pub fn topics(conn: &Connection) -> Result<Vec<TopicSummary>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT topic, count(*), max(log_offset) FROM topic_messages GROUP BY topic ORDER BY topic",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(TopicSummary {
            topic: r.get(0)?,
            messages: r.get(1)?,
            next_offset: r.get::<_, i64>(2)? + 1,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One topic, found through the primary key (no scan); `None` if nothing was appended to it.
/// Offsets start at 0 and nothing is deleted, so the count is the next offset.
pub fn topic(conn: &Connection, topic: &str) -> Result<Option<TopicSummary>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT max(log_offset) FROM topic_messages WHERE topic = ?1")?;
    let last: Option<i64> = stmt.query_row(params![topic], |r| r.get(0))?;
    Ok(last.map(|last| TopicSummary {
        topic: topic.to_string(),
        messages: u64::try_from(last + 1).unwrap_or(0),
        next_offset: last + 1,
    }))
}

/// Up to `limit` messages of `topic` from `from_offset` on.
pub fn read(
    conn: &Connection,
    topic: &str,
    from_offset: i64,
    limit: u32,
) -> Result<Vec<LoggedMessage>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT log_offset, message_key, value, headers, appended_at FROM topic_messages \
         WHERE topic = ?1 AND log_offset >= ?2 ORDER BY log_offset LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![topic, from_offset, limit], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    rows.map(|row| {
        let (offset, key, value, headers, at) = row?;
        Ok(LoggedMessage {
            offset,
            key,
            value: serde_json::from_str(&value).map_err(|e| corrupt("message value", e))?,
            headers: serde_json::from_str(&headers).map_err(|e| corrupt("message headers", e))?,
            appended_at: parse_time(&at)?,
        })
    })
    .collect()
}
