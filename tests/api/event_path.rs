//! Where an order's events went, as `GET /api/orders/{id}` tells admins: pending, published,
//! dead-lettered (with the record's id) or replayed. Without admin credentials the answer is
//! the public one. (Consumer groups on Kafka: `consumer_lag`.)

use crate::helpers::{
    ADMIN_TOKEN, TestApp, eventually, last_position, relay_checkpoint, spawn_app,
};
use app::dto::{
    DeadLetterDto, DeadLetterPageDto, DeadLetterStatus, EventState, Fault, OrderDetailDto,
};
use reqwest::StatusCode;

/// The relay handled every committed event (published or dead-lettered).
async fn caught_up(app: &TestApp) {
    let db = app.db_path();
    eventually("the relay caught up", || async {
        relay_checkpoint(&db) == last_position(&db)
    })
    .await;
}

/// The state of `order`'s event of `event_type`, as an admin reads it.
async fn state_of(app: &TestApp, order: &str, event_type: &str) -> (EventState, Option<i64>) {
    let detail: OrderDetailDto = app.admin_get(&format!("/api/orders/{order}")).await;
    let e = detail
        .events
        .iter()
        .find(|e| e.event_type == event_type)
        .expect("the event");
    let path = e.path.as_ref().expect("admins see the path");
    assert_eq!(
        path.consumers, None,
        "no consumer groups on the embedded log"
    );
    (path.state, path.dead_letter.as_ref().map(|d| d.id))
}

#[tokio::test]
async fn a_dead_lettered_event_is_reported_with_its_record_then_as_replayed() {
    let app = spawn_app().await;
    app.set_fault(Fault::Poison {
        event_type: Some("OrderCancelled".into()),
        every_n: None,
    })
    .await;
    let order = app.create_order_id(&["PATH-1"]).await;
    assert_eq!(app.cancel(&order, 1, "test").await.status(), StatusCode::OK);
    caught_up(&app).await;

    let page: DeadLetterPageDto = app
        .admin_get(&format!("/api/admin/dlq?aggregate_id={order}"))
        .await;
    let [record] = &page.items[..] else {
        panic!("one dead letter: {page:?}")
    };
    assert_eq!(
        state_of(&app, &order, "OrderCancelled").await,
        (EventState::DeadLettered, Some(record.id))
    );
    assert_eq!(
        state_of(&app, &order, "OrderCreated").await,
        (EventState::Published, None)
    );

    // The public answer (and one with a wrong token) is what it always was: no path.
    let public = app.get_json(&format!("/api/orders/{order}")).await;
    let wrong = app
        .client
        .get(app.url(&format!("/api/orders/{order}")))
        .bearer_auth(format!("{ADMIN_TOKEN}-not"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::OK);
    let wrong: serde_json::Value = wrong.json().await.unwrap();
    for answer in [public, wrong] {
        let events = answer["events"].as_array().unwrap();
        assert!(events.iter().all(|e| e.get("path").is_none()), "{answer}");
    }

    app.set_fault(Fault::None {}).await;
    let replayed: DeadLetterDto = app
        .admin_post(&format!("/api/admin/dlq/{}/replay", record.id), None::<()>)
        .await;
    assert_eq!(replayed.status, DeadLetterStatus::Replayed);
    assert_eq!(
        state_of(&app, &order, "OrderCancelled").await,
        (EventState::Replayed, Some(record.id))
    );
    let detail: OrderDetailDto = app.admin_get(&format!("/api/orders/{order}")).await;
    assert!(detail.events.iter().all(|e| e.delivery.is_some()));
}

#[tokio::test]
async fn an_event_not_yet_relayed_is_pending() {
    let app = spawn_app().await;
    let _: serde_json::Value = app.admin_post("/api/admin/relay/suspend", None::<()>).await;
    let order = app.create_order_id(&["PATH-2"]).await;
    assert_eq!(
        state_of(&app, &order, "OrderCreated").await,
        (EventState::Pending, None)
    );
}
