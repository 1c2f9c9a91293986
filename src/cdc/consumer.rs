//! The `scylla-cdc` consumer: one per stream, each handing new outbox events to the
//! [`Outlet`]. A publish failure never becomes an error here (an error from `consume_cdc`
//! stops every stream reader); a row that cannot be decoded is logged and skipped, since
//! reading it again cannot help.

use super::decode::{CdcColumns, decode};
use super::outlet::Outlet;
use async_trait::async_trait;
use scylla_cdc::consumer::{CDCRow, Consumer, ConsumerFactory};
use std::sync::Arc;

/// Makes a consumer for every CDC stream.
pub struct OutboxConsumerFactory {
    /// Shared by every stream's consumer.
    pub outlet: Arc<Outlet>,
}

#[async_trait]
impl ConsumerFactory for OutboxConsumerFactory {
    async fn new_consumer(&self) -> Box<dyn Consumer> {
        Box::new(OutboxConsumer {
            outlet: Arc::clone(&self.outlet),
        })
    }
}

/// Consumes the rows of one stream, in order.
struct OutboxConsumer {
    outlet: Arc<Outlet>,
}

#[async_trait]
impl Consumer for OutboxConsumer {
    async fn consume_cdc(&mut self, row: CDCRow<'_>) -> anyhow::Result<()> {
        match decode(&row.operation, &CdcColumns(&row)) {
            Ok(Some(event)) => Ok(self.outlet.deliver(event).await?),
            Ok(None) => Ok(()),
            Err(error) => {
                tracing::error!(%error, time = %row.time, "skipping a CDC row that is not a valid outbox event");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdc::decode::tests::{event_columns, log_row, log_schema};
    use crate::publish::Encoder;
    use crate::publish::faults::{Fault, FaultInjector};
    use crate::publish::local::{LocalLogPublisher, TopicLog};

    use crate::resilience::Resilience;
    use crate::resilience::breaker::CircuitBreaker;

    use crate::store::DeadLetterStore;
    use crate::store::dead_letters::DeadLetterCounts;
    use crate::store::sqlite::{SqliteOptions, SqliteStore, Synchronous};
    use scylla::value::CqlValue;
    use scylla_cdc::consumer::OperationType;

    /// A consumer publishing into an embedded store's topic log behind a fault injector.
    fn consumer(
        dir: &std::path::Path,
    ) -> (Box<OutboxConsumer>, Arc<SqliteStore>, Arc<FaultInjector>) {
        let store = Arc::new(
            SqliteStore::open(&SqliteOptions {
                data_dir: dir.to_path_buf(),
                synchronous: Synchronous::Normal,
                max_batch: 16,
                queue_capacity: 16,
                readers: 1,
            })
            .unwrap(),
        );
        let faults = Arc::new(FaultInjector::new(Arc::new(LocalLogPublisher::new(
            store.clone(),
        ))));
        let outlet = Outlet {
            store: store.clone(),
            publisher: faults.clone(),
            encoder: Encoder::default(),
            resilience: Resilience::new(
                Default::default(),
                Arc::new(CircuitBreaker::new(Default::default())),
            ),
            telemetry: Default::default(),
            stop: Default::default(),
            suspension: crate::relay::suspension::Suspension::default().watch(),
        };
        let consumer = Box::new(OutboxConsumer {
            outlet: Arc::new(outlet),
        });
        (consumer, store, faults)
    }

    async fn published(store: &SqliteStore) -> u64 {
        store
            .topics()
            .await
            .unwrap()
            .first()
            .map_or(0, |t| t.messages)
    }

    #[tokio::test]
    async fn inserts_are_published_and_other_rows_pass_by() {
        let dir = tempfile::tempdir().unwrap();
        let (mut consumer, store, _) = consumer(dir.path());
        let (names, values) = event_columns();
        let schema = log_schema(&names);
        let update = log_row(&schema, OperationType::RowUpdate, values.clone());
        consumer.consume_cdc(update).await.unwrap();
        assert_eq!(published(&store).await, 0);
        let insert = log_row(&schema, OperationType::RowInsert, values);
        consumer.consume_cdc(insert).await.unwrap();
        assert_eq!(published(&store).await, 1);
    }

    #[tokio::test]
    async fn neither_a_broken_row_nor_a_refused_publish_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (mut consumer, store, faults) = consumer(dir.path());
        let (names, mut values) = event_columns();
        let schema = log_schema(&names);
        let broken = {
            let mut values = values.clone();
            values[1] = Some(CqlValue::Text("not a uuid".into()));
            log_row(&schema, OperationType::RowInsert, values)
        };
        consumer.consume_cdc(broken).await.unwrap();
        faults.set(Fault::Poison {
            event_type: Some("OrderCreated".into()),
            every_n: None,
        });
        values[0] = Some(CqlValue::BigInt(4243));
        let poisoned = log_row(&schema, OperationType::RowInsert, values);
        consumer.consume_cdc(poisoned).await.unwrap();
        assert_eq!(published(&store).await, 0);
        let counts: DeadLetterCounts = store.dead_letter_counts().await.unwrap();
        assert_eq!(counts.pending, 1, "the poisoned event is dead-lettered");
    }
}
