//! The operations console's door and the relay suspension: sign-in with the admin token, the
//! session cookie, sign-out, the guard on `/console/...`, and `POST /api/admin/relay/suspend`.

use crate::helpers::{ADMIN_TOKEN, TestApp, eventually, expect_error, spawn_app, spawn_app_with};
use app::dto::{HealthDto, HealthVerdict, RelayMode, RelayState, RelayStatusDto, SuspensionDto};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Client, Response, StatusCode};

pub fn no_redirects() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn location(response: &Response) -> &str {
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("a Location header")
}

pub async fn sign_in(app: &TestApp, form: &[(&str, &str)]) -> Response {
    no_redirects()
        .post(app.url("/auth/sign-in"))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// Signs in with the right token and returns the `name=value` of the session cookie.
pub async fn session(app: &TestApp) -> String {
    let response = sign_in(app, &[("token", ADMIN_TOKEN)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap();
    cookie.split(';').next().unwrap().to_string()
}

async fn get_with(app: &TestApp, path: &str, cookie: &str) -> Response {
    no_redirects()
        .get(app.url(path))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn console_pages_send_visitors_without_a_session_to_sign_in() {
    let app = spawn_app().await;
    for (path, next) in [
        ("/console", "%2Fconsole"),
        ("/console/dlq", "%2Fconsole%2Fdlq"),
        ("/console/relay", "%2Fconsole%2Frelay"),
    ] {
        let response = no_redirects().get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&response), format!("/console/sign-in?next={next}"));
    }
    let forged = get_with(&app, "/console", "outbox_session=forged").await;
    assert_eq!(forged.status(), StatusCode::SEE_OTHER);
    // The sign-in page itself and the order pages stay open.
    let page = no_redirects()
        .get(app.url("/console/sign-in"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let orders = no_redirects().get(app.url("/orders")).send().await.unwrap();
    assert_eq!(orders.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_admin_token_starts_a_session_that_opens_the_console_and_the_admin_api() {
    let app = spawn_app().await;
    let response = sign_in(&app, &[("token", ADMIN_TOKEN), ("next", "/console/dlq")]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/console/dlq");
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap();
    for attribute in ["outbox_session=", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap();
    assert!(
        !set_cookie.contains(ADMIN_TOKEN),
        "the cookie is not the token"
    );

    let page = get_with(&app, "/console", cookie).await;
    assert_eq!(page.status(), StatusCode::OK);
    let status = get_with(&app, "/api/admin/relay", cookie).await;
    assert_eq!(status.status(), StatusCode::OK);
    let body: RelayStatusDto = status.json().await.unwrap();
    assert_eq!(body.mode, RelayMode::Streaming);
}

#[tokio::test]
async fn wrong_missing_and_hostile_sign_ins_get_no_session() {
    let app = spawn_app().await;
    let cases: [&[(&str, &str)]; 4] = [
        &[("token", "not-the-admin-token-at-all")],
        &[("token", "")],
        &[("next", "/console")],
        &[("token", "x'; DROP TABLE orders; --")],
    ];
    for form in cases {
        let response = sign_in(&app, form).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{form:?}");
        assert!(
            location(&response).starts_with("/console/sign-in?error=invalid"),
            "{form:?}"
        );
        assert!(response.headers().get(SET_COOKIE).is_none(), "{form:?}");
    }
    // Not a form at all.
    let response = no_redirects()
        .post(app.url("/auth/sign-in"))
        .header("content-type", "application/json")
        .body(r#"{"token":"x"}"#)
        .send()
        .await
        .unwrap();
    assert!(response.headers().get(SET_COOKIE).is_none());
    // Oversized.
    let huge = "a".repeat(2 * 1024 * 1024);
    let response = sign_in(&app, &[("token", &huge)]).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // After a right token, a `next` off the console is not followed.
    for next in ["https://evil.example/", "//evil.example", "/orders"] {
        let response = sign_in(&app, &[("token", ADMIN_TOKEN), ("next", next)]).await;
        assert_eq!(location(&response), "/console", "{next}");
    }
    assert_eq!(app.count("orders"), 0, "nothing was written");
}

#[tokio::test]
async fn signing_out_ends_the_session() {
    let app = spawn_app().await;
    let cookie = session(&app).await;
    let response = no_redirects()
        .post(app.url("/auth/sign-out"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/console/sign-in?signed_out=1");
    assert!(
        response.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    // The old cookie is worth nothing now, even if the browser kept it.
    let page = get_with(&app, "/console", &cookie).await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    let api = get_with(&app, "/api/admin/relay", &cookie).await;
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_suspended_relay_sends_nothing_until_resumed() {
    let app = spawn_app().await;
    let anonymous = app
        .client
        .post(app.url("/api/admin/relay/suspend"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let answer: SuspensionDto = app.admin_post("/api/admin/relay/suspend", None::<()>).await;
    assert!(answer.suspended);
    eventually("the relay reports itself suspended", || async {
        app.relay_status().await.state == RelayState::Suspended
    })
    .await;
    let id = app.create_order_id(&["A"]).await;
    let status = app.relay_status().await;
    assert_eq!(status.pending, 1, "the new event waits");
    let order = app.order_detail(&id).await;
    assert!(order.events[0].delivery.is_none());
    let health: HealthDto = app.get_ok("/readyz").await;
    assert_eq!(health.status, HealthVerdict::Degraded);

    let answer: SuspensionDto = app.admin_post("/api/admin/relay/resume", None::<()>).await;
    assert!(!answer.suspended);
    eventually("the waiting event is published", || async {
        app.order_detail(&id).await.events[0].delivery.is_some()
    })
    .await;
    assert_eq!(app.relay_status().await.pending, 0);
}

#[tokio::test]
async fn broker_offsets_need_admin_and_a_kafka_sink() {
    let app = spawn_app().await;
    let anonymous = app
        .client
        .get(app.url("/api/admin/sink/offsets"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let embedded = app
        .admin(reqwest::Method::GET, "/api/admin/sink/offsets", None)
        .await;
    assert_eq!(
        embedded.status(),
        StatusCode::NOT_FOUND,
        "the embedded log has /api/topics"
    );
}

/// Guessing the token: after `AUTH_FAILURE_LIMIT` wrong tokens (sign-in or bearer) within the
/// window, the address is refused every check, even with the right token, until the oldest
/// failure leaves the window. A session started before keeps working.
#[tokio::test]
async fn wrong_tokens_lock_the_address_out_for_the_window() {
    let app = spawn_app_with(&["--auth-failure-limit", "3", "--auth-failure-window", "2s"]).await;
    let cookie = session(&app).await;
    for _ in 0..2 {
        let response = sign_in(&app, &[("token", "not-the-admin-token-at-all")]).await;
        assert!(location(&response).starts_with("/console/sign-in?error=invalid"));
    }
    let wrong_bearer = app
        .client
        .get(app.url("/api/admin/relay"))
        .bearer_auth("still-not-the-admin-token")
        .send()
        .await
        .unwrap();
    expect_error(wrong_bearer, StatusCode::UNAUTHORIZED, "unauthorized").await;

    // Locked out: the right token is not even checked.
    let response = sign_in(&app, &[("token", ADMIN_TOKEN)]).await;
    assert!(location(&response).starts_with("/console/sign-in?error=throttled"));
    assert!(response.headers().get(SET_COOKIE).is_none());
    let right_bearer = || {
        app.client
            .get(app.url("/api/admin/relay"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
    };
    let refused = right_bearer().await.unwrap();
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    expect_error(refused, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    let live = app
        .client
        .get(app.url("/api/live"))
        .bearer_auth(ADMIN_TOKEN);
    assert_eq!(
        live.send().await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // The session from before is not a guess.
    assert_eq!(
        get_with(&app, "/api/admin/relay", &cookie).await.status(),
        StatusCode::OK
    );

    eventually("the failures leave the window", || async {
        right_bearer().await.unwrap().status() == StatusCode::OK
    })
    .await;
    let response = sign_in(&app, &[("token", ADMIN_TOKEN)]).await;
    assert!(response.headers().get(SET_COOKIE).is_some());
}
