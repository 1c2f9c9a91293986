//! The audit log on ScyllaDB: one partition per UTC day (`audit_log`), the days listed in
//! `audit_days`. An entry's id is its time in microseconds times 1000 plus a random 0..999:
//! ids order entries by time without a coordinated counter, fit the API's integer cursor, and
//! two entries collide only when written in the same microsecond with the same draw.
//! Retention deletes whole days, all of whose entries are older than the cutoff.

use super::ScyllaStore;
use super::cluster::{Row, values};
use super::orders::day_of;
use super::rows::{self, NamedRow};
use super::statements::Stmt;
use crate::store::StoreError;
use crate::store::audit::{AuditEntry, AuditOutcome, AuditQuery, NewAuditEntry};
use chrono::{DateTime, Utc};
use scylla::value::CqlValue;

/// The columns [`Stmt::AuditPage`] selects, in order.
const COLUMNS: [&str; 8] = [
    "id", "at", "session", "address", "action", "target", "status", "outcome",
];

/// Rows read per query while filling a page: with an action filter, the entries that do not
/// match are read too, so this is more than a page.
const CHUNK: i32 = 200;

/// The id of an entry written at `at`, with `draw` (0..999) telling apart entries of the
/// same microsecond.
fn entry_id(at: &DateTime<Utc>, draw: i64) -> i64 {
    rows::micros(at).saturating_mul(1000).saturating_add(draw)
}

/// The day whose partition holds entry `id` (the day of the newest possible entry for
/// [`i64::MAX`], the cursor of the first page).
fn day_of_id(id: i64) -> i32 {
    let micros = id / 1000;
    rows::from_micros("id", micros).map_or(i32::MAX, day_of)
}

/// The `day` of an `audit_days` row.
fn day(row: &Row) -> Result<i32, StoreError> {
    match row.first() {
        Some(Some(CqlValue::Int(day))) => Ok(*day),
        _ => Err(StoreError::Corrupt("audit_days row".into())),
    }
}

fn decode(values: &Row) -> Result<AuditEntry, StoreError> {
    let row = NamedRow {
        names: &COLUMNS,
        values,
    };
    let status = rows::int(&row, "status")?;
    let outcome = rows::text(&row, "outcome")?;
    Ok(AuditEntry {
        id: rows::bigint(&row, "id")?,
        entry: NewAuditEntry {
            at: rows::time(&row, "at")?,
            session: rows::optional_text(&row, "session")?.map(str::to_string),
            address: rows::text(&row, "address")?.to_string(),
            action: rows::text(&row, "action")?.to_string(),
            target: rows::optional_text(&row, "target")?.map(str::to_string),
            status: u16::try_from(status)
                .map_err(|_| rows::invalid("status", format!("{status} is not a status")))?,
            outcome: AuditOutcome::parse(outcome)
                .ok_or_else(|| rows::invalid("outcome", outcome))?,
        },
    })
}

impl ScyllaStore {
    /// Stores `entry`, and lists its day (every time: operator actions are rare, and the
    /// write is idempotent).
    pub(super) async fn insert_audit(&self, entry: &NewAuditEntry) -> Result<(), StoreError> {
        let id = entry_id(&entry.at, fastrand::i64(0..1000));
        let day = day_of_id(id);
        self.run(Stmt::AddAuditDay, values![day]).await?;
        self.run(
            Stmt::InsertAudit,
            values![
                day,
                id,
                rows::micros(&entry.at),
                entry.session.clone(),
                entry.address.as_str(),
                entry.action.as_str(),
                entry.target.clone(),
                i32::from(entry.status),
                entry.outcome.as_str(),
            ],
        )
        .await?;
        Ok(())
    }

    /// Up to `query.limit` entries matching `query`, newest first, day by day.
    pub(super) async fn audit_page(
        &self,
        query: &AuditQuery,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let before = query.before.unwrap_or(i64::MAX);
        let wanted = query.limit as usize;
        let mut found = Vec::new();
        for listed in self
            .run(Stmt::AuditDays, values![day_of_id(before)])
            .await?
        {
            let day = day(&listed)?;
            let mut below = before;
            loop {
                let chunk = self
                    .run(Stmt::AuditPage, values![day, below, CHUNK])
                    .await?;
                let exhausted = chunk.len() < CHUNK as usize;
                for row in &chunk {
                    let entry = decode(row)?;
                    below = entry.id;
                    if query
                        .action
                        .as_ref()
                        .is_none_or(|a| a.matches(&entry.entry.action))
                    {
                        found.push(entry);
                        if found.len() == wanted {
                            return Ok(found);
                        }
                    }
                }
                if exhausted {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// Deletes up to `limit` whole days of entries that ended before `before`'s day began;
    /// returns how many days.
    pub(super) async fn delete_audit_days(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let last_gone = day_of(before).saturating_sub(1);
        let days = self.run(Stmt::AuditDays, values![last_gone]).await?;
        let mut deleted = 0;
        for listed in days.iter().rev().take(limit as usize) {
            let day = day(listed)?;
            self.run(Stmt::DeleteAuditDay, values![day]).await?;
            self.run(Stmt::ForgetAuditDay, values![day]).await?;
            deleted += 1;
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::audit::ActionFilter;
    use crate::store::scylla::cluster::fake::FakeCluster;
    use crate::store::scylla::tests::scripted;
    use chrono::{Duration, TimeZone};
    use std::sync::Arc;

    fn entry(action: &str, at: DateTime<Utc>) -> NewAuditEntry {
        NewAuditEntry {
            at,
            session: None,
            address: "10.0.0.7".into(),
            action: action.into(),
            target: Some("42".into()),
            status: 401,
            outcome: AuditOutcome::Refused,
        }
    }

    /// The row [`Stmt::AuditPage`] reads back for what [`Stmt::InsertAudit`] wrote.
    fn stored(written: &Row) -> Row {
        written[1..].to_vec()
    }

    #[tokio::test]
    async fn entries_go_to_their_day_and_read_back_whole() {
        let fake = Arc::new(FakeCluster::default());
        let store = scripted(fake.clone()).await;
        let at = Utc.with_ymd_and_hms(2025, 3, 4, 23, 59, 59).unwrap();
        let written = entry("dlq.replay", at);
        store.insert_audit(&written).await.unwrap();
        let insert = fake.values(Stmt::InsertAudit).pop().unwrap();
        let day = day_of(at);
        assert_eq!(insert[0], Some(CqlValue::Int(day)));
        assert_eq!(fake.values(Stmt::AddAuditDay), vec![values![day]]);
        let Some(CqlValue::BigInt(id)) = insert[1] else {
            panic!("an id")
        };
        assert_eq!(id / 1000, rows::micros(&at), "the id starts with the time");
        assert_eq!(day_of_id(id), day);
        assert_eq!(
            decode(&stored(&insert)).unwrap(),
            AuditEntry { id, entry: written }
        );
    }

    #[tokio::test]
    async fn pages_walk_the_days_newest_first_and_filter_by_action() {
        let fake = Arc::new(FakeCluster::default());
        let store = scripted(fake.clone()).await;
        let now = Utc::now();
        let mut rows = Vec::new();
        for (i, action) in ["relay.mode", "dlq.replay", "dlq.discard"]
            .iter()
            .enumerate()
        {
            store
                .insert_audit(&entry(action, now - Duration::days(i as i64)))
                .await
                .unwrap();
            rows.push(stored(&fake.values(Stmt::InsertAudit).pop().unwrap()));
        }
        let days: Vec<Row> = (0..3).map(|i| values![day_of(now) - i]).collect();
        fake.always(Stmt::AuditDays, Ok(days));
        fake.respond(Stmt::AuditPage, move |v| {
            let (Some(CqlValue::Int(day)), Some(CqlValue::BigInt(below))) = (&v[0], &v[1]) else {
                panic!("day and id bound")
            };
            Ok(rows
                .iter()
                .filter(|r| matches!(r[0], Some(CqlValue::BigInt(id)) if id < *below && day_of_id(id) == *day))
                .cloned()
                .collect())
        });
        let query = |action: Option<&str>, before, limit| AuditQuery {
            before,
            action: action.map(|a| ActionFilter::parse(a).unwrap()),
            limit,
        };
        let actions = |found: Vec<AuditEntry>| -> Vec<String> {
            found.into_iter().map(|e| e.entry.action).collect()
        };
        let all = store.audit_page(&query(None, None, 10)).await.unwrap();
        let first_id = all[0].id;
        assert_eq!(actions(all), ["relay.mode", "dlq.replay", "dlq.discard"]);
        let dlq = store
            .audit_page(&query(Some("dlq."), None, 1))
            .await
            .unwrap();
        assert_eq!(actions(dlq), ["dlq.replay"]);
        let older = store
            .audit_page(&query(None, Some(first_id), 10))
            .await
            .unwrap();
        assert_eq!(actions(older), ["dlq.replay", "dlq.discard"]);
    }

    #[tokio::test]
    async fn retention_deletes_only_days_before_the_cutoffs_day() {
        let fake = Arc::new(FakeCluster::default());
        let store = scripted(fake.clone()).await;
        let cutoff = Utc.with_ymd_and_hms(2025, 3, 4, 12, 0, 0).unwrap();
        let day = day_of(cutoff);
        fake.always(
            Stmt::AuditDays,
            Ok(vec![values![day - 1], values![day - 5], values![day - 9]]),
        );
        assert_eq!(store.delete_audit_days(cutoff, 2).await.unwrap(), 2);
        assert_eq!(fake.values(Stmt::AuditDays), vec![values![day - 1]]);
        assert_eq!(
            fake.values(Stmt::DeleteAuditDay),
            vec![values![day - 9], values![day - 5]],
            "the oldest days go first"
        );
        assert_eq!(fake.values(Stmt::ForgetAuditDay).len(), 2);
    }
}
