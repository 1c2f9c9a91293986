//! The CQL schema from `schema/scylla/`, turned into statements for one keyspace and applied
//! at start-up. Every statement is `IF NOT EXISTS`, so applying it again is a no-op.

use scylla::client::session::Session;
use scylla::statement::unprepared::Statement;
use std::time::Duration;

/// How long one schema statement may take.
const SCHEMA_TIMEOUT: Duration = Duration::from_secs(60);

/// The schema files in the order they are applied.
const FILES: &[&str] = &[
    include_str!("../../../schema/scylla/0001_keyspace.cql"),
    include_str!("../../../schema/scylla/0002_orders_outbox.cql"),
    include_str!("../../../schema/scylla/0003_relay.cql"),
    include_str!("../../../schema/scylla/0004_position_tags.cql"),
];

/// Errors while applying the schema.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// Keyspace names are unquoted CQL identifiers: letters, digits and `_`, at most 48.
    #[error(
        "invalid keyspace name {0:?}: use 1 to 48 letters, digits or '_', starting with a letter"
    )]
    Keyspace(String),
    #[error("schema statement failed: {statement}: {source}")]
    Statement {
        statement: String,
        source: Box<scylla::errors::ExecutionError>,
    },
    #[error("the cluster did not agree on the schema: {0}")]
    Agreement(Box<scylla::errors::SchemaAgreementError>),
}

/// Checks that `name` can be spliced into CQL as a keyspace name.
pub fn check_keyspace(name: &str) -> Result<(), SchemaError> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 48;
    if valid {
        Ok(())
    } else {
        Err(SchemaError::Keyspace(name.to_string()))
    }
}

/// The schema's statements for `keyspace`, without comments, in order.
pub fn statements(keyspace: &str, replication_factor: u8) -> Result<Vec<String>, SchemaError> {
    check_keyspace(keyspace)?;
    Ok(FILES
        .iter()
        .flat_map(|file| {
            let code: String = file
                .lines()
                .filter(|line| !line.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n");
            code.split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.replace("$KEYSPACE", keyspace)
                        .replace("$REPLICATION_FACTOR", &replication_factor.to_string())
                })
                .collect::<Vec<_>>()
        })
        .collect())
}

/// Applies every statement, then waits until all nodes agree on the schema.
pub async fn apply(
    session: &Session,
    keyspace: &str,
    replication_factor: u8,
) -> Result<(), SchemaError> {
    for statement in statements(keyspace, replication_factor)? {
        // Creating a table with CDC takes longer than the store's request timeout.
        let mut query = Statement::new(statement.as_str());
        query.set_request_timeout(Some(SCHEMA_TIMEOUT));
        session
            .query_unpaged(query, ())
            .await
            .map_err(|source| SchemaError::Statement {
                statement,
                source: Box::new(source),
            })?;
    }
    session
        .await_schema_agreement()
        .await
        .map_err(|e| SchemaError::Agreement(Box::new(e)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_idempotent_and_name_the_keyspace() {
        let all = statements("shop", 3).unwrap();
        assert_eq!(all.len(), 15);
        for s in &all {
            assert!(s.contains("IF NOT EXISTS"), "not idempotent: {s}");
            assert!(s.contains("shop"), "keyspace missing: {s}");
            assert!(!s.contains('$'), "placeholder left: {s}");
            assert!(!s.contains("--"), "comment left: {s}");
            assert!(!s.to_uppercase().contains("ALLOW FILTERING"));
        }
        assert!(all[0].starts_with("CREATE KEYSPACE IF NOT EXISTS shop"));
        assert!(all[0].contains("'replication_factor': 3"));
        assert!(all[0].contains("tablets = {'enabled': false}"));
    }

    #[test]
    fn the_outbox_logs_deltas_only() {
        let all = statements("shop", 1).unwrap();
        let outbox = all
            .iter()
            .find(|s| s.contains("TABLE IF NOT EXISTS shop.outbox ("))
            .unwrap();
        assert!(outbox.contains("'enabled': true"));
        assert!(outbox.contains("'preimage': false"));
        assert!(outbox.contains("'postimage': false"));
        assert!(outbox.contains("PRIMARY KEY ((aggregate_id), aggregate_version)"));
    }

    #[test]
    fn keyspace_names_that_could_inject_cql_are_refused() {
        for bad in ["", "1abc", "a-b", "a;DROP", "a b", &"k".repeat(49)] {
            assert!(
                matches!(check_keyspace(bad), Err(SchemaError::Keyspace(_))),
                "{bad:?}"
            );
        }
        assert!(check_keyspace("outbox_test_42").is_ok());
    }
}
