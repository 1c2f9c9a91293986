//! Success paths of every endpoint.

use crate::helpers::{expect_error, spawn_app};
use app::dto::{
    ComponentStatus, Fault, HealthDto, HealthVerdict, OrderDetailDto, OrderDto, OrderPageDto,
    OrderStatusDto,
};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn create_returns_201_with_the_order_and_its_location() {
    let app = spawn_app().await;
    let response = app
        .post_json("/api/orders", &crate::helpers::order_body(&["A-1", "B-2"]))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let order: OrderDto = response.json().await.unwrap();
    assert_eq!(location, format!("/api/orders/{}", order.id));
    assert_eq!(order.status, OrderStatusDto::Created);
    assert_eq!(order.version, 1);
    assert_eq!(order.total_cents, 600);
    assert_eq!(order.items[1].sku, "B-2");
    assert_eq!((app.count("orders"), app.count("outbox")), (1, 1));
}

#[tokio::test]
async fn get_returns_the_order_and_its_event_envelope() {
    let app = spawn_app().await;
    let order = app.create_order(&["A-1"]).await;
    let id = order.id.as_str();
    let detail = app.order_detail(id).await;
    assert_eq!(detail.order, order);
    assert_eq!(detail.events.len(), 1);
    let e = &detail.events[0];
    let event_id = uuid::Uuid::parse_str(&e.event_id).unwrap();
    assert_eq!(event_id.get_version_num(), 7, "event ids are UUIDv7");
    assert_eq!(e.aggregate_type, "order");
    assert_eq!(e.aggregate_id, id);
    assert_eq!(e.aggregate_version, 1);
    assert_eq!(e.event_type, "OrderCreated");
    assert_eq!(e.schema_version, 1);
    assert_eq!(e.position, 1);
    // The payload is the event's own JSON document.
    assert_eq!(e.payload["order_id"], id);
    assert_eq!(e.payload["customer_id"], order.customer_id.as_str());
    assert_eq!(
        e.payload["items"],
        serde_json::to_value(&order.items).unwrap()
    );
    assert!(e.occurred_at.ends_with('Z'));
}

#[tokio::test]
async fn list_is_newest_first_and_cursor_paginated() {
    let app = spawn_app().await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(app.create_order_id(&[&format!("S{i}")]).await);
    }
    created.reverse();
    let mut seen = Vec::new();
    let mut path = "/api/orders?limit=2".to_string();
    loop {
        let page: OrderPageDto = app.get_ok(&path).await;
        assert!(page.orders.len() <= 2);
        seen.extend(page.orders.into_iter().map(|o| o.id));
        match page.next_cursor {
            Some(c) => path = format!("/api/orders?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, created);
    let default: OrderPageDto = app.get_ok("/api/orders").await;
    assert_eq!(default.orders.len(), 5);
    assert_eq!(default.next_cursor, None);
}

#[tokio::test]
async fn replacing_items_bumps_the_version_and_appends_one_event() {
    let app = spawn_app().await;
    let id = app.create_order_id(&["A-1"]).await;
    let response = app
        .replace_items(
            &id,
            1,
            json!([{"sku": "Z-9", "quantity": 3, "unit_price_cents": 100}]),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let order: OrderDto = response.json().await.unwrap();
    assert_eq!(order.version, 2);
    assert_eq!(order.total_cents, 300);
    let detail = app.order_detail(&id).await;
    let types: Vec<_> = detail
        .events
        .iter()
        .map(|e| (e.event_type.as_str(), e.aggregate_version))
        .collect();
    assert_eq!(types, [("OrderItemsUpdated", 2), ("OrderCreated", 1)]);
    assert_eq!(detail.events[0].payload["items"][0]["sku"], "Z-9");
    assert_eq!(
        detail.next_cursor, None,
        "both events fit on the first page"
    );
}

#[tokio::test]
async fn the_events_of_a_busy_order_come_a_page_at_a_time_newest_first() {
    let app = spawn_app().await;
    let id = app.create_order_id(&["A"]).await;
    for version in 1..25 {
        let items = json!([{"sku": format!("S-{version}"), "quantity": 1, "unit_price_cents": 1}]);
        let response = app.replace_items(&id, version, items).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    // The default page is the newest twenty.
    let first: OrderDetailDto = app.get_ok(&format!("/api/orders/{id}")).await;
    let versions =
        |d: &OrderDetailDto| -> Vec<u32> { d.events.iter().map(|e| e.aggregate_version).collect() };
    assert_eq!(versions(&first), (6..=25).rev().collect::<Vec<_>>());
    assert_eq!(first.order.version, 25);
    // Walking with a smaller page reaches every event once, and then stops.
    let mut path = format!("/api/orders/{id}?limit=10");
    let mut seen = Vec::new();
    loop {
        let page: OrderDetailDto = app.get_ok(&path).await;
        assert!(page.events.len() <= 10);
        seen.extend(versions(&page));
        match page.next_cursor {
            Some(cursor) => path = format!("/api/orders/{id}?limit=10&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, (1..=25).rev().collect::<Vec<_>>());
}

#[tokio::test]
async fn a_cancelled_order_refuses_every_further_change() {
    let app = spawn_app().await;
    let id = app.create_order_id(&["A-1"]).await;
    let response = app.cancel(&id, 1, "customer changed their mind").await;
    assert_eq!(response.status(), StatusCode::OK);
    let order: OrderDto = response.json().await.unwrap();
    assert_eq!(
        (order.status, order.version),
        (OrderStatusDto::Cancelled, 2)
    );
    assert_eq!(
        order.cancel_reason.as_deref(),
        Some("customer changed their mind")
    );

    expect_error(
        app.cancel(&id, 2, "again").await,
        StatusCode::CONFLICT,
        "order_cancelled",
    )
    .await;
    let items = app
        .replace_items(
            &id,
            2,
            json!([{"sku": "Z", "quantity": 1, "unit_price_cents": 1}]),
        )
        .await;
    expect_error(items, StatusCode::CONFLICT, "order_cancelled").await;
    assert_eq!((app.count("orders"), app.count("outbox")), (1, 2));
}

#[tokio::test]
async fn a_stale_version_is_409_and_writes_nothing() {
    let app = spawn_app().await;
    let id = app.create_order_id(&["A-1"]).await;
    let response = app.cancel(&id, 5, "r").await;
    let body = expect_error(response, StatusCode::CONFLICT, "version_conflict").await;
    assert!(body.message.contains("version 1"));
    let detail = app.order_detail(&id).await;
    assert_eq!(detail.order.status, OrderStatusDto::Created);
    assert_eq!(app.count("outbox"), 1);
}

#[tokio::test]
async fn unknown_orders_are_404() {
    let app = spawn_app().await;
    let missing = "01a21b60-3c0e-7485-95f2-000000000000";
    expect_error(
        app.get(&format!("/api/orders/{missing}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        app.cancel(missing, 1, "r").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    for unknown in ["/api/nothing-here", "/api", "/api/", "/api/orders/x/y/z"] {
        expect_error(app.get(unknown).await, StatusCode::NOT_FOUND, "no_route").await;
    }
    let delete = app
        .client
        .delete(app.url("/api/orders"))
        .send()
        .await
        .unwrap();
    expect_error(delete, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    assert_eq!(app.count("outbox"), 0);
}

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let health: HealthDto = app.get_ok("/healthz").await;
    assert_eq!(health.status, HealthVerdict::Ok);
    // Until the relay has resumed from its checkpoint, the service is `degraded`.
    crate::helpers::eventually("the relay is running", || async {
        let ready: HealthDto = app.get_ok("/readyz").await;
        ready.status == HealthVerdict::Ready
    })
    .await;
    let body: HealthDto = app.get_ok("/readyz").await;
    assert_eq!(body.status, HealthVerdict::Ready);
    let names: Vec<&str> = body.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["store", "relay", "sink", "faults"]);
    for c in &body.components {
        assert_eq!(c.status, ComponentStatus::Up, "{c:?}");
        assert!(!c.detail.is_empty());
    }
}

/// An open breaker and an active fault make the service degraded, not down.
#[tokio::test]
async fn an_open_breaker_is_degraded_not_down() {
    let app = crate::helpers::spawn_app_with(&[
        "--retry-initial-delay",
        "5ms",
        "--retry-max-delay",
        "10ms",
    ])
    .await;
    app.set_fault(Fault::Down {}).await;
    app.create_order_id(&["H-1"]).await;
    crate::helpers::eventually("the breaker opens", || async {
        let ready: HealthDto = app.get_ok("/readyz").await;
        ready.components[2].status == ComponentStatus::Degraded
    })
    .await;
    let body: HealthDto = app.get_ok("/readyz").await;
    assert_eq!(body.status, HealthVerdict::Degraded);
    let [store, _relay, sink, faults] = &body.components[..] else {
        panic!("four components: {body:?}");
    };
    assert_eq!(
        store.status,
        ComponentStatus::Up,
        "the store still takes orders"
    );
    assert!(sink.detail.contains("circuit breaker open"), "{body:?}");
    assert_eq!(faults.status, ComponentStatus::Degraded);
    assert_eq!(faults.detail, "a simulated fault is active");
    let health: HealthDto = app.get_ok("/healthz").await;
    assert_eq!(health.status, HealthVerdict::Ok);
    let names: Vec<&str> = health.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["relay", "sink", "faults"],
        "liveness does not probe the store"
    );
    assert_eq!(health.components[1].status, ComponentStatus::Degraded);
}

#[tokio::test]
async fn readiness_is_503_when_the_store_cannot_write() {
    let app = spawn_app().await;
    // Make the database read-only underneath the running writer: the probe must fail.
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: HealthDto = ready.json().await.unwrap();
    assert_eq!(body.status, HealthVerdict::NotReady);
    assert_eq!(body.components[0].name, "store");
    assert_eq!(body.components[0].status, ComponentStatus::Down);
    conn.execute_batch("ROLLBACK").unwrap();
    // The probe's result is reused for a moment, then the next probe finds the store back.
    crate::helpers::eventually("the store is ready again", || async {
        app.get("/readyz").await.status() == StatusCode::OK
    })
    .await;
}

#[tokio::test]
async fn pages_render_on_the_server() {
    let app = spawn_app().await;
    let id = app.create_order_id(&["PAGE-1"]).await;
    let list = app.get("/orders").await;
    assert_eq!(list.status(), StatusCode::OK);
    let html = list.text().await.unwrap();
    assert!(
        html.contains(&format!("data-order-id=\"{id}\"")),
        "list shows the order"
    );
    assert!(
        html.contains("action=\"/fn/create_order\""),
        "form posts to the server function"
    );
    let detail = app
        .get(&format!("/orders/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(detail.contains("PAGE-1") && detail.contains("OrderCreated"));
    let missing = app
        .get("/orders/01a21b60-3c0e-7485-95f2-000000000000")
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/no/such/page").await.status(),
        StatusCode::NOT_FOUND
    );
}

/// The UI's form endpoint: a browser without JavaScript is redirected back with the errors;
/// a script gets a 4xx (never a 500) with the field errors. Nothing is written either way.
#[tokio::test]
async fn the_form_endpoint_answers_bad_input_with_4xx_or_a_redirect() {
    let app = spawn_app().await;
    let form = "customer_id=nope&items%5B0%5D%5Bsku%5D=bad+sku&items%5B0%5D%5Bquantity%5D=0&items%5B0%5D%5Bunit_price%5D=x";
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let post = |accept: &'static str| {
        no_redirects
            .post(app.url("/fn/create_order"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", accept)
            .header("referer", app.url("/orders"))
            .body(form)
            .send()
    };
    let script = post("application/json").await.unwrap();
    assert_eq!(script.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = script.text().await.unwrap();
    assert!(
        body.contains("items[0].sku") && body.contains("customer_id"),
        "{body}"
    );

    let browser = post("text/html").await.unwrap();
    assert_eq!(browser.status(), StatusCode::FOUND);
    let location = browser.headers()["location"].to_str().unwrap();
    assert!(
        location.contains("/orders?") && location.contains("__err="),
        "{location}"
    );
    assert_eq!((app.count("orders"), app.count("outbox")), (0, 0));

    let valid = "customer_id=0193a5e0-7d1c-7b3a-9c4e-2f5d6a7b8c9d&items%5B0%5D%5Bsku%5D=FORM-1&items%5B0%5D%5Bquantity%5D=2&items%5B0%5D%5Bunit_price%5D=1.50";
    let created = no_redirects
        .post(app.url("/fn/create_order"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "text/html")
        .body(valid)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::FOUND);
    let location = created.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("/orders/"), "{location}");
    let id = location.trim_start_matches("/orders/");
    let detail = app.order_detail(id).await;
    assert_eq!(detail.order.items[0].unit_price_cents, 150);
    assert_eq!((app.count("orders"), app.count("outbox")), (1, 1));
}

#[tokio::test]
async fn a_locked_database_answers_503_and_writes_nothing() {
    let app = spawn_app().await;
    let other = rusqlite::Connection::open(app.db_path()).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    // The writer waits out its busy timeout, then gives up on this batch.
    let response = app
        .post_json("/api/orders", &crate::helpers::order_body(&["LOCKED"]))
        .await;
    assert_eq!(response.headers()["retry-after"], "1");
    expect_error(response, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    other.execute_batch("ROLLBACK").unwrap();
    assert_eq!((app.count("orders"), app.count("outbox")), (0, 0));
    // Once the lock is gone, writes go through again.
    app.create_order(&["UNLOCKED"]).await;
    assert_eq!(app.count("outbox"), 1);
}
