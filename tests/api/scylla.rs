//! The ScyllaDB backend end to end: orders written through the API on ScyllaDB reach a Kafka
//! broker through the CDC streaming relay (with shrunken CDC intervals) or the polling relay.
//!
//! The tests that need a ScyllaDB node are `#[ignore]`d, so a run without one reports them
//! as ignored, not passed; `make test-scylla` (and the `scylla` workflow) runs them with
//! `--include-ignored` against `SCYLLA_URI` (`host:port`), and they fail if it is not set.
//! The broker is `KAFKA_BROKERS` if set (CI: Redpanda), else a tansu process. Every test uses
//! its own keyspace and topic. The start-up failures at the end need no server.

use crate::broker::{Broker, PARTITIONS, consume_topic_within};
use crate::helpers::{TestApp, eventually_within, spawn_app_with, test_config};
use outbox::config::Config;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// `SCYLLA_URI`: the ScyllaDB node the ignored tests run against.
pub fn scylla_uri() -> String {
    match std::env::var("SCYLLA_URI") {
        Ok(uri) if !uri.trim().is_empty() => uri,
        _ => panic!("SCYLLA_URI is not set: this test needs a ScyllaDB node (make test-scylla)"),
    }
}

/// How long a live test waits for what should happen: generous, for shared CI runners (the
/// waits end as soon as it happened).
const PATIENCE: Duration = Duration::from_secs(180);

/// Flags that put an application on ScyllaDB in a fresh keyspace, with short intervals, on a
/// single node.
fn scylla_flags(uri: &str, keyspace: &str) -> Vec<String> {
    scylla_flags_with(uri, keyspace, 1)
}

/// The same with `replicas` as the keyspace's replication factor.
fn scylla_flags_with(uri: &str, keyspace: &str, replicas: u8) -> Vec<String> {
    let replicas = replicas.to_string();
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
        "3000ms",
        "--scylla-replication-factor",
        &replicas,
    ]
    .map(String::from)
    .to_vec()
}

/// A keyspace no other test uses.
fn fresh_keyspace() -> String {
    format!("outbox_test_{}", uuid::Uuid::new_v4().simple())
}

/// A configuration on ScyllaDB (fresh keyspace).
pub fn scylla_config(extra: &[&str]) -> Config {
    let uri = scylla_uri();
    let flags = scylla_flags(&uri, &fresh_keyspace());
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<&str> = flags
        .iter()
        .map(String::as_str)
        .chain(extra.iter().copied())
        .collect();
    test_config(dir.path(), &args)
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

/// An application on `keyspace` (one replica) publishing to `brokers` under `topic`.
async fn app(uri: &str, keyspace: &str, brokers: &str, topic: &str, extra: &[&str]) -> TestApp {
    app_with(scylla_flags(uri, keyspace), brokers, topic, extra).await
}

/// An application with `flags` publishing to `brokers` under `topic`.
async fn app_with(mut flags: Vec<String>, brokers: &str, topic: &str, extra: &[&str]) -> TestApp {
    let partitions = PARTITIONS.to_string();
    let template = format!("{topic}.{{aggregate_type}}");
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
    event_ids(app, ids).await
}

/// The event ids of each order in version order (as the topic holds them), read back from
/// the API (which lists them newest first).
async fn event_ids(app: &TestApp, ids: Vec<String>) -> HashMap<String, Vec<String>> {
    let mut events = HashMap::new();
    for id in ids {
        let detail = app.order_detail(&id).await;
        let of_order = detail.events.into_iter().rev().map(|e| e.event_id);
        events.insert(id, of_order.collect());
    }
    events
}

/// Every written event is on `topic` exactly once, keyed by its order, and per order in
/// version order.
async fn assert_published(brokers: &str, topic: &str, written: &HashMap<String, Vec<String>>) {
    let expected: usize = written.values().map(Vec::len).sum();
    let topic = format!("{topic}.order");
    let messages = consume_topic_within(brokers, &topic, expected, PATIENCE).await;
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

/// CDC intervals shrunk for tests: the shortest safety the settle interval allows, 100 ms
/// sleeps.
const FAST_CDC: [&str; 6] = [
    "--cdc-window",
    "2000ms",
    "--cdc-safety",
    "1000ms",
    "--cdc-sleep",
    "100ms",
];

#[tokio::test]
#[ignore = "needs a ScyllaDB node: SCYLLA_URI=host:port make test-scylla"]
async fn cdc_relay_publishes_every_event_in_order_with_its_delivery_recorded() {
    let uri = scylla_uri();
    let (brokers, _broker) = broker().await;
    let keyspace = fresh_keyspace();
    let mut extra = vec!["--relay-mode", "streaming"];
    extra.extend(FAST_CDC);
    let app = app(&uri, &keyspace, &brokers, &keyspace, &extra).await;
    let written = write_orders(&app, 12).await;
    assert_published(&brokers, &keyspace, &written).await;
    let id = written.keys().next().unwrap();
    eventually_within(PATIENCE, "the delivery is recorded", || async {
        let detail = app.order_detail(id).await;
        detail.events[0]
            .delivery
            .as_ref()
            .is_some_and(|d| d.offset.is_some())
    })
    .await;
}

/// The trap the reader's start timestamp avoids: events written while the relay was behind
/// (here: a relay whose safety interval keeps it an hour behind) are published by the next
/// relay, which starts at the saved checkpoints instead of "now".
#[tokio::test]
#[ignore = "needs a ScyllaDB node: SCYLLA_URI=host:port make test-scylla"]
async fn cdc_relay_publishes_what_was_written_while_it_lagged_after_a_restart() {
    let uri = scylla_uri();
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
    eventually_within(PATIENCE, "the lagging relay saved checkpoints", || {
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
    })
    .await;
    drop(lagging);
    let mut extra = vec!["--relay-mode", "streaming"];
    extra.extend(FAST_CDC);
    let _app = app(&uri, &keyspace, &brokers, &keyspace, &extra).await;
    assert_published(&brokers, &keyspace, &written).await;
}

#[tokio::test]
#[ignore = "needs a ScyllaDB node: SCYLLA_URI=host:port make test-scylla"]
async fn polling_relay_on_scylla_publishes_every_event_in_order() {
    let uri = scylla_uri();
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
#[ignore = "needs a ScyllaDB node: SCYLLA_URI=host:port make test-scylla"]
async fn the_relay_lease_has_one_owner_at_a_time() {
    let config = scylla_config(&[]);
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
#[ignore = "needs a ScyllaDB node: SCYLLA_URI=host:port make test-scylla"]
async fn two_instances_publish_each_event_once() {
    let uri = scylla_uri();
    let (brokers, _broker) = broker().await;
    let keyspace = fresh_keyspace();
    let polling = ["--relay-mode", "polling"];
    let first = app(&uri, &keyspace, &brokers, &keyspace, &polling).await;
    let second = app(&uri, &keyspace, &brokers, &keyspace, &polling).await;
    let mut written = write_orders(&first, 6).await;
    written.extend(write_orders(&second, 6).await);
    assert_published(&brokers, &keyspace, &written).await;
}

/// An environment variable the cluster test needs.
fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set (make test-scylla-cluster)"))
}

/// Three nodes at `SCYLLA_CLUSTER_URI`, replication factor 3, orders written without pause
/// while `SCYLLA_STOP_NODE` (a shell command) stops one node: writes go on with two, every
/// acknowledged order is still read back whole, and the streaming relay publishes each of
/// its events once, in order, including those written after the loss.
#[tokio::test]
#[ignore = "needs a three-node ScyllaDB cluster: SCYLLA_CLUSTER_URI, SCYLLA_STOP_NODE (make test-scylla-cluster)"]
async fn losing_one_of_three_nodes_under_load_loses_nothing_acknowledged() {
    let uri = required("SCYLLA_CLUSTER_URI");
    let stop_node = required("SCYLLA_STOP_NODE");
    let (brokers, _broker) = broker().await;
    let keyspace = fresh_keyspace();
    let mut extra = vec!["--relay-mode", "streaming"];
    extra.extend(FAST_CDC);
    let flags = scylla_flags_with(&uri, &keyspace, 3);
    let app = app_with(flags, &brokers, &keyspace, &extra).await;
    let started = std::time::Instant::now();
    let (mut acknowledged, mut after_loss, mut refused) = (Vec::new(), 0, 0);
    let mut stopped_at = None;
    while started.elapsed() < Duration::from_secs(30) {
        if stopped_at.is_none() && started.elapsed() > Duration::from_secs(8) {
            let status = std::process::Command::new("sh")
                .args(["-c", &stop_node])
                .status()
                .expect("the stop command runs");
            assert!(status.success(), "{stop_node}: {status}");
            stopped_at = Some(acknowledged.len());
        }
        let response = app
            .post_json("/api/orders", &crate::helpers::order_body(&["NODE-LOSS"]))
            .await;
        if response.status() == StatusCode::CREATED {
            let order: app::dto::OrderDto = response.json().await.unwrap();
            acknowledged.push(order.id);
            after_loss += usize::from(stopped_at.is_some());
        } else {
            // Not acknowledged (the client would retry): nothing is promised for it.
            refused += 1;
        }
    }
    assert!(stopped_at.is_some_and(|n| n > 0), "orders before the loss");
    assert!(
        after_loss > 0,
        "writes go on with two of three nodes ({refused} refused)"
    );
    let written = event_ids(&app, acknowledged).await;
    for (id, events) in &written {
        assert_eq!(events.len(), 1, "order {id} is read back whole");
    }
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
