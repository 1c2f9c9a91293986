//! `Idempotency-Key`: retries of a creation give the same order and no second event.

use crate::helpers::{TestApp, expect_error, order_body, spawn_app};
use futures::future::join_all;
use reqwest::{Response, StatusCode};
use serde_json::Value;

async fn create_with_key(app: &TestApp, key: &str, body: &Value) -> Response {
    app.client
        .post(app.url("/api/orders"))
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_same_key_and_body_return_the_same_order_once() {
    let app = spawn_app().await;
    let body = order_body(&["A", "B"]);
    let first = create_with_key(&app, "order-123", &body).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();

    // The same request spelled differently (key order, whitespace) is still the same request.
    let respelled = r#"{ "items": [{"unit_price_cents":150,"quantity":2,"sku":"A"},{"sku":"B","quantity":2,"unit_price_cents":150}],
                        "customer_id": "0193a5e0-7d1c-7b3a-9c4e-2f5d6a7b8c9d" }"#;
    let again = app
        .client
        .post(app.url("/api/orders"))
        .header("idempotency-key", "order-123")
        .header("content-type", "application/json")
        .body(respelled)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(
        (
            app.count("orders"),
            app.count("outbox"),
            app.count("idempotency_keys")
        ),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn the_same_key_with_another_body_is_422_and_writes_nothing() {
    let app = spawn_app().await;
    assert_eq!(
        create_with_key(&app, "k-1", &order_body(&["A"]))
            .await
            .status(),
        StatusCode::CREATED
    );
    let other = create_with_key(&app, "k-1", &order_body(&["B"])).await;
    expect_error(
        other,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    )
    .await;
    assert_eq!((app.count("orders"), app.count("outbox")), (1, 1));
}

#[tokio::test]
async fn concurrent_retries_with_one_key_create_one_order() {
    let app = spawn_app().await;
    let body = order_body(&["RACE"]);
    let responses = join_all((0..20).map(|_| create_with_key(&app, "race-key", &body))).await;
    let mut ids = Vec::new();
    for r in responses {
        assert_eq!(r.status(), StatusCode::CREATED);
        ids.push(r.json::<Value>().await.unwrap()["id"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1);
    assert_eq!((app.count("orders"), app.count("outbox")), (1, 1));
}

#[tokio::test]
async fn different_keys_create_different_orders() {
    let app = spawn_app().await;
    let body = order_body(&["A"]);
    for key in ["a", "b"] {
        assert_eq!(
            create_with_key(&app, key, &body).await.status(),
            StatusCode::CREATED
        );
    }
    assert_eq!((app.count("orders"), app.count("outbox")), (2, 2));
}
