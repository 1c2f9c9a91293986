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
        assert_eq!(migrate(&mut conn).unwrap(), 5);
        assert_eq!(migrate(&mut conn).unwrap(), 5);
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN \
                 ('orders', 'outbox', 'idempotency_keys', 'store_probe', 'topic_messages', \
                 'relay_checkpoints', 'deliveries', 'dead_letters', 'dead_letter_attempts', \
                 'topic_heads')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 10);
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
