//! Resilience end to end: outages open the circuit breaker and pause the relay without
//! dead-lettering anything; poison events go to the dead letter queue while the rest flows;
//! dead letters are replayed (same `event_id`) or discarded. Against the embedded log and a
//! real tansu broker. Also the relay step's retry and dead-letter decisions, driven directly.

use crate::broker::{Broker, consume, topic_size};
use crate::helpers::{
    TestApp, eventually, eventually_within, expect_error, last_position, relay_checkpoint,
    spawn_app_with,
};
use crate::relay::{RefusesKey, assert_topic_matches_outbox, relay_over, resilience, write_some};
use crate::topic_check::assert_topic_holds_outbox;
use app::dto::{
    BreakerState, BulkReplayDto, BulkReplayRequest, DeadLetterCountsDto, DeadLetterDto,
    DeadLetterFilterDto, DeadLetterKind, DeadLetterPageDto, DeadLetterStatus, DiscardRequest,
    Fault, OrderPageDto, RelayMode, RelayModeDto, RelayState, ReplayAttemptOutcome, TopicDto,
    TopicMessagesDto,
};
use async_trait::async_trait;
use futures::StreamExt;
use outbox::publish::local::LocalLogPublisher;
use outbox::publish::{Delivery, Message, PublishError, Publisher};
use outbox::relay::Batching;
use outbox::relay::Outcome;
use outbox::resilience::Resilience;
use outbox::resilience::breaker::{BreakerConfig, CircuitBreaker};
use outbox::resilience::retry::{Jitter, RetryConfig};
use outbox::store::{DeadLetterStore, OrderStore, OutboxLog};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Quick retries and a short open breaker, so a test sees every state in seconds.
pub const FAST: [&str; 6] = [
    "--retry-initial-delay",
    "10ms",
    "--retry-max-delay",
    "50ms",
    "--breaker-open-timeout",
    "500ms",
];

/// How long the outages last.
const OUTAGE: Duration = Duration::from_secs(10);

/// Creates `orders` orders, 16 at a time, changing every fourth; returns the event count.
pub async fn write_many(app: &TestApp, orders: usize) -> usize {
    futures::stream::iter(0..orders)
        .map(|i| async move {
            let id = app.create_order_id(&[&format!("M-{i}")]).await;
            if i % 4 == 0 {
                let items = json!([{"sku": "M-X", "quantity": 3, "unit_price_cents": 7}]);
                assert_eq!(
                    app.replace_items(&id, 1, items).await.status(),
                    StatusCode::OK
                );
                2
            } else {
                1
            }
        })
        .buffer_unordered(16)
        .fold(0, |sum, n| async move { sum + n })
        .await
}

async fn breaker_state(app: &TestApp) -> BreakerState {
    app.relay_status().await.breaker.state
}

/// The breaker went closed → open → half-open → closed at least once, in that order.
async fn assert_breaker_tripped_and_recovered(app: &TestApp) {
    use BreakerState::{Closed, HalfOpen, Open};
    let s = app.relay_status().await;
    assert_eq!(s.breaker.state, Closed);
    let path: Vec<(BreakerState, BreakerState)> = s
        .breaker
        .transitions
        .iter()
        .map(|t| {
            assert!(t.at.ends_with('Z'));
            assert!(!t.reason.is_empty());
            (t.from, t.to)
        })
        .collect();
    assert_eq!(path.first(), Some(&(Closed, Open)), "{path:?}");
    assert!(path.contains(&(Open, HalfOpen)), "{path:?}");
    assert_eq!(path.last(), Some(&(HalfOpen, Closed)), "{path:?}");
}

/// Waits until every committed event is handled.
async fn caught_up(app: &TestApp) {
    let db = app.db_path();
    eventually_within(Duration::from_secs(60), "the relay caught up", || async {
        relay_checkpoint(&db) == last_position(&db)
    })
    .await;
}

/// (a) `down` for 10 s while 1,000 orders are written: the breaker opens, the relay pauses
/// with its checkpoint where it was, nothing is dead-lettered; after `none` everything
/// arrives once, in order per key.
async fn simulated_outage(app: &TestApp) -> usize {
    let before = write_some(app, 5).await;
    caught_up(app).await;
    let checkpoint = relay_checkpoint(&app.db_path());
    let started = Instant::now();
    app.set_fault(Fault::Down {}).await;
    let during = write_many(app, 1_000).await;
    eventually("the breaker opens", || async {
        breaker_state(app).await == BreakerState::Open
    })
    .await;
    let s = app.relay_status().await;
    assert_eq!(s.fault, Some(Fault::Down {}));
    assert!(s.pending >= during as u64);
    assert!(s.oldest_pending_age_ms.is_some_and(|age| age >= 0));
    assert!(
        s.last_error.is_some() || s.state == RelayState::Paused,
        "{s:?}"
    );
    // The outage lasts its full length; the relay keeps probing meanwhile.
    tokio::time::sleep(OUTAGE.saturating_sub(started.elapsed())).await;
    assert_eq!(
        relay_checkpoint(&app.db_path()),
        checkpoint,
        "nothing moves while the sink is down"
    );
    assert_eq!(
        app.count("dead_letters"),
        0,
        "an outage is no reason for the DLQ"
    );
    app.set_fault(Fault::None {}).await;
    caught_up(app).await;
    assert_breaker_tripped_and_recovered(app).await;
    let s = app.relay_status().await;
    assert_eq!(s.dead_letters, counts(0, 0, 0));
    assert_eq!(s.fault, None);
    assert_eq!(s.pending, 0);
    before + during
}

#[tokio::test]
async fn an_outage_of_the_embedded_log_pauses_the_relay_and_loses_nothing() {
    let app = spawn_app_with(&FAST).await;
    let expected = simulated_outage(&app).await;
    assert_topic_matches_outbox(&app, expected).await;
}

/// The application publishing to `broker`, with quick retries and a short ack timeout.
async fn kafka_app(broker: &Broker) -> TestApp {
    let extra = [&["--kafka-ack-timeout", "1000ms"][..], &FAST[..]].concat();
    crate::kafka::app_on(broker, "streaming", &extra).await
}

/// Every outbox event is on the broker's topic exactly once, in order per key.
async fn assert_broker_holds_outbox_once(app: &TestApp, broker: &Broker, expected: usize) {
    let size = topic_size(&broker.address).await;
    assert_eq!(size, expected, "each event once on the topic");
    let messages = consume(&broker.address, size).await;
    let duplicates = assert_topic_holds_outbox(&app.db_path(), &messages);
    assert!(duplicates.is_empty(), "published twice: {duplicates:?}");
}

/// The server starts and takes orders while Kafka is down; once the broker comes up the
/// relay publishes everything written meanwhile, each event once and in order.
#[tokio::test]
async fn starting_while_kafka_is_down_publishes_once_it_comes_up() {
    let mut broker = Broker::start().await;
    broker.kill().await;
    let app = kafka_app(&broker).await;
    let expected = write_many(&app, 40).await;
    assert_eq!(relay_checkpoint(&app.db_path()), 0, "nothing published yet");
    assert_eq!(app.count("dead_letters"), 0);
    broker.resume().await;
    caught_up(&app).await;
    assert_eq!(app.count("dead_letters"), 0);
    assert_broker_holds_outbox_once(&app, &broker, expected).await;
}

#[tokio::test]
async fn a_simulated_kafka_outage_pauses_the_relay_and_loses_nothing() {
    let broker = Broker::start().await;
    let app = kafka_app(&broker).await;
    let expected = simulated_outage(&app).await;
    assert_broker_holds_outbox_once(&app, &broker, expected).await;
}

/// (b) The real broker process is killed for 10 s while orders keep coming: the breaker
/// opens, nothing is dead-lettered, and once tansu is back every event arrives once.
#[tokio::test]
async fn a_real_broker_outage_under_load_pauses_the_relay_and_loses_nothing() {
    let mut broker = Broker::start().await;
    let app = kafka_app(&broker).await;
    let mut expected = write_some(&app, 5).await;
    caught_up(&app).await;
    let started = Instant::now();
    broker.kill().await;
    // Load throughout the outage: bursts of 50 orders, five times a second.
    while started.elapsed() < OUTAGE {
        expected += write_many(&app, 50).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Open, or half-open while a probe asks the dead broker.
    assert_ne!(breaker_state(&app).await, BreakerState::Closed);
    assert_eq!(app.count("dead_letters"), 0);
    broker.resume().await;
    caught_up(&app).await;
    assert_breaker_tripped_and_recovered(&app).await;
    assert_eq!(app.count("dead_letters"), 0);
    // The broker was killed with a produce request possibly written but not acknowledged;
    // tansu does not keep the idempotent producer's sequence state across such a crash, so
    // that one request may arrive twice, and batches the relay had sent ahead of a failed one
    // are sent again. Nothing is lost, and at most what the relay keeps in flight (two
    // batches of 500) repeats.
    let size = topic_size(&broker.address).await;
    let messages = consume(&broker.address, size).await;
    assert_eq!(messages.len(), size);
    // Every committed event arrived, in per-key order of first copies.
    assert_topic_holds_outbox(&app.db_path(), &messages);
    assert!(size - expected <= 1000, "{} extra copies", size - expected);
}

/// Orders with every third one cancelled; returns (events, cancellations).
async fn orders_with_cancellations(app: &TestApp, orders: usize) -> (usize, usize) {
    let mut events = 0;
    let mut cancelled = 0;
    for i in 0..orders {
        let id = app.create_order_id(&[&format!("P-{i}")]).await;
        events += 1;
        if i % 3 == 0 {
            assert_eq!(
                app.cancel(&id, 1, "poison test").await.status(),
                StatusCode::OK
            );
            events += 1;
            cancelled += 1;
        }
    }
    (events, cancelled)
}

/// Dead letters per status.
fn counts(pending: u64, replayed: u64, discarded: u64) -> DeadLetterCountsDto {
    DeadLetterCountsDto {
        pending,
        replayed,
        discarded,
    }
}

/// Poison for every event of `event_type`.
fn poison(event_type: &str) -> Fault {
    Fault::Poison {
        event_type: Some(event_type.into()),
        every_n: None,
    }
}

/// One page of the dead letter list at `query`.
async fn dead_letters(app: &TestApp, query: &str) -> DeadLetterPageDto {
    app.admin_get(&format!("/api/admin/dlq{query}")).await
}

/// An app whose sink refuses `OrderCancelled` events, after `orders` orders (every third one
/// cancelled) were handled; returns it with (events, cancellations).
async fn with_poisoned_cancellations(orders: usize) -> (TestApp, usize, usize) {
    let app = spawn_app_with(&FAST).await;
    app.set_fault(poison("OrderCancelled")).await;
    let (events, cancelled) = orders_with_cancellations(&app, orders).await;
    caught_up(&app).await;
    (app, events, cancelled)
}

/// (c) + (d): poisoned `OrderCancelled` events go to the DLQ (permanent: not retried) while
/// everything else is delivered; then they are replayed, one and in bulk, with their
/// original event ids.
#[tokio::test]
async fn poison_events_are_dead_lettered_and_replayed_with_their_event_ids() {
    let (app, events, cancelled) = with_poisoned_cancellations(12).await;
    let s = app.relay_status().await;
    assert_eq!(
        s.breaker.state,
        BreakerState::Closed,
        "poison is not an outage"
    );
    assert_eq!(s.dead_letters.pending, cancelled as u64);
    let items = dead_letters(&app, "?status=pending").await.items;
    assert_eq!(items.len(), cancelled);
    for d in &items {
        assert_eq!(d.event.event_type, "OrderCancelled");
        assert_eq!(d.error_kind, DeadLetterKind::Permanent);
        assert_eq!(d.failure_count, 1, "permanent failures are not retried");
        assert_eq!(d.status, DeadLetterStatus::Pending);
        assert_eq!(d.order_broken_for, d.event.aggregate_id);
        assert!(d.error_message.contains("poison"));
    }
    // Everything else went through, in order.
    let topics: Vec<TopicDto> = app.get_ok("/api/topics").await;
    assert_eq!(topics[0].messages, (events - cancelled) as u64);

    app.set_fault(Fault::None {}).await;
    // One by id.
    let first = &items[items.len() - 1];
    let id = first.id;
    let replayed: DeadLetterDto = app
        .admin_post(&format!("/api/admin/dlq/{id}/replay"), None::<()>)
        .await;
    assert_eq!(replayed.status, DeadLetterStatus::Replayed);
    assert_eq!(
        replayed.attempts[0].outcome,
        ReplayAttemptOutcome::Delivered
    );
    assert_eq!(replayed.event.event_id, first.event.event_id);
    let again = app
        .admin(Method::POST, &format!("/api/admin/dlq/{id}/replay"), None)
        .await;
    expect_error(again, StatusCode::CONFLICT, "not_pending").await;
    // The rest in bulk, by filter.
    let request = BulkReplayRequest {
        ids: None,
        filter: Some(DeadLetterFilterDto {
            event_type: Some("OrderCancelled".into()),
            ..Default::default()
        }),
    };
    let bulk: BulkReplayDto = app.admin_post("/api/admin/dlq/replay", Some(request)).await;
    assert_eq!((bulk.replayed, bulk.failed), (cancelled - 1, 0));
    let order: Vec<i64> = bulk.results.iter().map(|r| r.id).collect();
    assert!(order.is_sorted(), "replayed oldest first: {order:?}");
    let s = app.relay_status().await;
    assert_eq!(s.dead_letters, counts(0, cancelled as u64, 0));
    // Every event is on the topic now, each once, with its original id.
    let messages: TopicMessagesDto = app
        .get_ok("/api/topics/outbox.event.order/messages?limit=1000")
        .await;
    let ids: std::collections::HashSet<String> = messages
        .messages
        .iter()
        .map(|m| m.headers["event_id"].clone())
        .collect();
    assert_eq!(ids.len(), events);
    assert_eq!(
        messages.messages.len(),
        events,
        "replay sent each dead letter once"
    );
    // The order page shows the replayed event as published.
    let detail = app.order_detail(&first.event.aggregate_id).await;
    assert!(detail.events.iter().all(|e| e.delivery.is_some()));
}

#[tokio::test]
async fn poison_on_kafka_dead_letters_only_the_poisoned_events() {
    let broker = Broker::start().await;
    let app = kafka_app(&broker).await;
    app.set_fault(Fault::Poison {
        event_type: None,
        every_n: Some(5),
    })
    .await;
    let events = write_some(&app, 20).await;
    caught_up(&app).await;
    let dead = app.count("dead_letters") as usize;
    assert!(
        dead >= events / 5 - 1 && dead <= events / 5 + 1,
        "{dead} of {events}"
    );
    assert_eq!(topic_size(&broker.address).await, events - dead);
    app.set_fault(Fault::None {}).await;
    let everything = BulkReplayRequest {
        ids: None,
        filter: Some(DeadLetterFilterDto::default()),
    };
    let bulk: BulkReplayDto = app
        .admin_post("/api/admin/dlq/replay", Some(everything))
        .await;
    assert_eq!(bulk.replayed, dead);
    let size = topic_size(&broker.address).await;
    assert_eq!(size, events);
    let messages = consume(&broker.address, size).await;
    let ids: std::collections::HashSet<&str> = messages.iter().map(|m| m.event_id()).collect();
    assert_eq!(ids.len(), events, "replayed with the original event ids");
}

#[tokio::test]
async fn dead_letters_are_discarded_with_a_reason_and_listed_by_filter() {
    let (app, _, cancelled) = with_poisoned_cancellations(7).await;
    let page = dead_letters(&app, "?limit=2").await;
    assert_eq!(page.items.len(), 2);
    let cursor = page.next_cursor.expect("more pages");
    let rest = dead_letters(&app, &format!("?limit=100&cursor={cursor}")).await;
    assert_eq!(rest.items.len(), cancelled - 2);
    assert_eq!(rest.next_cursor, None);

    let d = &page.items[0];
    let id = d.id;
    let order = &d.event.aggregate_id;
    // Filters: by aggregate, by text (in the payload), by status.
    let by_order = dead_letters(&app, &format!("?aggregate_id={order}")).await;
    assert_eq!(by_order.items.len(), 1);
    let by_text = dead_letters(&app, "?q=poison%20test").await;
    assert_eq!(by_text.items.len(), cancelled);
    let by_event_id = dead_letters(&app, &format!("?q={}", d.event.event_id)).await;
    let found: Vec<i64> = by_event_id.items.iter().map(|d| d.id).collect();
    assert_eq!(found, [id], "`q` finds a record by its event id");
    let no_match = dead_letters(&app, "?q=%25_%25").await;
    assert!(no_match.items.is_empty(), "LIKE wildcards are literal");

    let reason = DiscardRequest {
        reason: "duplicate of a manual fix".into(),
    };
    let discarded: DeadLetterDto = app
        .admin_post(&format!("/api/admin/dlq/{id}/discard"), Some(reason))
        .await;
    assert_eq!(discarded.status, DeadLetterStatus::Discarded);
    assert_eq!(
        discarded.discard_reason.as_deref(),
        Some("duplicate of a manual fix")
    );
    let again = app
        .admin(Method::POST, &format!("/api/admin/dlq/{id}/replay"), None)
        .await;
    expect_error(again, StatusCode::CONFLICT, "not_pending").await;
    let pending = dead_letters(&app, "?status=pending").await;
    assert_eq!(pending.items.len(), cancelled - 1);
    let one: DeadLetterDto = app.admin_get(&format!("/api/admin/dlq/{id}")).await;
    assert_eq!(one.status, DeadLetterStatus::Discarded);
}

/// Without `limit`, each list answers its documented default page: orders 20, dead
/// letters 50, topic messages 100; each says there is more.
#[tokio::test]
async fn lists_without_a_limit_answer_their_default_page() {
    let app = spawn_app_with(&FAST).await;
    app.set_fault(poison("OrderCreated")).await;
    let poisoned = write_many(&app, 51).await;
    caught_up(&app).await;
    let orders: OrderPageDto = app.get_ok("/api/orders").await;
    assert_eq!(orders.orders.len(), 20);
    assert!(orders.next_cursor.is_some());
    let letters = dead_letters(&app, "").await;
    assert_eq!(letters.items.len(), 50);
    assert!(letters.next_cursor.is_some());
    app.set_fault(Fault::None {}).await;
    let published = write_many(&app, 101).await + poisoned - 51;
    caught_up(&app).await;
    let messages: TopicMessagesDto = app.get_ok("/api/topics/outbox.event.order/messages").await;
    assert_eq!(messages.messages.len(), 100);
    assert_eq!(
        (messages.next_offset, messages.end_offset),
        (100, published as i64)
    );
}

/// Two replays of one dead letter at once: the second arrives while the first is still
/// publishing (the sink is slow) and is told so (409 `in_progress`); once the first is done,
/// another is told the record is no longer pending.
#[tokio::test]
async fn a_replay_while_another_is_publishing_is_409_in_progress() {
    let app = spawn_app_with(&FAST).await;
    app.set_fault(poison("OrderCreated")).await;
    app.create_order_id(&["SLOW-REPLAY"]).await;
    caught_up(&app).await;
    let id = dead_letters(&app, "").await.items[0].id;
    app.set_fault(Fault::Slow { latency_ms: 2_000 }).await;
    let path = format!("/api/admin/dlq/{id}/replay");
    let (first, second) = tokio::join!(
        app.admin(Method::POST, &path, None),
        app.admin(Method::POST, &path, None)
    );
    let (winner, loser) = if first.status() == StatusCode::OK {
        (first, second)
    } else {
        (second, first)
    };
    assert_eq!(winner.status(), StatusCode::OK);
    expect_error(loser, StatusCode::CONFLICT, "in_progress").await;
    let again = app.admin(Method::POST, &path, None).await;
    expect_error(again, StatusCode::CONFLICT, "not_pending").await;
}

#[tokio::test]
async fn a_failed_replay_is_recorded_and_the_record_stays_pending() {
    // The breaker stays open for the default 30 s once tripped.
    let app = spawn_app_with(&FAST[..4]).await;
    app.set_fault(poison("OrderCreated")).await;
    app.create_order_id(&["F-1"]).await;
    caught_up(&app).await;
    let id = dead_letters(&app, "").await.items[0].id;
    // Still poisoned: the replay fails, is recorded, and the record stays pending.
    let r = app
        .admin(Method::POST, &format!("/api/admin/dlq/{id}/replay"), None)
        .await;
    expect_error(r, StatusCode::BAD_GATEWAY, "replay_failed").await;
    let d: DeadLetterDto = app.admin_get(&format!("/api/admin/dlq/{id}")).await;
    assert_eq!(d.status, DeadLetterStatus::Pending);
    assert_eq!(d.attempts[0].outcome, ReplayAttemptOutcome::Failed);
    // The sink down with the breaker open: 503, nothing attempted.
    app.set_fault(Fault::Down {}).await;
    app.create_order_id(&["F-2"]).await;
    eventually("the breaker opens", || async {
        breaker_state(&app).await == BreakerState::Open
    })
    .await;
    let r = app
        .admin(Method::POST, &format!("/api/admin/dlq/{id}/replay"), None)
        .await;
    expect_error(r, StatusCode::SERVICE_UNAVAILABLE, "sink_unavailable").await;
    let d: DeadLetterDto = app.admin_get(&format!("/api/admin/dlq/{id}")).await;
    assert_eq!(d.attempts.len(), 1);
}

/// (e) Every admin endpoint refuses a missing or wrong token and changes nothing.
#[tokio::test]
async fn every_admin_endpoint_needs_the_token() {
    // Ten wrong tokens would lock this client out (console.rs tests that); this test is about
    // each endpoint's answer to them.
    let app = spawn_app_with(&[&FAST[..], &["--auth-failure-limit", "100"]].concat()).await;
    app.set_fault(poison("OrderCreated")).await;
    app.create_order_id(&["A-1"]).await;
    caught_up(&app).await;
    let id = dead_letters(&app, "").await.items[0].id;
    let endpoints: Vec<(Method, String, Value)> = vec![
        (Method::GET, "/api/admin/relay".into(), Value::Null),
        (Method::GET, "/api/admin/relay/mode".into(), Value::Null),
        (
            Method::POST,
            "/api/admin/relay/mode".into(),
            json!({"mode": "polling"}),
        ),
        (Method::GET, "/api/admin/faults".into(), Value::Null),
        (
            Method::POST,
            "/api/admin/faults".into(),
            json!({"mode": "none"}),
        ),
        (Method::GET, "/api/admin/dlq".into(), Value::Null),
        (Method::GET, format!("/api/admin/dlq/{id}"), Value::Null),
        (
            Method::POST,
            format!("/api/admin/dlq/{id}/replay"),
            json!({}),
        ),
        (
            Method::POST,
            "/api/admin/dlq/replay".into(),
            json!({"ids": [id]}),
        ),
        (
            Method::POST,
            format!("/api/admin/dlq/{id}/discard"),
            json!({"reason": "x"}),
        ),
    ];
    for (method, path, body) in &endpoints {
        for header in [None, Some("Bearer not-the-token"), Some("Basic abc")] {
            let mut request = app.client.request(method.clone(), app.url(path)).json(body);
            if let Some(h) = header {
                request = request.header("authorization", h);
            }
            let response = request.send().await.unwrap();
            expect_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
        }
    }
    let d: DeadLetterDto = app.admin_get(&format!("/api/admin/dlq/{id}")).await;
    assert_eq!(d.status, DeadLetterStatus::Pending);
    assert!(d.attempts.is_empty());
    let fault: Fault = app.admin_get("/api/admin/faults").await;
    assert_eq!(fault, poison("OrderCreated"));
    let mode: RelayModeDto = app.admin_get("/api/admin/relay/mode").await;
    assert_eq!(mode.mode, RelayMode::Streaming);
}

#[tokio::test]
async fn admin_inputs_are_validated_and_change_nothing() {
    let app = spawn_app_with(&FAST).await;
    for fault in [
        json!({"mode": "sideways"}),
        json!({"mode": "slow"}),
        json!({"mode": "down", "latency_ms": 5}),
        json!({"latency_ms": 5}),
        json!({"mode": "slow", "latency_ms": "fast"}),
    ] {
        let r = app
            .admin(Method::POST, "/api/admin/faults", Some(fault))
            .await;
        expect_error(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
    }
    for fault in [
        json!({"mode": "slow", "latency_ms": 0}),
        json!({"mode": "slow", "latency_ms": 60_001}),
        json!({"mode": "poison"}),
        json!({"mode": "poison", "every_n": 0}),
        json!({"mode": "poison", "event_type": "'; DROP TABLE outbox; --"}),
    ] {
        let r = app
            .admin(Method::POST, "/api/admin/faults", Some(fault))
            .await;
        expect_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }
    let malformed = app
        .client
        .post(app.url("/api/admin/faults"))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{\"mode\":")
        .send()
        .await
        .unwrap();
    expect_error(malformed, StatusCode::BAD_REQUEST, "malformed_json").await;
    let huge = app
        .client
        .post(app.url("/api/admin/faults"))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(format!(
            "{{\"mode\":\"poison\",\"event_type\":\"{}\"}}",
            "x".repeat(100_000)
        ))
        .send()
        .await
        .unwrap();
    expect_error(huge, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    let fault: Fault = app.admin_get("/api/admin/faults").await;
    assert_eq!(fault, Fault::None {});

    for query in [
        "limit=0",
        "limit=201",
        "cursor=0",
        "cursor=x",
        "status=lost",
        "event_type=NotAnEvent",
        "aggregate_id=not-a-uuid",
        "q=",
        &format!("q={}", "x".repeat(201)),
        "q=%00",
        "unknown=1",
    ] {
        let r = app
            .admin(Method::GET, &format!("/api/admin/dlq?{query}"), None)
            .await;
        expect_error(r, StatusCode::BAD_REQUEST, "invalid_query").await;
    }
    for path in [
        "/api/admin/dlq/0",
        "/api/admin/dlq/abc",
        "/api/admin/dlq/-1",
    ] {
        let r = app.admin(Method::GET, path, None).await;
        expect_error(r, StatusCode::BAD_REQUEST, "invalid_id").await;
    }
    let r = app.admin(Method::GET, "/api/admin/dlq/999", None).await;
    expect_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app
        .admin(Method::POST, "/api/admin/dlq/999/replay", None)
        .await;
    expect_error(r, StatusCode::NOT_FOUND, "not_found").await;
    for body in [
        json!({}),
        json!({"ids": []}),
        json!({"ids": [0]}),
        json!({"ids": [1], "filter": {}}),
        json!({"ids": (1..=1001).collect::<Vec<_>>()}),
        json!({"filter": {"aggregate_id": "nope"}}),
    ] {
        let r = app
            .admin(Method::POST, "/api/admin/dlq/replay", Some(body))
            .await;
        expect_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }
    for body in [
        json!({"reason": ""}),
        json!({"reason": "   "}),
        json!({"reason": "x".repeat(501)}),
        json!({"reason": "line\nbreak"}),
    ] {
        let r = app
            .admin(Method::POST, "/api/admin/dlq/1/discard", Some(body))
            .await;
        expect_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }
    let r = app
        .admin(Method::POST, "/api/admin/dlq/1/discard", Some(json!({})))
        .await;
    expect_error(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
    assert_eq!(app.count("dead_letters"), 0);
    assert_eq!(app.count("dead_letter_attempts"), 0);
}

// ----- The step function's decisions, driven directly -----

#[tokio::test]
async fn an_event_that_keeps_failing_while_others_pass_is_dead_lettered_after_its_retries() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::relay::open_store(dir.path()).await;
    for _ in 0..4 {
        store.apply(crate::relay::create()).await.unwrap();
    }
    let events = store.events_after(0, 100).await.unwrap();
    let victim = events[1].envelope.aggregate_id.to_string();
    let sink = Arc::new(RefusesKey {
        inner: LocalLogPublisher::new(store.clone()),
        key: victim.clone(),
    });
    let r = resilience();
    let mut relay = relay_over(store.clone(), sink, r.clone(), Batching::serial(100)).await;
    let mut delays = Vec::new();
    for attempt in 1..=4 {
        match relay.step().await.unwrap() {
            Outcome::Retrying {
                position,
                attempt: a,
                delay,
                ..
            } => {
                assert_eq!((position, a), (events[1].position, attempt));
                delays.push(delay.as_millis());
            }
            other => panic!("attempt {attempt}: {other:?}"),
        }
    }
    assert_eq!(
        delays,
        [100, 200, 400, 500],
        "exponential, capped, no jitter"
    );
    assert_eq!(
        relay.checkpoint(),
        events[0].position,
        "the event before it is done"
    );
    // Each time, the events after it went through: the sink works, this event does not. The
    // fifth such failure exhausts its attempts: it is dead-lettered, and the events after it,
    // acknowledged in the same call, are recorded with it.
    assert_eq!(
        relay.step().await.unwrap(),
        Outcome::Published {
            count: 2,
            dead_lettered: 1,
            checkpoint: events[3].position
        }
    );
    assert_eq!(
        r.breaker.state(),
        outbox::resilience::breaker::BreakerState::Closed
    );
    assert_eq!(relay.step().await.unwrap(), Outcome::Idle);
    let letter = store
        .dead_letters(outbox::store::dead_letters::DeadLetterFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(letter.len(), 1);
    let f = &letter[0].failure;
    assert_eq!(f.event, events[1]);
    assert_eq!(f.failures, 5);
    assert_eq!(
        f.kind,
        outbox::store::dead_letters::DeadLetterKind::RetriesExhausted
    );
    assert!(f.first_failed_at < f.last_failed_at);
}

/// A sink that takes the first `accept` messages it is given, then fails every message
/// transiently: a broker that dies in the middle of a batch.
struct DiesAfter {
    inner: LocalLogPublisher,
    left: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl Publisher for DiesAfter {
    async fn publish(&self, batch: &[Message]) -> Vec<Result<Delivery, PublishError>> {
        use std::sync::atomic::Ordering::SeqCst;
        let mut results = Vec::new();
        for m in batch {
            let alive = self
                .left
                .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if alive {
                results.extend(self.inner.publish(std::slice::from_ref(m)).await);
            } else {
                results.push(Err(PublishError::transient("broker transport failure")));
            }
        }
        results
    }

    fn name(&self) -> &'static str {
        "dies-after"
    }
}

/// The outage bug, step by step: the sink dies in the middle of a batch (the events before
/// the failure were acknowledged). Whatever the retry attempts and the breaker threshold,
/// the event at the failure is retried and paused for, never dead-lettered.
#[tokio::test]
async fn a_sink_that_dies_mid_batch_never_dead_letters_whatever_the_thresholds() {
    for (attempts, threshold) in [(5, 5), (2, 10), (10, 2), (1, 1000)] {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::relay::store_with_orders(dir.path(), 10).await;
        let sink = Arc::new(DiesAfter {
            inner: LocalLogPublisher::new(store.clone()),
            left: 4.into(),
        });
        let r = Resilience::new(
            RetryConfig {
                max_attempts: attempts,
                jitter: Jitter::None,
                ..RetryConfig::default()
            },
            Arc::new(CircuitBreaker::new(BreakerConfig {
                failure_threshold: threshold,
                ..BreakerConfig::default()
            })),
        );
        let mut relay = relay_over(store.clone(), sink, r.clone(), Batching::serial(100)).await;
        let mut outcomes = Vec::new();
        for _ in 0..(attempts + threshold + 5) {
            outcomes.push(relay.step().await.unwrap());
        }
        let case = format!("{attempts} attempts, breaker threshold {threshold}: {outcomes:?}");
        assert_eq!(relay.checkpoint(), 4, "{case}");
        assert_eq!(
            store.dead_letter_counts().await.unwrap().pending,
            0,
            "{case}"
        );
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Outcome::Retrying { .. } | Outcome::Paused { .. })),
            "{case}"
        );
        // Retried until the breaker opened on the threshold's failure; paused since.
        let retries = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Retrying { .. }))
            .count();
        assert_eq!(retries, threshold as usize - 1, "{case}");
        assert_eq!(
            r.breaker.state(),
            outbox::resilience::breaker::BreakerState::Open,
            "{case}"
        );
    }
}

#[tokio::test]
async fn while_the_breaker_is_open_the_relay_neither_reads_nor_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::relay::open_store(dir.path()).await;
    for _ in 0..3 {
        store.apply(crate::relay::create()).await.unwrap();
    }
    let faults = Arc::new(outbox::publish::faults::FaultInjector::new(Arc::new(
        LocalLogPublisher::new(store.clone()),
    )));
    faults.set(outbox::publish::faults::Fault::Down {});
    let r = resilience();
    let mut relay = relay_over(
        store.clone(),
        faults.clone(),
        r.clone(),
        Batching::serial(100),
    )
    .await;
    // Five failures in a row (nothing acknowledged) open the breaker on the fifth.
    for attempt in 1..=4 {
        assert!(matches!(
            relay.step().await.unwrap(),
            Outcome::Retrying { attempt: a, .. } if a == attempt
        ));
    }
    match relay.step().await.unwrap() {
        Outcome::Paused { retry_in } => assert!(retry_in <= Duration::from_secs(30)),
        other => panic!("{other:?}"),
    }
    for _ in 0..3 {
        assert!(matches!(
            relay.step().await.unwrap(),
            Outcome::Paused { .. }
        ));
    }
    assert_eq!(relay.checkpoint(), 0);
    assert_eq!(store.dead_letter_counts().await.unwrap().pending, 0);
}

#[tokio::test]
async fn when_the_dead_letter_cannot_be_written_the_event_stays_pending() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::relay::open_store(dir.path()).await;
    store.apply(crate::relay::create()).await.unwrap();
    let faults = Arc::new(outbox::publish::faults::FaultInjector::new(Arc::new(
        LocalLogPublisher::new(store.clone()),
    )));
    faults.set(outbox::publish::faults::Fault::Poison {
        event_type: Some("OrderCreated".into()),
        every_n: None,
    });
    // The database refuses dead letters, as a full disk would.
    let db = dir.path().join(outbox::store::sqlite::DATABASE_FILE);
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER refuse_dead_letters BEFORE INSERT ON dead_letters \
         BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
    )
    .unwrap();
    let mut relay = relay_over(store.clone(), faults, resilience(), Batching::serial(100)).await;
    assert!(relay.step().await.is_err(), "the failed write is an error");
    assert_eq!(relay.checkpoint(), 0);
    assert_eq!(
        store.checkpoint(outbox::store::RELAY_NAME).await.unwrap(),
        0
    );
    assert_eq!(
        store.events_after(0, 10).await.unwrap().len(),
        1,
        "still pending"
    );
    // Once the database takes writes again, the next step dead-letters it.
    conn.execute_batch("DROP TRIGGER refuse_dead_letters")
        .unwrap();
    assert_eq!(
        relay.step().await.unwrap(),
        Outcome::Published {
            count: 0,
            dead_lettered: 1,
            checkpoint: 1
        }
    );
    assert_eq!(store.dead_letter_counts().await.unwrap().pending, 1);
}
