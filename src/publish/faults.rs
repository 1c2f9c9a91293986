//! Fault injection: a publisher wrapper that fails, slows down or poisons publishes on
//! request (`POST /api/admin/faults`), so operators and tests can watch retries, the circuit
//! breaker and the dead letter queue at work against any sink.

use super::{
    ConsumerGroups, Message, Outcomes, PartitionOffsets, Pending, PublishError, Publisher,
};
use async_trait::async_trait;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use app::dto::Fault;

/// Wraps a sink; with [`Fault::None`] it adds nothing but a read lock.
pub struct FaultInjector {
    inner: Arc<dyn Publisher>,
    fault: RwLock<Fault>,
    /// Messages seen while poisoning, for `every_n`.
    seen: AtomicU64,
}

impl FaultInjector {
    pub fn new(inner: Arc<dyn Publisher>) -> Self {
        Self {
            inner,
            fault: RwLock::new(Fault::default()),
            seen: AtomicU64::new(0),
        }
    }

    pub fn fault(&self) -> Fault {
        self.fault
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Sets the fault (validate it first); `every_n` counts from this moment.
    pub fn set(&self, fault: Fault) {
        tracing::warn!(?fault, "fault injection changed");
        self.seen.store(0, Ordering::SeqCst);
        *self
            .fault
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fault;
    }

    /// Sends the unpoisoned messages and fails the poisoned ones, keeping the order.
    async fn poison(
        &self,
        batch: Vec<Message>,
        event_type: Option<&str>,
        every_n: Option<u64>,
    ) -> Pending {
        let poisoned: Vec<bool> = batch
            .iter()
            .map(|m| {
                let n = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
                let by_type = event_type.is_some_and(|t| m.event_type == t);
                let by_count = every_n.is_some_and(|every| n.is_multiple_of(every));
                by_type || by_count
            })
            .collect();
        let clean: Vec<Message> = batch
            .into_iter()
            .zip(&poisoned)
            .filter_map(|(m, p)| (!*p).then_some(m))
            .collect();
        let sent = self.inner.send(clean).await;
        Box::pin(async move {
            let mut published = sent.await.into_iter();
            poisoned
                .iter()
                .map(|p| {
                    if *p {
                        Err(PublishError::permanent(
                            "simulated poison message (fault injection)",
                        ))
                    } else {
                        published.next().unwrap_or_else(|| {
                            Err(PublishError::unanswered("the sink reported no outcome"))
                        })
                    }
                })
                .collect()
        })
    }
}

#[async_trait]
impl Publisher for FaultInjector {
    async fn publish(&self, batch: &[Message]) -> Outcomes {
        self.send(batch.to_vec()).await.await
    }

    async fn send(&self, batch: Vec<Message>) -> Pending {
        match self.fault() {
            Fault::None {} => self.inner.send(batch).await,
            Fault::Down {} => {
                let down = batch
                    .iter()
                    .map(|_| {
                        Err(PublishError::transient(
                            "simulated outage: the sink is down (fault injection)",
                        ))
                    })
                    .collect();
                Box::pin(std::future::ready(down))
            }
            Fault::Slow { latency_ms } => {
                tokio::time::sleep(Duration::from_millis(latency_ms)).await;
                self.inner.send(batch).await
            }
            Fault::Poison {
                event_type,
                every_n,
            } => self.poison(batch, event_type.as_deref(), every_n).await,
        }
    }

    async fn probe(&self) -> Result<(), PublishError> {
        match self.fault() {
            Fault::Down {} => Err(PublishError::transient(
                "simulated outage: the sink is down (fault injection)",
            )),
            _ => self.inner.probe().await,
        }
    }

    async fn offsets(&self) -> Option<Result<Vec<PartitionOffsets>, PublishError>> {
        self.inner.offsets().await
    }

    async fn consumer_groups(&self) -> Option<Result<ConsumerGroups, PublishError>> {
        self.inner.consumer_groups().await
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn close(&self) {
        self.inner.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::{Delivery, FailureKind};
    use std::sync::Mutex;

    /// Accepts everything and remembers what it got.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    #[async_trait]
    impl Publisher for Recorder {
        async fn publish(&self, batch: &[Message]) -> Vec<Result<Delivery, PublishError>> {
            let mut got = self.0.lock().unwrap();
            batch
                .iter()
                .map(|m| {
                    got.push(m.key.clone());
                    Ok(Delivery {
                        topic: m.topic.clone(),
                        partition: None,
                        offset: None,
                    })
                })
                .collect()
        }

        fn name(&self) -> &'static str {
            "recorder"
        }
    }

    fn message(key: &str, event_type: &'static str) -> Message {
        Message {
            topic: "t".into(),
            key: key.into(),
            value: "{}".into(),
            headers: vec![("event_type", event_type.into())],
            event_id: uuid::Uuid::now_v7(),
            event_type,
        }
    }

    fn kinds(results: &[Result<Delivery, PublishError>]) -> Vec<Option<FailureKind>> {
        results
            .iter()
            .map(|r| r.as_ref().err().map(|e| e.kind))
            .collect()
    }

    #[tokio::test]
    async fn down_fails_everything_transiently_and_none_passes_through() {
        let sink = Arc::new(Recorder::default());
        let faults = FaultInjector::new(sink.clone());
        let batch = [message("a", "x"), message("b", "x")];
        faults.set(Fault::Down {});
        let results = faults.publish(&batch).await;
        assert_eq!(kinds(&results), [Some(FailureKind::Transient); 2]);
        assert!(sink.0.lock().unwrap().is_empty());
        faults.set(Fault::None {});
        assert_eq!(kinds(&faults.publish(&batch).await), [None, None]);
        assert_eq!(*sink.0.lock().unwrap(), ["a", "b"]);
    }

    #[tokio::test]
    async fn poison_fails_matching_messages_permanently_and_keeps_the_rest_in_order() {
        let sink = Arc::new(Recorder::default());
        let faults = FaultInjector::new(sink.clone());
        faults.set(Fault::Poison {
            event_type: Some("bad".into()),
            every_n: None,
        });
        let batch = [message("a", "ok"), message("b", "bad"), message("c", "ok")];
        let results = faults.publish(&batch).await;
        assert_eq!(kinds(&results), [None, Some(FailureKind::Permanent), None]);
        assert_eq!(*sink.0.lock().unwrap(), ["a", "c"]);

        faults.set(Fault::Poison {
            event_type: None,
            every_n: Some(2),
        });
        let results = faults.publish(&batch).await;
        assert_eq!(kinds(&results), [None, Some(FailureKind::Permanent), None]);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_adds_its_latency() {
        let faults = FaultInjector::new(Arc::new(Recorder::default()));
        faults.set(Fault::Slow { latency_ms: 250 });
        let start = tokio::time::Instant::now();
        faults.publish(&[message("a", "x")]).await;
        assert_eq!(start.elapsed(), Duration::from_millis(250));
    }

    #[test]
    fn settings_are_validated() {
        assert!(Fault::Slow { latency_ms: 0 }.validate().is_err());
        assert!(Fault::Slow { latency_ms: 60_001 }.validate().is_err());
        assert!(Fault::Slow { latency_ms: 10 }.validate().is_ok());
        let poison = |event_type: Option<&str>, every_n| Fault::Poison {
            event_type: event_type.map(str::to_string),
            every_n,
        };
        assert!(poison(None, None).validate().is_err());
        assert!(poison(None, Some(0)).validate().is_err());
        assert!(poison(Some(""), None).validate().is_err());
        assert!(poison(Some("order_cancelled"), None).validate().is_ok());
        assert!(Fault::Down {}.validate().is_ok());
    }
}
