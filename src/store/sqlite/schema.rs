//! Versioned schema migrations from `schema/sqlite/`, applied at start-up.
//!
//! The applied version lives in `PRAGMA user_version`; each migration runs in its own
//! transaction together with the version bump, so a crash mid-migration leaves the previous
//! version intact.

use rusqlite::Connection;

/// (version, SQL) in ascending order. Never edit a released migration: add a new one.
const MIGRATIONS: &[(u32, &str)] = &[
    (
        1,
        include_str!("../../../schema/sqlite/0001_orders_outbox.sql"),
    ),
    (2, include_str!("../../../schema/sqlite/0002_relay.sql")),
    (
        3,
        include_str!("../../../schema/sqlite/0003_dead_letters.sql"),
    ),
    (
        4,
        include_str!("../../../schema/sqlite/0004_idempotency_expiry.sql"),
    ),
    (
        5,
        include_str!("../../../schema/sqlite/0005_topic_heads.sql"),
    ),
    (
        6,
        include_str!("../../../schema/sqlite/0006_dead_letter_counts.sql"),
    ),
    (
        7,
        include_str!("../../../schema/sqlite/0007_delivery_batches.sql"),
    ),
    (
        8,
        include_str!("../../../schema/sqlite/0008_trace_context.sql"),
    ),
    (
        9,
        include_str!("../../../schema/sqlite/0009_dead_letter_edits.sql"),
    ),
    (
        10,
        include_str!("../../../schema/sqlite/0010_audit_log.sql"),
    ),
];

/// Errors while bringing the schema up to date.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("database schema version {found} is newer than this program knows ({known})")]
    TooNew { found: u32, known: u32 },
    #[error("migration {version} failed: {source}")]
    Failed {
        version: u32,
        source: rusqlite::Error,
    },
}

/// Applies every migration newer than the database's version. Idempotent.
pub fn migrate(conn: &mut Connection) -> Result<u32, MigrationError> {
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    let current: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|source| MigrationError::Failed { version: 0, source })?;
    if current > known {
        return Err(MigrationError::TooNew {
            found: current,
            known,
        });
    }
    for &(version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        let apply = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", version)?;
            tx.commit()
        };
        apply(conn).map_err(|source| MigrationError::Failed { version, source })?;
    }
    Ok(known)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_is_a_no_op() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), 10);
        assert_eq!(migrate(&mut conn).unwrap(), 10);
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN \
                 ('orders', 'outbox', 'idempotency_keys', 'store_probe', 'topic_messages', \
                 'relay_checkpoints', 'deliveries', 'dead_letters', 'dead_letter_attempts', \
                 'topic_heads', 'dead_letter_counts', 'delivery_batches', 'audit_log')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 13);
    }

    /// Migration 6 counts the dead letters already there, and its triggers keep the counts
    /// equal to a full count through inserts, status changes and deletes.
    #[test]
    fn dead_letter_counts_follow_the_dead_letters() {
        let mut conn = Connection::open_in_memory().unwrap();
        for &(version, sql) in &MIGRATIONS[..5] {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", version).unwrap();
        }
        let insert = |conn: &Connection, position: i64, event_type: &str| {
            conn.execute(
                "INSERT INTO dead_letters (position, event_id, event_type, aggregate_type,                  aggregate_id, aggregate_version, payload, occurred_at, schema_version,                  error_kind, error_message, failure_count, first_failed_at, last_failed_at,                  updated_at) VALUES (?1, ?1, ?2, 'order', 'a', 1, '{}', 't', 1, 'permanent',                  'e', 1, 't', 't', 't')",
                rusqlite::params![position, event_type],
            )
            .unwrap();
        };
        insert(&conn, 1, "OrderCreated");
        insert(&conn, 2, "OrderCancelled");
        migrate(&mut conn).unwrap();
        insert(&conn, 3, "OrderCreated");
        insert(&conn, 4, "OrderCreated");
        conn.execute_batch(
            "UPDATE dead_letters SET status = 'replayed' WHERE position = 1;              UPDATE dead_letters SET status = 'discarded' WHERE position = 2;              UPDATE dead_letters SET updated_at = 'u' WHERE position = 3;              DELETE FROM dead_letters WHERE position = 4;",
        )
        .unwrap();
        let rows = |sql: &str| -> Vec<(String, String, i64)> {
            let mut stmt = conn.prepare(sql).unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        let kept = rows(
            "SELECT status, event_type, n FROM dead_letter_counts WHERE n > 0 \
             ORDER BY status, event_type",
        );
        let counted = rows(
            "SELECT status, event_type, count(*) FROM dead_letters \
             GROUP BY status, event_type ORDER BY status, event_type",
        );
        assert_eq!(kept, counted);
        assert_eq!(kept.len(), 3, "{kept:?}");
    }

    #[test]
    fn a_newer_database_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        assert!(matches!(
            migrate(&mut conn),
            Err(MigrationError::TooNew { found: 99, .. })
        ));
    }
}
