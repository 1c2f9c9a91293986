//! Admin endpoints: nothing changes without the admin token; relay mode switches at run time
//! without losing events.

use crate::helpers::{ADMIN_TOKEN, TestApp, expect_error, spawn_app_with};
use crate::relay::{assert_topic_matches_outbox, drained, write_some};
use app::dto::{RelayMode, RelayModeDto};
use reqwest::StatusCode;
use serde_json::json;

async fn mode(app: &TestApp) -> RelayMode {
    let answer: RelayModeDto = app.admin_get("/api/admin/relay/mode").await;
    answer.mode
}

async fn switch(app: &TestApp, to: RelayMode) {
    let body = RelayModeDto { mode: to };
    let answer: RelayModeDto = app.admin_post("/api/admin/relay/mode", Some(body)).await;
    assert_eq!(answer.mode, to);
}

#[tokio::test]
async fn admin_endpoints_refuse_missing_or_wrong_tokens_and_change_nothing() {
    let app = spawn_app_with(&[]).await;
    let body = json!({"mode": "polling"});
    let wrong = [
        None,
        Some("Bearer wrong-token-wrong-token"),
        Some(&*format!("Bearer {ADMIN_TOKEN}x")),
        Some(&*format!("Basic {ADMIN_TOKEN}")),
        Some(&*format!("bearer{ADMIN_TOKEN}")),
        Some("Bearer "),
    ];
    for header in wrong {
        for method in [reqwest::Method::GET, reqwest::Method::POST] {
            let mut request = app
                .client
                .request(method.clone(), app.url("/api/admin/relay/mode"))
                .json(&body);
            if let Some(h) = header {
                request = request.header("authorization", h);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
            expect_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
        }
    }
    assert_eq!(
        mode(&app).await,
        RelayMode::Streaming,
        "refused requests changed nothing"
    );
}

#[tokio::test]
async fn admin_bodies_are_validated() {
    let app = spawn_app_with(&[]).await;
    for body in [
        json!({"mode": "fast"}),
        json!({}),
        json!({"mode": "polling", "extra": 1}),
    ] {
        let response = app
            .client
            .post(app.url("/api/admin/relay/mode"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
    }
    assert_eq!(mode(&app).await, RelayMode::Streaming);
}

#[tokio::test]
async fn switching_modes_mid_stream_loses_nothing() {
    let app = spawn_app_with(&["--poll-interval", "30ms"]).await;
    let mut expected = write_some(&app, 10).await;
    switch(&app, RelayMode::Polling).await;
    assert_eq!(mode(&app).await, RelayMode::Polling);
    expected += write_some(&app, 10).await;
    switch(&app, RelayMode::Streaming).await;
    expected += write_some(&app, 10).await;
    drained(&app, expected).await;
    assert_topic_matches_outbox(&app, expected).await;
}
