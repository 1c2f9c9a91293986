//! The relay against a real Kafka-protocol broker: tansu, started by each test on a free
//! loopback port (`make test` installs it) and stopped when the test ends.

use crate::broker::{Broker, PARTITIONS, consume, topic_size};
use crate::helpers::{
    TestApp, eventually, eventually_within, last_position, relay_checkpoint, spawn_app_with,
};
use crate::relay::write_some;
use crate::topic_check::{TOPIC, assert_topic_holds_outbox};
use std::time::Duration;

/// The application publishing to `broker`, in `mode`, with `extra` flags.
pub async fn app_on(broker: &Broker, mode: &str, extra: &[&str]) -> TestApp {
    let partitions = PARTITIONS.to_string();
    let flags = [
        "--kafka-brokers",
        &broker.address,
        "--kafka-partitions",
        &partitions,
        "--relay-mode",
        mode,
        "--poll-interval-ms",
        "50",
    ];
    spawn_app_with(&[&flags[..], extra].concat()).await
}

async fn kafka_round_trip(mode: &str) {
    let broker = Broker::start().await;
    let app = app_on(&broker, mode, &[]).await;
    let expected = write_some(&app, 30).await;
    let messages = consume(&broker.address, expected).await;
    assert_eq!(messages.len(), expected);
    let duplicates = assert_topic_holds_outbox(&app.db_path(), &messages);
    assert!(duplicates.is_empty(), "published twice: {duplicates:?}");
    // The order page shows partition and offset from the broker's acknowledgement.
    let id = &messages[0].key;
    let detail = app.get_json(&format!("/api/orders/{id}")).await;
    let delivery = &detail["events"][0]["delivery"];
    assert_eq!(delivery["topic"], TOPIC);
    assert!(
        delivery["partition"]
            .as_i64()
            .is_some_and(|p| (0..3).contains(&p))
    );
    assert!(delivery["offset"].as_i64().is_some_and(|o| o >= 0));
}

#[tokio::test]
async fn streaming_relay_delivers_every_event_to_kafka_in_order() {
    kafka_round_trip("streaming").await;
}

#[tokio::test]
async fn polling_relay_delivers_every_event_to_kafka_in_order() {
    kafka_round_trip("polling").await;
}

/// The broker process is killed mid-stream and started again on the same port and storage:
/// what was committed meanwhile arrives once it is back, every event once and in per-key order.
/// (librdkafka holds the messages meanwhile; the outage is shorter than its message timeout.)
#[tokio::test]
async fn events_committed_while_the_broker_is_down_arrive_after_it_restarts() {
    let mut broker = Broker::start().await;
    let app = app_on(&broker, "streaming", &[]).await;
    let db = app.db_path();
    let before = write_some(&app, 10).await;
    eventually("the first events are acknowledged", || async {
        relay_checkpoint(&db) == last_position(&db)
    })
    .await;

    broker.kill().await;
    let during = write_some(&app, 10).await;
    let checkpoint = relay_checkpoint(&db);
    assert!(
        checkpoint < last_position(&db),
        "nothing is acknowledged while the broker is down"
    );
    broker.resume().await;

    eventually_within(
        Duration::from_secs(60),
        "the relay acknowledged every event",
        || async { relay_checkpoint(&db) == last_position(&db) },
    )
    .await;
    let size = topic_size(&broker.address).await;
    assert_eq!(size, before + during, "each event once on the topic");
    let messages = consume(&broker.address, size).await;
    let duplicates = assert_topic_holds_outbox(&db, &messages);
    assert!(duplicates.is_empty(), "published twice: {duplicates:?}");
}

#[tokio::test]
async fn the_admin_api_reports_each_partitions_offsets_on_the_broker() {
    let broker = Broker::start().await;
    let app = app_on(&broker, "streaming", &[]).await;
    let db = app.db_path();
    let expected = write_some(&app, 12).await;
    eventually("every event is acknowledged", || async {
        relay_checkpoint(&db) == last_position(&db)
    })
    .await;
    let offsets = app.admin_get("/api/admin/sink/offsets").await;
    let partitions = offsets.as_array().expect("a list");
    assert_eq!(partitions.len(), PARTITIONS as usize);
    assert!(partitions.iter().all(|p| p["topic"] == TOPIC));
    let on_broker: i64 = partitions
        .iter()
        .map(|p| p["high"].as_i64().unwrap() - p["low"].as_i64().unwrap())
        .sum();
    assert_eq!(on_broker, expected as i64);
}
