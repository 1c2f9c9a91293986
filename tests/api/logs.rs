//! Logs and request ids: every response carries an `x-request-id` (the caller's if sane,
//! otherwise a new one); with `LOG_FORMAT=json` every log line is a JSON object, and one
//! request id (and the W3C trace id) leads to the order it created and on to the relay's
//! `published` line.

use crate::crash::start_server_with;
use crate::helpers::{order_body, spawn_app};
use app::dto::OrderDto;
use reqwest::Client;
use serde_json::Value;
use std::process::Stdio;
use tokio::io::AsyncReadExt;

#[tokio::test]
async fn request_ids_are_propagated_or_generated() {
    let app = spawn_app().await;
    let id = |r: &reqwest::Response| r.headers()["x-request-id"].to_str().unwrap().to_string();
    // Any of the allowed characters, up to 128 of them, stay the caller's.
    for accepted in ["client-id.42:a_b-c".to_string(), "a".repeat(128)] {
        let r = app
            .client
            .get(app.url("/healthz"))
            .header("x-request-id", &accepted)
            .send()
            .await
            .unwrap();
        assert_eq!(id(&r), accepted);
    }
    let fresh = id(&app.get("/healthz").await);
    assert!(uuid::Uuid::parse_str(&fresh).is_ok(), "{fresh}");
    assert_ne!(fresh, id(&app.get("/healthz").await), "one per request");
    // Hostile or oversized ids are replaced, never echoed.
    for hostile in [
        "a".repeat(129),
        "has space".into(),
        "quote\"brace{".into(),
        String::new(),
    ] {
        let r = app
            .client
            .get(app.url("/api/orders/not-a-uuid"))
            .header("x-request-id", &hostile)
            .send()
            .await
            .unwrap();
        let got = id(&r);
        assert_ne!(got, hostile);
        assert!(uuid::Uuid::parse_str(&got).is_ok(), "{got}");
    }
}

#[tokio::test]
async fn json_logs_lead_from_the_request_to_the_published_event() {
    let data = tempfile::tempdir().unwrap();
    let (mut server, base) = start_server_with(
        data.path(),
        &[("LOG_FORMAT", "json"), ("RUST_LOG", "outbox=debug")],
        Stdio::piped(),
    )
    .await;
    let order: OrderDto = Client::new()
        .post(format!("{base}/api/orders"))
        .header("x-request-id", "follow-me-1")
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .json(&order_body(&["LOG-1"]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order_id = order.id;
    let db = data.path().join(outbox::store::sqlite::DATABASE_FILE);
    crate::helpers::eventually("the event is published", || async {
        crate::helpers::relay_checkpoint(&db) == 1
    })
    .await;
    crate::crash::sigterm(&server);
    let mut stderr = server.stderr.take().unwrap();
    let mut text = String::new();
    stderr.read_to_string(&mut text).await.unwrap();
    server.wait().await.unwrap();

    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .all(|l| l["timestamp"].is_string() && l["level"].is_string())
    );
    // The request's span carries its id and, once known, the order's.
    let committed = lines
        .iter()
        .find(|l| l["message"] == "order change committed")
        .expect("a committed line");
    assert_eq!(committed["span"]["request_id"], "follow-me-1");
    assert_eq!(
        committed["span"]["trace_id"],
        "0af7651916cd43dd8448eb211c80319c"
    );
    assert_eq!(committed["order_id"], order_id.as_str());
    let event_id = committed["event_id"].as_str().unwrap();
    // The relay's line for the same event names its topic, partition and offset.
    let published = lines
        .iter()
        .find(|l| l["message"] == "published" && l["event_id"] == event_id)
        .expect("a published line for the event");
    assert_eq!(published["order_id"], order_id.as_str());
    assert_eq!(published["topic"], "outbox.event.order");
    assert_eq!(published["trace_id"], "0af7651916cd43dd8448eb211c80319c");
}

/// Without `ADMIN_TOKEN` the server generates one and shows it exactly once, in its log; it
/// opens the admin API, and neither failed nor successful admin requests print it again.
#[tokio::test]
async fn a_generated_admin_token_is_shown_exactly_once() {
    use tokio::io::AsyncBufReadExt;
    let data = tempfile::tempdir().unwrap();
    let (mut server, base) = start_server_with(
        data.path(),
        &[("LOG_FORMAT", "json"), ("RUST_LOG", "info")],
        Stdio::piped(),
    )
    .await;
    let mut stderr = tokio::io::BufReader::new(server.stderr.take().unwrap());
    let mut text = String::new();
    let token = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).await.unwrap() > 0,
            "the log ended: {text}"
        );
        text.push_str(&line);
        let json: Value = serde_json::from_str(&line).unwrap();
        if let Some(token) = json["admin_token"].as_str() {
            break token.to_string();
        }
    };
    let client = Client::new();
    let status = |token: &str| {
        let request = client
            .get(format!("{base}/api/admin/relay"))
            .bearer_auth(token)
            .send();
        async move { request.await.unwrap().status() }
    };
    assert_eq!(status("wrong-token-0123456789").await, 401);
    assert_eq!(status(&token).await, 200);
    assert_eq!(status(&token).await, 200);
    crate::crash::sigterm(&server);
    stderr.read_to_string(&mut text).await.unwrap();
    server.wait().await.unwrap();
    assert_eq!(text.matches(&token).count(), 1, "{text}");
}
