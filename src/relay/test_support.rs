//! Stand-ins for the unit tests of the relay, its supervisors and its gauges: an outbox log
//! whose reads answer as a test scripts them, and a sink that is never reached.

use crate::domain::{DeliveryRecord, StoredEvent};
use crate::publish::{Message, Outcomes, Publisher};
use crate::store::dead_letters::NewDeadLetter;
use crate::store::{Backlog, OutboxLog, StoreError};
use async_trait::async_trait;
use std::collections::HashMap;
use tokio::sync::watch;

/// What a scripted read answers, each time it is called.
pub type Answer<T> = Box<dyn Fn() -> Result<T, StoreError> + Send + Sync>;

/// An outbox log at checkpoint 0 whose `events_after` and `backlog` answer as scripted (by
/// default: nothing); writes succeed and change nothing.
pub struct ScriptedLog {
    pub events_after: Answer<Vec<StoredEvent>>,
    pub backlog: Answer<Backlog>,
}

impl Default for ScriptedLog {
    fn default() -> Self {
        Self {
            events_after: Box::new(|| Ok(Vec::new())),
            backlog: Box::new(|| Ok(Backlog::default())),
        }
    }
}

#[async_trait]
impl OutboxLog for ScriptedLog {
    async fn events_after(&self, _: u64, _: u32) -> Result<Vec<StoredEvent>, StoreError> {
        (self.events_after)()
    }

    async fn checkpoint(&self, _: &str) -> Result<u64, StoreError> {
        Ok(0)
    }

    async fn record_progress(
        &self,
        _: &str,
        _: u64,
        _: Vec<(u64, DeliveryRecord)>,
        _: Vec<NewDeadLetter>,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    async fn backlog(&self, _: u64) -> Result<Backlog, StoreError> {
        (self.backlog)()
    }

    async fn deliveries(&self, _: Vec<u64>) -> Result<HashMap<u64, DeliveryRecord>, StoreError> {
        Ok(HashMap::new())
    }

    fn commits(&self) -> watch::Receiver<u64> {
        watch::channel(0).1
    }
}

/// A sink the test never reaches.
pub struct Nowhere;

#[async_trait]
impl Publisher for Nowhere {
    async fn publish(&self, _: &[Message]) -> Outcomes {
        unreachable!("nothing to publish")
    }

    fn name(&self) -> &'static str {
        "nowhere"
    }
}
