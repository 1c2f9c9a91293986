//! The dead letter queue in ScyllaDB. Records are few by design (events the healthy sink
//! refused), so they share one partition, newest first, and filters run in the program over
//! pages of it. A record's id is its event's position; status changes are lightweight
//! transactions (`IF status = 'pending'`), so two operators cannot both replay or discard it.

use super::rows::{self, NamedRow, micros};
use super::statements::{applied, rows as result_rows};
use crate::store::StoreError;
use crate::store::dead_letters::{
    DeadLetter, DeadLetterCounts, DeadLetterFilter, DeadLetterKind, DeadLetterStatus,
    NewDeadLetter, ReplayAttempt, ReplayOutcome,
};
use chrono::Utc;
use scylla::client::session::Session;
use scylla::errors::PrepareError;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlValue;

/// Columns of a record as the store names them (`id` is read as the event's `position`).
const NAMES: [&str; 17] = [
    "position",
    "event_id",
    "event_type",
    "aggregate_type",
    "aggregate_id",
    "aggregate_version",
    "payload",
    "occurred_at",
    "schema_version",
    "error_kind",
    "error_message",
    "failure_count",
    "first_failed_at",
    "last_failed_at",
    "status",
    "discard_reason",
    "updated_at",
];

/// Records read per page while filtering.
const PAGE: i32 = 200;

/// The dead letter statements.
pub struct DeadLetterStatements {
    insert: PreparedStatement,
    page: PreparedStatement,
    one: PreparedStatement,
    attempts: PreparedStatement,
    add_attempt: PreparedStatement,
    mark_replayed: PreparedStatement,
    discard: PreparedStatement,
    statuses: PreparedStatement,
}

impl DeadLetterStatements {
    /// Prepares the statements for keyspace `ks`, once, at start-up.
    pub async fn prepare(session: &Session, ks: &str) -> Result<Self, PrepareError> {
        let columns = NAMES[1..].join(", ");
        let select = format!("SELECT id, {columns} FROM {ks}.dead_letters WHERE shard = 0");
        Ok(Self {
            insert: session
                .prepare(format!(
                    "INSERT INTO {ks}.dead_letters (shard, id, {}, status, updated_at) \
                     VALUES (0, {}, 'pending', ?) IF NOT EXISTS",
                    NAMES[1..14].join(", "),
                    vec!["?"; 14].join(", ")
                ))
                .await?,
            page: session
                .prepare(format!("{select} AND id < ? LIMIT ?"))
                .await?,
            one: session.prepare(format!("{select} AND id = ?")).await?,
            attempts: session
                .prepare(format!(
                    "SELECT attempted_at, outcome, detail FROM {ks}.dead_letter_attempts \
                     WHERE dead_letter_id = ?"
                ))
                .await?,
            add_attempt: session
                .prepare(format!(
                    "INSERT INTO {ks}.dead_letter_attempts (dead_letter_id, attempt, \
                     attempted_at, outcome, detail) VALUES (?, now(), ?, ?, ?)"
                ))
                .await?,
            mark_replayed: session
                .prepare(format!(
                    "UPDATE {ks}.dead_letters SET status = 'replayed', updated_at = ? \
                     WHERE shard = 0 AND id = ? IF status = 'pending'"
                ))
                .await?,
            discard: session
                .prepare(format!(
                    "UPDATE {ks}.dead_letters SET status = 'discarded', discard_reason = ?, \
                     updated_at = ? WHERE shard = 0 AND id = ? IF status = 'pending'"
                ))
                .await?,
            statuses: session
                .prepare(format!(
                    "SELECT id, status, event_type FROM {ks}.dead_letters \
                     WHERE shard = 0 AND id < ? LIMIT ?"
                ))
                .await?,
        })
    }
}

fn id_of(position: u64) -> Result<i64, StoreError> {
    i64::try_from(position)
        .map_err(|_| StoreError::Backend(format!("position {position} too large")))
}

/// Stores `letters` as pending records; an event already dead-lettered is left as it is.
pub async fn insert(
    session: &Session,
    s: &DeadLetterStatements,
    letters: &[NewDeadLetter],
) -> Result<(), StoreError> {
    let now = micros(&Utc::now());
    for l in letters {
        let e = &l.event.envelope;
        let values = (
            id_of(l.event.position)?,
            e.event_id,
            e.event_type.as_str(),
            e.aggregate_type,
            e.aggregate_id.0,
            e.aggregate_version as i32,
            e.payload.as_str(),
            micros(&e.occurred_at),
            e.schema_version as i32,
            l.kind.as_str(),
            l.error.as_str(),
            l.failures as i32,
            micros(&l.first_failed_at),
            micros(&l.last_failed_at),
            now,
        );
        session.execute_unpaged(&s.insert, values).await?;
    }
    Ok(())
}

/// A record from a row of [`NAMES`] (attempts left empty).
fn decode(values: &[Option<CqlValue>]) -> Result<DeadLetter, StoreError> {
    let row = NamedRow {
        names: &NAMES,
        values,
    };
    let kind = rows::text(&row, "error_kind")?;
    let status = rows::text(&row, "status")?;
    Ok(DeadLetter {
        id: rows::bigint(&row, "position")?,
        failure: NewDeadLetter {
            event: rows::event(&row)?,
            kind: DeadLetterKind::parse(kind).ok_or_else(|| rows::invalid("error_kind", kind))?,
            error: rows::text(&row, "error_message")?.to_string(),
            failures: rows::unsigned(&row, "failure_count")?,
            first_failed_at: rows::time(&row, "first_failed_at")?,
            last_failed_at: rows::time(&row, "last_failed_at")?,
        },
        status: DeadLetterStatus::parse(status).ok_or_else(|| rows::invalid("status", status))?,
        discard_reason: rows::optional_text(&row, "discard_reason")?.map(str::to_string),
        updated_at: rows::time(&row, "updated_at")?,
        attempts: Vec::new(),
    })
}

/// Whether `letter` passes `filter` (the id bound is applied by the query).
fn matches(letter: &DeadLetter, filter: &DeadLetterFilter) -> bool {
    let e = &letter.failure.event.envelope;
    filter
        .event_type
        .as_deref()
        .is_none_or(|t| t == e.event_type.as_str())
        && filter.aggregate_id.is_none_or(|id| id == e.aggregate_id)
        && filter.status.is_none_or(|s| s == letter.status)
        && filter.text.as_deref().is_none_or(|t| {
            // Like SQLite's LIKE: ASCII letters match either case.
            let t = t.to_ascii_lowercase();
            [
                e.event_id.to_string(),
                e.payload.as_str().to_string(),
                letter.failure.error.clone(),
            ]
            .iter()
            .any(|field| field.to_ascii_lowercase().contains(&t))
        })
}

/// Records matching `filter`, newest first.
pub async fn list(
    session: &Session,
    s: &DeadLetterStatements,
    filter: &DeadLetterFilter,
) -> Result<Vec<DeadLetter>, StoreError> {
    let mut before = filter.before_id.unwrap_or(i64::MAX);
    let mut found = Vec::new();
    loop {
        let page = result_rows(session.execute_unpaged(&s.page, (before, PAGE)).await?)?;
        let last_page = page.len() < PAGE as usize;
        for values in &page {
            let letter = decode(values)?;
            before = letter.id;
            if matches(&letter, filter) {
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

/// One record with its attempts, oldest first.
pub async fn get(
    session: &Session,
    s: &DeadLetterStatements,
    id: i64,
) -> Result<Option<DeadLetter>, StoreError> {
    let found = result_rows(session.execute_unpaged(&s.one, (id,)).await?)?;
    let Some(values) = found.first() else {
        return Ok(None);
    };
    let mut letter = decode(values)?;
    for row in result_rows(session.execute_unpaged(&s.attempts, (id,)).await?)? {
        match row.as_slice() {
            [
                Some(CqlValue::BigInt(at)),
                Some(CqlValue::Text(outcome)),
                Some(CqlValue::Text(detail)),
            ] => letter.attempts.push(ReplayAttempt {
                at: rows::from_micros("attempt", *at)?,
                delivered: outcome == "delivered",
                detail: detail.clone(),
            }),
            other => return Err(StoreError::Corrupt(format!("attempt row {other:?}"))),
        }
    }
    Ok(Some(letter))
}

/// Why a status change did not apply: the record is missing or no longer pending.
async fn refusal(session: &Session, s: &DeadLetterStatements, id: i64) -> StoreError {
    match get(session, s, id).await {
        Ok(None) => StoreError::NotFound("dead letter"),
        Ok(Some(letter)) => StoreError::NotPending(letter.status),
        Err(e) => e,
    }
}

/// Records a replay attempt; a delivery marks the record replayed and records where the
/// event went (through `record_delivery`).
pub async fn record_replay<F, Fut>(
    session: &Session,
    s: &DeadLetterStatements,
    id: i64,
    outcome: &ReplayOutcome,
    record_delivery: F,
) -> Result<DeadLetter, StoreError>
where
    F: FnOnce(u64, crate::domain::DeliveryRecord) -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>>,
{
    let letter = get(session, s, id)
        .await?
        .ok_or(StoreError::NotFound("dead letter"))?;
    if letter.status != DeadLetterStatus::Pending {
        return Err(StoreError::NotPending(letter.status));
    }
    let now = micros(&Utc::now());
    let (result, detail) = match outcome {
        ReplayOutcome::Delivered(d) => {
            let marked = session.execute_unpaged(&s.mark_replayed, (now, id)).await?;
            if !applied(marked)? {
                return Err(refusal(session, s, id).await);
            }
            record_delivery(letter.failure.event.position, d.clone()).await?;
            let place = match (d.partition, d.offset) {
                (Some(p), Some(o)) => format!("{} partition {p} offset {o}", d.topic),
                _ => d.topic.clone(),
            };
            ("delivered", place)
        }
        ReplayOutcome::Failed(error) => ("failed", error.clone()),
    };
    session
        .execute_unpaged(&s.add_attempt, (id, now, result, detail))
        .await?;
    get(session, s, id)
        .await?
        .ok_or(StoreError::NotFound("dead letter"))
}

/// Marks a pending record discarded.
pub async fn discard(
    session: &Session,
    s: &DeadLetterStatements,
    id: i64,
    reason: &str,
) -> Result<DeadLetter, StoreError> {
    let now = micros(&Utc::now());
    let result = session
        .execute_unpaged(&s.discard, (reason, now, id))
        .await?;
    if !applied(result)? {
        return Err(refusal(session, s, id).await);
    }
    get(session, s, id)
        .await?
        .ok_or(StoreError::NotFound("dead letter"))
}

/// Records per status, and pending ones per event type.
pub async fn counts(
    session: &Session,
    s: &DeadLetterStatements,
) -> Result<DeadLetterCounts, StoreError> {
    let mut counts = DeadLetterCounts::default();
    let mut before = i64::MAX;
    loop {
        let page = result_rows(session.execute_unpaged(&s.statuses, (before, PAGE)).await?)?;
        for row in &page {
            let [
                Some(CqlValue::BigInt(id)),
                Some(CqlValue::Text(status)),
                Some(CqlValue::Text(event_type)),
            ] = row.as_slice()
            else {
                return Err(StoreError::Corrupt(format!("dead letter row {row:?}")));
            };
            before = *id;
            match DeadLetterStatus::parse(status) {
                Some(DeadLetterStatus::Pending) => {
                    counts.pending += 1;
                    *counts
                        .pending_by_event_type
                        .entry(event_type.clone())
                        .or_default() += 1;
                }
                Some(DeadLetterStatus::Replayed) => counts.replayed += 1,
                Some(DeadLetterStatus::Discarded) => counts.discarded += 1,
                None => return Err(StoreError::Corrupt(format!("status {status}"))),
            }
        }
        if page.len() < PAGE as usize {
            return Ok(counts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{OrderId, timestamp};

    fn row(status: &str, error: &str) -> Vec<Option<CqlValue>> {
        let event = super::super::rows::tests::event_row();
        let mut values: Vec<Option<CqlValue>> =
            NAMES[..9].iter().map(|n| event.0[n].clone()).collect();
        values.extend([
            Some(CqlValue::Text("permanent".into())),
            Some(CqlValue::Text(error.into())),
            Some(CqlValue::Int(1)),
            Some(CqlValue::BigInt(1_764_240_767_000_000)),
            Some(CqlValue::BigInt(1_764_240_768_000_000)),
            Some(CqlValue::Text(status.into())),
            None,
            Some(CqlValue::BigInt(1_764_240_768_000_000)),
        ]);
        values
    }

    #[test]
    fn a_record_row_decodes_with_its_event() {
        let letter = decode(&row("pending", "too large")).unwrap();
        assert_eq!(letter.id, 4242);
        assert_eq!(letter.failure.event.position, 4242);
        assert_eq!(letter.failure.kind, DeadLetterKind::Permanent);
        assert_eq!(letter.status, DeadLetterStatus::Pending);
        assert_eq!(letter.discard_reason, None);
        assert_eq!(timestamp(&letter.updated_at), "2025-11-27T10:52:48.000000Z");
    }

    #[test]
    fn a_bad_status_is_reported_not_trusted() {
        assert!(matches!(
            decode(&row("lost", "x")),
            Err(StoreError::Corrupt(m)) if m.contains("status")
        ));
    }

    #[test]
    fn filters_match_like_the_embedded_store() {
        let letter = decode(&row("pending", "message too large")).unwrap();
        let all = DeadLetterFilter::default();
        assert!(matches(&letter, &all));
        let text = |t: &str| DeadLetterFilter {
            text: Some(t.into()),
            ..Default::default()
        };
        assert!(matches(&letter, &text("TOO Large")));
        assert!(matches(&letter, &text("order_id")));
        assert!(!matches(&letter, &text("absent")));
        let other_order = DeadLetterFilter {
            aggregate_id: Some(OrderId::generate()),
            ..Default::default()
        };
        assert!(!matches(&letter, &other_order));
        let replayed = DeadLetterFilter {
            status: Some(DeadLetterStatus::Replayed),
            ..Default::default()
        };
        assert!(!matches(&letter, &replayed));
        let created = DeadLetterFilter {
            event_type: Some("OrderCreated".into()),
            ..Default::default()
        };
        assert!(matches(&letter, &created));
    }
}
