//! kill -9 during a burst of writes: every acknowledged change survives with exactly one event
//! per version, and no event exists without its order change.

use crate::broker::{Broker, PARTITIONS, consume, topic_size};
use crate::helpers::{
    count_rows, eventually, eventually_within, last_position, order_body, relay_checkpoint, scalar,
};
use crate::topic_check::assert_topic_holds_outbox;
use app::dto::{OrderDetailDto, OrderDto};
use futures::future::join_all;
use outbox::store::sqlite::DATABASE_FILE;
use reqwest::{Client, StatusCode};
use serde_json::json;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;

/// Concurrent client connections in a burst.
const CLIENTS: usize = 32;
/// Most events the relay publishes in one batch (the servers here run with it).
const BATCH: i64 = 500;
/// Batches the relay keeps in flight (the servers here run with it).
const DEPTH: i64 = 2;
/// Most events sent and not yet recorded at any moment: what a crash can send twice.
const IN_FLIGHT: i64 = BATCH * DEPTH;

/// The real server binary on a free port, started on `data_dir` with `env` added.
async fn start_server(data_dir: &Path, env: &[(&str, &str)]) -> (Child, String) {
    start_server_with(data_dir, env, Stdio::null()).await
}

/// The same, with the server's log output (stderr) going to `stderr`.
pub async fn start_server_with(
    data_dir: &Path,
    env: &[(&str, &str)],
    stderr: Stdio,
) -> (Child, String) {
    let (batch, depth) = (BATCH.to_string(), DEPTH.to_string());
    let mut child = Command::new(env!("CARGO_BIN_EXE_outbox"))
        // Whatever the test's own environment holds: a token only where a test gives one.
        .env_remove("ADMIN_TOKEN")
        .env("DATA_DIR", data_dir)
        .env("LEPTOS_SITE_ADDR", "127.0.0.1:0")
        .env("SQLITE_SYNCHRONOUS", "full")
        .env("RELAY_BATCH_SIZE", &batch)
        .env("RELAY_PIPELINE_DEPTH", &depth)
        .env("RUST_LOG", "error")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("server binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = lines
        .next_line()
        .await
        .unwrap()
        .expect("server prints its address");
    let base = line
        .strip_prefix("listening on ")
        .expect("address line")
        .to_string();
    (child, base)
}

/// Sends SIGTERM to the server process (a graceful stop, as from systemd or Kubernetes).
pub fn sigterm(server: &Child) {
    let pid = server.id().expect("running server").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(sent.success());
}

/// A burst of writes from many clients that is cut by kill -9.
struct Burst {
    /// What the server acknowledged: (order id, version).
    acks: std::sync::Mutex<Vec<(String, u64)>>,
    /// Acknowledged writes so far.
    count: AtomicUsize,
    /// Creates not yet sent; the burst ends when they run out.
    creates_left: AtomicUsize,
    /// Acknowledged writes after which the server is killed (the clients keep sending).
    kill_after: usize,
    reached: Notify,
}

impl Burst {
    /// Sends up to `creates` creates (every other one followed by a change) from
    /// [`CLIENTS`] connections to the server at `base`, kill -9s it after `kill_after`
    /// acknowledged writes, and returns what was acknowledged.
    async fn run(
        server: &mut Child,
        base: &str,
        creates: usize,
        kill_after: usize,
    ) -> Vec<(String, u64)> {
        let burst = Arc::new(Burst {
            acks: std::sync::Mutex::default(),
            count: AtomicUsize::new(0),
            creates_left: AtomicUsize::new(creates),
            kill_after,
            reached: Notify::new(),
        });
        let clients = tokio::spawn(join_all(
            (0..CLIENTS).map(|_| Arc::clone(&burst).client(base.to_string())),
        ));
        burst.reached.notified().await;
        server.start_kill().expect("SIGKILL sent");
        server.wait().await.unwrap();
        clients.await.unwrap();
        let acks = burst.acks.lock().unwrap().clone();
        assert!(acks.len() >= kill_after);
        acks
    }

    fn ack(&self, id: &str, version: u64) {
        self.acks.lock().unwrap().push((id.to_string(), version));
        if self.count.fetch_add(1, Ordering::SeqCst) + 1 == self.kill_after {
            self.reached.notify_one();
        }
    }

    /// One client: create an order, change every other one, until the server is gone or
    /// the creates run out.
    async fn client(self: Arc<Self>, base: String) {
        let http = Client::new();
        let mut i = 0;
        while self
            .creates_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            i += 1;
            let Ok(r) = http
                .post(format!("{base}/api/orders"))
                .json(&order_body(&["CRASH"]))
                .send()
                .await
            else {
                return;
            };
            if r.status() != StatusCode::CREATED {
                return;
            }
            let Ok(order) = r.json::<OrderDto>().await else {
                return;
            };
            let id = order.id;
            self.ack(&id, 1);
            if i % 2 == 0 {
                let body = json!({"expected_version": 1, "items": [{"sku": "CHANGED", "quantity": 1, "unit_price_cents": 1}]});
                let Ok(r) = http
                    .put(format!("{base}/api/orders/{id}/items"))
                    .json(&body)
                    .send()
                    .await
                else {
                    return;
                };
                if r.status() != StatusCode::OK {
                    return;
                }
                self.ack(&id, 2);
            }
        }
    }
}

/// Every acknowledged change is served by the restarted server at `base`, with one event
/// per version; and the database at `db` as a whole is consistent, including the writes that
/// were in flight at the kill.
async fn assert_acknowledged_writes_survived(base: &str, db: &Path, acks: &[(String, u64)]) {
    let http = Client::new();
    for (id, version) in acks {
        let detail: OrderDetailDto = http
            .get(format!("{base}/api/orders/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .expect("acknowledged order exists");
        let stored = u64::from(detail.order.version);
        assert!(stored >= *version, "order {id} lost version {version}");
        let versions: Vec<u64> = detail
            .events
            .iter()
            .map(|e| u64::from(e.aggregate_version))
            .collect();
        assert_eq!(
            versions,
            (1..=stored).rev().collect::<Vec<_>>(),
            "one event per version of {id}, newest first"
        );
    }
    assert_eq!(
        scalar(
            db,
            "SELECT count(*) FROM outbox WHERE aggregate_id NOT IN (SELECT id FROM orders)"
        ),
        0,
        "no orphan events"
    );
    assert_eq!(
        scalar(
            db,
            "SELECT count(*) FROM orders o WHERE o.version != (SELECT count(*) FROM outbox e WHERE e.aggregate_id = o.id)"
        ),
        0,
        "every order has exactly one event per version"
    );
    let events = count_rows(db, "outbox");
    assert_eq!(scalar(db, "SELECT sum(version) FROM orders"), events);
    assert_eq!(last_position(db), events, "positions are gap-free");
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn kill_9_mid_burst_loses_no_acknowledged_write() {
    let data = tempfile::tempdir().unwrap();
    let (mut server, base) = start_server(data.path(), &[]).await;
    let acks = Burst::run(&mut server, &base, CLIENTS * 2_000, 400).await;
    let db = data.path().join(DATABASE_FILE);
    let checkpoint_at_kill = relay_checkpoint(&db);

    let (_server, base) = start_server(data.path(), &[]).await;
    assert_acknowledged_writes_survived(&base, &db, &acks).await;

    // The restarted relay delivers every committed event; duplicates (same event_id) can only
    // come from the batches that were in flight at the kill.
    let events = last_position(&db);
    eventually("the relay delivered every event", || async {
        relay_checkpoint(&db) == events
    })
    .await;
    let distinct = "SELECT count(DISTINCT json_extract(headers, '$.event_id')) FROM topic_messages";
    assert_eq!(scalar(&db, distinct), events, "every event is on the topic");
    let duplicates = count_rows(&db, "topic_messages") - events;
    assert!(
        duplicates <= IN_FLIGHT,
        "{duplicates} duplicates: more than the relay keeps in flight"
    );
    let outside = scalar(
        &db,
        &format!(
            "SELECT count(*) FROM (SELECT json_extract(headers, '$.event_id') AS id FROM topic_messages \
             GROUP BY id HAVING count(*) > 1) d JOIN outbox o ON o.event_id = d.id \
             WHERE o.position <= {checkpoint_at_kill} OR o.position > {checkpoint_at_kill} + {IN_FLIGHT}"
        ),
    );
    assert_eq!(
        outside, 0,
        "only the batches after the saved checkpoint were sent twice"
    );
}

/// The same with the relay publishing to a real Kafka-protocol broker: kill -9 during a burst
/// of 5,000 creates; after the restart every acknowledged event is on the topic, and only the
/// batches in flight at the kill (after the saved checkpoint) arrive twice.
#[tokio::test]
async fn kill_9_while_publishing_to_kafka_loses_nothing() {
    let broker = Broker::start().await;
    let partitions = PARTITIONS.to_string();
    let env = [
        ("KAFKA_BROKERS", broker.address.as_str()),
        ("KAFKA_PARTITIONS", partitions.as_str()),
    ];
    let data = tempfile::tempdir().unwrap();
    let (mut server, base) = start_server(data.path(), &env).await;
    let acks = Burst::run(&mut server, &base, 5_000, 3_000).await;
    let db = data.path().join(DATABASE_FILE);
    let checkpoint_at_kill = relay_checkpoint(&db);

    let (_server, base) = start_server(data.path(), &env).await;
    assert_acknowledged_writes_survived(&base, &db, &acks).await;
    let events = last_position(&db);
    eventually_within(
        Duration::from_secs(60),
        "the relay acknowledged every event",
        || async { relay_checkpoint(&db) == events },
    )
    .await;

    let size = topic_size(&broker.address).await;
    let messages = consume(&broker.address, size).await;
    assert_eq!(messages.len(), size, "read the whole topic");
    let duplicates = assert_topic_holds_outbox(&db, &messages);
    let conn = rusqlite::Connection::open(&db).unwrap();
    for event_id in &duplicates {
        let position: i64 = conn
            .query_row(
                "SELECT position FROM outbox WHERE event_id = ?1",
                [event_id],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            position > checkpoint_at_kill && position <= checkpoint_at_kill + IN_FLIGHT,
            "event {event_id} at {position} was sent twice, but the checkpoint at the kill was {checkpoint_at_kill}"
        );
    }
    assert_eq!(
        messages.len() - duplicates.len(),
        usize::try_from(events).unwrap()
    );
}

/// SIGTERM: the server stops taking requests, the relay finishes the batch in flight and saves
/// its checkpoint, and the process exits cleanly within a few seconds.
#[tokio::test]
async fn sigterm_stops_cleanly_with_the_checkpoint_saved() {
    let data = tempfile::tempdir().unwrap();
    let (mut server, base) = start_server(data.path(), &[]).await;
    let http = Client::new();
    let creates = (0..300).map(|i| {
        let (http, base) = (&http, &base);
        async move {
            let body = order_body(&[&format!("TERM-{i}")]);
            http.post(format!("{base}/api/orders"))
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    assert!(
        join_all(creates)
            .await
            .iter()
            .all(|s| *s == StatusCode::CREATED)
    );

    sigterm(&server);
    let exited = tokio::time::timeout(std::time::Duration::from_secs(10), server.wait()).await;
    let status = exited.expect("the server exits within 10 s").unwrap();
    assert!(status.success(), "clean exit, got {status}");

    let db = data.path().join(DATABASE_FILE);
    let checkpoint = relay_checkpoint(&db);
    // Everything appended to the topic is covered by the saved checkpoint: no batch was cut.
    assert_eq!(count_rows(&db, "topic_messages"), checkpoint);
    assert_eq!(count_rows(&db, "outbox"), 300);
}
