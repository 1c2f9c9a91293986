//! kill -9 during a burst of writes: every acknowledged change survives with exactly one event
//! per version, and no event exists without its order change.

use crate::helpers::{count_rows, order_body};
use futures::future::join_all;
use outbox::store::sqlite::DATABASE_FILE;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;

/// Concurrent client connections in the burst.
const CLIENTS: usize = 32;
/// Acknowledged writes after which the server is killed (the clients keep sending).
const KILL_AFTER: usize = 400;
/// Upper bound of requests per client, so the burst ends even if the kill never lands.
const MAX_PER_CLIENT: usize = 2_000;

/// The real server binary on a free port, started on `data_dir`.
async fn start_server(data_dir: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_outbox"))
        .env("DATA_DIR", data_dir)
        .env("LEPTOS_SITE_ADDR", "127.0.0.1:0")
        .env("SQLITE_SYNCHRONOUS", "full")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
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

/// What the server acknowledged: (order id, version).
type Acks = Arc<std::sync::Mutex<Vec<(String, u64)>>>;

/// One client: create an order, then change it, again and again, recording every 2xx.
async fn client(base: String, acks: Acks, count: Arc<AtomicUsize>, reached: Arc<Notify>) {
    let http = Client::new();
    let ack = |id: &str, version: u64| {
        acks.lock().unwrap().push((id.to_string(), version));
        if count.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER {
            reached.notify_one();
        }
    };
    for i in 0..MAX_PER_CLIENT {
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
        let Ok(order) = r.json::<Value>().await else {
            return;
        };
        let id = order["id"].as_str().unwrap().to_string();
        ack(&id, 1);
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
            ack(&id, 2);
        }
    }
}

#[tokio::test]
async fn kill_9_mid_burst_loses_no_acknowledged_write() {
    let data = tempfile::tempdir().unwrap();
    let (mut server, base) = start_server(data.path()).await;

    let acks: Acks = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let reached = Arc::new(Notify::new());
    let clients = tokio::spawn(join_all((0..CLIENTS).map(|_| {
        client(
            base.clone(),
            Arc::clone(&acks),
            Arc::clone(&count),
            Arc::clone(&reached),
        )
    })));
    reached.notified().await;
    server.start_kill().expect("SIGKILL sent");
    server.wait().await.unwrap();
    clients.await.unwrap();
    let acks = acks.lock().unwrap().clone();
    assert!(acks.len() >= KILL_AFTER);

    // Restart on the same data: everything acknowledged is there.
    let (_server, base) = start_server(data.path()).await;
    let http = Client::new();
    for (id, version) in &acks {
        let detail: Value = http
            .get(format!("{base}/api/orders/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let stored = detail["order"]["version"]
            .as_u64()
            .expect("acknowledged order exists");
        assert!(stored >= *version, "order {id} lost version {version}");
        let versions: Vec<u64> = detail["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["aggregate_version"].as_u64().unwrap())
            .collect();
        assert_eq!(
            versions,
            (1..=stored).collect::<Vec<_>>(),
            "one event per version of {id}"
        );
    }

    // And the database as a whole is consistent, including writes that were in flight.
    let db = data.path().join(DATABASE_FILE);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let scalar = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        scalar("SELECT count(*) FROM outbox WHERE aggregate_id NOT IN (SELECT id FROM orders)"),
        0,
        "no orphan events"
    );
    assert_eq!(
        scalar(
            "SELECT count(*) FROM orders o WHERE o.version != (SELECT count(*) FROM outbox e WHERE e.aggregate_id = o.id)"
        ),
        0,
        "every order has exactly one event per version"
    );
    let events = count_rows(&db, "outbox");
    assert_eq!(scalar("SELECT sum(version) FROM orders"), events);
    assert_eq!(
        scalar("SELECT max(position) FROM outbox"),
        events,
        "positions are gap-free"
    );
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // The restarted relay delivers every committed event; duplicates (same event_id) can only
    // come from the batch that was in flight at the kill.
    let distinct = "SELECT count(DISTINCT json_extract(headers, '$.event_id')) FROM topic_messages";
    crate::helpers::eventually("the relay delivered every event", || async {
        scalar(distinct) == events
    })
    .await;
    let missing = scalar(
        "SELECT count(*) FROM outbox WHERE event_id NOT IN \
         (SELECT json_extract(headers, '$.event_id') FROM topic_messages)",
    );
    assert_eq!(missing, 0);
    let duplicates = count_rows(&db, "topic_messages") - events;
    assert!(
        duplicates <= 500,
        "{duplicates} duplicates: more than one relay batch"
    );
}

/// SIGTERM: the server stops taking requests, the relay finishes the batch in flight and saves
/// its checkpoint, and the process exits cleanly within a few seconds.
#[tokio::test]
async fn sigterm_stops_cleanly_with_the_checkpoint_saved() {
    let data = tempfile::tempdir().unwrap();
    let (mut server, base) = start_server(data.path()).await;
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

    let pid = server.id().unwrap().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let exited = tokio::time::timeout(std::time::Duration::from_secs(10), server.wait()).await;
    let status = exited.expect("the server exits within 10 s").unwrap();
    assert!(status.success(), "clean exit, got {status}");

    let db = data.path().join(DATABASE_FILE);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let checkpoint: i64 = conn
        .query_row(
            "SELECT coalesce(max(position), 0) FROM relay_checkpoints",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // Everything appended to the topic is covered by the saved checkpoint: no batch was cut.
    assert_eq!(count_rows(&db, "topic_messages"), checkpoint);
    assert_eq!(count_rows(&db, "outbox"), 300);
}
