//! The service facing a hostile network: clients that make up methods, pages on other sites
//! that try to drive an operator's signed-in browser, and the like. Each test here failed
//! before its fix.

use crate::console::{location, no_redirects, session, sign_in};
use crate::helpers::{ADMIN_TOKEN, TestApp, eventually, expect_error, spawn_app, spawn_app_with};
use app::dto::{BreakerState, DeadLetterStatus, Fault, RelayState, SuspensionDto};
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use std::time::Duration;

/// The `http_requests_total` series in `/metrics`.
async fn request_series(app: &TestApp) -> Vec<String> {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn made_up_methods_add_no_metric_series() {
    let app = spawn_app().await;
    for i in 0..100 {
        let method = Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
        let response = app
            .client
            .request(method, app.url("/api/orders"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
    let series = request_series(&app).await;
    assert!(
        series.iter().all(|s| !s.contains("MADEUP")),
        "no series per made-up method: {series:?}"
    );
    let other: Vec<&String> = series
        .iter()
        .filter(|s| s.contains("method=\"other\""))
        .collect();
    assert_eq!(other.len(), 1, "one `other` series: {series:?}");
    let again = request_series(&app).await;
    assert!(
        again.len() <= series.len() + 1,
        "the scrape itself adds at most its own"
    );
}

/// A POST to `path` with the session `cookie`, from `origin` (with `fetch_site`, when given).
async fn post_from(
    app: &TestApp,
    path: &str,
    cookie: &str,
    origin: &str,
    fetch_site: Option<&str>,
) -> reqwest::Response {
    let mut request = no_redirects()
        .post(app.url(path))
        .header(COOKIE, cookie)
        .header("origin", origin);
    if let Some(site) = fetch_site {
        request = request.header("sec-fetch-site", site);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn cookie_authenticated_changes_from_another_origin_are_refused() {
    let app = spawn_app().await;
    let cookie = session(&app).await;
    let own = format!("http://{}", app.addr);
    for (origin, site) in [
        ("http://evil.example", None),
        ("http://evil.example", Some("cross-site")),
        (own.as_str(), Some("same-site")),
        (own.as_str(), Some("cross-site")),
        ("null", None),
        (&*format!("http://{}:1", app.addr.ip()), None),
    ] {
        let response = post_from(&app, "/api/admin/relay/suspend", &cookie, origin, site).await;
        expect_error(response, StatusCode::FORBIDDEN, "cross_site").await;
    }
    assert_eq!(
        app.relay_status().await.state,
        RelayState::Running,
        "nothing was suspended"
    );
    // From this origin, with the cookie, it works; a bearer token works from anywhere.
    let response = post_from(
        &app,
        "/api/admin/relay/suspend",
        &cookie,
        &own,
        Some("same-origin"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    // Typed into the address bar or sent by a bookmark: no page at all, so allowed.
    let response = post_from(&app, "/api/admin/relay/resume", &cookie, &own, Some("none")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let resumed: SuspensionDto = response.json().await.unwrap();
    assert!(!resumed.suspended);
    let answer: SuspensionDto = app
        .client
        .post(app.url("/api/admin/relay/resume"))
        .bearer_auth(ADMIN_TOKEN)
        .header("origin", "http://evil.example")
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!answer.suspended);
    // Reading with the cookie from anywhere stays allowed (the browser keeps the answer
    // from the other site's script).
    let read = no_redirects()
        .get(app.url("/api/admin/relay"))
        .header(COOKIE, &cookie)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    // Signing the operator out from another site is refused too.
    let out = post_from(&app, "/auth/sign-out", &cookie, "http://evil.example", None).await;
    expect_error(out, StatusCode::FORBIDDEN, "cross_site").await;
    let still = no_redirects()
        .get(app.url("/api/admin/relay"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), StatusCode::OK, "still signed in");
}

#[tokio::test]
async fn sign_in_guesses_from_another_site_do_not_lock_the_operator_out() {
    let app = spawn_app_with(&["--auth-failure-limit", "3"]).await;
    for _ in 0..10 {
        let response = no_redirects()
            .post(app.url("/auth/sign-in"))
            .header("origin", "http://evil.example")
            .header("sec-fetch-site", "cross-site")
            .form(&[("token", "a-guess-from-another-site")])
            .send()
            .await
            .unwrap();
        assert!(response.headers().get(SET_COOKIE).is_none(), "no session");
        expect_error(response, StatusCode::FORBIDDEN, "cross_site").await;
    }
    // The operator, at the same address, signs in as usual.
    let response = sign_in(&app, &[("token", ADMIN_TOKEN)]).await;
    assert_eq!(location(&response), "/console");
    assert!(response.headers().get(SET_COOKIE).is_some());
    eventually("the relay runs", || async {
        app.relay_status().await.state == RelayState::Running
    })
    .await;
}

/// The text of `path`'s answer.
async fn text_of(app: &TestApp, path: &str) -> String {
    app.get(path).await.text().await.unwrap()
}

#[tokio::test]
async fn public_health_says_up_or_down_without_errors_or_fault_settings() {
    let app = spawn_app_with(&crate::resilience::FAST).await;
    app.set_fault(Fault::Down {}).await;
    app.create_order_id(&["H-1"]).await;
    eventually("the breaker opens", || async {
        app.relay_status().await.breaker.state == BreakerState::Open
    })
    .await;
    // The admin status has the details...
    let status = app.relay_status().await;
    assert!(
        status.breaker.transitions[0]
            .reason
            .contains("simulated outage")
    );
    // ...the public probes do not.
    for path in ["/healthz", "/readyz"] {
        let body = text_of(&app, path).await;
        assert!(body.contains("circuit breaker open"), "{body}");
        for secret in [
            "simulated outage",
            "fault injection",
            "consecutive",
            "down\"}",
        ] {
            assert!(!body.contains(secret), "{path} shows {secret:?}: {body}");
        }
    }
    app.set_fault(Fault::Poison {
        event_type: Some("OrderCancelled".into()),
        every_n: Some(7),
    })
    .await;
    for path in ["/healthz", "/readyz"] {
        let body = text_of(&app, path).await;
        assert!(body.contains("a simulated fault is active"), "{body}");
        for secret in ["OrderCancelled", "poison", "every_n", "7"] {
            assert!(!body.contains(secret), "{path} shows {secret:?}: {body}");
        }
    }
}

#[tokio::test]
async fn readiness_probes_write_at_most_once_a_second() {
    let app = spawn_app().await;
    let db = app.db_path();
    let probed = || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row("SELECT checked_at FROM store_probe WHERE id = 1", [], |r| {
            r.get::<_, String>(0)
        })
        .unwrap()
    };
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    let first = probed();
    for _ in 0..20 {
        assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    }
    assert_eq!(probed(), first, "twenty requests, no new write");
    // A moment later the next request probes again.
    eventually("a new probe after the result went stale", || async {
        app.get("/readyz").await;
        probed() != first
    })
    .await;
}

/// Reads from `stream` until the server closes it (or `limit` passes): what it sent.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let mut buffer = [0u8; 1024];
    let read_all = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buffer[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read_all).await.ok()?;
    Some(String::from_utf8_lossy(&seen).into_owned())
}

#[tokio::test]
async fn an_unfinished_request_head_is_dropped_at_the_header_timeout() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app_with(&["--header-read-timeout", "500ms"]).await;
    let mut slow = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    // The request line and one header, and then nothing: the head never ends.
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let answer = read_until_closed(&mut slow, Duration::from_secs(10))
        .await
        .expect("the server closes the connection instead of waiting forever");
    assert!(
        !answer.contains("200 OK"),
        "no answer to half a request: {answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // A complete request on a new connection is served as usual.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

/// Starts a POST to `/api/orders` that announces a body it never finishes: the request holds
/// its place until the body comes or the request times out.
async fn unfinished_post(app: &TestApp) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(
            b"POST /api/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"customer_id\":",
        )
        .await
        .unwrap();
    stream
}

/// Whether the server answers a plain request on `stream`, or closed it.
async fn answers(stream: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncWriteExt;
    let request = b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
    // A write may still succeed on a connection the server already closed; the read tells.
    let _ = stream.write_all(request).await;
    read_until_closed(stream, Duration::from_secs(5))
        .await
        .is_some_and(|answer| answer.starts_with("HTTP/1.1 200"))
}

#[tokio::test]
async fn past_the_connection_limit_new_connections_are_closed_and_the_open_ones_served() {
    let app = spawn_app_with(&["--max-connections", "2"]).await;
    let connect = || tokio::net::TcpStream::connect(app.addr);
    let (mut first, mut second) = (connect().await.unwrap(), connect().await.unwrap());
    let mut third = connect().await.unwrap();
    assert!(
        !answers(&mut third).await,
        "the third connection is closed at once"
    );
    assert!(answers(&mut first).await, "the open ones are served");
    // `first` is closed now (its request said so): there is room for one more.
    eventually("a new connection is served once one closed", || async {
        answers(&mut connect().await.unwrap()).await
    })
    .await;
    assert!(answers(&mut second).await);
}

#[tokio::test]
async fn a_request_that_never_finishes_gets_408_and_past_the_request_limit_503() {
    let app = spawn_app_with(&["--request-timeout", "1s", "--max-requests", "1"]).await;
    let mut held = unfinished_post(&app).await;
    // Once the held request has the one place, the next is shed with 503 and Retry-After.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let shed = loop {
        let response = app.get("/api/orders").await;
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            break response;
        }
        assert!(std::time::Instant::now() < deadline, "never shed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(shed.headers().contains_key("retry-after"));
    expect_error(shed, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    // The held request times out with 408, and the place is free again.
    let answer = read_until_closed(&mut held, Duration::from_secs(10))
        .await
        .expect("the server answers and closes");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(app.get("/api/orders").await.status(), StatusCode::OK);
    assert_eq!(app.count("orders"), 0);
}

#[tokio::test]
async fn the_live_feed_has_a_cap_and_the_server_still_answers_at_it() {
    let app = spawn_app_with(&["--live-max-clients", "3"]).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let response = app.get("/api/live").await;
        assert_eq!(response.status(), StatusCode::OK);
        open.push(response);
    }
    // With the cap's worth open, everything else is served.
    let health = tokio::time::timeout(Duration::from_secs(5), app.get("/healthz"))
        .await
        .expect("/healthz answers while the live feed is full");
    assert_eq!(health.status(), StatusCode::OK);
    let refused = app.get("/api/live").await;
    assert!(refused.headers().contains_key("retry-after"));
    expect_error(refused, StatusCode::SERVICE_UNAVAILABLE, "too_many_clients").await;
    // A client that leaves makes room.
    open.pop();
    eventually("a place frees up", || async {
        app.get("/api/live").await.status() == StatusCode::OK
    })
    .await;
}

#[tokio::test]
async fn an_admin_live_stream_ends_when_its_session_is_signed_out() {
    use futures::StreamExt;
    let app = spawn_app().await;
    let cookie = session(&app).await;
    let response = no_redirects()
        .get(app.url("/api/live"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.bytes_stream();
    assert!(body.next().await.is_some(), "the stream is open");
    let out = no_redirects()
        .post(app.url("/auth/sign-out"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = body.next().await {
            chunk.unwrap();
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream ends with the session");
}

/// The value of header `name` in `response`, or "".
fn header<'r>(response: &'r reqwest::Response, name: &str) -> &'r str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn pages_and_api_answers_carry_security_headers() {
    let app = spawn_app().await;
    let page = app.get("/orders").await;
    assert_eq!(page.status(), StatusCode::OK);
    let policy = header(&page, "content-security-policy").to_string();
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(policy.contains("'wasm-unsafe-eval'"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    let nonce = policy
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("the page's policy names a nonce")
        .to_string();
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    assert_eq!(header(&page, "x-frame-options"), "DENY");
    assert_eq!(header(&page, "referrer-policy"), "same-origin");
    let html = page.text().await.unwrap();
    // Every inline script carries the nonce; it changes from one response to the next.
    let scripts: Vec<&str> = html.split("<script").skip(1).collect();
    assert!(!scripts.is_empty(), "the page hydrates with scripts");
    for script in &scripts {
        let tag = script.split('>').next().unwrap();
        assert!(
            tag.contains(&format!("nonce=\"{nonce}\"")) || tag.contains("src="),
            "a script without the nonce: <script{tag}>"
        );
    }
    let again = app.get("/orders").await;
    assert_ne!(
        header(&again, "content-security-policy"),
        policy,
        "a fresh nonce"
    );

    let api = app.get("/api/orders").await;
    assert_eq!(header(&api, "x-content-type-options"), "nosniff");
    assert!(header(&api, "content-security-policy").starts_with("default-src 'none'"));
    let admin = app
        .client
        .get(app.url("/api/admin/relay"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&admin, "cache-control"), "no-store");
    assert_ne!(
        header(&api, "cache-control"),
        "no-store",
        "public reads may be cached"
    );
}

#[tokio::test]
async fn over_https_the_session_cookie_is_secure_and_host_only() {
    let app = spawn_app_with(&["--secure-cookies"]).await;
    let response = sign_in(&app, &[("token", ADMIN_TOKEN)]).await;
    let set = header(&response, "set-cookie").to_string();
    assert!(set.starts_with("__Host-outbox_session="), "{set}");
    assert!(set.contains("; Secure") && set.contains("Path=/") && !set.contains("Domain"));
    let token = set.split(';').next().unwrap().split_once('=').unwrap().1;
    let with = |cookie: String| {
        no_redirects()
            .get(app.url("/api/admin/relay"))
            .header(COOKIE, cookie)
            .send()
    };
    let own = with(format!("__Host-outbox_session={token}"))
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::OK);
    let plain = with(format!("outbox_session={token}")).await.unwrap();
    assert_eq!(
        plain.status(),
        StatusCode::UNAUTHORIZED,
        "only its own cookie"
    );
}

#[tokio::test]
async fn fault_injection_can_be_switched_off_and_then_changes_nothing() {
    let app = spawn_app_with(&["--fault-injection", "false"]).await;
    let response = app
        .admin(
            Method::POST,
            "/api/admin/faults",
            Some(serde_json::json!({"mode": "down"})),
        )
        .await;
    expect_error(response, StatusCode::FORBIDDEN, "faults_disabled").await;
    let status = app.relay_status().await;
    assert!(!status.fault_injection);
    assert_eq!(status.fault, None);
    let fault: Fault = app.admin_get("/api/admin/faults").await;
    assert_eq!(fault, Fault::None {});
    // On by default (make run).
    assert!(spawn_app().await.relay_status().await.fault_injection);
}

/// What the container deployment ships: no default admin token, fault injection off.
#[test]
fn the_container_deployment_has_no_default_token_and_no_faults() {
    let root = env!("CARGO_MANIFEST_DIR");
    let compose = std::fs::read_to_string(format!("{root}/docker-compose.yml")).unwrap();
    let token = compose
        .lines()
        .find(|l| l.trim_start().starts_with("ADMIN_TOKEN:"))
        .expect("the app's ADMIN_TOKEN");
    assert!(
        token.contains("${ADMIN_TOKEN:?"),
        "compose refuses to start without a token: {token}"
    );
    assert!(compose.contains("FAULT_INJECTION: ${FAULT_INJECTION:-false}"));
    let dockerfile = std::fs::read_to_string(format!("{root}/Dockerfile")).unwrap();
    assert!(dockerfile.contains("FAULT_INJECTION=false"));
}

#[tokio::test]
async fn racing_replays_and_discards_of_one_dead_letter_have_one_winner() {
    let app = spawn_app_with(&crate::resilience::FAST).await;
    app.set_fault(Fault::Poison {
        event_type: Some("OrderCreated".into()),
        every_n: None,
    })
    .await;
    for round in 0..5 {
        let id = app.create_order_id(&[&format!("RACE-{round}")]).await;
        let pending = || async {
            let page: app::dto::DeadLetterPageDto =
                app.admin_get("/api/admin/dlq?status=pending").await;
            page.items.into_iter().find(|d| d.event.aggregate_id == id)
        };
        eventually("the poisoned event is a pending dead letter", || async {
            pending().await.is_some()
        })
        .await;
        let record = pending().await.unwrap();
        let (letter, event_id) = (record.id, record.event.event_id.clone());
        app.set_fault(Fault::None {}).await;
        let (replay_path, discard_path) = (
            format!("/api/admin/dlq/{letter}/replay"),
            format!("/api/admin/dlq/{letter}/discard"),
        );
        let replay = || app.admin(Method::POST, &replay_path, None);
        let reason = serde_json::json!({"reason": "race"});
        let discard = app.admin(Method::POST, &discard_path, Some(reason));
        let (a, b, c, d) = tokio::join!(replay(), replay(), replay(), discard);
        let statuses: Vec<StatusCode> = [a, b, c, d].iter().map(|r| r.status()).collect();
        let winners: Vec<usize> = (0..4).filter(|i| statuses[*i] == StatusCode::OK).collect();
        assert_eq!(winners.len(), 1, "round {round}: {statuses:?}");
        assert!(
            statuses
                .iter()
                .all(|s| *s == StatusCode::OK || *s == StatusCode::CONFLICT),
            "round {round}: {statuses:?}"
        );
        // The record ends as the winner left it, and the event reached the topic exactly once
        // if a replay won, never if the discard did.
        let discard_won = winners[0] == 3;
        let after: app::dto::DeadLetterDto =
            app.admin_get(&format!("/api/admin/dlq/{letter}")).await;
        let expected = if discard_won {
            DeadLetterStatus::Discarded
        } else {
            DeadLetterStatus::Replayed
        };
        assert_eq!(after.status, expected, "round {round}");
        let topic: app::dto::TopicMessagesDto = app
            .get_ok("/api/topics/outbox.event.order/messages?limit=1000")
            .await;
        let copies = topic
            .messages
            .iter()
            .filter(|m| m.headers.get("event_id") == Some(&event_id))
            .count();
        assert_eq!(copies, usize::from(!discard_won), "round {round}: copies");
        app.set_fault(Fault::Poison {
            event_type: Some("OrderCreated".into()),
            every_n: None,
        })
        .await;
    }
}
