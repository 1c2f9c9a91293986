//! The audit log's SQL: one row per operator action, read newest first by id (optionally by
//! action or action prefix, through the `(action, id)` index), deleted by age in batches.

use super::rows::{corrupt, parse_time};
use crate::domain::timestamp;
use crate::store::StoreError;
use crate::store::audit::{AuditEntry, AuditOutcome, AuditQuery, NewAuditEntry};
use rusqlite::types::Value;
use rusqlite::{Connection, Row, params};

/// Stores `entry`.
pub fn insert(conn: &Connection, entry: &NewAuditEntry) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO audit_log (at, session, address, action, target, status, outcome) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        timestamp(&entry.at),
        entry.session,
        entry.address,
        entry.action,
        entry.target,
        entry.status,
        entry.outcome.as_str(),
    ])?;
    Ok(())
}

/// The first name after every name that starts with `prefix` (which ends in `.`): the
/// exclusive upper bound of an index range that selects exactly those names.
fn past_prefix(prefix: &str) -> String {
    let mut bound = prefix.to_string();
    bound.pop();
    bound.push(char::from(b'.' + 1));
    bound
}

/// Entries matching `query`, newest first.
pub fn list(conn: &Connection, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
    let mut sql = String::from(
        "SELECT id, at, session, address, action, target, status, outcome FROM audit_log \
         WHERE id < ?",
    );
    let mut values = vec![Value::Integer(query.before.unwrap_or(i64::MAX))];
    match query.action.as_ref().map(|a| (a, a.prefix())) {
        Some((_, Some(prefix))) => {
            sql.push_str(" AND action >= ? AND action < ?");
            values.push(Value::Text(prefix.to_string()));
            values.push(Value::Text(past_prefix(prefix)));
        }
        Some((exact, None)) => {
            sql.push_str(" AND action = ?");
            values.push(Value::Text(exact.as_str().to_string()));
        }
        None => {}
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    values.push(Value::Integer(i64::from(query.limit)));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(values), read)?;
    rows.map(|row| decode(row?)).collect()
}

/// An entry's columns, before decoding.
struct EntryRow {
    id: i64,
    at: String,
    session: Option<String>,
    address: String,
    action: String,
    target: Option<String>,
    status: u16,
    outcome: String,
}

fn read(r: &Row<'_>) -> rusqlite::Result<EntryRow> {
    Ok(EntryRow {
        id: r.get(0)?,
        at: r.get(1)?,
        session: r.get(2)?,
        address: r.get(3)?,
        action: r.get(4)?,
        target: r.get(5)?,
        status: r.get(6)?,
        outcome: r.get(7)?,
    })
}

fn decode(row: EntryRow) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        id: row.id,
        entry: NewAuditEntry {
            at: parse_time(&row.at)?,
            session: row.session,
            address: row.address,
            action: row.action,
            target: row.target,
            status: row.status,
            outcome: AuditOutcome::parse(&row.outcome)
                .ok_or_else(|| corrupt("outcome", &row.outcome))?,
        },
    })
}

/// Deletes up to `limit` of the oldest entries recorded before `before`.
pub fn delete_older(
    conn: &Connection,
    before: &chrono::DateTime<chrono::Utc>,
    limit: u32,
) -> Result<u64, StoreError> {
    let deleted = conn
        .prepare_cached(
            "DELETE FROM audit_log WHERE id IN \
             (SELECT id FROM audit_log WHERE at < ?1 ORDER BY at LIMIT ?2)",
        )?
        .execute(params![timestamp(before), limit])?;
    Ok(deleted as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::audit::ActionFilter;
    use chrono::{Duration, Utc};

    fn entry(action: &str, at: chrono::DateTime<Utc>) -> NewAuditEntry {
        NewAuditEntry {
            at,
            session: Some("bearer".into()),
            address: "127.0.0.1".into(),
            action: action.into(),
            target: None,
            status: 200,
            outcome: AuditOutcome::Ok,
        }
    }

    fn database() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        conn
    }

    fn actions(conn: &Connection, filter: Option<&str>, before: Option<i64>) -> Vec<String> {
        let query = AuditQuery {
            before,
            action: filter.map(|f| ActionFilter::parse(f).unwrap()),
            limit: 10,
        };
        list(conn, &query)
            .unwrap()
            .into_iter()
            .map(|e| e.entry.action)
            .collect()
    }

    #[test]
    fn prefixes_select_exactly_their_family_newest_first() {
        let conn = database();
        // `dlq/x` sorts right after every `dlq.` name: the range must stop before it.
        for action in [
            "dlq.replay",
            "relay.mode",
            "dlq.group.replay",
            "dlq/x",
            "dlqx",
        ] {
            insert(&conn, &entry(action, Utc::now())).unwrap();
        }
        assert_eq!(
            actions(&conn, Some("dlq."), None),
            ["dlq.group.replay", "dlq.replay"]
        );
        assert_eq!(actions(&conn, Some("dlq.replay"), None), ["dlq.replay"]);
        assert_eq!(actions(&conn, None, Some(3)), ["relay.mode", "dlq.replay"]);
    }

    #[test]
    fn only_entries_older_than_the_cutoff_are_deleted() {
        let conn = database();
        let now = Utc::now();
        insert(&conn, &entry("old", now - Duration::days(100))).unwrap();
        insert(&conn, &entry("older", now - Duration::days(200))).unwrap();
        insert(&conn, &entry("young", now - Duration::days(1))).unwrap();
        let cutoff = now - Duration::days(90);
        assert_eq!(delete_older(&conn, &cutoff, 1).unwrap(), 1);
        assert_eq!(actions(&conn, None, None), ["young", "old"]);
        assert_eq!(delete_older(&conn, &cutoff, 10).unwrap(), 1);
        assert_eq!(delete_older(&conn, &cutoff, 10).unwrap(), 0);
        assert_eq!(actions(&conn, None, None), ["young"]);
    }
}
