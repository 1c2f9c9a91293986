//! Malformed, oversized, missing and hostile input: a clear 4xx and nothing written.

use crate::helpers::{TestApp, expect_error, order_body, spawn_app};
use app::dto::ErrorBody;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Sends `body` with `content_type` and checks the status, the code and that no row changed.
async fn refused(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
    status: StatusCode,
    code: &str,
) -> ErrorBody {
    let before = (
        app.count("orders"),
        app.count("outbox"),
        app.count("idempotency_keys"),
    );
    let mut request = app.client.request(method, app.url(path)).body(body);
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    let response = request.send().await.unwrap();
    let body = expect_error(response, status, code).await;
    let after = (
        app.count("orders"),
        app.count("outbox"),
        app.count("idempotency_keys"),
    );
    assert_eq!(before, after, "{code} must write nothing");
    body
}

async fn post(app: &TestApp, body: &str, status: StatusCode, code: &str) -> ErrorBody {
    let json = Some("application/json");
    refused(
        app,
        reqwest::Method::POST,
        "/api/orders",
        json,
        body.as_bytes().to_vec(),
        status,
        code,
    )
    .await
}

fn fields(body: &ErrorBody) -> Vec<String> {
    body.details.iter().map(|d| d.field.clone()).collect()
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    for body in [
        "",
        "{",
        "{\"customer_id\": }",
        "{\"customer_id\": \"x\", \"items\": [",
        "{\"customer_id\":\"x\",\"items\":[]} trailing",
        "\u{feff}{}",
    ] {
        post(&app, body, StatusCode::BAD_REQUEST, "malformed_json").await;
    }
    // Deep nesting is refused at the first value of the wrong shape, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    post(
        &app,
        &deep,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
}

#[tokio::test]
async fn wrong_shapes_are_422_with_the_offending_field() {
    let app = spawn_app().await;
    let cases = [
        (
            r#"{"customer_id":"0193a5e0-7d1c-7b3a-9c4e-2f5d6a7b8c9d","items":[{"sku":"A","quantity":"2","unit_price_cents":1}]}"#,
            "items[0].quantity",
        ),
        (
            r#"{"customer_id":"0193a5e0-7d1c-7b3a-9c4e-2f5d6a7b8c9d","items":[{"sku":"A","quantity":1.5,"unit_price_cents":1}]}"#,
            "items[0].quantity",
        ),
        (
            r#"{"customer_id":"0193a5e0-7d1c-7b3a-9c4e-2f5d6a7b8c9d","items":[{"sku":"A","quantity":1,"unit_price_cents":1e30}]}"#,
            "items[0].unit_price_cents",
        ),
        (
            r#"{"customer_id":"0193a5e0-7d1c-7b3a-9c4e-2f5d6a7b8c9d","items":{}}"#,
            "items",
        ),
        (
            r#"{"customer_id":"0193a5e0-7d1c-7b3a-9c4e-2f5d6a7b8c9d","items":[],"admin":true}"#,
            "admin",
        ),
        (
            r#"{"customer_id":"0193a5e0-7d1c-7b3a-9c4e-2f5d6a7b8c9d","items":[{"sku":"A","quantity":1,"unit_price_cents":1,"discount":5}]}"#,
            "items[0].discount",
        ),
        (
            r#"{"customer_id":"0193a5e0-7d1c-7b3a-9c4e-2f5d6a7b8c9d"}"#,
            "body",
        ),
        (r#"{"customer_id":42,"items":[]}"#, "customer_id"),
        ("null", "body"),
        ("[]", "body"),
    ];
    for (body, field) in cases {
        let error = post(&app, body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
        assert_eq!(fields(&error), [field], "{body}");
    }
}

#[tokio::test]
async fn invalid_values_are_422_listing_every_field() {
    let app = spawn_app().await;
    let body = json!({
        "customer_id": "00000000-0000-0000-0000-000000000000",
        "items": [
            {"sku": "lower-case", "quantity": 0, "unit_price_cents": -1},
            {"sku": "X".repeat(33), "quantity": 1001, "unit_price_cents": 100_000_001},
            {"sku": "OK", "quantity": 1, "unit_price_cents": 0}
        ]
    });
    let error = post(
        &app,
        &body.to_string(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(
        fields(&error),
        [
            "customer_id",
            "items[0].sku",
            "items[0].quantity",
            "items[0].unit_price_cents",
            "items[1].sku",
            "items[1].quantity",
            "items[1].unit_price_cents"
        ]
    );
    let no_items = json!({"customer_id": "0193a5e0-7d1c-7b3a-9c4e-2f5d6a7b8c9d", "items": []});
    let error = post(
        &app,
        &no_items.to_string(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(fields(&error), ["items"]);
    let skus: Vec<String> = (0..101).map(|i| format!("S{i}")).collect();
    let skus: Vec<&str> = skus.iter().map(String::as_str).collect();
    let error = post(
        &app,
        &order_body(&skus).to_string(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(fields(&error), ["items"]);
}

#[tokio::test]
async fn hostile_values_are_refused_and_harmless() {
    let app = spawn_app().await;
    for sku in [
        "A'; DROP TABLE orders;--",
        "<script>alert(1)</script>",
        "A\u{0}B",
        "Ａ",
        "../../etc/passwd",
    ] {
        let body = order_body(&[sku]).to_string();
        post(
            &app,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    let id = app.create_order_id(&["SAFE"]).await;
    // A reason full of SQL and markup is stored verbatim, as data.
    let reason = "'); DELETE FROM outbox; -- <b>bold</b>";
    let response = app.cancel(&id, 1, reason).await;
    assert_eq!(response.status(), StatusCode::OK);
    let detail = app.order_detail(&id).await;
    assert_eq!(detail.order.cancel_reason.as_deref(), Some(reason));
    assert_eq!((app.count("orders"), app.count("outbox")), (1, 2));
}

#[tokio::test]
async fn change_bodies_are_validated_too() {
    let app = spawn_app().await;
    let id = app.create_order_id(&["A"]).await;
    let json = Some("application/json");
    let cancel = format!("/api/orders/{id}/cancel");
    let items = format!("/api/orders/{id}/items");
    let cases: [(reqwest::Method, &str, Value, &str); 7] = [
        (
            reqwest::Method::POST,
            &cancel,
            json!({"reason": "  ", "expected_version": 1}),
            "validation_failed",
        ),
        (
            reqwest::Method::POST,
            &cancel,
            json!({"reason": "x".repeat(501), "expected_version": 1}),
            "validation_failed",
        ),
        (
            reqwest::Method::POST,
            &cancel,
            json!({"reason": "bell\u{7}", "expected_version": 1}),
            "validation_failed",
        ),
        (
            reqwest::Method::POST,
            &cancel,
            json!({"reason": "r"}),
            "invalid_body",
        ),
        (
            reqwest::Method::POST,
            &cancel,
            json!({"reason": "r", "expected_version": -1}),
            "invalid_body",
        ),
        (
            reqwest::Method::PUT,
            &items,
            json!({"expected_version": 1, "items": []}),
            "validation_failed",
        ),
        (
            reqwest::Method::PUT,
            &items,
            json!({"items": [{"sku": "A", "quantity": 1, "unit_price_cents": 1}]}),
            "invalid_body",
        ),
    ];
    for (method, path, body, code) in cases {
        let body = body.to_string().into_bytes();
        refused(
            &app,
            method,
            path,
            json,
            body,
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
        )
        .await;
    }
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let app = spawn_app().await;
    let big = format!(
        "{{\"customer_id\":\"{}\",\"items\":[]}}",
        "a".repeat(70 * 1024)
    );
    post(
        &app,
        &big,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    // Server functions (the UI's form endpoint) and the sign-in form are bounded as well,
    // and answer in the API's JSON.
    let form = format!("customer_id={}", "a".repeat(70 * 1024)).into_bytes();
    for path in ["/fn/create_order", "/auth/sign-in"] {
        refused(
            &app,
            reqwest::Method::POST,
            path,
            Some("application/x-www-form-urlencoded"),
            form.clone(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        )
        .await;
    }
}

/// The pages' server functions read form bodies: a malformed, incomplete or empty one is the
/// caller's fault (400, JSON), never a 500, and shows nothing of the decoder's internals.
#[tokio::test]
async fn malformed_server_function_calls_are_400_without_internals() {
    let app = spawn_app().await;
    let form = Some("application/x-www-form-urlencoded");
    let calls: [(&str, Option<&str>, &str); 8] = [
        ("/fn/create_order", form, "x=1"),
        ("/fn/create_order", form, ""),
        ("/fn/create_order", form, "customer_id=abc"),
        (
            "/fn/create_order",
            form,
            "customer_id=abc&items[0][quantity]=lots",
        ),
        ("/fn/create_order", Some("application/json"), "{bad"),
        ("/fn/create_order", None, "%%%"),
        ("/fn/order_detail", form, "x=1"),
        ("/fn/list_orders", form, "cursor=1&cursor=2&cursor[x]=3"),
    ];
    for (path, content_type, body) in calls {
        let mut request = app.client.post(app.url(path)).body(body.to_string());
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        assert!(
            status.is_client_error(),
            "{path} {body:?}: {status} is not a 4xx"
        );
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{path} {body:?}: not JSON"
        );
        let text = response.text().await.unwrap();
        for internal in ["deserializ", "missing field", "Transport", "invalid type"] {
            assert!(!text.contains(internal), "{path} {body:?}: {text}");
        }
    }
    // A server function that does not exist is an unknown route, in JSON.
    let response = app.post_json("/fn/no_such_function", &json!({})).await;
    expect_error(response, StatusCode::NOT_FOUND, "no_route").await;
    assert_eq!((app.count("orders"), app.count("outbox")), (0, 0));
}

#[tokio::test]
async fn non_json_content_types_are_415() {
    let app = spawn_app().await;
    let body = order_body(&["A"]).to_string().into_bytes();
    // JSON under a structured-syntax type is JSON.
    let response = app
        .client
        .post(app.url("/api/orders"))
        .header(
            "content-type",
            "application/vnd.outbox.order+json; charset=utf-8",
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(app.count("orders"), 1);
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonx"),
    ] {
        refused(
            &app,
            reqwest::Method::POST,
            "/api/orders",
            ct,
            body.clone(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
    }
}

#[tokio::test]
async fn bad_ids_queries_and_headers_are_400() {
    let app = spawn_app().await;
    for path in [
        "/api/orders/not-a-uuid",
        "/api/orders/123",
        "/api/orders/%FF",
    ] {
        expect_error(app.get(path).await, StatusCode::BAD_REQUEST, "invalid_id").await;
    }
    for query in ["limit=0", "limit=101", "limit=ten", "limit=-1"] {
        expect_error(
            app.get(&format!("/api/orders?{query}")).await,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        )
        .await;
    }
    for cursor in ["0", "abc", "-5", "99999999999999999999999"] {
        expect_error(
            app.get(&format!("/api/orders?cursor={cursor}")).await,
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
        )
        .await;
    }
    let body = order_body(&["A"]);
    for key in ["", &"k".repeat(256), "has space", "tab\there"] {
        let response = app
            .client
            .post(app.url("/api/orders"))
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::BAD_REQUEST, "invalid_idempotency_key").await;
    }
    let non_ascii = reqwest::header::HeaderValue::from_bytes(b"caf\xe9").unwrap();
    let response = app
        .client
        .post(app.url("/api/orders"))
        .header("idempotency-key", non_ascii)
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_idempotency_key").await;
    assert_eq!((app.count("orders"), app.count("outbox")), (0, 0));
}

#[tokio::test]
async fn bad_event_page_queries_are_400() {
    let app = spawn_app().await;
    // The events of one order page like the order list; a version cursor is above 1.
    let id = app.create_order_id(&["A"]).await;
    for query in ["limit=0", "limit=101", "limit=ten", "limit=-1"] {
        expect_error(
            app.get(&format!("/api/orders/{id}?{query}")).await,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        )
        .await;
    }
    for cursor in ["0", "1", "abc", "-5", "99999999999999999999999"] {
        expect_error(
            app.get(&format!("/api/orders/{id}?cursor={cursor}")).await,
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
        )
        .await;
    }
    assert_eq!((app.count("orders"), app.count("outbox")), (1, 1));
}
