//! The dead letter queue in ScyllaDB. Records are few by design (events the healthy sink
//! refused), so they share one partition, newest first, and filters run in the program over
//! pages of it. A record's id is its event's position; status changes are lightweight
//! transactions (`IF status = 'pending'`), so two operators cannot both replay or discard it.
//! Failure groups are computed the same way: in the program, over pages of the partition
//! (`store::dead_letters::failure_groups`, with the group filter of [`matches`]).

use super::ScyllaStore;
use super::cluster::{Row, values};
use super::rows::{self, NamedRow, micros};
use super::statements::{DEAD_LETTER_COLUMNS, Stmt, applied};
use crate::domain::{Payload, TraceContext};
use crate::store::StoreError;
use crate::store::dead_letters::{
    DeadLetter, DeadLetterCounts, DeadLetterFilter, DeadLetterKind, DeadLetterStatus,
    NewDeadLetter, PayloadEdit, ReplayAttempt, ReplayOutcome,
};
use chrono::Utc;
use scylla::value::CqlValue;

/// Columns of a record as the store reads them: `id`, read as the event's `position`, then
/// the rest.
const NAMES: [&str; 21] = {
    let mut names = [""; 21];
    names[0] = "position";
    let mut i = 0;
    while i < DEAD_LETTER_COLUMNS.len() {
        names[i + 1] = DEAD_LETTER_COLUMNS[i];
        i += 1;
    }
    names
};

/// Records read per page while filtering.
const PAGE: i32 = 200;

fn id_of(position: u64) -> Result<i64, StoreError> {
    i64::try_from(position)
        .map_err(|_| StoreError::Backend(format!("position {position} too large")))
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
        edit: match rows::optional_text(&row, "edited_payload")? {
            None => None,
            Some(text) => Some(PayloadEdit {
                payload: Payload::from_stored(text.to_string())
                    .map_err(|e| rows::invalid("edited_payload", e))?,
                at: rows::time(&row, "edited_at")?,
            }),
        },
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
        && filter
            .group
            .as_deref()
            .is_none_or(|g| g == letter.group_key())
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

impl ScyllaStore {
    /// Stores `letters` as pending records; an event already dead-lettered is left as it is.
    pub(super) async fn insert_dead_letters(
        &self,
        letters: &[NewDeadLetter],
    ) -> Result<(), StoreError> {
        let now = micros(&Utc::now());
        for l in letters {
            let e = &l.event.envelope;
            let values = values![
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
                e.trace.as_ref().map(TraceContext::traceparent),
                e.trace.as_ref().and_then(TraceContext::tracestate),
                now,
            ];
            self.run(Stmt::InsertDeadLetter, values).await?;
        }
        Ok(())
    }

    /// Records matching `filter`, newest first.
    pub(super) async fn list_dead_letters(
        &self,
        filter: &DeadLetterFilter,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let mut before = filter.before_id.unwrap_or(i64::MAX);
        let mut found = Vec::new();
        loop {
            let page = self
                .run(Stmt::DeadLetterPage, values![before, PAGE])
                .await?;
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
    pub(super) async fn get_dead_letter(&self, id: i64) -> Result<Option<DeadLetter>, StoreError> {
        Ok(self
            .dead_letter_rows(id)
            .await?
            .map(|(letter, _, _)| letter))
    }

    /// One record with its attempts, the record's row and each attempt's id (for rewriting
    /// them with a TTL).
    async fn dead_letter_rows(
        &self,
        id: i64,
    ) -> Result<Option<(DeadLetter, Row, Vec<CqlValue>)>, StoreError> {
        let found = self.run(Stmt::DeadLetter, values![id]).await?;
        let Some(values) = found.into_iter().next() else {
            return Ok(None);
        };
        let mut letter = decode(&values)?;
        let mut attempt_ids = Vec::new();
        for row in self.run(Stmt::DeadLetterAttempts, values![id]).await? {
            match row.as_slice() {
                [
                    Some(attempt),
                    Some(CqlValue::BigInt(at)),
                    Some(CqlValue::Text(outcome)),
                    Some(CqlValue::Text(detail)),
                ] => {
                    letter.attempts.push(ReplayAttempt {
                        at: rows::from_micros("attempt", *at)?,
                        delivered: outcome == "delivered",
                        detail: detail.clone(),
                    });
                    attempt_ids.push(attempt.clone());
                }
                other => return Err(StoreError::Corrupt(format!("attempt row {other:?}"))),
            }
        }
        Ok(Some((letter, values, attempt_ids)))
    }

    /// Why a status change did not apply: the record is missing or no longer pending.
    async fn refusal(&self, id: i64) -> StoreError {
        match self.get_dead_letter(id).await {
            Ok(None) => StoreError::NotFound("dead letter"),
            Ok(Some(letter)) => StoreError::NotPending(letter.status),
            Err(e) => e,
        }
    }

    /// Records a replay attempt; a delivery marks the record replayed and records where the
    /// event went.
    pub(super) async fn replayed(
        &self,
        id: i64,
        outcome: &ReplayOutcome,
    ) -> Result<DeadLetter, StoreError> {
        let letter = self
            .get_dead_letter(id)
            .await?
            .ok_or(StoreError::NotFound("dead letter"))?;
        if letter.status != DeadLetterStatus::Pending {
            return Err(StoreError::NotPending(letter.status));
        }
        let now = micros(&Utc::now());
        let (result, detail, resolved) = match outcome {
            ReplayOutcome::Delivered(d) => {
                let marked = self.run(Stmt::MarkReplayed, values![now, id]).await?;
                if !applied(&marked)? {
                    return Err(self.refusal(id).await);
                }
                self.save_delivery(letter.failure.event.position, d).await?;
                let place = match (d.partition, d.offset) {
                    (Some(p), Some(o)) => format!("{} partition {p} offset {o}", d.topic),
                    _ => d.topic.clone(),
                };
                ("delivered", place, true)
            }
            ReplayOutcome::Failed(error) => ("failed", error.clone(), false),
        };
        self.run(Stmt::AddAttempt, values![id, now, result, detail])
            .await?;
        self.resolved(id, resolved).await
    }

    /// Marks a pending record discarded.
    pub(super) async fn discard(&self, id: i64, reason: &str) -> Result<DeadLetter, StoreError> {
        let now = micros(&Utc::now());
        let result = self.run(Stmt::Discard, values![reason, now, id]).await?;
        if !applied(&result)? {
            return Err(self.refusal(id).await);
        }
        self.resolved(id, true).await
    }

    /// Stores an edited payload of a pending record.
    pub(super) async fn edit_payload(
        &self,
        id: i64,
        payload: &Payload,
    ) -> Result<DeadLetter, StoreError> {
        let now = micros(&Utc::now());
        let values = values![payload.as_str(), now, now, id];
        let result = self.run(Stmt::EditDeadLetter, values).await?;
        if !applied(&result)? {
            return Err(self.refusal(id).await);
        }
        self.resolved(id, false).await
    }

    /// The record after a change; once it is `resolved` (replayed or discarded), it and its
    /// attempts are written again with the outbox TTL, so they expire like the events they
    /// copy (a pending record never expires). If that rewrite fails the record simply stays.
    async fn resolved(&self, id: i64, resolved: bool) -> Result<DeadLetter, StoreError> {
        let (letter, row, attempts) = self
            .dead_letter_rows(id)
            .await?
            .ok_or(StoreError::NotFound("dead letter"))?;
        if resolved && let Err(error) = self.expire(row, &attempts, &letter.attempts).await {
            tracing::warn!(id, %error, "a resolved dead letter was kept without a TTL");
        }
        Ok(letter)
    }

    /// Rewrites a record's `row` and its attempts (their ids and contents) with the outbox
    /// TTL.
    async fn expire(
        &self,
        row: Row,
        ids: &[CqlValue],
        attempts: &[ReplayAttempt],
    ) -> Result<(), StoreError> {
        let Some(Some(CqlValue::BigInt(id))) = row.first().cloned() else {
            return Err(StoreError::Corrupt("dead letter id".into()));
        };
        let mut record = row;
        record.push(Some(CqlValue::Int(self.ttl_seconds)));
        self.run(Stmt::ExpireDeadLetter, record).await?;
        for (attempt, a) in ids.iter().zip(attempts) {
            let outcome = if a.delivered { "delivered" } else { "failed" };
            let values = values![
                id,
                attempt.clone(),
                micros(&a.at),
                outcome,
                a.detail.as_str(),
                self.ttl_seconds,
            ];
            self.run(Stmt::ExpireAttempt, values).await?;
        }
        Ok(())
    }

    /// Records per status, and pending ones per event type.
    pub(super) async fn count_dead_letters(&self) -> Result<DeadLetterCounts, StoreError> {
        let mut counts = DeadLetterCounts::default();
        let mut before = i64::MAX;
        loop {
            let page = self
                .run(Stmt::DeadLetterStatuses, values![before, PAGE])
                .await?;
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DeliveryRecord, OrderId, timestamp};
    use crate::store::scylla::cluster::fake::FakeCluster;
    use crate::store::scylla::tests::scripted;
    use std::sync::Arc;

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
            event.0["traceparent"].clone(),
            event.0["tracestate"].clone(),
        ]);
        values
    }

    /// A store whose one dead letter (id 4242) is `status`, with one failed attempt.
    async fn store_with_letter(status: &str) -> (Arc<FakeCluster>, ScyllaStore, Row, CqlValue) {
        let fake = Arc::new(FakeCluster::default());
        let record = row(status, "too large");
        let attempt = CqlValue::Timeuuid(scylla::value::CqlTimeuuid::from(uuid::Uuid::now_v1(
            &[1; 6],
        )));
        fake.always(Stmt::DeadLetter, Ok(vec![record.clone()]));
        let attempts = vec![
            Some(attempt.clone()),
            Some(CqlValue::BigInt(1_764_240_768_000_000)),
            Some(CqlValue::Text("failed".into())),
            Some(CqlValue::Text("still refused".into())),
        ];
        fake.always(Stmt::DeadLetterAttempts, Ok(vec![attempts]));
        let store = scripted(fake.clone()).await;
        (fake, store, record, attempt)
    }

    #[tokio::test]
    async fn a_resolved_dead_letter_is_written_again_to_expire_with_its_attempts() {
        let (fake, store, record, attempt) = store_with_letter("pending").await;
        let ttl = Some(CqlValue::Int(store.ttl_seconds));
        store.discard(4242, "not needed").await.unwrap();
        let mut expected = record;
        expected.push(ttl.clone());
        assert_eq!(fake.values(Stmt::ExpireDeadLetter), [expected]);
        let rewritten = fake.values(Stmt::ExpireAttempt);
        assert_eq!(rewritten.len(), 1);
        assert_eq!(rewritten[0][1], Some(attempt), "the same attempt row");
        assert_eq!(rewritten[0].last(), Some(&ttl));
        // A replay that delivers: the delivery expires with the outbox too.
        let (fake, store, _, _) = store_with_letter("pending").await;
        let delivery = DeliveryRecord {
            topic: "t".into(),
            partition: Some(0),
            offset: Some(7),
            published_at: Utc::now(),
        };
        store
            .replayed(4242, &ReplayOutcome::Delivered(delivery))
            .await
            .unwrap();
        assert_eq!(fake.count(Stmt::ExpireDeadLetter), 1);
        let saved = fake.values(Stmt::SaveDelivery);
        assert_eq!(
            saved[0].last(),
            Some(&Some(CqlValue::Int(store.ttl_seconds)))
        );
    }

    #[tokio::test]
    async fn a_record_still_pending_never_expires() {
        let (fake, store, _, _) = store_with_letter("pending").await;
        let failed = ReplayOutcome::Failed("still refused".into());
        store.replayed(4242, &failed).await.unwrap();
        assert_eq!(fake.count(Stmt::AddAttempt), 1);
        assert_eq!(fake.count(Stmt::ExpireDeadLetter), 0);
        assert_eq!(fake.count(Stmt::ExpireAttempt), 0);
    }

    /// A pending record `id` (its event at that position) that failed with `error`.
    fn pending_row(id: i64, error: &str) -> Vec<Option<CqlValue>> {
        let mut values = row("pending", error);
        values[0] = Some(CqlValue::BigInt(id));
        values
    }

    #[tokio::test]
    async fn groups_are_computed_over_pages_of_the_partition() {
        use crate::store::dead_letters::{failure_groups, group_ids};
        let fake = Arc::new(FakeCluster::default());
        let rows = vec![
            pending_row(30, "Message size 2000000 exceeds 1048576"),
            pending_row(20, "invalid topic"),
            pending_row(10, "Message size 1500000 exceeds 1048576"),
        ];
        fake.always(Stmt::DeadLetterPage, Ok(rows));
        let store = scripted(fake.clone()).await;
        let groups = failure_groups(&store).await.unwrap();
        assert_eq!(groups.len(), 2);
        let large = &groups[0];
        assert_eq!(large.count, 2);
        assert_eq!(large.message, "Message size <n> exceeds <n>");
        assert_eq!(large.event_type, "OrderCreated");
        assert_eq!(large.example.id, 30, "the newest record is the example");
        assert_eq!(groups[1].count, 1);
        // The group filter runs in the program too: the group's records, oldest first.
        assert_eq!(group_ids(&store, &large.key).await.unwrap(), [10, 30]);
        assert_eq!(group_ids(&store, &groups[1].key).await.unwrap(), [20]);
        assert!(
            group_ids(&store, "0123456789abcdef")
                .await
                .unwrap()
                .is_empty()
        );
        // Each scan read the partition from its newest record down, a page at a time.
        let first_page = &fake.values(Stmt::DeadLetterPage)[0];
        assert_eq!(first_page[0], Some(CqlValue::BigInt(i64::MAX)));
    }

    #[tokio::test]
    async fn an_edit_is_a_conditional_write_of_a_pending_record() {
        let (fake, store, _, _) = store_with_letter("pending").await;
        let payload = crate::domain::Payload::from_stored("{\"order_id\":\"x\"}".into()).unwrap();
        store.edit_payload(4242, &payload).await.unwrap();
        let written = fake.values(Stmt::EditDeadLetter);
        assert_eq!(written.len(), 1);
        assert_eq!(written[0][0], Some(CqlValue::Text(payload.as_str().into())));
        assert_eq!(written[0][3], Some(CqlValue::BigInt(4242)));
        assert_eq!(
            fake.count(Stmt::ExpireDeadLetter),
            0,
            "a pending record never expires"
        );
        // Lost the race: the record was replayed or discarded meanwhile.
        let (fake, store, _, _) = store_with_letter("replayed").await;
        fake.always(
            Stmt::EditDeadLetter,
            crate::store::scylla::cluster::fake::applied(false),
        );
        assert!(matches!(
            store.edit_payload(4242, &payload).await,
            Err(StoreError::NotPending(DeadLetterStatus::Replayed))
        ));
    }

    #[test]
    fn an_edited_row_decodes_with_both_payloads() {
        let mut values = row("pending", "too large");
        values.extend([
            Some(CqlValue::Text("{\"order_id\":\"fixed\"}".into())),
            Some(CqlValue::BigInt(1_764_240_769_000_000)),
        ]);
        let letter = decode(&values).unwrap();
        let edit = letter.edit.expect("an edit");
        assert_eq!(edit.payload.as_str(), "{\"order_id\":\"fixed\"}");
        assert_eq!(timestamp(&edit.at), "2025-11-27T10:52:49.000000Z");
        assert_ne!(
            letter.failure.event.envelope.payload.as_str(),
            edit.payload.as_str()
        );
        assert_eq!(decode(&row("pending", "x")).unwrap().edit, None);
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
