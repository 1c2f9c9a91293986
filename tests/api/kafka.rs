//! The relay against a real Kafka-protocol broker: tansu, started by each test on a free
//! loopback port (`make test` installs it) and stopped when the test ends.

use crate::broker::{Broker, PARTITIONS, consume, topic_size};
use crate::helpers::{
    TestApp, eventually, eventually_within, expect_error, last_position, relay_checkpoint,
    spawn_app_with,
};
use crate::relay::write_some;
use crate::topic_check::{Consumed, TOPIC, assert_topic_holds_outbox};
use app::dto::PartitionOffsetsDto;
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::HashMap;
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
        "--poll-interval",
        "50ms",
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
    let detail = app.order_detail(id).await;
    let delivery = detail.events[0].delivery.as_ref().expect("published");
    assert_eq!(delivery.topic, TOPIC);
    assert!(
        delivery
            .partition
            .is_some_and(|p| (0..PARTITIONS).contains(&p))
    );
    assert!(delivery.offset.is_some_and(|o| o >= 0));
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
    let mut broker = Broker::start().await;
    let (app, expected) = acknowledged(&broker, 12, &[]).await;
    let partitions: Vec<PartitionOffsetsDto> = app.admin_get("/api/admin/sink/offsets").await;
    assert_eq!(partitions.len(), PARTITIONS as usize);
    assert!(partitions.iter().all(|p| p.topic == TOPIC));
    let on_broker: i64 = partitions.iter().map(|p| p.high - p.low).sum();
    assert_eq!(on_broker, expected as i64);
    // With no broker to ask, the answer is 503, not an old or empty list.
    broker.kill().await;
    let response = app
        .admin(reqwest::Method::GET, "/api/admin/sink/offsets", None)
        .await;
    expect_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "sink_unavailable",
    )
    .await;
}

/// What an operator reads by hand: `scripts/kcat` (Debian's kcat on the librdkafka that
/// `make test` fetches) consumes the relay's topic on the broker with every key, value and
/// header, and it holds exactly the outbox.
#[tokio::test]
async fn kcat_reads_every_event_with_its_headers() {
    let broker = Broker::start().await;
    let (app, expected) = acknowledged(&broker, 9, &[]).await;
    let kcat = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kcat");
    let output = tokio::process::Command::new(kcat)
        .args(["-b", &broker.address, "-C", "-t", TOPIC, "-e", "-J", "-q"])
        .output()
        .await
        .unwrap_or_else(|e| panic!("{kcat} runs (`make test` installs kcat): {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "kcat failed: {stderr}");
    let messages: Vec<Consumed> = String::from_utf8(output.stdout)
        .expect("kcat prints UTF-8")
        .lines()
        .map(kcat_record)
        .collect();
    assert_eq!(messages.len(), expected, "kcat read every event once");
    let duplicates = assert_topic_holds_outbox(&app.db_path(), &messages);
    assert!(duplicates.is_empty(), "published twice: {duplicates:?}");
}

/// The application publishing to `broker` in streaming mode (with the `extra` arguments)
/// once `orders` orders (some changed and cancelled) are written and every event is
/// acknowledged; and the event count.
pub async fn acknowledged(broker: &Broker, orders: usize, extra: &[&str]) -> (TestApp, usize) {
    let app = app_on(broker, "streaming", extra).await;
    let db = app.db_path();
    let events = write_some(&app, orders).await;
    eventually("every event is acknowledged", || async {
        relay_checkpoint(&db) == last_position(&db)
    })
    .await;
    (app, events)
}

/// One line of `kcat -J`: an object with the partition, offset, key, payload (text) and the
/// headers as a flat `[name, value, name, value, …]` list.
fn kcat_record(line: &str) -> Consumed {
    let record: Value = serde_json::from_str(line).expect("kcat -J prints JSON lines");
    let headers = record["headers"]
        .as_array()
        .expect("kcat lists the headers");
    assert_eq!(headers.len() % 2, 0, "headers come as name/value pairs");
    let headers: HashMap<String, String> = headers
        .chunks(2)
        .map(|pair| {
            let text = |v: &Value| v.as_str().expect("a header as text").to_string();
            (text(&pair[0]), text(&pair[1]))
        })
        .collect();
    Consumed {
        partition: i32::try_from(record["partition"].as_i64().expect("partition")).unwrap(),
        offset: record["offset"].as_i64().expect("offset"),
        key: record["key"].as_str().expect("a key").to_string(),
        value: serde_json::from_str(record["payload"].as_str().expect("a payload"))
            .expect("the payload is JSON"),
        headers,
    }
}
