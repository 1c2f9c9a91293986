//! `GET /api/live`: snapshots change as orders flow, discrete events arrive, dead letter
//! details reach only admin clients, and an open stream does not hold up shutdown.

use crate::helpers::{ADMIN_TOKEN, TestApp, spawn_app_with};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// An SSE client reading `(event name, JSON data)` pairs.
struct Feed {
    body: futures::stream::BoxStream<'static, reqwest::Result<hyper::body::Bytes>>,
    buffer: String,
}

impl Feed {
    async fn open(url: String, admin: bool) -> Feed {
        let mut request = reqwest::Client::new().get(url);
        if admin {
            request = request.bearer_auth(ADMIN_TOKEN);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Feed {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped); `None` when the stream ended. Fails after 10 s.
    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(n) = line.strip_prefix("event: ") {
                        name = Some(n.to_string());
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push_str(d);
                    }
                }
                if let Some(name) = name {
                    return Some((name, serde_json::from_str(&data).expect("JSON data")));
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.body.next())
                .await
                .expect("an event within 10 s")?;
            self.buffer
                .push_str(&String::from_utf8_lossy(&chunk.expect("stream chunk")));
        }
    }

    /// Reads until an event named `name` satisfies `check` (30 s at most); returns it.
    async fn until(&mut self, name: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (n, data) = tokio::time::timeout_at(deadline, self.next())
                .await
                .unwrap_or_else(|_| panic!("no matching {name} event within 30 s"))
                .expect("the stream is open");
            if n == name && check(&data) {
                return data;
            }
        }
    }
}

fn url(app: &TestApp) -> String {
    app.url("/api/live")
}

#[tokio::test]
async fn snapshots_follow_the_orders_and_published_events_are_sampled() {
    let app = spawn_app_with(&[]).await;
    let mut feed = Feed::open(url(&app), false).await;
    let first = feed.until("snapshot", |_| true).await;
    for field in [
        "at",
        "mode",
        "state",
        "events_per_second_1s",
        "events_per_second_10s",
        "latency_p50_ms",
        "latency_p99_ms",
        "pending",
        "oldest_pending_age_ms",
        "breaker",
        "dlq_pending",
        "fault",
    ] {
        assert!(first.get(field).is_some(), "snapshot has {field}: {first}");
    }
    assert_eq!(first["mode"], "streaming");
    assert_eq!(first["breaker"], "closed");
    assert_eq!(first["events_per_second_10s"], 0.0);
    assert!(first["latency_p50_ms"].is_null());

    let id = app.create_order_id(&["LIVE-1"]).await;
    let sample = feed.until("published", |_| true).await;
    assert_eq!(sample["event_type"], "OrderCreated");
    assert_eq!(sample["topic"], "outbox.event.order");
    assert!(sample.get("payload").is_none(), "no payloads in the feed");
    let detail = app.get_json(&format!("/api/orders/{id}")).await;
    assert_eq!(sample["event_id"], detail["events"][0]["event_id"]);
    for i in 0..20 {
        app.create_order_id(&[&format!("LIVE-{i}")]).await;
    }
    let busy = feed
        .until("snapshot", |s| {
            s["events_per_second_10s"].as_f64() > Some(0.0)
        })
        .await;
    assert!(busy["latency_p50_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
    assert!(busy["latency_p99_ms"].as_f64() >= busy["latency_p50_ms"].as_f64());
}

#[tokio::test]
async fn breaker_transitions_are_public_and_dead_letters_are_admin_only() {
    let app = spawn_app_with(&[
        "--retry-initial-delay-ms",
        "5",
        "--retry-max-delay-ms",
        "10",
        "--breaker-open-timeout-ms",
        "200",
    ])
    .await;
    let mut public = Feed::open(url(&app), false).await;
    let mut admin = Feed::open(url(&app), true).await;
    app.admin_post(
        "/api/admin/faults",
        json!({"mode": "poison", "event_type": "OrderCancelled"}),
    )
    .await;
    let id = app.create_order_id(&["LIVE-D"]).await;
    assert_eq!(app.cancel(&id, 1, "live").await.status(), StatusCode::OK);
    let added = admin.until("dlq", |_| true).await;
    assert_eq!(added["action"], "added");
    assert_eq!(added["aggregate_id"], id.as_str());
    let snapshot = admin.until("snapshot", |s| s["dlq_pending"] == 1).await;
    assert_eq!(snapshot["fault"], "poison");
    // A later published sample reaches the public client after anything sent before it; no
    // dead letter event comes first.
    app.admin_post("/api/admin/faults", json!({"mode": "none"}))
        .await;
    let later = app.create_order_id(&["LIVE-L"]).await;
    let later_event =
        app.get_json(&format!("/api/orders/{later}")).await["events"][0]["event_id"].clone();
    loop {
        let (name, data) = public.next().await.expect("open");
        assert_ne!(name, "dlq", "dead letter details are for admins only");
        if name == "published" && data["event_id"] == later_event {
            break;
        }
    }
    // Breaker transitions are public.
    app.admin_post("/api/admin/faults", json!({"mode": "down"}))
        .await;
    app.create_order_id(&["LIVE-B"]).await;
    let opened = public.until("breaker", |b| b["to"] == "open").await;
    assert_eq!(opened["from"], "closed");
    assert!(!opened["reason"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn an_open_stream_does_not_hold_up_shutdown() {
    let data = tempfile::tempdir().unwrap();
    let (mut server, base) =
        crate::crash::start_server_with(data.path(), &[], std::process::Stdio::null()).await;
    let mut feed = Feed::open(format!("{base}/api/live"), false).await;
    feed.until("snapshot", |_| true).await;
    crate::crash::sigterm(&server);
    let status = tokio::time::timeout(Duration::from_secs(5), server.wait())
        .await
        .expect("the server exits within 5 s with a client connected")
        .unwrap();
    assert!(status.success(), "{status}");
    // The client sees its stream end instead of hanging.
    while feed.next().await.is_some() {}
}
