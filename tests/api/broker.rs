//! A real Kafka-protocol broker for the tests: a tansu process on a free loopback port, with
//! its log in an SQLite file of its own, so it can be stopped and started again with its
//! topics intact. `make test` installs tansu and sets `TANSU` to its path.
//!
//! Also here: an rdkafka consumer that reads a topic back.

use crate::topic_check::{Consumed, TOPIC};
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message as _};
use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::process::{Child, Command};

/// Partitions the Kafka tests ask the relay to create: not the default (3), so the tests
/// show that `KAFKA_PARTITIONS` reaches topic creation.
pub const PARTITIONS: i32 = 4;

/// A tansu broker process, killed when dropped.
pub struct Broker {
    process: Option<Child>,
    /// `host:port` for `bootstrap.servers`; the same across restarts.
    pub address: String,
    /// Holds the broker's SQLite log.
    storage: TempDir,
}

impl Broker {
    /// A broker keeping its log in SQLite, so it can be killed and started again. (tansu's
    /// memory storage acknowledged messages it then did not serve: 19,503 of 20,000.)
    pub async fn start() -> Broker {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut broker = Broker {
            process: None,
            address: format!("127.0.0.1:{port}"),
            storage: tempfile::tempdir().expect("temp dir"),
        };
        broker.resume().await;
        broker
    }

    /// Starts the process (again) on the same port and storage, and waits until it listens.
    pub async fn resume(&mut self) {
        assert!(self.process.is_none(), "the broker is already running");
        let url = format!("tcp://{}", self.address);
        let program = std::env::var("TANSU").unwrap_or_else(|_| "tansu".into());
        let process = Command::new(&program)
            .current_dir(self.storage.path())
            .args(["broker", "--storage-engine", "sqlite://tansu.db"])
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{program} runs (`make test` installs tansu with SQLite storage): {e}")
            });
        self.process = Some(process);
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(&self.address).await.is_err() {
            let child = self.process.as_mut().expect("just started");
            if let Some(status) = child.try_wait().expect("tansu status") {
                panic!(
                    "{program} exited ({status}) instead of listening: it needs SQLite storage \
                     (`make test` installs it and sets TANSU)"
                );
            }
            assert!(Instant::now() < deadline, "tansu never listened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.index_headers();
    }

    /// tansu 0.6 reads each fetched record's headers by its (partition, offset) from a table
    /// without an index on them: reading back a topic of 20,000 events took minutes (about
    /// 110 records a second). This index makes it seconds; it changes nothing else.
    fn index_headers(&self) {
        let db = self.storage.path().join("tansu.db");
        let conn = rusqlite::Connection::open(&db).expect("tansu's SQLite log");
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        conn.execute_batch(
            "CREATE INDEX IF NOT EXISTS header_of_record ON header (topition, offset_id)",
        )
        .expect("index tansu's headers");
    }

    /// Freezes the process (SIGSTOP): its connections stay open and nothing answers, as with
    /// a broker that hangs or a host that stalls.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen process go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.process.as_ref().and_then(Child::id).expect("running");
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Kills the process (SIGKILL: the broker gets no chance to say goodbye) and waits until
    /// it is gone.
    pub async fn kill(&mut self) {
        let mut process = self.process.take().expect("the broker is running");
        process.kill().await.expect("SIGKILL");
    }
}

fn consumer(brokers: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "outbox-tests")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}

/// How many messages the topic holds: the sum of its partitions' high watermarks.
pub async fn topic_size(brokers: &str) -> usize {
    let brokers = brokers.to_string();
    tokio::task::spawn_blocking(move || {
        let consumer = consumer(&brokers);
        (0..PARTITIONS)
            .map(|p| {
                let (low, high) = consumer
                    .fetch_watermarks(TOPIC, p, Duration::from_secs(10))
                    .expect("watermarks");
                assert_eq!(low, 0, "nothing was deleted from partition {p}");
                usize::try_from(high).unwrap()
            })
            .sum()
    })
    .await
    .unwrap()
}

/// Reads the topic from the beginning until `expected` messages arrived (60 s at most).
pub async fn consume(brokers: &str, expected: usize) -> Vec<Consumed> {
    consume_topic(brokers, TOPIC, expected).await
}

/// Reads `topic` from the beginning until `expected` messages arrived (60 s at most).
pub async fn consume_topic(brokers: &str, topic: &str, expected: usize) -> Vec<Consumed> {
    consume_topic_within(brokers, topic, expected, Duration::from_secs(60)).await
}

/// Reads `topic` from the beginning until `expected` messages arrived (`limit` at most).
pub async fn consume_topic_within(
    brokers: &str,
    topic: &str,
    expected: usize,
    limit: Duration,
) -> Vec<Consumed> {
    let (brokers, topic) = (brokers.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let consumer = consumer(&brokers);
        let mut partitions = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            partitions
                .add_partition_offset(&topic, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&partitions).expect("assign");
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        // Errors such as a dropped connection are reported and recovered from by the
        // client; the last one is shown if the messages do not all arrive.
        let mut last_error = None;
        while seen.len() < expected && Instant::now() < deadline {
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let m = match message {
                Ok(m) => m,
                Err(e) => {
                    last_error = Some(e);
                    continue;
                }
            };
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
        if seen.len() < expected
            && let Some(e) = last_error
        {
            eprintln!(
                "consuming {topic}: {} of {expected}; last error: {e}",
                seen.len()
            );
        }
        seen
    })
    .await
    .unwrap()
}
