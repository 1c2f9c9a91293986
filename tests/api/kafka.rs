//! The relay against a real Kafka-protocol broker: tansu, started by each test on a free
//! loopback port (`make test` installs it) and stopped when the test ends.

use crate::helpers::{TestApp, eventually, spawn_app_with};
use crate::relay::write_some;
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message as _};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

const TOPIC: &str = "outbox.event.order";
const PARTITIONS: i32 = 3;

/// A tansu broker process, killed when dropped.
pub struct Broker {
    _process: Child,
    pub address: String,
}

impl Broker {
    pub async fn start() -> Broker {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let address = format!("127.0.0.1:{port}");
        let url = format!("tcp://{address}");
        let process = Command::new(std::env::var("TANSU").unwrap_or_else(|_| "tansu".into()))
            .args(["broker", "--storage-engine", "memory://tansu/"])
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("tansu runs (make test installs it: cargo install tansu)");
        eventually("tansu accepts connections", || async {
            tokio::net::TcpStream::connect(&address).await.is_ok()
        })
        .await;
        Broker {
            _process: process,
            address,
        }
    }
}

/// One consumed message, reduced to what the checks need.
#[derive(Debug, Clone)]
struct Consumed {
    partition: i32,
    offset: i64,
    key: String,
    value: Value,
    headers: HashMap<String, String>,
}

/// Reads the topic from the beginning until `expected` messages arrived (30 s at most).
async fn consume(brokers: &str, expected: usize) -> Vec<Consumed> {
    let brokers = brokers.to_string();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", "outbox-tests")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut partitions = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            partitions
                .add_partition_offset(TOPIC, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&partitions).expect("assign");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while seen.len() < expected && Instant::now() < deadline {
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let m = message.expect("consume");
            let headers = m.headers().map_or_else(HashMap::new, |h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_string(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            });
            seen.push(Consumed {
                partition: m.partition(),
                offset: m.offset(),
                key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                value: serde_json::from_slice(m.payload().unwrap_or_default())
                    .expect("JSON payload"),
                headers,
            });
        }
        seen
    })
    .await
    .unwrap()
}

/// Every outbox event is on the topic once, with its headers, in per-key version order.
async fn assert_topic_matches_outbox(app: &TestApp, messages: &[Consumed]) {
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT event_id, event_type, aggregate_id, aggregate_version, payload FROM outbox",
        )
        .unwrap();
    let outbox: HashMap<String, (String, String, i64, String)> = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        messages.len(),
        outbox.len(),
        "every committed event arrives once"
    );
    // Per partition in offset order, every key's versions must be 1, 2, 3, …
    let mut by_partition: BTreeMap<i32, Vec<&Consumed>> = BTreeMap::new();
    for m in messages {
        by_partition.entry(m.partition).or_default().push(m);
    }
    let mut versions: HashMap<&str, i64> = HashMap::new();
    for partition in by_partition.values_mut() {
        partition.sort_by_key(|m| m.offset);
        for m in partition.iter() {
            let (event_type, aggregate_id, version, payload) = &outbox[&m.headers["event_id"]];
            assert_eq!(&m.key, aggregate_id, "keyed by aggregate id");
            assert_eq!(m.value, serde_json::from_str::<Value>(payload).unwrap());
            assert_eq!(&m.headers["event_type"], event_type);
            assert_eq!(m.headers["aggregate_type"], "order");
            assert_eq!(&m.headers["aggregate_id"], aggregate_id);
            assert_eq!(m.headers["aggregate_version"], version.to_string());
            assert_eq!(m.headers["schema_version"], "1");
            assert_eq!(m.headers["content-type"], "application/json");
            assert!(m.headers["occurred_at"].ends_with('Z'));
            let previous = versions.insert(aggregate_id, *version).unwrap_or(0);
            assert_eq!(
                *version,
                previous + 1,
                "per-key order follows aggregate_version"
            );
        }
    }
}

async fn kafka_round_trip(mode: &str) {
    let broker = Broker::start().await;
    let app = spawn_app_with(&[
        "--kafka-brokers",
        &broker.address,
        "--kafka-partitions",
        "3",
        "--relay-mode",
        mode,
        "--poll-interval-ms",
        "50",
    ])
    .await;
    let expected = write_some(&app, 30).await;
    let messages = consume(&broker.address, expected).await;
    assert_topic_matches_outbox(&app, &messages).await;
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
