//! The dead letter queue's SQL: records written with the relay's progress, filtered lists,
//! replay attempts, discards and counts. Every value is a bound parameter.

use super::rows::{EVENT_COLUMN_COUNT, corrupt, parse_time, read_event};
use crate::domain::{Payload, StoredEvent, TraceContext, timestamp};
use crate::store::dead_letters::{
    DeadLetter, DeadLetterCounts, DeadLetterFilter, DeadLetterKind, DeadLetterStatus,
    NewDeadLetter, PayloadEdit, ReplayAttempt, ReplayOutcome,
};

use crate::store::{Backlog, StoreError};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params};

/// The envelope columns (named like the outbox's) followed by the record's own.
const COLUMNS: &str = "position, event_id, aggregate_type, aggregate_id, aggregate_version, \
     event_type, payload, occurred_at, schema_version, traceparent, tracestate, id, error_kind, \
     error_message, failure_count, first_failed_at, last_failed_at, status, discard_reason, \
     updated_at, edited_payload, edited_at";

/// Stores `letters` (in the caller's transaction). An event already dead-lettered is left
/// as it is.
pub fn insert(conn: &Connection, letters: &[NewDeadLetter]) -> Result<(), StoreError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO dead_letters (position, event_id, event_type, aggregate_type, aggregate_id, \
         aggregate_version, payload, occurred_at, schema_version, error_kind, error_message, \
         failure_count, first_failed_at, last_failed_at, updated_at, traceparent, tracestate) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) \
         ON CONFLICT (position) DO NOTHING",
    )?;
    let now = timestamp(&chrono::Utc::now());
    for l in letters {
        let e = &l.event.envelope;
        insert.execute(params![
            l.event.position,
            e.event_id.to_string(),
            e.event_type.as_str(),
            e.aggregate_type,
            e.aggregate_id.to_string(),
            e.aggregate_version,
            e.payload.as_str(),
            timestamp(&e.occurred_at),
            e.schema_version,
            l.kind.as_str(),
            l.error,
            l.failures,
            timestamp(&l.first_failed_at),
            timestamp(&l.last_failed_at),
            now,
            e.trace.as_ref().map(TraceContext::traceparent),
            e.trace.as_ref().and_then(TraceContext::tracestate),
        ])?;
    }
    Ok(())
}

/// A record from a row of [`COLUMNS`] (attempts left empty).
fn read(r: &Row<'_>) -> rusqlite::Result<(StoredEvent, RecordRow)> {
    Ok((
        read_event(r)?,
        RecordRow {
            id: r.get(EVENT_COLUMN_COUNT)?,
            kind: r.get(EVENT_COLUMN_COUNT + 1)?,
            error: r.get(EVENT_COLUMN_COUNT + 2)?,
            failures: r.get(EVENT_COLUMN_COUNT + 3)?,
            first_failed_at: r.get(EVENT_COLUMN_COUNT + 4)?,
            last_failed_at: r.get(EVENT_COLUMN_COUNT + 5)?,
            status: r.get(EVENT_COLUMN_COUNT + 6)?,
            discard_reason: r.get(EVENT_COLUMN_COUNT + 7)?,
            updated_at: r.get(EVENT_COLUMN_COUNT + 8)?,
            edited_payload: r.get(EVENT_COLUMN_COUNT + 9)?,
            edited_at: r.get(EVENT_COLUMN_COUNT + 10)?,
        },
    ))
}

/// The record's own columns, before decoding.
struct RecordRow {
    id: i64,
    kind: String,
    error: String,
    failures: u32,
    first_failed_at: String,
    last_failed_at: String,
    status: String,
    discard_reason: Option<String>,
    updated_at: String,
    edited_payload: Option<String>,
    edited_at: Option<String>,
}

fn decode((event, row): (StoredEvent, RecordRow)) -> Result<DeadLetter, StoreError> {
    Ok(DeadLetter {
        id: row.id,
        failure: NewDeadLetter {
            event,
            kind: DeadLetterKind::parse(&row.kind)
                .ok_or_else(|| corrupt("error_kind", &row.kind))?,
            error: row.error,
            failures: row.failures,
            first_failed_at: parse_time(&row.first_failed_at)?,
            last_failed_at: parse_time(&row.last_failed_at)?,
        },
        status: DeadLetterStatus::parse(&row.status)
            .ok_or_else(|| corrupt("status", &row.status))?,
        discard_reason: row.discard_reason,
        updated_at: parse_time(&row.updated_at)?,
        attempts: Vec::new(),
        edit: match (row.edited_payload, row.edited_at) {
            (Some(payload), Some(at)) => Some(PayloadEdit {
                payload: Payload::from_stored(payload).map_err(|e| corrupt("edited_payload", e))?,
                at: parse_time(&at)?,
            }),
            _ => None,
        },
    })
}

/// `text` for a LIKE pattern that matches it literally anywhere.
fn contains_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// Records read per query while filtering by failure group.
const GROUP_PAGE: u32 = 200;

/// Records matching `filter`, newest first. Group keys are computed in the program, so a
/// group filter reads pages matching the other conditions and keeps the group's records.
pub fn list(conn: &Connection, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError> {
    let Some(group) = &filter.group else {
        return list_page(conn, filter);
    };
    let mut found = Vec::new();
    let mut page = DeadLetterFilter {
        group: None,
        limit: GROUP_PAGE,
        ..filter.clone()
    };
    loop {
        let letters = list_page(conn, &page)?;
        let last_page = letters.len() < GROUP_PAGE as usize;
        page.before_id = letters.last().map(|l| l.id);
        for letter in letters {
            if letter.group_key() == *group {
                found.push(letter);
                if found.len() >= filter.limit as usize {
                    return Ok(found);
                }
            }
        }
        if last_page {
            return Ok(found);
        }
    }
}

/// Records matching `filter` but its group, newest first: one query.
fn list_page(conn: &Connection, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError> {
    let mut conditions = vec!["id < ?".to_string()];
    let mut values: Vec<Value> = vec![Value::Integer(filter.before_id.unwrap_or(i64::MAX))];
    if let Some(t) = &filter.event_type {
        conditions.push("event_type = ?".into());
        values.push(Value::Text(t.clone()));
    }
    if let Some(id) = filter.aggregate_id {
        conditions.push("aggregate_id = ?".into());
        values.push(Value::Text(id.to_string()));
    }
    if let Some(status) = filter.status {
        conditions.push("status = ?".into());
        values.push(Value::Text(status.as_str().into()));
    }
    if let Some(text) = &filter.text {
        conditions.push(
            "(event_id LIKE ? ESCAPE '\\' OR payload LIKE ? ESCAPE '\\' \
             OR error_message LIKE ? ESCAPE '\\')"
                .into(),
        );
        let pattern = contains_pattern(text);
        values.extend(std::iter::repeat_n(Value::Text(pattern), 3));
    }
    values.push(Value::Integer(i64::from(filter.limit)));
    let sql = format!(
        "SELECT {COLUMNS} FROM dead_letters WHERE {} ORDER BY id DESC LIMIT ?",
        conditions.join(" AND ")
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(values), read)?;
    rows.map(|r| decode(r?)).collect()
}

/// One record with its attempts.
pub fn get(conn: &Connection, id: i64) -> Result<Option<DeadLetter>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM dead_letters WHERE id = ?1");
    let Some(row) = conn
        .prepare_cached(&sql)?
        .query_row(params![id], read)
        .optional()?
    else {
        return Ok(None);
    };
    let mut letter = decode(row)?;
    let mut stmt = conn.prepare_cached(
        "SELECT attempted_at, outcome, detail FROM dead_letter_attempts \
         WHERE dead_letter_id = ?1 ORDER BY id",
    )?;
    let attempts = stmt.query_map(params![id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    for attempt in attempts {
        let (at, outcome, detail) = attempt?;
        letter.attempts.push(ReplayAttempt {
            at: parse_time(&at)?,
            delivered: outcome == "delivered",
            detail,
        });
    }
    Ok(Some(letter))
}

/// The record `id`, which must be pending.
fn pending(conn: &Connection, id: i64) -> Result<DeadLetter, StoreError> {
    let letter = get(conn, id)?.ok_or(StoreError::NotFound("dead letter"))?;
    match letter.status {
        DeadLetterStatus::Pending => Ok(letter),
        other => Err(StoreError::NotPending(other)),
    }
}

/// Records a replay attempt; a delivery marks the record replayed and records where the
/// event went (so its order page shows it published).
pub fn record_replay(
    conn: &Connection,
    id: i64,
    outcome: &ReplayOutcome,
) -> Result<DeadLetter, StoreError> {
    let letter = pending(conn, id)?;
    let now = timestamp(&chrono::Utc::now());
    let (result, detail) = match outcome {
        ReplayOutcome::Delivered(d) => {
            super::progress::record_delivery(conn, letter.failure.event.position, d)?;
            conn.prepare_cached(
                "UPDATE dead_letters SET status = 'replayed', updated_at = ?2 WHERE id = ?1",
            )?
            .execute(params![id, now])?;
            let place = match (d.partition, d.offset) {
                (Some(p), Some(o)) => format!("{} partition {p} offset {o}", d.topic),
                _ => d.topic.clone(),
            };
            ("delivered", place)
        }
        ReplayOutcome::Failed(error) => ("failed", error.clone()),
    };
    conn.prepare_cached(
        "INSERT INTO dead_letter_attempts (dead_letter_id, attempted_at, outcome, detail) \
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![id, now, result, detail])?;
    get(conn, id)?.ok_or(StoreError::NotFound("dead letter"))
}

/// Stores `payload` as a pending record's edited payload.
pub fn edit_payload(
    conn: &Connection,
    id: i64,
    payload: &Payload,
) -> Result<DeadLetter, StoreError> {
    pending(conn, id)?;
    let now = timestamp(&chrono::Utc::now());
    conn.prepare_cached(
        "UPDATE dead_letters SET edited_payload = ?2, edited_at = ?3, updated_at = ?3 \
         WHERE id = ?1",
    )?
    .execute(params![id, payload.as_str(), now])?;
    get(conn, id)?.ok_or(StoreError::NotFound("dead letter"))
}

/// Marks a pending record discarded.
pub fn discard(conn: &Connection, id: i64, reason: &str) -> Result<DeadLetter, StoreError> {
    pending(conn, id)?;
    conn.prepare_cached(
        "UPDATE dead_letters SET status = 'discarded', discard_reason = ?2, updated_at = ?3 \
         WHERE id = ?1",
    )?
    .execute(params![id, reason, timestamp(&chrono::Utc::now())])?;
    get(conn, id)?.ok_or(StoreError::NotFound("dead letter"))
}

/// Deletes up to `limit` of the oldest records replayed or discarded before `before`, with
/// their attempts. Pending records stay, however old.
pub fn delete_resolved(
    conn: &Connection,
    before: &chrono::DateTime<chrono::Utc>,
    limit: u32,
) -> Result<u64, StoreError> {
    let ids: Vec<i64> = conn
        .prepare_cached(
            "SELECT id FROM dead_letters WHERE status != 'pending' AND updated_at < ?1 \
             ORDER BY id LIMIT ?2",
        )?
        .query_map(params![timestamp(before), limit], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut attempts =
        conn.prepare_cached("DELETE FROM dead_letter_attempts WHERE dead_letter_id = ?1")?;
    let mut letter = conn.prepare_cached("DELETE FROM dead_letters WHERE id = ?1")?;
    for id in &ids {
        attempts.execute(params![id])?;
        letter.execute(params![id])?;
    }
    Ok(ids.len() as u64)
}

/// Records per status, and pending ones per event type, from the counts migration 6's
/// triggers keep: a few rows, however many dead letters there are.
pub fn counts(conn: &Connection) -> Result<DeadLetterCounts, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT status, event_type, n FROM dead_letter_counts WHERE n > 0")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, u64>(2)?,
        ))
    })?;
    let mut counts = DeadLetterCounts::default();
    for row in rows {
        let (status, event_type, n) = row?;
        match DeadLetterStatus::parse(&status) {
            Some(DeadLetterStatus::Pending) => {
                counts.pending += n;
                counts.pending_by_event_type.insert(event_type, n);
            }
            Some(DeadLetterStatus::Replayed) => counts.replayed += n,
            Some(DeadLetterStatus::Discarded) => counts.discarded += n,
            None => return Err(corrupt("status", status)),
        }
    }
    Ok(counts)
}

/// Events after `checkpoint`: how many, and when the oldest occurred.
pub fn backlog(conn: &Connection, checkpoint: u64) -> Result<Backlog, StoreError> {
    // Positions are gap-free from the oldest row kept to the newest ever written, so the
    // count is a subtraction, not a scan of every pending row.
    let (first, newest, oldest): (Option<u64>, Option<u64>, Option<String>) = conn
        .prepare_cached(
            "SELECT (SELECT min(position) FROM outbox), \
             (SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), \
             (SELECT occurred_at FROM outbox WHERE position > ?1 ORDER BY position LIMIT 1)",
        )?
        .query_row(params![checkpoint], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    let pending = match (first, newest) {
        (Some(first), Some(newest)) => newest.saturating_sub(checkpoint.max(first - 1)),
        _ => 0,
    };
    Ok(Backlog {
        pending,
        oldest: oldest.as_deref().map(parse_time).transpose()?,
    })
}
