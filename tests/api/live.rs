//! `GET /api/live`: snapshots change as orders flow, discrete events arrive, dead letter
//! details reach only admin clients, and an open stream does not hold up shutdown.

use crate::helpers::{ADMIN_TOKEN, TestApp, spawn_app_with};
use app::dto::{BreakerState, DlqAction, Fault, LiveEvent, LiveSnapshotDto, RelayMode};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;

/// An SSE client reading `(event name, JSON data)` pairs.
struct Feed {
    body: futures::stream::BoxStream<'static, reqwest::Result<hyper::body::Bytes>>,
    buffer: String,
}

/// One event of the feed, as the contract types it.
#[derive(Debug)]
enum Item {
    Snapshot(LiveSnapshotDto),
    Event(LiveEvent),
}

impl Feed {
    /// A stream of `url`, as an admin (bearer token) or as anyone.
    async fn open(url: String, admin: bool) -> Feed {
        let request = reqwest::Client::new().get(url);
        Feed::from(if admin {
            request.bearer_auth(ADMIN_TOKEN)
        } else {
            request
        })
        .await
    }

    /// A stream of `url` for the console session `cookie`.
    async fn signed_in(url: String, cookie: &str) -> Feed {
        Feed::from(reqwest::Client::new().get(url).header("cookie", cookie)).await
    }

    async fn from(request: reqwest::RequestBuilder) -> Feed {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Feed {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event's name and raw data (comments skipped); `None` when the stream ended.
    /// Fails after 10 s.
    async fn next_raw(&mut self) -> Option<(String, String)> {
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
                    return Some((name, data));
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

    /// The next event, typed: a snapshot, or a discrete event whose SSE name is its kind.
    async fn next(&mut self) -> Option<Item> {
        let (name, data) = self.next_raw().await?;
        if name == "snapshot" {
            return Some(Item::Snapshot(
                serde_json::from_str(&data).expect("a snapshot"),
            ));
        }
        let event: LiveEvent = serde_json::from_str(&data).expect("a live event");
        assert_eq!(event.name(), name, "the SSE name is the event's kind");
        Some(Item::Event(event))
    }

    /// Reads until an item satisfies `check` (30 s at most); returns what `check` gave.
    async fn until<T>(&mut self, what: &str, check: impl Fn(Item) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let item = tokio::time::timeout_at(deadline, self.next())
                .await
                .unwrap_or_else(|_| panic!("no {what} within 30 s"))
                .expect("the stream is open");
            if let Some(found) = check(item) {
                return found;
            }
        }
    }

    /// The next snapshot that satisfies `check`.
    async fn snapshot(&mut self, check: impl Fn(&LiveSnapshotDto) -> bool) -> LiveSnapshotDto {
        self.until("matching snapshot", |item| match item {
            Item::Snapshot(s) if check(&s) => Some(s),
            _ => None,
        })
        .await
    }
}

fn url(app: &TestApp) -> String {
    app.url("/api/live")
}

#[tokio::test]
async fn snapshots_follow_the_orders_and_published_events_are_sampled() {
    let app = spawn_app_with(&[]).await;
    let mut feed = Feed::open(url(&app), false).await;
    let (name, raw) = feed.next_raw().await.expect("the first event");
    assert_eq!(name, "snapshot", "the current snapshot comes first");
    // Every field is there, absent values as null.
    let first: Value = serde_json::from_str(&raw).unwrap();
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
    let first: LiveSnapshotDto = serde_json::from_value(first).unwrap();
    assert_eq!(first.mode, RelayMode::Streaming);
    assert_eq!(first.breaker, BreakerState::Closed);
    assert_eq!(first.events_per_second_10s, 0.0);
    assert_eq!(first.latency_p50_ms, None);
    assert_eq!(first.fault, None);

    let id = app.create_order_id(&["LIVE-1"]).await;
    let (event_id, event_type, topic) = feed
        .until("published sample", |item| match item {
            Item::Event(LiveEvent::Published {
                event_id,
                event_type,
                topic,
                ..
            }) => Some((event_id, event_type, topic)),
            _ => None,
        })
        .await;
    assert_eq!(event_type, "OrderCreated");
    assert_eq!(topic, "outbox.event.order");
    assert_eq!(event_id, app.order_detail(&id).await.events[0].event_id);
    for i in 0..20 {
        app.create_order_id(&[&format!("LIVE-{i}")]).await;
    }
    let busy = feed.snapshot(|s| s.events_per_second_10s > 0.0).await;
    let p50 = busy.latency_p50_ms.expect("latency once events flowed");
    assert!(p50 >= 0.0);
    assert!(busy.latency_p99_ms >= Some(p50));
}

/// The published samples carry ids and latency, never the payload.
#[tokio::test]
async fn published_samples_carry_no_payload() {
    let app = spawn_app_with(&[]).await;
    let mut feed = Feed::open(url(&app), false).await;
    app.create_order_id(&["LIVE-P"]).await;
    loop {
        let (name, raw) = feed.next_raw().await.expect("open");
        if name == "published" {
            let sample: Value = serde_json::from_str(&raw).unwrap();
            assert!(
                sample.get("payload").is_none(),
                "no payloads in the feed: {raw}"
            );
            break;
        }
    }
}

#[tokio::test]
async fn breaker_transitions_are_public_and_dead_letters_are_admin_only() {
    let app = spawn_app_with(&[
        "--retry-initial-delay",
        "5ms",
        "--retry-max-delay",
        "10ms",
        "--breaker-open-timeout",
        "200ms",
    ])
    .await;
    let mut public = Feed::open(url(&app), false).await;
    let mut admin = Feed::open(url(&app), true).await;
    let poison = Fault::Poison {
        event_type: Some("OrderCancelled".into()),
        every_n: None,
    };
    app.set_fault(poison.clone()).await;
    let id = app.create_order_id(&["LIVE-D"]).await;
    assert_eq!(app.cancel(&id, 1, "live").await.status(), StatusCode::OK);
    let (action, aggregate_id) = admin
        .until("dead letter event", |item| match item {
            Item::Event(LiveEvent::Dlq {
                action,
                aggregate_id,
                ..
            }) => Some((action, aggregate_id)),
            _ => None,
        })
        .await;
    assert_eq!(action, DlqAction::Added);
    assert_eq!(aggregate_id, id);
    let snapshot = admin.snapshot(|s| s.dlq_pending == 1).await;
    assert_eq!(snapshot.fault, Some(poison));
    // A later published sample reaches the public client after anything sent before it; no
    // dead letter event comes first.
    app.set_fault(Fault::None {}).await;
    let later = app.create_order_id(&["LIVE-L"]).await;
    let later_event = app.order_detail(&later).await.events[0].event_id.clone();
    loop {
        match public.next().await.expect("open") {
            Item::Event(e) if e.admin_only() => panic!("dead letter details are for admins only"),
            Item::Event(LiveEvent::Published { event_id, .. }) if event_id == later_event => break,
            _ => {}
        }
    }
    // Breaker transitions are public.
    app.set_fault(Fault::Down {}).await;
    app.create_order_id(&["LIVE-B"]).await;
    let (from, reason) = public
        .until("breaker opening", |item| match item {
            Item::Event(LiveEvent::Breaker {
                from,
                to: BreakerState::Open,
                reason,
                ..
            }) => Some((from, reason)),
            _ => None,
        })
        .await;
    assert_eq!(from, BreakerState::Closed);
    assert!(!reason.is_empty());
}

/// A console session follows each dead letter: added, then replayed or discarded, with the
/// record's id once it has one.
#[tokio::test]
async fn a_console_session_sees_dead_letters_added_replayed_and_discarded() {
    let app = spawn_app_with(&crate::resilience::FAST).await;
    let cookie = crate::console::session(&app).await;
    let mut console = Feed::signed_in(url(&app), &cookie).await;
    let dlq_event = |item| match item {
        Item::Event(LiveEvent::Dlq {
            action,
            id,
            aggregate_id,
            ..
        }) => Some((action, id, aggregate_id)),
        _ => None,
    };
    app.set_fault(Fault::Poison {
        event_type: Some("OrderCreated".into()),
        every_n: None,
    })
    .await;
    let replayed = app.create_order_id(&["LIVE-R"]).await;
    let discarded = app.create_order_id(&["LIVE-X"]).await;
    for order in [&replayed, &discarded] {
        let added = console.until("a dead letter added", dlq_event).await;
        assert_eq!(added, (DlqAction::Added, None, order.clone()));
    }
    let page: app::dto::DeadLetterPageDto = app.admin_get("/api/admin/dlq").await;
    let record_of = |order: &str| {
        page.items
            .iter()
            .find(|d| d.event.aggregate_id == order)
            .expect("a record")
            .id
    };
    let (replayed_id, discarded_id) = (record_of(&replayed), record_of(&discarded));
    app.set_fault(Fault::None {}).await;
    let _: app::dto::DeadLetterDto = app
        .admin_post(&format!("/api/admin/dlq/{replayed_id}/replay"), None::<()>)
        .await;
    let seen = console.until("the replay", dlq_event).await;
    assert_eq!(seen, (DlqAction::Replayed, Some(replayed_id), replayed));
    let reason = app::dto::DiscardRequest {
        reason: "fixed by hand".into(),
    };
    let _: app::dto::DeadLetterDto = app
        .admin_post(
            &format!("/api/admin/dlq/{discarded_id}/discard"),
            Some(reason),
        )
        .await;
    let seen = console.until("the discard", dlq_event).await;
    assert_eq!(seen, (DlqAction::Discarded, Some(discarded_id), discarded));
}

#[tokio::test]
async fn an_open_stream_does_not_hold_up_shutdown() {
    let data = tempfile::tempdir().unwrap();
    let (mut server, base) =
        crate::crash::start_server_with(data.path(), &[], std::process::Stdio::null()).await;
    let mut feed = Feed::open(format!("{base}/api/live"), false).await;
    feed.snapshot(|_| true).await;
    crate::crash::sigterm(&server);
    let status = tokio::time::timeout(Duration::from_secs(5), server.wait())
        .await
        .expect("the server exits within 5 s with a client connected")
        .unwrap();
    assert!(status.success(), "{status}");
    // The client sees its stream end instead of hanging.
    while feed.next().await.is_some() {}
}
