//! The relay against the embedded topic log: every committed event arrives, in per-key
//! version order, with its headers; checkpoints survive restarts; failures never skip events.

use crate::helpers::{TestApp, eventually, spawn_app, spawn_app_with};
use crate::topic_check::{Consumed, TOPIC, assert_topic_holds_outbox};
use app::dto::{TopicMessageDto, TopicMessagesDto};
use async_trait::async_trait;
use outbox::domain::{NewOrder, RawItem};
use outbox::publish::local::{LocalLogPublisher, TopicLog};
use outbox::publish::{Delivery, Encoder, Message, PublishError, Publisher};
use outbox::relay::{Batching, Outcome, Relay};
use outbox::resilience::Resilience;
use outbox::resilience::breaker::{BreakerConfig, CircuitBreaker};
use outbox::resilience::retry::{Jitter, RetryConfig};
use outbox::store::sqlite::SqliteStore;
use outbox::store::{Command, DeadLetterStore, OrderStore, OutboxLog, RetentionStore};
use reqwest::StatusCode;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Every message of the order topic, read through the API.
async fn topic_messages(app: &TestApp) -> Vec<TopicMessageDto> {
    let mut all = Vec::new();
    let mut from = 0;
    loop {
        let path = format!("/api/topics/{TOPIC}/messages?from_offset={from}&limit=1000");
        let response = app.get(&path).await;
        if response.status() == StatusCode::NOT_FOUND {
            return all; // the topic does not exist yet
        }
        let page: TopicMessagesDto = response.json().await.expect("a page of messages");
        if page.messages.is_empty() {
            return all;
        }
        all.extend(page.messages);
        from = page.next_offset;
    }
}

/// Creates orders and changes some of them; returns how many events that made.
pub async fn write_some(app: &TestApp, orders: usize) -> usize {
    let mut events = 0;
    for i in 0..orders {
        let id = app.create_order_id(&[&format!("R-{i}")]).await;
        events += 1;
        if i % 3 == 0 {
            let items = json!([{"sku": "R-X", "quantity": 1, "unit_price_cents": 5}]);
            assert_eq!(
                app.replace_items(&id, 1, items).await.status(),
                StatusCode::OK
            );
            assert_eq!(app.cancel(&id, 2, "test").await.status(), StatusCode::OK);
            events += 2;
        }
    }
    events
}

/// The topic holds exactly the outbox, once each, in commit order, keyed and headed correctly.
pub async fn assert_topic_matches_outbox(app: &TestApp, expected: usize) {
    let messages: Vec<Consumed> = topic_messages(app)
        .await
        .into_iter()
        .map(|m| Consumed {
            partition: 0,
            offset: m.offset,
            key: m.key,
            value: m.value,
            headers: m.headers.into_iter().collect(),
        })
        .collect();
    assert_eq!(messages.len(), expected);
    let duplicates = assert_topic_holds_outbox(&app.db_path(), &messages);
    assert!(duplicates.is_empty(), "published twice: {duplicates:?}");
    // The embedded log has one partition, appended in commit order.
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    let mut stmt = conn
        .prepare("SELECT event_id FROM outbox ORDER BY position")
        .unwrap();
    let in_commit_order: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (offset, (m, event_id)) in messages.iter().zip(&in_commit_order).enumerate() {
        assert_eq!(m.offset, offset as i64);
        assert_eq!(m.event_id(), event_id, "offset {offset} is in commit order");
    }
}

pub async fn drained(app: &TestApp, expected: usize) {
    eventually("every event is on the topic", || async {
        topic_messages(app).await.len() >= expected
    })
    .await;
}

#[tokio::test]
async fn streaming_mode_publishes_every_event_in_order() {
    let app = spawn_app().await;
    let expected = write_some(&app, 30).await;
    drained(&app, expected).await;
    assert_topic_matches_outbox(&app, expected).await;
    let topics = app.get_json("/api/topics").await;
    assert_eq!(
        topics,
        json!([{"topic": TOPIC, "first_offset": 0, "messages": expected, "next_offset": expected}])
    );
}

#[tokio::test]
async fn polling_mode_publishes_every_event_in_order() {
    let app = spawn_app_with(&["--relay-mode", "polling", "--poll-interval", "50ms"]).await;
    let expected = write_some(&app, 30).await;
    drained(&app, expected).await;
    assert_topic_matches_outbox(&app, expected).await;
}

#[tokio::test]
async fn the_order_page_shows_where_each_event_went() {
    let app = spawn_app().await;
    let id = app.create_order_id(&["D-1"]).await;
    eventually("the event is published", || async {
        app.order_detail(&id).await.events[0].delivery.is_some()
    })
    .await;
    let detail = app.order_detail(&id).await;
    let delivery = detail.events[0].delivery.clone().expect("published");
    assert_eq!(delivery.topic, TOPIC);
    assert_eq!((delivery.partition, delivery.offset), (Some(0), Some(0)));
    assert!(delivery.latency_ms >= 0);
    let html = app
        .get(&format!("/orders/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("published") && html.contains(TOPIC),
        "the page shows the delivery"
    );
}

#[tokio::test]
async fn topic_reads_validate_their_input() {
    let app = spawn_app().await;
    app.create_order_id(&["T-1"]).await;
    drained(&app, 1).await;
    for query in [
        "from_offset=-1",
        "limit=0",
        "limit=1001",
        "limit=x",
        "from_offset=abc",
    ] {
        let r = app
            .get(&format!("/api/topics/{TOPIC}/messages?{query}"))
            .await;
        crate::helpers::expect_error(r, StatusCode::BAD_REQUEST, "invalid_query").await;
    }
    let r = app.get("/api/topics/no.such.topic/messages").await;
    crate::helpers::expect_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let past_the_end: TopicMessagesDto = app
        .get_ok(&format!("/api/topics/{TOPIC}/messages?from_offset=5"))
        .await;
    assert!(past_the_end.messages.is_empty());
    assert_eq!(past_the_end.end_offset, 1);
}

// ----- The step function, driven directly -----

pub fn create() -> Command {
    let items = [RawItem {
        sku: "S".into(),
        quantity: 1,
        unit_price_cents: 1,
    }];
    Command::Create {
        order: NewOrder::parse("0193a5e0-7d1c-7b3a-9c4e-2f5d6a7b8c9d", &items).unwrap(),
        idempotency_key: None,
    }
}

pub async fn open_store(dir: &std::path::Path) -> Arc<SqliteStore> {
    let config = crate::helpers::test_config(dir, &[]);
    Arc::new(SqliteStore::open(&config.sqlite()).unwrap())
}

/// A store in `dir` holding `orders` new orders, one `OrderCreated` event each.
pub async fn store_with_orders(dir: &std::path::Path, orders: usize) -> Arc<SqliteStore> {
    let store = open_store(dir).await;
    for _ in 0..orders {
        store.apply(create()).await.unwrap();
    }
    store
}

/// What a step returns that acknowledged `count` events, dead-lettered none, and moved the
/// checkpoint to `checkpoint`.
pub fn published(count: usize, checkpoint: u64) -> Outcome {
    Outcome::Published {
        count,
        dead_lettered: 0,
        checkpoint,
    }
}

/// A relay over `store` and `sink` with [`resilience`] and standalone telemetry.
pub async fn relay_over(
    store: Arc<SqliteStore>,
    sink: Arc<dyn Publisher>,
    resilience: Resilience,
    batching: Batching,
) -> Relay {
    let telemetry = outbox::telemetry::Telemetry::default();
    Relay::resume(
        store,
        sink,
        Encoder::default(),
        resilience,
        telemetry,
        batching,
    )
    .await
    .expect("the relay resumes")
}

/// The default retry and breaker settings, without jitter.
pub fn resilience() -> Resilience {
    Resilience::new(
        RetryConfig {
            jitter: Jitter::None,
            ..RetryConfig::default()
        },
        Arc::new(CircuitBreaker::new(BreakerConfig::default())),
    )
}

#[tokio::test]
async fn a_restarted_relay_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_orders(dir.path(), 5).await;
    let publisher = Arc::new(LocalLogPublisher::new(store.clone()));
    let mut relay = relay_over(
        store.clone(),
        publisher.clone(),
        resilience(),
        Batching::serial(2),
    )
    .await;
    assert_eq!(relay.step().await.unwrap(), published(2, 2));
    drop(relay);
    drop(publisher);
    drop(store);

    // A new process on the same data: the checkpoint is where the last one left it.
    let store = open_store(dir.path()).await;
    let publisher = Arc::new(LocalLogPublisher::new(store.clone()));
    let mut relay = relay_over(
        store.clone(),
        publisher,
        resilience(),
        Batching::serial(100),
    )
    .await;
    assert_eq!(relay.checkpoint(), 2);
    assert_eq!(relay.step().await.unwrap(), published(3, 5));
    assert_eq!(relay.step().await.unwrap(), Outcome::Idle);
    let topics = store.topics().await.unwrap();
    assert_eq!(topics[0].messages, 5, "no event published twice");
}

/// A sink that fails the `fail_at`-th message it ever sees (counting from 0), once.
struct FlakySink {
    inner: LocalLogPublisher,
    seen: AtomicUsize,
    fail_at: usize,
}

impl FlakySink {
    /// Publishes to `store`'s embedded log, except the `fail_at`-th message.
    fn failing_at(store: &Arc<SqliteStore>, fail_at: usize) -> Arc<Self> {
        Arc::new(Self {
            inner: LocalLogPublisher::new(store.clone()),
            seen: AtomicUsize::new(0),
            fail_at,
        })
    }
}

#[async_trait]
impl Publisher for FlakySink {
    async fn publish(&self, batch: &[Message]) -> Vec<Result<Delivery, PublishError>> {
        let start = self.seen.fetch_add(batch.len(), Ordering::SeqCst);
        if (start..start + batch.len()).contains(&self.fail_at) {
            let ok = self.fail_at - start;
            let mut results = self.inner.publish(&batch[..ok]).await;
            results.extend(
                batch[ok..]
                    .iter()
                    .map(|_| Err(PublishError::transient("broker said no"))),
            );
            return results;
        }
        self.inner.publish(batch).await
    }

    fn name(&self) -> &'static str {
        "flaky"
    }
}

/// A sink that refuses every message of one aggregate (`key`) transiently, and takes the
/// rest, also those after it in a batch (as Kafka does with other partitions): the poison a
/// transient error can carry.
pub struct RefusesKey {
    pub inner: LocalLogPublisher,
    pub key: String,
}

#[async_trait]
impl Publisher for RefusesKey {
    async fn publish(&self, batch: &[Message]) -> Vec<Result<Delivery, PublishError>> {
        let mut results = Vec::new();
        for m in batch {
            if m.key == self.key {
                results.push(Err(PublishError::transient("record rejected, try again")));
            } else {
                results.extend(self.inner.publish(std::slice::from_ref(m)).await);
            }
        }
        results
    }

    fn name(&self) -> &'static str {
        "refuses-key"
    }
}

#[tokio::test]
async fn a_failed_publish_never_moves_the_checkpoint_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_orders(dir.path(), 6).await;
    let sink = FlakySink::failing_at(&store, 3);
    let mut relay = relay_over(store.clone(), sink, resilience(), Batching::serial(100)).await;
    match relay.step().await {
        Ok(Outcome::Retrying {
            position, attempt, ..
        }) => assert_eq!((position, attempt), (4, 1)),
        other => panic!("expected a retry, got {other:?}"),
    }
    assert_eq!(
        relay.checkpoint(),
        3,
        "acknowledged events before the failure are kept"
    );
    assert_eq!(
        store.checkpoint(outbox::store::RELAY_NAME).await.unwrap(),
        3
    );
    assert_eq!(relay.step().await.unwrap(), published(3, 6));
    let messages = store.read(TOPIC.into(), 0, 100).await.unwrap();
    let offsets: Vec<i64> = messages.iter().map(|m| m.offset).collect();
    assert_eq!(
        offsets,
        [0, 1, 2, 3, 4, 5],
        "nothing skipped, nothing doubled"
    );
}

/// The outbox positions of the messages on the embedded log's topic, in offset order.
async fn positions_on_topic(store: &SqliteStore) -> Vec<u64> {
    let events = store.events_after(0, 1000).await.unwrap();
    let messages = store.read(TOPIC.into(), 0, 1000).await.unwrap();
    messages
        .iter()
        .map(|m| {
            let id = m.headers.get("event_id").expect("an event_id header");
            events
                .iter()
                .find(|e| &e.envelope.event_id.to_string() == id)
                .expect("every message is an outbox event")
                .position
        })
        .collect()
}

#[tokio::test]
async fn a_pipelined_relay_sends_ahead_but_records_in_order_and_finishes_on_stop() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_orders(dir.path(), 5).await;
    let publisher = Arc::new(LocalLogPublisher::new(store.clone()));
    let pipelined = Batching { size: 2, depth: 2 };
    let mut relay = relay_over(store.clone(), publisher.clone(), resilience(), pipelined).await;
    assert_eq!(relay.step().await.unwrap(), published(2, 2));
    assert_eq!(
        positions_on_topic(&store).await,
        [1, 2, 3, 4],
        "the second batch is sent while the first is recorded"
    );
    assert_eq!(
        store.checkpoint(outbox::store::RELAY_NAME).await.unwrap(),
        2
    );

    // Stopping records the batch in flight: a new relay carries on after it.
    relay.finish().await.unwrap();
    assert_eq!(relay.checkpoint(), 4);
    drop(relay);
    let mut relay = relay_over(store.clone(), publisher, resilience(), pipelined).await;
    assert_eq!(relay.step().await.unwrap(), published(1, 5));
    assert_eq!(relay.step().await.unwrap(), Outcome::Idle);
    assert_eq!(positions_on_topic(&store).await, [1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn a_failure_in_a_pipelined_batch_drops_the_batches_behind_it_and_resends_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_orders(dir.path(), 6).await;
    // Messages are seen in batches of two: [1 2] [3 4] [5 6] ...; the 4th seen fails.
    let sink = FlakySink::failing_at(&store, 3);
    let pipelined = Batching { size: 2, depth: 2 };
    let mut relay = relay_over(store.clone(), sink, resilience(), pipelined).await;
    assert_eq!(relay.step().await.unwrap(), published(2, 2));
    // [5 6] goes out ahead; then [3 4] comes back with 4 failed.
    match relay.step().await.unwrap() {
        Outcome::Retrying {
            position, attempt, ..
        } => assert_eq!((position, attempt), (4, 1)),
        other => panic!("expected a retry, got {other:?}"),
    }
    assert_eq!(relay.checkpoint(), 3, "never past the failed event");
    assert_eq!(
        store.checkpoint(outbox::store::RELAY_NAME).await.unwrap(),
        3
    );
    // Everything after the failed event is sent again, in order, after it.
    let mut steps = 0;
    while relay.checkpoint() < 6 {
        relay.step().await.unwrap();
        steps += 1;
        assert!(steps < 10, "the relay does not get past the failure");
    }
    assert_eq!(relay.step().await.unwrap(), Outcome::Idle);
    assert_eq!(
        positions_on_topic(&store).await,
        [1, 2, 3, 5, 6, 4, 5, 6],
        "only the batch sent ahead of the failure is doubled"
    );
}

// ----- Retention -----

/// A pending dead letter keeps its own copy of the envelope, so it does not hold outbox
/// retention back: the events after it go, and the record still replays what it held.
#[tokio::test]
async fn a_pending_dead_letter_does_not_stop_outbox_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_orders(dir.path(), 3).await;
    let events = store.events_after(0, 10).await.unwrap();
    let name = outbox::store::RELAY_NAME;
    let poisoned = outbox::store::dead_letters::NewDeadLetter::new(
        events[0].clone(),
        PublishError::permanent("refused"),
        1,
        chrono::Utc::now(),
        chrono::Utc::now(),
    );
    store
        .record_progress(name, events[0].position, vec![], vec![poisoned])
        .await
        .unwrap();
    let publisher = Arc::new(LocalLogPublisher::new(store.clone()));
    let mut relay = relay_over(store.clone(), publisher, resilience(), Batching::serial(10)).await;
    assert_eq!(relay.step().await.unwrap(), published(2, 3));
    let future = chrono::Utc::now() + chrono::Duration::hours(1);
    assert_eq!(store.delete_published(name, future, 100).await.unwrap(), 3);
    assert!(store.events_after(0, 10).await.unwrap().is_empty());
    let page = store
        .dead_letters(outbox::store::dead_letters::DeadLetterFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page[0].failure.event, events[0],
        "the record keeps the whole event"
    );
}

/// Dead letters replayed or discarded longer ago than the retention go, with their attempts;
/// pending ones stay however old, and the counts follow.
#[tokio::test]
async fn retention_deletes_resolved_dead_letters_and_keeps_pending_ones() {
    use outbox::store::dead_letters::ReplayOutcome;
    use outbox::store::dead_letters::{DeadLetterFilter, DeadLetterStatus, NewDeadLetter};
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_orders(dir.path(), 3).await;
    let events = store.events_after(0, 10).await.unwrap();
    let now = chrono::Utc::now();
    let letters = events
        .iter()
        .map(|e| NewDeadLetter::new(e.clone(), PublishError::permanent("refused"), 1, now, now))
        .collect();
    let last = events[2].position;
    (store.record_progress(outbox::store::RELAY_NAME, last, vec![], letters))
        .await
        .unwrap();
    let all = DeadLetterFilter {
        limit: 10,
        ..Default::default()
    };
    let ids: Vec<i64> = store
        .dead_letters(all.clone())
        .await
        .unwrap()
        .iter()
        .map(|l| l.id)
        .collect();
    let failed = ReplayOutcome::Failed("still refused".into());
    store.record_replay(ids[0], failed).await.unwrap();
    store
        .discard_dead_letter(ids[0], "not needed".into())
        .await
        .unwrap();
    store
        .discard_dead_letter(ids[1], "not needed".into())
        .await
        .unwrap();
    // Resolved just now: not yet past a retention cutoff of an hour ago.
    let past = now - chrono::Duration::hours(1);
    assert_eq!(
        store.delete_resolved_dead_letters(past, 100).await.unwrap(),
        0
    );
    let future = now + chrono::Duration::hours(1);
    assert_eq!(
        store.delete_resolved_dead_letters(future, 1).await.unwrap(),
        1
    );
    assert_eq!(
        store
            .delete_resolved_dead_letters(future, 100)
            .await
            .unwrap(),
        1
    );
    let left = store.dead_letters(all).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(
        (left[0].id, left[0].status),
        (ids[2], DeadLetterStatus::Pending)
    );
    let counts = store.dead_letter_counts().await.unwrap();
    assert_eq!(
        (counts.pending, counts.replayed, counts.discarded),
        (1, 0, 0)
    );
    let db = dir.path().join(outbox::store::sqlite::DATABASE_FILE);
    assert_eq!(crate::helpers::count_rows(&db, "dead_letter_attempts"), 0);
}

#[tokio::test]
async fn retention_deletes_only_published_events_older_than_the_cutoff() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_orders(dir.path(), 5).await;
    let publisher = Arc::new(LocalLogPublisher::new(store.clone()));
    let mut relay = relay_over(store.clone(), publisher, resilience(), Batching::serial(3)).await;
    relay.step().await.unwrap(); // positions 1..=3 published, 4 and 5 pending
    let name = outbox::store::RELAY_NAME;
    let an_hour = chrono::Duration::hours(1);

    // Nothing is old enough yet.
    let past = chrono::Utc::now() - an_hour;
    assert_eq!(store.delete_published(name, past, 100).await.unwrap(), 0);
    // Everything is old enough, but only the published events go; in batches of `limit`.
    let future = chrono::Utc::now() + an_hour;
    assert_eq!(store.delete_published(name, future, 2).await.unwrap(), 2);
    assert_eq!(store.delete_published(name, future, 100).await.unwrap(), 1);
    assert_eq!(store.delete_published(name, future, 100).await.unwrap(), 0);
    let remaining: Vec<u64> = store
        .events_after(0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(remaining, [4, 5], "unpublished events are never deleted");
    assert!(store.deliveries(vec![1, 2, 3]).await.unwrap().is_empty());

    // New events continue the positions; the relay carries on where it was.
    store.apply(create()).await.unwrap();
    assert_eq!(relay.step().await.unwrap(), published(3, 6));
}

#[tokio::test]
async fn the_running_app_sweeps_published_events_past_retention() {
    let app = spawn_app_with(&["--outbox-retention", "0s", "--retention-interval", "20ms"]).await;
    let expected = write_some(&app, 6).await;
    drained(&app, expected).await;
    eventually("published events are swept", || async {
        app.count("outbox") == 0
    })
    .await;
    assert_eq!(app.count("orders"), 6, "orders themselves stay");
    assert_eq!(
        topic_messages(&app).await.len(),
        expected,
        "the topic keeps its messages"
    );
}

/// The embedded log's retention, by count and by age: the oldest go, offsets never repeat,
/// and the topic list reads the kept heads.
#[tokio::test]
async fn topic_log_retention_keeps_the_newest_and_moves_the_first_offset() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_orders(dir.path(), 10).await;
    let publisher = LocalLogPublisher::new(store.clone());
    let events = store.events_after(0, 100).await.unwrap();
    let encoder = Encoder::default();
    let messages: Vec<Message> = events.iter().map(|e| encoder.message(e)).collect();
    assert!(publisher.publish(&messages).await.iter().all(Result::is_ok));
    let past = chrono::Utc::now() - chrono::Duration::hours(1);
    // Only the count applies: 10 messages, keep 4, at most 5 deleted per call.
    assert_eq!(store.prune(past, 4, 5).await.unwrap(), 5);
    assert_eq!(store.prune(past, 4, 5).await.unwrap(), 1);
    assert_eq!(store.prune(past, 4, 5).await.unwrap(), 0);
    let topic = store.topic(TOPIC.into()).await.unwrap().unwrap();
    assert_eq!(
        (topic.messages, topic.first_offset, topic.next_offset),
        (4, 6, 10)
    );
    let kept: Vec<i64> = store
        .read(TOPIC.into(), 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|m| m.offset)
        .collect();
    assert_eq!(
        kept,
        [6, 7, 8, 9],
        "reading from before the first offset starts at it"
    );
    assert_eq!(store.topics().await.unwrap(), [topic]);
    // Offsets go on where they were; then age prunes everything older than the cutoff.
    assert!(
        publisher
            .publish(&messages[..2])
            .await
            .iter()
            .all(Result::is_ok)
    );
    assert_eq!(
        store
            .topic(TOPIC.into())
            .await
            .unwrap()
            .unwrap()
            .next_offset,
        12
    );
    let future = chrono::Utc::now() + chrono::Duration::hours(1);
    assert_eq!(store.prune(future, 100, 1000).await.unwrap(), 6);
    let topic = store.topic(TOPIC.into()).await.unwrap().unwrap();
    assert_eq!(
        (topic.messages, topic.first_offset, topic.next_offset),
        (0, 12, 12)
    );
}

#[tokio::test]
async fn the_running_app_keeps_each_topic_to_its_size() {
    let app = spawn_app_with(&[
        "--topic-log-max-messages",
        "5",
        "--retention-interval",
        "20ms",
    ])
    .await;
    let events = write_some(&app, 6).await;
    eventually("the topic keeps its newest five", || async {
        let topics: Vec<app::dto::TopicDto> = app.get_ok("/api/topics").await;
        topics.first().is_some_and(|t| {
            t.messages == 5 && t.next_offset == events as i64 && t.first_offset == t.next_offset - 5
        })
    })
    .await;
}
