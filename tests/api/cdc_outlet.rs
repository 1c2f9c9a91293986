//! The CDC relay's publish path (`cdc::outlet`), store-agnostic, so it runs here over the
//! embedded store and topic log with the fault injector: what the CDC consumers do with each
//! decoded event, without a ScyllaDB server.

use crate::relay::{RefusesKey, create, open_store};
use outbox::cdc::CdcError;
use outbox::cdc::outlet::Outlet;
use outbox::domain::StoredEvent;
use outbox::publish::Encoder;
use outbox::publish::faults::{Fault, FaultInjector};
use outbox::publish::local::{LocalLogPublisher, TopicLog};
use outbox::resilience::Resilience;

use outbox::resilience::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
use outbox::store::dead_letters::{DeadLetterFilter, DeadLetterKind};

use async_trait::async_trait;
use outbox::domain::DeliveryRecord;
use outbox::relay::suspension::Suspension;
use outbox::resilience::retry::{Jitter, RetryConfig};
use outbox::store::dead_letters::NewDeadLetter;
use outbox::store::sqlite::SqliteStore;
use outbox::store::{Applied, Backlog, DeadLetterStore, OrderStore, OutboxLog, StoreError};
use outbox::telemetry::Telemetry;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// An outlet over a fresh embedded store, its topic log behind a fault injector.
struct Bench {
    store: Arc<SqliteStore>,
    faults: Arc<FaultInjector>,
    outlet: Arc<Outlet>,
    stop: CancellationToken,
    /// Suspends the outlet.
    suspension: Suspension,
    _dir: tempfile::TempDir,
}

/// The embedded store's outbox log, whose next `failures` progress records time out.
struct FlakyLog {
    inner: Arc<SqliteStore>,
    failures: AtomicUsize,
}

#[async_trait]
impl OutboxLog for FlakyLog {
    async fn events_after(&self, after: u64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.events_after(after, limit).await
    }

    async fn checkpoint(&self, relay: &str) -> Result<u64, StoreError> {
        self.inner.checkpoint(relay).await
    }

    async fn record_progress(
        &self,
        relay: &str,
        position: u64,
        deliveries: Vec<(u64, DeliveryRecord)>,
        letters: Vec<NewDeadLetter>,
    ) -> Result<(), StoreError> {
        let fail = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Err(StoreError::Unavailable(
                "request timed out (injected)".into(),
            ));
        }
        (self.inner)
            .record_progress(relay, position, deliveries, letters)
            .await
    }

    async fn backlog(&self, checkpoint: u64) -> Result<Backlog, StoreError> {
        self.inner.backlog(checkpoint).await
    }

    async fn deliveries(
        &self,
        positions: Vec<u64>,
    ) -> Result<HashMap<u64, DeliveryRecord>, StoreError> {
        self.inner.deliveries(positions).await
    }

    fn commits(&self) -> watch::Receiver<u64> {
        self.inner.commits()
    }
}

impl Bench {
    async fn new(attempts: u32, breaker: BreakerConfig) -> Bench {
        Self::with_store_failures(attempts, breaker, 0).await
    }

    /// A bench whose next `failures` progress records time out.
    async fn with_store_failures(attempts: u32, breaker: BreakerConfig, failures: usize) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path()).await;
        let faults = Arc::new(FaultInjector::new(Arc::new(LocalLogPublisher::new(
            store.clone(),
        ))));
        let stop = CancellationToken::new();
        let suspension = Suspension::default();
        let outlet = Outlet {
            store: Arc::new(FlakyLog {
                inner: store.clone(),
                failures: AtomicUsize::new(failures),
            }),
            publisher: faults.clone(),
            encoder: Encoder::default(),
            resilience: Resilience::new(
                RetryConfig {
                    max_attempts: attempts,
                    initial_delay: Duration::from_millis(1),
                    max_delay: Duration::from_millis(5),
                    jitter: Jitter::None,
                    ..RetryConfig::default()
                },
                Arc::new(CircuitBreaker::new(breaker)),
            ),
            telemetry: Telemetry::default(),
            stop: stop.clone(),
            suspension: suspension.watch(),
        };
        Bench {
            store,
            faults,
            outlet: Arc::new(outlet),
            stop,
            suspension,
            _dir: dir,
        }
    }

    /// A committed event, as a CDC consumer would decode it.
    async fn event(&self) -> StoredEvent {
        match self.store.apply(create()).await.unwrap() {
            Applied::Written { event, .. } => event,
            Applied::Replayed { .. } => unreachable!("no idempotency key"),
        }
    }

    async fn dead_letters(&self) -> Vec<outbox::store::dead_letters::DeadLetter> {
        let all = DeadLetterFilter {
            limit: 10,
            ..Default::default()
        };
        self.store.dead_letters(all).await.unwrap()
    }
}

/// A breaker that stays closed through the tests' few failures.
fn patient() -> BreakerConfig {
    BreakerConfig {
        failure_threshold: 100,
        ..BreakerConfig::default()
    }
}

#[tokio::test]
async fn an_acknowledged_event_is_recorded_with_its_delivery() {
    let bench = Bench::new(3, patient()).await;
    let event = bench.event().await;
    bench.outlet.deliver(event.clone()).await.unwrap();
    let found = bench.store.deliveries(vec![event.position]).await.unwrap();
    assert_eq!(found[&event.position].offset, Some(0));
    assert_eq!(bench.store.topics().await.unwrap()[0].messages, 1);
    assert_eq!(bench.store.checkpoint("cdc").await.unwrap(), event.position);
}

/// Store timeouts while recording an outcome: the outlet waits and records again, so the
/// delivery ends with its outcome recorded (and the event published once), never with an
/// error that would tear down every stream reader.
#[tokio::test]
async fn store_timeouts_while_recording_are_waited_out_not_raised() {
    let bench = Bench::with_store_failures(3, patient(), 3).await;
    let event = bench.event().await;
    bench.outlet.deliver(event.clone()).await.unwrap();
    let found = bench.store.deliveries(vec![event.position]).await.unwrap();
    assert!(found.contains_key(&event.position));
    assert_eq!(bench.store.topics().await.unwrap()[0].messages, 1);
    assert_eq!(bench.store.checkpoint("cdc").await.unwrap(), event.position);
    // The same for a dead letter.
    let bench = Bench::with_store_failures(3, patient(), 2).await;
    let poisoned = bench.event().await;
    bench.faults.set(Fault::Poison {
        event_type: Some("OrderCreated".into()),
        every_n: None,
    });
    bench.outlet.deliver(poisoned.clone()).await.unwrap();
    assert_eq!(bench.dead_letters().await[0].failure.event, poisoned);
}

#[tokio::test]
async fn a_poisoned_event_is_dead_lettered_and_the_next_one_goes_through() {
    let bench = Bench::new(3, patient()).await;
    let (poisoned, next) = (bench.event().await, bench.event().await);
    bench.faults.set(Fault::Poison {
        event_type: Some("OrderCreated".into()),
        every_n: None,
    });
    bench.outlet.deliver(poisoned.clone()).await.unwrap();
    bench.faults.set(Fault::None {});
    bench.outlet.deliver(next.clone()).await.unwrap();
    let letters = bench.dead_letters().await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].failure.event, poisoned);
    assert_eq!(letters[0].failure.kind, DeadLetterKind::Permanent);
    let delivered = bench.store.deliveries(vec![next.position]).await.unwrap();
    assert!(delivered.contains_key(&next.position));
}

/// An outage with a breaker that will not open for a long time: the outlet retries through
/// all its attempts and beyond, and never dead-letters the event; once the sink is back, it
/// is delivered.
#[tokio::test]
async fn an_outage_is_retried_past_every_attempt_and_never_dead_lettered() {
    let bench = Bench::new(3, patient()).await;
    let event = bench.event().await;
    bench.faults.set(Fault::Down {});
    let outlet = Arc::clone(&bench.outlet);
    let delivery = tokio::spawn({
        let event = event.clone();
        async move { outlet.deliver(event).await }
    });
    let m = Arc::clone(&bench.outlet.telemetry.metrics);
    crate::helpers::eventually("ten retries, three times the attempts", || {
        let m = Arc::clone(&m);
        async move { m.retry_attempts.with_label_values(&["publish"]).get() >= 10 }
    })
    .await;
    assert!(
        bench.dead_letters().await.is_empty(),
        "an outage is no poison"
    );
    assert_eq!(m.retry_failure.with_label_values(&["publish"]).get(), 0);
    bench.faults.set(Fault::None {});
    delivery.await.unwrap().unwrap();
    assert!(bench.dead_letters().await.is_empty());
    let found = bench.store.deliveries(vec![event.position]).await.unwrap();
    assert!(found.contains_key(&event.position));
    assert_eq!(m.retry_success.with_label_values(&["publish"]).get(), 1);
}

/// Transient poison: while other streams' events go through the same sink, an event that
/// keeps failing is dead-lettered once it has failed its attempts with the sink taking
/// messages sent after it.
#[tokio::test]
async fn an_event_that_keeps_failing_while_other_streams_pass_is_dead_lettered() {
    let bench = Bench::new(3, patient()).await;
    let victim = bench.event().await;
    let sink = Arc::new(RefusesKey {
        inner: LocalLogPublisher::new(bench.store.clone()),
        key: victim.envelope.aggregate_id.to_string(),
    });
    let outlet = Arc::new(Outlet {
        store: bench.store.clone(),
        publisher: sink,
        encoder: bench.outlet.encoder.clone(),
        resilience: bench.outlet.resilience.clone(),
        telemetry: Telemetry::default(),
        stop: bench.outlet.stop.clone(),
        suspension: bench.outlet.suspension.clone(),
    });
    let poisoned = tokio::spawn({
        let (outlet, victim) = (Arc::clone(&outlet), victim.clone());
        async move { outlet.deliver(victim).await }
    });
    // Another stream keeps publishing until the victim's delivery ends.
    let mut others = 0;
    while !poisoned.is_finished() {
        outlet.deliver(bench.event().await).await.unwrap();
        others += 1;
        assert!(others < 1000, "the victim was never dead-lettered");
    }
    poisoned.await.unwrap().unwrap();
    let letters = bench.dead_letters().await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].failure.event, victim);
    assert_eq!(letters[0].failure.kind, DeadLetterKind::RetriesExhausted);
    assert!(letters[0].failure.failures >= 3);
    let m = &outlet.telemetry.metrics;
    assert_eq!(m.retry_failure.with_label_values(&["publish"]).get(), 1);
}

#[tokio::test]
async fn while_the_breaker_is_open_the_outlet_waits_and_delivers_once_the_sink_is_back() {
    let breaker = BreakerConfig {
        failure_threshold: 2,
        open_timeout: Duration::from_millis(200),
        half_open_max_calls: 1,
        success_threshold: 1,
    };
    let bench = Bench::new(3, breaker).await;
    let event = bench.event().await;
    bench.faults.set(Fault::Down {});
    let outlet = Arc::clone(&bench.outlet);
    let delivery = tokio::spawn({
        let event = event.clone();
        async move { outlet.deliver(event).await }
    });
    let breaker = Arc::clone(&bench.outlet.resilience.breaker);
    crate::helpers::eventually("the breaker opens", || {
        let breaker = Arc::clone(&breaker);
        async move { breaker.state() == BreakerState::Open }
    })
    .await;
    assert!(
        bench.dead_letters().await.is_empty(),
        "an outage is no poison"
    );
    bench.faults.set(Fault::None {});
    delivery.await.unwrap().unwrap();
    assert!(bench.dead_letters().await.is_empty());
    let found = bench.store.deliveries(vec![event.position]).await.unwrap();
    assert!(found.contains_key(&event.position));
    let m = &bench.outlet.telemetry.metrics;
    assert_eq!(m.retry_success.with_label_values(&["publish"]).get(), 1);
}

#[tokio::test]
async fn a_stop_ends_a_wait_for_the_sink_without_an_outcome() {
    let breaker = BreakerConfig {
        failure_threshold: 1,
        open_timeout: Duration::from_secs(600),
        ..BreakerConfig::default()
    };
    let bench = Bench::new(3, breaker).await;
    let event = bench.event().await;
    bench.faults.set(Fault::Down {});
    let outlet = Arc::clone(&bench.outlet);
    let delivery = tokio::spawn(async move { outlet.deliver(event).await });
    let breaker = Arc::clone(&bench.outlet.resilience.breaker);
    crate::helpers::eventually("the breaker opens", || {
        let breaker = Arc::clone(&breaker);
        async move { breaker.state() == BreakerState::Open }
    })
    .await;
    bench.stop.cancel();
    assert!(matches!(delivery.await.unwrap(), Err(CdcError::Stopped)));
    assert!(bench.dead_letters().await.is_empty());
}

#[tokio::test]
async fn a_suspended_outlet_sends_nothing_until_resumed() {
    let bench = Bench::new(3, patient()).await;
    let event = bench.event().await;
    bench.suspension.suspend();
    let outlet = Arc::clone(&bench.outlet);
    let mut delivery = tokio::spawn(async move { outlet.deliver(event).await });
    // Unheld, this delivery takes milliseconds; held, it has not finished after 300 ms and
    // nothing reached the topic log.
    let waited = tokio::time::timeout(Duration::from_millis(300), &mut delivery).await;
    assert!(waited.is_err(), "the held outlet delivered");
    assert!(bench.store.topics().await.unwrap().is_empty());
    bench.suspension.resume();
    delivery.await.unwrap().unwrap();
    assert_eq!(bench.store.topics().await.unwrap()[0].messages, 1);
}
