//! The OpenAPI contract (`GET /api/openapi.json`): it lists every route of the JSON API, with
//! the error body, the admin token's security scheme and the request headers; and the
//! failures schemathesis found against it (`make contract`) stay fixed.

use crate::helpers::{TestApp, spawn_app};
use app::dto::{
    BreakerState, BulkReplayDto, BulkReplayOutcome, ComponentStatus, DeadLetterKind,
    DeadLetterStatus, HealthVerdict, MAX_FAULT_LATENCY_MS, OrderStatusDto, RelayMode, RelayState,
    ReplayAttemptOutcome,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// The router's source: the routes of `api()` are read from it, so a route added there
/// without documentation fails [`the_document_lists_every_api_route`].
const ROUTER_SOURCE: &str = include_str!("../../src/http/mod.rs");

/// The HTTP methods a route of `api()` may be registered with.
const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// `(path, method)` of every route registered in `fn api()` of `src/http/mod.rs`, skipping
/// the `any(...)` fallbacks that answer unknown paths.
fn api_routes() -> BTreeSet<(String, String)> {
    let start = ROUTER_SOURCE
        .find("fn api() -> Router<AppState> {")
        .expect("fn api() in src/http/mod.rs");
    let body = &ROUTER_SOURCE[start..];
    let body = &body[..body.find("\n}\n").expect("the end of fn api()")];
    let mut routes = BTreeSet::new();
    for chunk in body.split(".route(").skip(1) {
        let path = chunk.split('"').nth(1).expect("a route's path literal");
        for method in METHODS {
            let call = format!("{method}(");
            let registered = chunk.match_indices(&call).any(|(at, _)| {
                at > 0 && matches!(chunk.as_bytes()[at - 1], b' ' | b'.' | b'(' | b'\n')
            });
            if registered {
                routes.insert((path.to_string(), method.to_string()));
            }
        }
    }
    routes
}

/// The document, as `app` serves it.
async fn document(app: &TestApp) -> Value {
    let response = app.get("/api/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[reqwest::header::CONTENT_TYPE].clone();
    assert_eq!(content_type, "application/json");
    response.json().await.expect("the document is JSON")
}

#[tokio::test]
async fn the_document_lists_every_api_route() {
    let doc = document(&spawn_app().await).await;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "an OpenAPI 3.1 document: {}",
        doc["openapi"]
    );
    let routes = api_routes();
    assert!(
        routes.len() >= 20,
        "the routes of api() were read: {routes:?}"
    );
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in &routes {
        let operation = &paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} is documented"))[method];
        assert!(
            operation.is_object(),
            "{} {path} is documented",
            method.to_uppercase()
        );
        assert!(
            operation["responses"]
                .as_object()
                .is_some_and(|r| r.keys().any(|status| status.starts_with('2'))),
            "{} {path} documents its success",
            method.to_uppercase()
        );
    }
    for probe in ["/healthz", "/readyz"] {
        assert!(paths[probe]["get"].is_object(), "{probe} is documented");
    }
    // Links name their target by operationId, so each must be unique.
    let ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().expect("a path item").values())
        .map(|operation| operation["operationId"].as_str().expect("an operationId"))
        .collect();
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        ids.len(),
        "unique operationIds: {ids:?}"
    );
}

/// The values the document allows for the string enum `schema`.
fn documented_enum(doc: &Value, schema: &str) -> Vec<String> {
    doc["components"]["schemas"][schema]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("{schema} is a documented enum"))
        .iter()
        .map(|v| v.as_str().expect("a string").to_string())
        .collect()
}

/// The wire names of every value of a wire enum.
fn wire_names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Vec<String> {
    all.iter().map(|v| name(*v).to_string()).collect()
}

/// Found by schemathesis: `POST /api/orders` answered `"status": "created"` and
/// `POST /api/admin/dlq/replay` `"outcome": "skipped"`, while the document allowed only
/// `Created`/`Cancelled` and `Replayed`/`Failed`/`Skipped`: the schemas of the wire enums
/// named the Rust variants, not the wire names (fixed in the `wire_enum!` macro).
#[tokio::test]
async fn wire_enums_are_documented_by_their_wire_names() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let order = app.create_order(&["LAMP-1"]).await;
    assert!(documented_enum(&doc, "OrderStatusDto").contains(&order.status.to_string()));
    let report: BulkReplayDto = app
        .admin_post("/api/admin/dlq/replay", Some(json!({"ids": [1]})))
        .await;
    assert_eq!(report.results[0].outcome, BulkReplayOutcome::Skipped);
    assert!(documented_enum(&doc, "BulkReplayOutcome").contains(&"skipped".to_string()));
    for (schema, names) in [
        (
            "OrderStatusDto",
            wire_names(OrderStatusDto::ALL, OrderStatusDto::as_str),
        ),
        (
            "BulkReplayOutcome",
            wire_names(BulkReplayOutcome::ALL, BulkReplayOutcome::as_str),
        ),
        ("RelayMode", wire_names(RelayMode::ALL, RelayMode::as_str)),
        (
            "RelayState",
            wire_names(RelayState::ALL, RelayState::as_str),
        ),
        (
            "BreakerState",
            wire_names(BreakerState::ALL, BreakerState::as_str),
        ),
        (
            "DeadLetterStatus",
            wire_names(DeadLetterStatus::ALL, DeadLetterStatus::as_str),
        ),
        (
            "DeadLetterKind",
            wire_names(DeadLetterKind::ALL, DeadLetterKind::as_str),
        ),
        (
            "ReplayAttemptOutcome",
            wire_names(ReplayAttemptOutcome::ALL, ReplayAttemptOutcome::as_str),
        ),
        (
            "ComponentStatus",
            wire_names(ComponentStatus::ALL, ComponentStatus::as_str),
        ),
        (
            "HealthVerdict",
            wire_names(HealthVerdict::ALL, HealthVerdict::as_str),
        ),
    ] {
        assert_eq!(documented_enum(&doc, schema), names, "{schema}");
    }
}

/// The schemas' limits are literals (utoipa takes no constants): they must say what the
/// server checks.
#[tokio::test]
async fn documented_limits_match_the_server() {
    let doc = document(&spawn_app().await).await;
    let slow = doc["components"]["schemas"]["Fault"]["oneOf"]
        .as_array()
        .expect("the fault modes")
        .iter()
        .find(|mode| mode["properties"]["mode"]["enum"][0] == "slow")
        .expect("the slow mode");
    assert_eq!(
        slow["properties"]["latency_ms"]["maximum"],
        json!(MAX_FAULT_LATENCY_MS)
    );
}

#[tokio::test]
async fn admin_operations_require_the_bearer_scheme_and_errors_have_their_body() {
    let doc = document(&spawn_app().await).await;
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let error_body = "#/components/schemas/ErrorBody";
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let admin = path.starts_with("/api/admin/");
            assert_eq!(
                operation["security"][0]["bearer"].is_array(),
                admin,
                "{method} {path}: bearer security exactly on admin operations"
            );
            if admin {
                let unauthorized = &operation["responses"]["401"];
                assert_eq!(
                    unauthorized["content"]["application/json"]["schema"]["$ref"], error_body,
                    "{method} {path} documents 401 with the error body"
                );
            }
        }
    }
}

#[tokio::test]
async fn creating_an_order_documents_its_request_headers() {
    let doc = document(&spawn_app().await).await;
    let create = &doc["paths"]["/api/orders"]["post"];
    let headers: BTreeSet<&str> = create["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter(|p| p["in"] == "header")
        .map(|p| p["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(
        headers,
        BTreeSet::from(["Idempotency-Key", "traceparent", "tracestate"])
    );
    for status in ["201", "400", "413", "415", "422", "503"] {
        assert!(
            create["responses"][status].is_object(),
            "POST /api/orders documents {status}"
        );
    }
}
