//! Where the store's statements run: the seam between the store's logic and the driver.
//!
//! [`Cluster`] runs a named statement ([`Stmt`]) with its values and answers the rows. In
//! production it is [`SessionCluster`], the driver's session with every statement prepared
//! once; unit tests put a scripted stand-in there, so timeouts, lost registrations and lost
//! races are injected and the store's answer to them checked without a server.

use super::statements::Stmt;
use crate::store::StoreError;
use async_trait::async_trait;
use scylla::client::session::Session;
use scylla::cluster::{ClusterState, NodeRef};
use scylla::errors::PrepareError;
use scylla::frame::types::Consistency;
use scylla::policies::load_balancing::{
    DefaultPolicy, FallbackPlan, LoadBalancingPolicy, RoutingInfo,
};
use scylla::response::query_result::QueryResult;
use scylla::routing::Shard;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlValue, Row as DriverRow};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// One row of a result: the selected columns' values in order (`None` = null).
pub type Row = Vec<Option<CqlValue>>;

/// A value bound to a statement, converted the way the driver converts the same Rust type.
pub trait ToCql {
    fn to_cql(self) -> Option<CqlValue>;
}

impl ToCql for i64 {
    fn to_cql(self) -> Option<CqlValue> {
        Some(CqlValue::BigInt(self))
    }
}

impl ToCql for i32 {
    fn to_cql(self) -> Option<CqlValue> {
        Some(CqlValue::Int(self))
    }
}

impl ToCql for Uuid {
    fn to_cql(self) -> Option<CqlValue> {
        Some(CqlValue::Uuid(self))
    }
}

impl ToCql for &str {
    fn to_cql(self) -> Option<CqlValue> {
        Some(CqlValue::Text(self.to_string()))
    }
}

impl ToCql for String {
    fn to_cql(self) -> Option<CqlValue> {
        Some(CqlValue::Text(self))
    }
}

impl ToCql for CqlValue {
    fn to_cql(self) -> Option<CqlValue> {
        Some(self)
    }
}

impl<T: ToCql> ToCql for Option<T> {
    fn to_cql(self) -> Option<CqlValue> {
        self.and_then(ToCql::to_cql)
    }
}

/// The values of a statement, in bind-marker order.
macro_rules! values {
    ($($value:expr),* $(,)?) => {
        vec![$($crate::store::scylla::cluster::ToCql::to_cql($value)),*]
    };
}
pub(crate) use values;

/// Runs the store's statements.
#[async_trait]
pub trait Cluster: Send + Sync + 'static {
    /// Runs `stmt` with `values`; the rows it answered (none for a plain write).
    async fn run(&self, stmt: Stmt, values: Row) -> Result<Vec<Row>, StoreError>;

    /// The commit: [`Stmt::SaveOrder`] and [`Stmt::InsertEvent`] as one conditional batch on
    /// one partition; the `[applied]` row.
    async fn commit(&self, order: Row, event: Row) -> Result<Vec<Row>, StoreError>;
}

/// The driver's session with every statement prepared.
pub struct SessionCluster {
    session: Arc<Session>,
    prepared: HashMap<Stmt, PreparedStatement>,
    /// The commit batch, routed like a lightweight transaction (see [`LwtRouting`]).
    commit: Batch,
}

impl SessionCluster {
    /// Prepares every statement for `keyspace` once, with its consistency and whether the
    /// driver may retry it.
    pub async fn prepare(session: Arc<Session>, keyspace: &str) -> Result<Self, PrepareError> {
        let mut prepared = HashMap::new();
        for stmt in Stmt::ALL {
            let mut statement = session.prepare(stmt.cql(keyspace)).await?;
            if stmt.serial() {
                statement.set_consistency(Consistency::LocalSerial);
            }
            statement.set_is_idempotent(stmt.idempotent());
            if let Some(timeout) = stmt.request_timeout() {
                statement.set_request_timeout(Some(timeout));
            }
            prepared.insert(stmt, statement);
        }
        let mut commit = Batch::new(BatchType::Unlogged);
        commit.append_statement(prepared[&Stmt::SaveOrder].clone());
        commit.append_statement(prepared[&Stmt::InsertEvent].clone());
        commit.set_load_balancing_policy(Some(Arc::new(LwtRouting::default())));
        Ok(Self {
            session,
            prepared,
            commit,
        })
    }
}

#[async_trait]
impl Cluster for SessionCluster {
    async fn run(&self, stmt: Stmt, values: Row) -> Result<Vec<Row>, StoreError> {
        rows(
            self.session
                .execute_unpaged(&self.prepared[&stmt], values)
                .await?,
        )
    }

    async fn commit(&self, order: Row, event: Row) -> Result<Vec<Row>, StoreError> {
        rows(self.session.batch(&self.commit, vec![order, event]).await?)
    }
}

/// The rows of a result, as column values (none for a result without rows).
fn rows(result: QueryResult) -> Result<Vec<Row>, StoreError> {
    if !result.is_rows() {
        return Ok(Vec::new());
    }
    let rows = result
        .into_rows_result()
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    rows.rows::<DriverRow>()
        .map_err(|e| StoreError::Backend(e.to_string()))?
        .map(|r| {
            r.map(|row| row.columns)
                .map_err(|e| StoreError::Corrupt(e.to_string()))
        })
        .collect()
}

/// Routes the commit batch the way the driver routes a prepared lightweight transaction:
/// to the partition's replicas in ring order, so every instance's Paxos rounds for one order
/// start at the same coordinator instead of contending from random ones. (The driver knows
/// a single prepared statement is an LWT, but never marks a batch as one.) Falls back to the
/// default policy when the token or the keyspace is unknown.
#[derive(Debug)]
pub struct LwtRouting {
    default: Arc<dyn LoadBalancingPolicy>,
}

impl Default for LwtRouting {
    fn default() -> Self {
        Self {
            default: DefaultPolicy::builder().build(),
        }
    }
}

impl LwtRouting {
    fn first_replica<'a>(
        request: &'a RoutingInfo,
        cluster: &'a ClusterState,
    ) -> Option<(NodeRef<'a>, Option<Shard>)> {
        let (table, token) = (request.table?, request.token?);
        let keyspace = cluster.get_keyspace(table.ks_name())?;
        cluster
            .replica_locator()
            .replicas_for_token(token, &keyspace.strategy, None, table)
            .into_iter()
            .find(|(node, _)| node.is_enabled())
            .map(|(node, shard)| (node, Some(shard)))
    }
}

impl LoadBalancingPolicy for LwtRouting {
    fn pick<'a>(
        &'a self,
        request: &'a RoutingInfo,
        cluster: &'a ClusterState,
    ) -> Option<(NodeRef<'a>, Option<Shard>)> {
        Self::first_replica(request, cluster).or_else(|| self.default.pick(request, cluster))
    }

    fn fallback<'a>(
        &'a self,
        request: &'a RoutingInfo,
        cluster: &'a ClusterState,
    ) -> FallbackPlan<'a> {
        self.default.fallback(request, cluster)
    }

    fn name(&self) -> String {
        "LwtRouting".into()
    }
}

#[cfg(test)]
pub mod fake {
    //! A scripted [`Cluster`] for unit tests: it records every statement run and answers
    //! what the test told it to (rows, or an error), statement by statement.

    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    /// What a scripted statement answers.
    pub type Answer = Result<Vec<Row>, StoreError>;

    /// A cluster that answers from a script.
    #[derive(Default)]
    pub struct FakeCluster {
        /// Answers queued per statement, used once each in order.
        queued: Mutex<HashMap<Stmt, VecDeque<Answer>>>,
        /// Answers given every time a statement's queue is empty (default: no rows, or
        /// `[applied] = true` for a conditional write).
        always: Mutex<HashMap<Stmt, Answer>>,
        /// Answers computed from the values, for statements whose answer depends on them.
        computed: Mutex<HashMap<Stmt, Responder>>,
        /// How long a statement takes to answer (on the tokio clock; none by default).
        delays: Mutex<HashMap<Stmt, std::time::Duration>>,
        /// Every statement run, with its values, in order (the commit as `InsertEvent`).
        pub log: Mutex<Vec<(Stmt, Row)>>,
    }

    /// Computes an answer from a statement's values.
    type Responder = Box<dyn Fn(&Row) -> Answer + Send + Sync>;

    impl FakeCluster {
        /// `stmt` answers `answer` once (after earlier queued answers).
        pub fn then(&self, stmt: Stmt, answer: Answer) -> &Self {
            let mut queued = self.queued.lock().unwrap();
            queued.entry(stmt).or_default().push_back(answer);
            self
        }

        /// `stmt` answers `answer` whenever nothing is queued for it.
        pub fn always(&self, stmt: Stmt, answer: Answer) -> &Self {
            self.always.lock().unwrap().insert(stmt, answer);
            self
        }

        /// `stmt` answers what `respond` makes of its values (when nothing is queued).
        pub fn respond(
            &self,
            stmt: Stmt,
            respond: impl Fn(&Row) -> Answer + Send + Sync + 'static,
        ) -> &Self {
            self.computed
                .lock()
                .unwrap()
                .insert(stmt, Box::new(respond));
            self
        }

        /// `stmt` answers `delay` after it was run, like a slow replica or a request that
        /// waits out its timeout (its answer is chosen when it is run).
        pub fn slow(&self, stmt: Stmt, delay: std::time::Duration) -> &Self {
            self.delays.lock().unwrap().insert(stmt, delay);
            self
        }

        /// How many times `stmt` ran.
        pub fn count(&self, stmt: Stmt) -> usize {
            self.log
                .lock()
                .unwrap()
                .iter()
                .filter(|(s, _)| *s == stmt)
                .count()
        }

        /// The values `stmt` ran with, each time.
        pub fn values(&self, stmt: Stmt) -> Vec<Row> {
            let log = self.log.lock().unwrap();
            log.iter()
                .filter(|(s, _)| *s == stmt)
                .map(|(_, v)| v.clone())
                .collect()
        }

        fn answer(&self, stmt: Stmt, values: Row) -> Answer {
            self.log.lock().unwrap().push((stmt, values.clone()));
            let queued = self
                .queued
                .lock()
                .unwrap()
                .get_mut(&stmt)
                .and_then(VecDeque::pop_front);
            if queued.is_none()
                && let Some(respond) = self.computed.lock().unwrap().get(&stmt)
            {
                return respond(&values);
            }
            queued.unwrap_or_else(|| {
                let always = self.always.lock().unwrap().get(&stmt).cloned();
                // By default reads find nothing and conditional writes apply.
                always.unwrap_or_else(|| match stmt.cql("ks").contains(" IF ") {
                    true => applied(true),
                    false => Ok(Vec::new()),
                })
            })
        }
    }

    /// The answer of a lightweight transaction.
    pub fn applied(applied: bool) -> Answer {
        Ok(vec![vec![Some(CqlValue::Boolean(applied))]])
    }

    /// A timeout, as the store sees one.
    pub fn timeout() -> Answer {
        Err(StoreError::Unavailable(
            "request timed out (injected)".into(),
        ))
    }

    #[async_trait]
    impl Cluster for FakeCluster {
        async fn run(&self, stmt: Stmt, values: Row) -> Result<Vec<Row>, StoreError> {
            let answer = self.answer(stmt, values);
            let delay = self.delays.lock().unwrap().get(&stmt).copied();
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            answer
        }

        async fn commit(&self, order: Row, event: Row) -> Result<Vec<Row>, StoreError> {
            self.log.lock().unwrap().push((Stmt::SaveOrder, order));
            self.answer(Stmt::InsertEvent, event)
        }
    }
}
