//! The audit log: every operator action (sign-in and sign-out, DLQ replays, edits and
//! discards, relay mode, suspension, faults) is recorded with its target, outcome, address
//! and session marker, refusals too, never a secret; `GET /api/admin/audit` pages and filters
//! it; retention keeps entries younger than `AUDIT_RETENTION`.

use crate::console::{session, sign_in};
use crate::helpers::{
    ADMIN_TOKEN, TestApp, eventually, expect_error, scalar, spawn_app, spawn_app_with,
};
use app::dto::{
    AuditEntryDto, AuditOutcome, AuditPageDto, DeadLetterDto, DeadLetterGroupsDto,
    DeadLetterPageDto, Fault,
};
use reqwest::header::COOKIE;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};

/// The marker the log shows for the session whose cookie is `name=token`.
fn marker(cookie: &str) -> String {
    let token = cookie.split_once('=').unwrap().1;
    Sha256::digest(token.as_bytes())[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `GET /api/admin/audit{query}` as admin.
async fn audit(app: &TestApp, query: &str) -> AuditPageDto {
    app.admin_get(&format!("/api/admin/audit{query}")).await
}

/// Every entry, oldest first.
async fn entries(app: &TestApp) -> Vec<AuditEntryDto> {
    let mut all = audit(app, "?limit=100").await.items;
    all.reverse();
    all
}

/// `(action, target, status, outcome, session)` of each entry.
type Seen = (String, Option<String>, u16, AuditOutcome, Option<String>);

fn seen(entries: &[AuditEntryDto]) -> Vec<Seen> {
    entries
        .iter()
        .map(|e| {
            (
                e.action.clone(),
                e.target.clone(),
                e.status,
                e.outcome,
                e.session.clone(),
            )
        })
        .collect()
}

fn expected(
    action: &str,
    target: Option<&str>,
    status: u16,
    outcome: AuditOutcome,
    session: &str,
) -> Seen {
    (
        action.into(),
        target.map(str::to_string),
        status,
        outcome,
        (!session.is_empty()).then(|| session.to_string()),
    )
}

/// A request with the session cookie.
async fn with_cookie(
    app: &TestApp,
    method: Method,
    path: &str,
    cookie: &str,
    body: Option<serde_json::Value>,
) -> StatusCode {
    let mut request = crate::console::no_redirects()
        .request(method, app.url(path))
        .header(COOKIE, cookie);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap().status()
}

/// The pending dead letters, newest first.
async fn pending(app: &TestApp) -> Vec<DeadLetterDto> {
    let page: DeadLetterPageDto = app.admin_get("/api/admin/dlq?status=pending").await;
    page.items
}

/// Poisons `OrderCreated`, creates `n` orders and waits until each is a pending dead letter;
/// the fault is lifted again (unaudited setup would be recorded too: callers count it).
async fn dead_letters(app: &TestApp, n: usize) -> Vec<DeadLetterDto> {
    let poison = Fault::Poison {
        event_type: Some("OrderCreated".into()),
        every_n: None,
    };
    app.set_fault(poison).await;
    for i in 0..n {
        app.create_order_id(&[&format!("AUDIT-{i}")]).await;
    }
    eventually("the poisoned events are pending dead letters", || async {
        pending(app).await.len() == n
    })
    .await;
    app.set_fault(Fault::None {}).await;
    pending(app).await
}

#[tokio::test]
async fn every_operator_action_is_recorded_with_target_outcome_address_and_session() {
    let app = spawn_app_with(&crate::resilience::FAST).await;
    let letters = dead_letters(&app, 5).await;
    let ids: Vec<i64> = letters.iter().map(|l| l.id).collect();
    let cookie = session(&app).await;
    let me = marker(&cookie);

    // The DLQ actions, by bearer token.
    let edited = json!(letters[0].event.payload);
    let edit = app
        .admin(
            Method::PUT,
            &format!("/api/admin/dlq/{}/payload", ids[0]),
            Some(edited),
        )
        .await;
    assert_eq!(edit.status(), StatusCode::OK);
    let reason = json!({"reason": "test data"});
    for (path, body, status) in [
        (format!("/api/admin/dlq/{}/replay", ids[0]), None, 200),
        (
            format!("/api/admin/dlq/{}/discard", ids[1]),
            Some(reason.clone()),
            200,
        ),
        ("/api/admin/dlq/999999/discard".into(), Some(reason), 404),
        (
            "/api/admin/dlq/replay".into(),
            Some(json!({"ids": [ids[2]]})),
            200,
        ),
    ] {
        let response = app.admin(Method::POST, &path, body).await;
        assert_eq!(response.status().as_u16(), status, "{path}");
    }
    let groups: DeadLetterGroupsDto = app.admin_get("/api/admin/dlq/groups").await;
    let group = groups.groups[0].group.clone();
    let group_path = format!("/api/admin/dlq/groups/{group}/replay");
    let group_replay = app.admin(Method::POST, &group_path, None).await;
    assert_eq!(group_replay.status(), StatusCode::OK);

    // The relay's controls, by the console session.
    let mode = Some(json!({"mode": "streaming"}));
    for (path, body) in [
        ("/api/admin/relay/mode", mode),
        ("/api/admin/relay/suspend", None),
        ("/api/admin/relay/resume", None),
    ] {
        let status = with_cookie(&app, Method::POST, path, &cookie, body).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let out = with_cookie(&app, Method::POST, "/auth/sign-out", &cookie, None).await;
    assert_eq!(out, StatusCode::SEE_OTHER);

    let all = entries(&app).await;
    let ok = AuditOutcome::Ok;
    let poison = r#"{"event_type":"OrderCreated","mode":"poison"}"#;
    let none = r#"{"mode":"none"}"#;
    let (id0, id1) = (ids[0].to_string(), ids[1].to_string());
    let bulk_target = format!(r#"{{"ids":[{}]}}"#, ids[2]);
    assert_eq!(
        seen(&all),
        vec![
            expected("faults.set", Some(poison), 200, ok, "bearer"),
            expected("faults.set", Some(none), 200, ok, "bearer"),
            expected("session.sign_in", None, 303, ok, &me),
            expected("dlq.edit", Some(&id0), 200, ok, "bearer"),
            expected("dlq.replay", Some(&id0), 200, ok, "bearer"),
            expected("dlq.discard", Some(&id1), 200, ok, "bearer"),
            expected(
                "dlq.discard",
                Some("999999"),
                404,
                AuditOutcome::Failed,
                "bearer"
            ),
            expected("dlq.bulk_replay", Some(&bulk_target), 200, ok, "bearer"),
            expected("dlq.group.replay", Some(&group), 200, ok, "bearer"),
            expected("relay.mode", Some("streaming"), 200, ok, &me),
            expected("relay.suspend", None, 200, ok, &me),
            expected("relay.resume", None, 200, ok, &me),
            expected("session.sign_out", None, 303, ok, &me),
        ]
    );
    assert!(all.iter().all(|e| e.address == "127.0.0.1"), "{all:?}");
    assert!(
        all.windows(2)
            .all(|w| w[0].id < w[1].id && w[0].at <= w[1].at)
    );
}

#[tokio::test]
async fn refusals_are_recorded_without_the_token_and_reads_are_not_recorded() {
    let app = spawn_app().await;
    let wrong = "wrong-token-that-must-not-be-stored";
    let refused = app
        .client
        .post(app.url("/api/admin/relay/suspend"))
        .bearer_auth(wrong)
        .send()
        .await
        .unwrap();
    expect_error(refused, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let failed_sign_in = sign_in(&app, &[("token", wrong)]).await;
    assert_eq!(failed_sign_in.status(), StatusCode::SEE_OTHER);
    // Requests without any credential are nobody's action: not recorded.
    let anonymous = app.post_json("/api/admin/relay/resume", &json!({})).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let no_token = sign_in(&app, &[("next", "/console")]).await;
    assert_eq!(no_token.status(), StatusCode::SEE_OTHER);
    // Reads, with or without credentials, are not recorded either.
    for path in ["/api/admin/relay", "/api/admin/dlq", "/api/admin/audit"] {
        app.admin(Method::GET, path, None).await;
    }
    app.get("/api/orders").await;

    let refused = AuditOutcome::Refused;
    assert_eq!(
        seen(&entries(&app).await),
        vec![
            expected("relay.suspend", None, 401, refused, "bearer"),
            expected("session.sign_in", None, 303, refused, ""),
        ]
    );
    let stored = scalar(
        &app.db_path(),
        &format!(
            "SELECT count(*) FROM audit_log WHERE coalesce(session, '') || address || action \
             || coalesce(target, '') LIKE '%{wrong}%'"
        ),
    );
    assert_eq!(stored, 0, "the wrong token is not stored");
    assert!(
        !app.get_json("/api/admin/audit")
            .await
            .to_string()
            .contains(wrong)
    );
}

#[tokio::test]
async fn the_log_pages_newest_first_and_filters_by_action_or_prefix() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.admin_post::<serde_json::Value>("/api/admin/relay/suspend", None::<()>)
            .await;
        app.admin_post::<serde_json::Value>("/api/admin/relay/resume", None::<()>)
            .await;
    }
    app.set_fault(Fault::Down {}).await;

    // Every page of two, newest first, reaches every entry once.
    let mut walked = Vec::new();
    let mut query = "?limit=2".to_string();
    loop {
        let page = audit(&app, &query).await;
        assert!(page.items.len() <= 2);
        walked.extend(page.items.iter().map(|e| e.id));
        match page.next_cursor {
            Some(cursor) => query = format!("?limit=2&before={cursor}"),
            None => break,
        }
    }
    let mut all: Vec<i64> = entries(&app).await.iter().map(|e| e.id).collect();
    all.reverse();
    assert_eq!(walked, all);
    assert_eq!(walked.len(), 7);

    let actions =
        |page: AuditPageDto| -> Vec<String> { page.items.into_iter().map(|e| e.action).collect() };
    let relay = audit(&app, "?action=relay.").await;
    assert_eq!(relay.items.len(), 6);
    assert_eq!(relay.next_cursor, None);
    assert_eq!(actions(relay)[..2], ["relay.resume", "relay.suspend"]);
    assert_eq!(
        actions(audit(&app, "?action=faults.set").await),
        ["faults.set"]
    );
    let one = audit(&app, "?action=relay.suspend&limit=1").await;
    let cursor = one.next_cursor.expect("older suspensions follow");
    let older = audit(&app, &format!("?action=relay.suspend&before={cursor}")).await;
    assert_eq!(actions(older), ["relay.suspend", "relay.suspend"]);
    assert!(audit(&app, "?action=dlq.").await.items.is_empty());
}

#[tokio::test]
async fn bad_queries_are_400_and_strangers_get_401() {
    let app = spawn_app().await;
    for query in [
        "limit=0",
        "limit=101",
        "limit=ten",
        "before=0",
        "before=x",
        "action=",
        "action=DLQ",
        "action=dlq%25",
        "colour=red",
    ] {
        let response = app
            .admin(Method::GET, &format!("/api/admin/audit?{query}"), None)
            .await;
        expect_error(response, StatusCode::BAD_REQUEST, "invalid_query").await;
    }
    let stranger = app.get("/api/admin/audit").await;
    expect_error(stranger, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let wrong = app
        .client
        .get(app.url("/api/admin/audit"))
        .bearer_auth("not-the-admin-token")
        .send()
        .await
        .unwrap();
    expect_error(wrong, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_ne!(ADMIN_TOKEN, "not-the-admin-token");
}

#[tokio::test]
async fn retention_deletes_entries_older_than_audit_retention_and_keeps_younger_ones() {
    let app = spawn_app_with(&["--audit-retention", "1h", "--retention-interval", "20ms"]).await;
    app.admin_post::<serde_json::Value>("/api/admin/relay/suspend", None::<()>)
        .await;
    app.admin_post::<serde_json::Value>("/api/admin/relay/resume", None::<()>)
        .await;
    // The suspension happened two hours ago, as far as the log knows; the resumption is new.
    let two_hours_ago =
        outbox::domain::timestamp(&(chrono::Utc::now() - chrono::Duration::hours(2)));
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    let backdated = conn
        .execute(
            "UPDATE audit_log SET at = ?1 WHERE action = 'relay.suspend'",
            [&two_hours_ago],
        )
        .unwrap();
    assert_eq!(backdated, 1);
    eventually("the old entry is swept", || async {
        scalar(&app.db_path(), "SELECT count(*) FROM audit_log") == 1
    })
    .await;
    let left: Vec<String> = entries(&app).await.into_iter().map(|e| e.action).collect();
    assert_eq!(left, ["relay.resume"]);
}
