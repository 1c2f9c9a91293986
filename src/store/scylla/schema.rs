//! The CQL schema from `schema/scylla/`, turned into statements for one keyspace and applied
//! at start-up. Every statement is `IF NOT EXISTS`, so applying it again is a no-op.

use scylla::client::session::Session;
use scylla::cluster::metadata::Strategy;
use scylla::statement::unprepared::Statement;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long one schema statement may take.
const SCHEMA_TIMEOUT: Duration = Duration::from_secs(60);

/// The schema files in the order they are applied.
const FILES: &[&str] = &[
    include_str!("../../../schema/scylla/0001_keyspace.cql"),
    include_str!("../../../schema/scylla/0002_orders_outbox.cql"),
    include_str!("../../../schema/scylla/0003_relay.cql"),
    include_str!("../../../schema/scylla/0004_position_tags.cql"),
    include_str!("../../../schema/scylla/0005_trace_context.cql"),
    include_str!("../../../schema/scylla/0006_dead_letter_edits.cql"),
    include_str!("../../../schema/scylla/0007_audit_log.cql"),
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
    /// The keyspace would need more replicas in a datacenter than it has nodes, so no
    /// LOCAL_QUORUM write could succeed.
    #[error(
        "the keyspace needs {replicas} replicas but datacenter {datacenter} has {nodes} node(s): \
         writes at LOCAL_QUORUM could never succeed. Use SCYLLA_REPLICATION_FACTOR={nodes} on \
         a cluster this small (1 for a one-node development cluster), or add nodes"
    )]
    Replication {
        datacenter: String,
        replicas: usize,
        nodes: usize,
    },
}

/// What the replication check looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    /// Nodes per datacenter.
    pub nodes: BTreeMap<String, usize>,
    /// Replicas per datacenter of the keyspace, if it exists already (then the setting does
    /// not apply: `CREATE KEYSPACE IF NOT EXISTS` leaves it as it is).
    pub keyspace: Option<BTreeMap<String, usize>>,
}

impl Topology {
    /// The topology the session sees, for `keyspace`.
    pub fn of(session: &Session, keyspace: &str) -> Self {
        let state = session.get_cluster_state();
        let mut nodes = BTreeMap::new();
        for node in state.get_nodes_info() {
            let dc = node.datacenter.clone().unwrap_or_default();
            *nodes.entry(dc).or_insert(0) += 1;
        }
        let keyspace = state.get_keyspace(keyspace).map(|k| match &k.strategy {
            Strategy::NetworkTopologyStrategy {
                datacenter_repfactors,
            } => datacenter_repfactors
                .iter()
                .map(|(dc, n)| (dc.clone(), *n))
                .collect(),
            Strategy::SimpleStrategy { replication_factor } => nodes
                .keys()
                .map(|dc| (dc.clone(), *replication_factor))
                .collect(),
            _ => BTreeMap::new(),
        });
        Self { nodes, keyspace }
    }
}

/// Fewer replicas than this lose writes (and data) with one node down.
const SAFE_REPLICAS: usize = 3;

/// Refuses a replication the cluster cannot serve; returns warnings about one that loses
/// data when a node fails, or a setting that no longer applies.
pub fn check_replication(wanted: u8, topology: &Topology) -> Result<Vec<String>, SchemaError> {
    let mut warnings = Vec::new();
    for (datacenter, &nodes) in &topology.nodes {
        let replicas = match &topology.keyspace {
            Some(existing) => existing.get(datacenter).copied().unwrap_or(0),
            None => usize::from(wanted),
        };
        if replicas > nodes {
            return Err(SchemaError::Replication {
                datacenter: datacenter.clone(),
                replicas,
                nodes,
            });
        }
        if replicas < SAFE_REPLICAS && nodes >= SAFE_REPLICAS {
            warnings.push(format!(
                "datacenter {datacenter} has {nodes} nodes but the keyspace keeps {replicas} \
                 replica(s): losing one node stops writes (and can lose acknowledged data); \
                 use a replication factor of 3"
            ));
        }
        if topology.keyspace.is_some() && replicas != usize::from(wanted) {
            warnings.push(format!(
                "the keyspace exists with {replicas} replica(s) in {datacenter}; \
                 SCYLLA_REPLICATION_FACTOR={wanted} only applies when it is created \
                 (change it with ALTER KEYSPACE, then repair)"
            ));
        }
    }
    Ok(warnings)
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
        let statement = match added_column(&statement) {
            Some(added) => {
                if column_exists(session, keyspace, &added).await? {
                    continue;
                }
                added.cql
            }
            None => statement,
        };
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

/// An `ALTER TABLE … ADD IF NOT EXISTS <column> <type>` of the schema files, which ScyllaDB
/// cannot run as it is: the table, the column, and the statement without `IF NOT EXISTS`.
#[derive(Debug, PartialEq, Eq)]
struct AddedColumn {
    table: String,
    column: String,
    cql: String,
}

/// `statement` as an [`AddedColumn`], if it is one.
fn added_column(statement: &str) -> Option<AddedColumn> {
    let rest = statement.strip_prefix("ALTER TABLE ")?;
    let (qualified, rest) = rest.split_once(" ADD IF NOT EXISTS ")?;
    let (_, table) = qualified.split_once('.')?;
    let column = rest.split_whitespace().next()?;
    Some(AddedColumn {
        table: table.to_string(),
        column: column.to_string(),
        cql: statement.replacen(" ADD IF NOT EXISTS ", " ADD ", 1),
    })
}

/// Whether the keyspace's table has the column already.
async fn column_exists(
    session: &Session,
    keyspace: &str,
    added: &AddedColumn,
) -> Result<bool, SchemaError> {
    let query = "SELECT column_name FROM system_schema.columns \
                 WHERE keyspace_name = ? AND table_name = ? AND column_name = ?";
    let found = session
        .query_unpaged(query, (keyspace, &added.table, &added.column))
        .await
        .map_err(|source| SchemaError::Statement {
            statement: query.to_string(),
            source: Box::new(source),
        })?;
    let rows = found.into_rows_result().map(|r| r.rows_num()).unwrap_or(0);
    Ok(rows > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_columns_run_without_if_not_exists() {
        let all = statements("shop", 1).unwrap();
        let added: Vec<AddedColumn> = all.iter().filter_map(|s| added_column(s)).collect();
        assert_eq!(added.len(), 6);
        assert_eq!(
            added[0],
            AddedColumn {
                table: "outbox".into(),
                column: "traceparent".into(),
                cql: "ALTER TABLE shop.outbox ADD traceparent text".into(),
            }
        );
        assert_eq!(added[3].table, "dead_letters");
        assert_eq!(
            added_column("CREATE TABLE IF NOT EXISTS shop.x (a int)"),
            None
        );
    }

    #[test]
    fn statements_are_idempotent_and_name_the_keyspace() {
        let all = statements("shop", 3).unwrap();
        assert_eq!(all.len(), 23);
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

    fn topology(nodes: &[(&str, usize)], keyspace: Option<&[(&str, usize)]>) -> Topology {
        let map =
            |pairs: &[(&str, usize)]| pairs.iter().map(|(d, n)| (d.to_string(), *n)).collect();
        Topology {
            nodes: map(nodes),
            keyspace: keyspace.map(map),
        }
    }

    #[test]
    fn three_replicas_on_three_nodes_pass_quietly() {
        let three = topology(&[("dc1", 3)], None);
        assert_eq!(check_replication(3, &three).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn more_replicas_than_nodes_are_refused_with_the_fix() {
        let one = topology(&[("dc1", 1)], None);
        let error = check_replication(3, &one).unwrap_err().to_string();
        assert!(error.contains("SCYLLA_REPLICATION_FACTOR=1"), "{error}");
        assert!(check_replication(1, &one).unwrap().is_empty());
    }

    #[test]
    fn fewer_than_three_replicas_on_a_real_cluster_are_warned_about() {
        let three = topology(&[("dc1", 3)], None);
        let warnings = check_replication(1, &three).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("losing one node stops writes"));
    }

    #[test]
    fn an_existing_keyspace_is_judged_by_its_own_replication() {
        let existing = topology(&[("dc1", 3)], Some(&[("dc1", 1)]));
        let warnings = check_replication(3, &existing).unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[1].contains("ALTER KEYSPACE"));
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
