//! The ScyllaDB backend end to end: orders written through the API on ScyllaDB reach a Kafka
//! broker through the CDC streaming relay (with shrunken CDC intervals) or the polling relay.
//!
//! These tests need a ScyllaDB node at `SCYLLA_URI` (`host:port`); without it they print
//! "skipped: SCYLLA_URI not set" to stderr and return. The broker is `KAFKA_BROKERS` if set
//! (CI: Redpanda), else a tansu process. Every test uses its own keyspace and topic.

use crate::broker::{Broker, PARTITIONS, consume_topic};
use crate::helpers::{TestApp, eventually_within, spawn_app_with, test_config};
use outbox::config::Config;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::time::Duration;

/// `SCYLLA_URI`, or `None` after saying on stderr that `test` is skipped. Written to the
/// stderr handle itself, which the test harness does not capture, so the skip shows in every
/// run, not only with `--nocapture`.
pub fn scylla_uri(test: &str) -> Option<String> {
    match std::env::var("SCYLLA_URI") {
        Ok(uri) if !uri.trim().is_empty() => Some(uri),
        _ => {
            let _ = writeln!(
                std::io::stderr().lock(),
                "skipped: SCYLLA_URI not set ({test} needs a ScyllaDB node)"
            );
            None
        }
    }
}

/// Flags that put an application on ScyllaDB in a fresh keyspace, with short intervals.
fn scylla_flags(uri: &str, keyspace: &str) -> Vec<String> {
    [
        "--store",
        "scylla",
        "--scylla-nodes",
        uri,
        "--scylla-keyspace",
        keyspace,
        "--scylla-settle",
        "2000ms",
        "--scylla-orphan-timeout",
        "2000ms",
        // The suites run on a single node.
        "--scylla-replication-factor",
        "1",
    ]
    .map(String::from)
    .to_vec()
}

/// A keyspace no other test uses.
fn fresh_keyspace() -> String {
    format!("outbox_test_{}", uuid::Uuid::new_v4().simple())
}

/// A configuration on ScyllaDB (fresh keyspace) for `test`, or `None` when skipped.
pub fn scylla_config(test: &str, extra: &[&str]) -> Option<Config> {
    let uri = scylla_uri(test)?;
    let flags = scylla_flags(&uri, &fresh_keyspace());
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<&str> = flags
        .iter()
        .map(String::as_str)
        .chain(extra.iter().copied())
        .collect();
    Some(test_config(dir.path(), &args))
}

/// `KAFKA_BROKERS`, or a tansu broker started for the test (kept alive by the returned value).
async fn broker() -> (String, Option<Broker>) {
    match std::env::var("KAFKA_BROKERS") {
        Ok(brokers) if !brokers.trim().is_empty() => (brokers, None),
        _ => {
            let broker = Broker::start().await;
            (broker.address.clone(), Some(broker))
        }
    }
}

/// An application on `keyspace` publishing to `brokers` under `topic`.
async fn app(uri: &str, keyspace: &str, brokers: &str, topic: &str, extra: &[&str]) -> TestApp {
    let partitions = PARTITIONS.to_string();
    let template = format!("{topic}.{{aggregate_type}}");
    let mut flags = scylla_flags(uri, keyspace);
    flags.extend(
        [
            "--kafka-brokers",
            brokers,
            "--kafka-partitions",
            &partitions,
            "--topic-template",
            &template,
            "--poll-interval",
            "100ms",
        ]
        .map(String::from),
    );
    let args: Vec<&str> = flags
        .iter()
        .map(String::as_str)
        .chain(extra.iter().copied())
        .collect();
    spawn_app_with(&args).await
}

/// Creates `orders` orders (changing every third twice); returns each order's event ids in
/// version order, read back from the API.
async fn write_orders(app: &TestApp, orders: usize) -> HashMap<String, Vec<String>> {
    let mut ids = Vec::new();
    for i in 0..orders {
        let id = app.create_order_id(&[&format!("S-{i}")]).await;
        if i % 3 == 0 {
            let items = json!([{"sku": "S-X", "quantity": 1, "unit_price_cents": 5}]);
            assert_eq!(
                app.replace_items(&id, 1, items).await.status(),
                StatusCode::OK
            );
            assert_eq!(app.cancel(&id, 2, "test").await.status(), StatusCode::OK);
        }
        ids.push(id);
    }
    let mut events = HashMap::new();
    for id in ids {
        let detail = app.order_detail(&id).await;
        // The API lists newest first; the topic holds them oldest first.
        let of_order: Vec<String> = detail
            .events
            .into_iter()
            .rev()
            .map(|e| e.event_id)
            .collect();
        events.insert(id, of_order);
    }
    events
}

/// Every written event is on `topic` exactly once, keyed by its order, and per order in
/// version order.
async fn assert_published(brokers: &str, topic: &str, written: &HashMap<String, Vec<String>>) {
    let expected: usize = written.values().map(Vec::len).sum();
    let messages = consume_topic(brokers, &format!("{topic}.order"), expected).await;
    assert_eq!(messages.len(), expected, "every event arrived");
    let ids: HashSet<&str> = messages.iter().map(|m| m.event_id()).collect();
    assert_eq!(ids.len(), expected, "no event published twice");
    for (order, events) in written {
        let mut on_topic: Vec<(i32, i64, &str)> = messages
            .iter()
            .filter(|m| &m.key == order)
            .map(|m| (m.partition, m.offset, m.event_id()))
            .collect();
        on_topic.sort_unstable();
        let order_on_topic: Vec<&str> = on_topic.iter().map(|(_, _, id)| *id).collect();
        assert_eq!(
            order_on_topic, *events,
            "order {order}: its events, in version order"
        );
    }
}

/// CDC intervals shrunk for tests: a second of safety, 100 ms sleeps.
const FAST_CDC: [&str; 6] = [
    "--cdc-window",
    "2000ms",
    "--cdc-safety",
    "1000ms",
    "--cdc-sleep",
    "100ms",
];

#[tokio::test]
async fn cdc_relay_publishes_every_event_in_order_with_its_delivery_recorded() {
    let Some(uri) = scylla_uri("cdc_relay_publishes_every_event_in_order") else {
        return;
    };
    let (brokers, _broker) = broker().await;
    let keyspace = fresh_keyspace();
    let mut extra = vec!["--relay-mode", "streaming"];
    extra.extend(FAST_CDC);
    let app = app(&uri, &keyspace, &brokers, &keyspace, &extra).await;
    let written = write_orders(&app, 12).await;
    assert_published(&brokers, &keyspace, &written).await;
    let id = written.keys().next().unwrap();
    eventually_within(
        Duration::from_secs(30),
        "the delivery is recorded",
        || async {
            let detail = app.order_detail(id).await;
            detail.events[0]
                .delivery
                .as_ref()
                .is_some_and(|d| d.offset.is_some())
        },
    )
    .await;
}

/// The trap the reader's start timestamp avoids: events written while the relay was behind
/// (here: a relay whose safety interval keeps it an hour behind) are published by the next
/// relay, which starts at the saved checkpoints instead of "now".
#[tokio::test]
async fn cdc_relay_publishes_what_was_written_while_it_lagged_after_a_restart() {
    let Some(uri) = scylla_uri("cdc_relay_publishes_what_was_written_while_it_lagged") else {
        return;
    };
    let (brokers, _broker) = broker().await;
    let keyspace = fresh_keyspace();
    let lagging = app(
        &uri,
        &keyspace,
        &brokers,
        &keyspace,
        &["--relay-mode", "streaming", "--cdc-safety", "3600000ms"],
    )
    .await;
    let written = write_orders(&lagging, 6).await;
    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_node(&uri)
        .build()
        .await
        .expect("a session for the test");
    let count = format!("SELECT count(*) FROM {keyspace}.cdc_checkpoints");
    eventually_within(
        Duration::from_secs(60),
        "the lagging relay saved checkpoints",
        || {
            let (session, count) = (&session, count.as_str());
            async move {
                let result = session.query_unpaged(count, ()).await.expect("count");
                let (n,) = result
                    .into_rows_result()
                    .expect("rows")
                    .single_row::<(i64,)>()
                    .expect("one count");
                n > 0
            }
        },
    )
    .await;
    drop(lagging);
    let mut extra = vec!["--relay-mode", "streaming"];
    extra.extend(FAST_CDC);
    let _app = app(&uri, &keyspace, &brokers, &keyspace, &extra).await;
    assert_published(&brokers, &keyspace, &written).await;
}

#[tokio::test]
async fn polling_relay_on_scylla_publishes_every_event_in_order() {
    let Some(uri) = scylla_uri("polling_relay_on_scylla_publishes_every_event_in_order") else {
        return;
    };
    let (brokers, _broker) = broker().await;
    let keyspace = fresh_keyspace();
    let app = app(
        &uri,
        &keyspace,
        &brokers,
        &keyspace,
        &["--relay-mode", "polling"],
    )
    .await;
    let written = write_orders(&app, 12).await;
    assert_published(&brokers, &keyspace, &written).await;
}

#[tokio::test]
async fn the_relay_lease_has_one_owner_at_a_time() {
    let Some(config) = scylla_config("the_relay_lease_has_one_owner_at_a_time", &[]) else {
        return;
    };
    let store = outbox::store::scylla::ScyllaStore::open(&config.scylla_options())
        .await
        .expect("the ScyllaDB store opens");
    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let ttl = Duration::from_secs(30);
    assert!(
        store.take_relay_lease(a, ttl).await.unwrap(),
        "a free lease is taken"
    );
    assert!(
        !store.take_relay_lease(b, ttl).await.unwrap(),
        "a held lease is refused"
    );
    assert!(
        store.take_relay_lease(a, ttl).await.unwrap(),
        "its owner renews it"
    );
    store.release_relay_lease(b).await.unwrap();
    assert!(
        !store.take_relay_lease(b, ttl).await.unwrap(),
        "only the owner releases it"
    );
    store.release_relay_lease(a).await.unwrap();
    assert!(
        store.take_relay_lease(b, ttl).await.unwrap(),
        "a released lease is free"
    );
}

/// Two instances on one keyspace: both take orders, one relay publishes, each event once.
#[tokio::test]
async fn two_instances_publish_each_event_once() {
    let Some(uri) = scylla_uri("two_instances_publish_each_event_once") else {
        return;
    };
    let (brokers, _broker) = broker().await;
    let keyspace = fresh_keyspace();
    let polling = ["--relay-mode", "polling"];
    let first = app(&uri, &keyspace, &brokers, &keyspace, &polling).await;
    let second = app(&uri, &keyspace, &brokers, &keyspace, &polling).await;
    let mut written = write_orders(&first, 6).await;
    written.extend(write_orders(&second, 6).await);
    assert_published(&brokers, &keyspace, &written).await;
}

/// Start-up on ScyllaDB fails with an error naming the cause, with no server needed.
async fn start_up_error(extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), &[&["--store", "scylla"], extra].concat());
    match outbox::startup::Application::build(&config).await {
        Ok(_) => panic!("the application started without its store"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn an_unreachable_cluster_fails_start_up_clearly() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let node = format!("127.0.0.1:{port}");
    let error = start_up_error(&["--scylla-nodes", &node]).await;
    assert!(
        error.starts_with("cannot open the ScyllaDB store: cannot connect to ScyllaDB"),
        "{error}"
    );
}

#[tokio::test]
async fn a_missing_tls_ca_file_fails_start_up_clearly() {
    let error = start_up_error(&["--scylla-tls-ca-file", "/nonexistent/ca.pem"]).await;
    assert!(
        error.starts_with("cannot open the ScyllaDB store: cannot set up TLS"),
        "{error}"
    );
}
