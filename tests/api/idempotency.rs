//! `Idempotency-Key`: retries of a creation give the same order and no second event.

use crate::helpers::{TestApp, eventually, expect_error, order_body, spawn_app, spawn_app_with};
use crate::relay::{create, open_store};
use app::dto::OrderDto;
use futures::future::join_all;
use outbox::store::sqlite::DATABASE_FILE;
use outbox::store::{Command, IdempotencyKey, OrderStore, RetentionStore};
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
    let first: OrderDto = first.json().await.unwrap();

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
    let again: OrderDto = again.json().await.unwrap();
    assert_eq!(again.id, first.id);
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
        ids.push(r.json::<OrderDto>().await.unwrap().id);
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

/// The store deletes keys recorded before the cutoff, oldest first and `limit` at a time, and
/// leaves younger ones.
#[tokio::test]
async fn the_store_deletes_keys_older_than_the_cutoff_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    for i in 0..3 {
        let Command::Create { order, .. } = create() else {
            unreachable!("create() makes a creation")
        };
        let key = IdempotencyKey::parse(&format!("key-{i}")).unwrap();
        let command = Command::Create {
            order,
            idempotency_key: Some(key),
        };
        store.apply(command).await.unwrap();
    }
    let keys = || crate::helpers::count_rows(&dir.path().join(DATABASE_FILE), "idempotency_keys");
    let an_hour = chrono::Duration::hours(1);

    let past = chrono::Utc::now() - an_hour;
    assert_eq!(store.delete_idempotency_keys(past, 100).await.unwrap(), 0);
    assert_eq!(keys(), 3, "keys younger than the cutoff stay");
    let future = chrono::Utc::now() + an_hour;
    assert_eq!(store.delete_idempotency_keys(future, 2).await.unwrap(), 2);
    assert_eq!(store.delete_idempotency_keys(future, 100).await.unwrap(), 1);
    assert_eq!(keys(), 0);
    assert_eq!(
        crate::helpers::count_rows(&dir.path().join(DATABASE_FILE), "orders"),
        3
    );
}

/// With `IDEMPOTENCY_KEY_TTL` past, the sweep deletes the key: the same key then creates a new
/// order instead of being refused as reused. Before that it is refused.
#[tokio::test]
async fn an_expired_key_is_swept_and_can_be_used_again() {
    let app = spawn_app_with(&[
        "--idempotency-key-ttl",
        "1s",
        "--retention-interval",
        "50ms",
    ])
    .await;
    let first = create_with_key(&app, "k-ttl", &order_body(&["A"])).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: OrderDto = first.json().await.unwrap();
    let refused = create_with_key(&app, "k-ttl", &order_body(&["B"])).await;
    expect_error(
        refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    )
    .await;

    eventually("the expired key is swept", || async {
        app.count("idempotency_keys") == 0
    })
    .await;
    let again = create_with_key(&app, "k-ttl", &order_body(&["B"])).await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert!(again.headers().get("idempotent-replayed").is_none());
    let again: OrderDto = again.json().await.unwrap();
    assert_ne!(again.id, first.id, "a new order");
    assert_eq!((app.count("orders"), app.count("idempotency_keys")), (2, 1));
}

/// Keys within their lifetime (the default, 24 h) survive the sweep. That the sweep ran is
/// seen from the outbox retention (0 s here), which runs in the same pass: two orders swept
/// one after the other mean at least one whole pass went by after the key was written.
#[tokio::test]
async fn keys_within_their_lifetime_survive_the_sweep() {
    let app = spawn_app_with(&["--outbox-retention", "0s", "--retention-interval", "20ms"]).await;
    let body = order_body(&["A"]);
    let first = create_with_key(&app, "k-kept", &body).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: OrderDto = first.json().await.unwrap();
    for _ in 0..2 {
        app.create_order(&["SWEPT"]).await;
        eventually("the published events are swept", || async {
            app.count("outbox") == 0
        })
        .await;
    }
    assert_eq!(app.count("idempotency_keys"), 1, "the key is kept");
    let again = create_with_key(&app, "k-kept", &body).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: OrderDto = again.json().await.unwrap();
    assert_eq!(again.id, first.id);
}
