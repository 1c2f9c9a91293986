//! Many writers at once: group commit must neither lose nor duplicate anything.

use crate::helpers::spawn_app;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::HashSet;

#[tokio::test]
async fn two_hundred_concurrent_creates_give_two_hundred_orders_and_events() {
    let app = spawn_app().await;
    let requests = (0..200).map(|i| {
        let app = &app;
        async move { app.create_order_id(&[&format!("C-{i}")]).await }
    });
    let ids: HashSet<String> = join_all(requests).await.into_iter().collect();
    assert_eq!(ids.len(), 200);
    assert_eq!((app.count("orders"), app.count("outbox")), (200, 200));

    // Commit positions are exactly 1..=200: gap-free, one per event.
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    let (min, max, distinct): (i64, i64, i64) = conn
        .query_row(
            "SELECT min(position), max(position), count(DISTINCT position) FROM outbox",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((min, max, distinct), (1, 200, 200));
    let orphans: i64 = conn
        .query_row(
            "SELECT count(*) FROM outbox WHERE aggregate_id NOT IN (SELECT id FROM orders)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0);
}

#[tokio::test]
async fn concurrent_changes_at_the_same_version_let_exactly_one_win() {
    let app = spawn_app().await;
    let id = app.create_order_id(&["A"]).await;
    let attempts = (0..20).map(|i| {
        let (app, id) = (&app, &id);
        async move {
            app.replace_items(
                id,
                1,
                json!([{"sku": format!("W-{i}"), "quantity": 1, "unit_price_cents": 1}]),
            )
            .await
            .status()
        }
    });
    let statuses = join_all(attempts).await;
    let won = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let lost = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((won, lost), (1, 19));
    assert_eq!(app.count("outbox"), 2);
}
