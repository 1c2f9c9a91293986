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
