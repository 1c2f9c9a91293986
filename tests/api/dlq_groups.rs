//! Failure groups of the dead letter queue (`/api/admin/dlq/groups`, replayed or discarded
//! together) and edit-and-replay (`PUT /api/admin/dlq/{id}/payload`), end to end on the
//! embedded store and topic log. Dead letters come from fault injection (`Fault::Poison`).

use crate::helpers::{TestApp, eventually, expect_error, spawn_app_with};
use crate::resilience::FAST;
use app::dto::{
    BulkReplayOutcome, DeadLetterDto, DeadLetterGroupDto, DeadLetterGroupsDto, DeadLetterKind,
    DeadLetterPageDto, DeadLetterStatus, Fault, GroupActionDto, TopicMessageDto, TopicMessagesDto,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// What fault injection says about a poisoned message (no ids or numbers in it).
const POISON_MESSAGE: &str = "simulated poison message (fault injection)";

fn poison(event_type: &str) -> Fault {
    Fault::Poison {
        event_type: Some(event_type.into()),
        every_n: None,
    }
}

async fn pending(app: &TestApp) -> Vec<DeadLetterDto> {
    let page: DeadLetterPageDto = app.admin_get("/api/admin/dlq?status=pending").await;
    page.items
}

/// Waits until `count` dead letters are pending.
async fn until_pending(app: &TestApp, count: usize) {
    eventually(&format!("{count} pending dead letters"), || async {
        pending(app).await.len() == count
    })
    .await;
}

async fn groups(app: &TestApp) -> Vec<DeadLetterGroupDto> {
    let body: DeadLetterGroupsDto = app.admin_get("/api/admin/dlq/groups").await;
    body.groups
}

/// The group of `event_type` (there must be exactly one).
async fn group_of(app: &TestApp, event_type: &str) -> DeadLetterGroupDto {
    let mut found: Vec<_> = groups(app)
        .await
        .into_iter()
        .filter(|g| g.event_type == event_type)
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}

/// Messages of the orders topic carrying `event_id` (none while nothing was ever published
/// and the topic does not exist yet).
async fn published(app: &TestApp, event_id: &str) -> Vec<TopicMessageDto> {
    let response = app
        .get("/api/topics/outbox.event.order/messages?limit=1000")
        .await;
    if response.status() == StatusCode::NOT_FOUND {
        return Vec::new();
    }
    assert_eq!(response.status(), StatusCode::OK);
    let topic: TopicMessagesDto = response.json().await.unwrap();
    topic
        .messages
        .into_iter()
        .filter(|m| m.headers.get("event_id").map(String::as_str) == Some(event_id))
        .collect()
}

/// An app with three dead-lettered `OrderCreated` events and two `OrderCancelled` ones, the
/// sink healthy again; returns it with the order ids (the first two were cancelled).
async fn with_two_groups() -> (TestApp, Vec<String>) {
    let app = spawn_app_with(&FAST).await;
    app.set_fault(poison("OrderCreated")).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(app.create_order_id(&[&format!("GROUP-{n}")]).await);
    }
    until_pending(&app, 3).await;
    app.set_fault(poison("OrderCancelled")).await;
    for id in &ids[..2] {
        let response = app.cancel(id, 1, "changed my mind").await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    until_pending(&app, 5).await;
    app.set_fault(Fault::None {}).await;
    (app, ids)
}

#[tokio::test]
async fn pending_dead_letters_are_grouped_by_type_and_normalised_failure() {
    let (app, _) = with_two_groups().await;
    let all = groups(&app).await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[0].event_type, "OrderCreated", "largest group first");
    let records = pending(&app).await;
    for (group, count) in [(&all[0], 3), (&all[1], 2)] {
        assert_eq!(group.count, count);
        assert_eq!(group.error_kind, DeadLetterKind::Permanent);
        assert_eq!(group.message, POISON_MESSAGE);
        assert_eq!(group.group.len(), 16);
        assert!(group.group.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(group.first_seen <= group.last_seen);
        // The example is the group's newest record, shown as it is stored.
        let members: Vec<&DeadLetterDto> = records
            .iter()
            .filter(|d| d.event.event_type == group.event_type)
            .collect();
        let newest = members.iter().map(|d| d.id).max().unwrap();
        assert_eq!(group.example.id, newest);
        let example = members.iter().find(|d| d.id == newest).unwrap();
        assert_eq!(group.example.event_id, example.event.event_id);
        assert_eq!(group.example.error_message, example.error_message);
        // The list filtered by the group holds exactly its records.
        let page: DeadLetterPageDto = app
            .admin_get(&format!(
                "/api/admin/dlq?event_type={}&group={}",
                group.event_type, group.group
            ))
            .await;
        let mut listed: Vec<i64> = page.items.iter().map(|d| d.id).collect();
        let mut expected: Vec<i64> = members.iter().map(|d| d.id).collect();
        listed.sort_unstable();
        expected.sort_unstable();
        assert_eq!(listed, expected);
    }
    assert_ne!(all[0].group, all[1].group);
}

#[tokio::test]
async fn a_group_replay_publishes_each_record_once_oldest_first() {
    let (app, _) = with_two_groups().await;
    let group = group_of(&app, "OrderCreated").await;
    let before: Vec<DeadLetterDto> = pending(&app)
        .await
        .into_iter()
        .filter(|d| d.event.event_type == "OrderCreated")
        .collect();
    let path = format!("/api/admin/dlq/groups/{}/replay", group.group);
    let report: GroupActionDto = app.admin_post(&path, None::<Value>).await;
    assert_eq!(report.group, group.group);
    assert_eq!((report.done, report.remaining), (3, 0));
    assert_eq!((report.succeeded, report.failed, report.skipped), (3, 0, 0));
    let ids: Vec<i64> = report.results.iter().map(|r| r.id).collect();
    let mut oldest_first: Vec<i64> = before.iter().map(|d| d.id).collect();
    oldest_first.sort_unstable();
    assert_eq!(ids, oldest_first);
    assert!(
        report
            .results
            .iter()
            .all(|r| r.outcome == BulkReplayOutcome::Replayed && r.error.is_none())
    );
    for d in &before {
        assert_eq!(published(&app, &d.event.event_id).await.len(), 1);
        let after: DeadLetterDto = app.admin_get(&format!("/api/admin/dlq/{}", d.id)).await;
        assert_eq!(after.status, DeadLetterStatus::Replayed);
    }
    // The group is gone; the other one is untouched.
    let left = groups(&app).await;
    assert_eq!(left.len(), 1);
    assert_eq!(
        (left[0].event_type.as_str(), left[0].count),
        ("OrderCancelled", 2)
    );
    let again = app.admin(Method::POST, &path, None).await;
    expect_error(again, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn a_group_discard_needs_a_reason_and_sets_every_record_aside() {
    let (app, _) = with_two_groups().await;
    let group = group_of(&app, "OrderCancelled").await;
    let path = format!("/api/admin/dlq/groups/{}/discard", group.group);
    for bad in [json!({"reason": "  "}), json!({"reason": "x".repeat(501)})] {
        let response = app.admin(Method::POST, &path, Some(bad)).await;
        expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    let response = app.admin(Method::POST, &path, Some(json!({}))).await;
    expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
    assert_eq!(
        group_of(&app, "OrderCancelled").await.count,
        2,
        "nothing changed"
    );
    let reason = json!({"reason": "customer cancelled by phone"});
    let report: GroupActionDto = app.admin_post(&path, Some(reason)).await;
    assert_eq!((report.done, report.remaining, report.succeeded), (2, 0, 2));
    for result in &report.results {
        assert_eq!(result.outcome, BulkReplayOutcome::Discarded);
        let after: DeadLetterDto = app
            .admin_get(&format!("/api/admin/dlq/{}", result.id))
            .await;
        assert_eq!(after.status, DeadLetterStatus::Discarded);
        assert_eq!(
            after.discard_reason.as_deref(),
            Some("customer cancelled by phone")
        );
        assert!(published(&app, &after.event.event_id).await.is_empty());
    }
    assert_eq!(groups(&app).await.len(), 1);
}

#[tokio::test]
async fn unknown_and_malformed_groups_are_refused() {
    let (app, _) = with_two_groups().await;
    for action in ["replay", "discard"] {
        let body = Some(json!({"reason": "r"}));
        let unknown = format!("/api/admin/dlq/groups/0123456789abcdef/{action}");
        let response = app.admin(Method::POST, &unknown, body.clone()).await;
        expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
        let malformed = format!("/api/admin/dlq/groups/NOT-A-KEY/{action}");
        let response = app.admin(Method::POST, &malformed, body).await;
        expect_error(response, StatusCode::BAD_REQUEST, "invalid_id").await;
    }
    let response = app
        .admin(Method::GET, "/api/admin/dlq?group=xyz", None)
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_query").await;
    assert_eq!(pending(&app).await.len(), 5, "nothing changed");
}

#[tokio::test]
async fn the_new_endpoints_need_the_admin_token() {
    let (app, _) = with_two_groups().await;
    let group = group_of(&app, "OrderCreated").await.group;
    let id = pending(&app).await[0].id;
    let calls = [
        (Method::GET, "/api/admin/dlq/groups".to_string(), None),
        (
            Method::POST,
            format!("/api/admin/dlq/groups/{group}/replay"),
            None,
        ),
        (
            Method::POST,
            format!("/api/admin/dlq/groups/{group}/discard"),
            Some(json!({"reason": "r"})),
        ),
        (
            Method::PUT,
            format!("/api/admin/dlq/{id}/payload"),
            Some(json!({"order_id": "x"})),
        ),
    ];
    for (method, path, body) in calls {
        for token in [None, Some("wrong-token")] {
            let mut request = app.client.request(method.clone(), app.url(&path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = request.send().await.unwrap();
            expect_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
        }
    }
    assert_eq!(pending(&app).await.len(), 5, "nothing changed");
}

/// `PUT path` as admin with a raw body.
async fn put_raw(app: &TestApp, path: &str, body: String) -> reqwest::Response {
    app.client
        .put(app.url(path))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_edited_dead_letter_is_replayed_with_its_edited_payload() {
    let (app, _) = with_two_groups().await;
    let record = pending(&app)
        .await
        .into_iter()
        .find(|d| d.event.event_type == "OrderCreated")
        .unwrap();
    let original = record.event.payload.clone();
    let path = format!("/api/admin/dlq/{}/payload", record.id);
    // Bad input: each refused with the API's error body, nothing stored.
    let response = put_raw(&app, &path, "{\"order_id\": ".into()).await;
    expect_error(response, StatusCode::BAD_REQUEST, "malformed_json").await;
    for bad in [
        json!([1, 2]),
        json!("text"),
        json!({"order_id": "0193a5e0-0000-7000-8000-0000000000aa", "items": []}),
        json!({"items": []}),
    ] {
        let response = app.admin(Method::PUT, &path, Some(bad.clone())).await;
        let body = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert!(!body.message.is_empty(), "{bad}");
    }
    let oversized = json!({"order_id": original["order_id"], "note": "x".repeat(70 * 1024)});
    let response = put_raw(&app, &path, oversized.to_string()).await;
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    let unknown = app
        .admin(
            Method::PUT,
            "/api/admin/dlq/999999/payload",
            Some(json!({})),
        )
        .await;
    expect_error(unknown, StatusCode::NOT_FOUND, "not_found").await;
    let unchanged: DeadLetterDto = app
        .admin_get(&format!("/api/admin/dlq/{}", record.id))
        .await;
    assert_eq!(
        (unchanged.edited_payload, unchanged.edited_at),
        (None, None)
    );

    // The edit: kept beside the original.
    let mut edited = original.clone();
    edited["corrected_by"] = json!("operator");
    let response = app.admin(Method::PUT, &path, Some(edited.clone())).await;
    assert_eq!(response.status(), StatusCode::OK);
    let after: DeadLetterDto = response.json().await.unwrap();
    assert_eq!(after.edited_payload.as_ref(), Some(&edited));
    assert_eq!(after.event.payload, original, "the original stays");
    assert!(after.edited_at.is_some());
    assert_eq!(after.status, DeadLetterStatus::Pending);

    // The replay publishes the edited payload with the same envelope, marked as edited.
    let replayed: DeadLetterDto = app
        .admin_post(
            &format!("/api/admin/dlq/{}/replay", record.id),
            None::<Value>,
        )
        .await;
    assert_eq!(replayed.status, DeadLetterStatus::Replayed);
    let messages = published(&app, &record.event.event_id).await;
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m.value, edited);
    assert_eq!(m.key, record.event.aggregate_id);
    assert_eq!(m.headers["outbox_edited"], "true");
    assert_eq!(m.headers["event_type"], "OrderCreated");
    assert_eq!(m.headers["aggregate_version"], "1");
    // An unedited replay carries no such header.
    let other = pending(&app)
        .await
        .into_iter()
        .find(|d| d.event.event_type == "OrderCreated")
        .unwrap();
    let _: DeadLetterDto = app
        .admin_post(
            &format!("/api/admin/dlq/{}/replay", other.id),
            None::<Value>,
        )
        .await;
    let plain = published(&app, &other.event.event_id).await;
    assert_eq!(plain[0].value, other.event.payload);
    assert!(!plain[0].headers.contains_key("outbox_edited"));

    // A record no longer pending cannot be edited.
    let response = app.admin(Method::PUT, &path, Some(edited)).await;
    expect_error(response, StatusCode::CONFLICT, "not_pending").await;
}

/// A group replay racing a discard of one of its records: exactly one of them acts on that
/// record, and nothing is published twice (or at all, for a discarded record).
#[tokio::test]
async fn a_group_replay_racing_a_single_discard_has_one_winner_per_record() {
    let app = spawn_app_with(&FAST).await;
    for round in 0..5 {
        app.set_fault(poison("OrderCreated")).await;
        for n in 0..3 {
            app.create_order_id(&[&format!("RACE-{round}-{n}")]).await;
        }
        until_pending(&app, 3).await;
        app.set_fault(Fault::None {}).await;
        let records = pending(&app).await;
        let group = group_of(&app, "OrderCreated").await;
        assert_eq!(group.count, 3, "round {round}");
        let target = records[1].id;
        let replay_path = format!("/api/admin/dlq/groups/{}/replay", group.group);
        let discard_path = format!("/api/admin/dlq/{target}/discard");
        let (replay, discard) = tokio::join!(
            app.admin(Method::POST, &replay_path, None),
            app.admin(Method::POST, &discard_path, Some(json!({"reason": "race"}))),
        );
        let discard_won = match discard.status() {
            StatusCode::OK => true,
            StatusCode::CONFLICT => false,
            other => panic!("round {round}: discard answered {other}"),
        };
        let report: GroupActionDto = match replay.status() {
            StatusCode::OK => replay.json().await.unwrap(),
            // The discard may win before the group is even read: the group is then smaller,
            // never missing, as two records remain.
            other => panic!("round {round}: group replay answered {other}"),
        };
        let for_target = report.results.iter().find(|r| r.id == target);
        for d in &records {
            let after: DeadLetterDto = app.admin_get(&format!("/api/admin/dlq/{}", d.id)).await;
            let copies = published(&app, &d.event.event_id).await.len();
            if d.id == target && discard_won {
                assert_eq!(after.status, DeadLetterStatus::Discarded, "round {round}");
                assert_eq!(
                    copies, 0,
                    "round {round}: a discarded record is not published"
                );
                assert!(
                    for_target.is_none_or(|r| r.outcome == BulkReplayOutcome::Skipped),
                    "round {round}: {for_target:?}"
                );
            } else {
                assert_eq!(after.status, DeadLetterStatus::Replayed, "round {round}");
                assert_eq!(copies, 1, "round {round}: record {}", d.id);
            }
        }
        if !discard_won {
            assert_eq!(
                for_target.map(|r| r.outcome),
                Some(BulkReplayOutcome::Replayed),
                "round {round}"
            );
        }
        assert!(pending(&app).await.is_empty(), "round {round}");
    }
}
