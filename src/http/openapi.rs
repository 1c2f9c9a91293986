//! The OpenAPI 3.1 contract of the JSON API and the health probes, served at
//! `GET /api/openapi.json`. It is generated from the handlers' `#[utoipa::path]` annotations
//! and the DTOs' schemas, so it changes with the code. `make test` fuzzes the running server
//! against it with schemathesis (`scripts/api-contract.sh`), and `tests/api/contract.rs`
//! checks that it lists every route of [`super::api`].
//!
//! Each handler's annotation names the answers of the handler itself. The answers that the
//! extractors and layers in front of every handler give (a bad JSON body, a missing admin
//! token, overload, a timeout) are added by [`LayerAnswers`], one rule each.

use super::{admin, audit, dlq, health, orders, topics};
use app::dto::ErrorBody;
use axum::http::header;
use axum::response::IntoResponse;
use std::sync::LazyLock;
use utoipa::openapi::content::Content;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{OneOfBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, RefOr};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

/// The name of the admin token's security scheme, as the admin handlers' annotations cite it.
const BEARER: &str = "bearer";

/// The document's root: every documented operation, its tags, and [`LayerAnswers`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Outbox API",
        description = "Orders written together with their outbox events, the relay that \
                       publishes them, its dead letter queue, and the health probes. Every \
                       error answer has the body `ErrorBody`."
    ),
    paths(
        orders::create,
        orders::list,
        orders::get,
        orders::replace_items,
        orders::cancel,
        topics::list,
        topics::messages,
        admin::relay_status,
        admin::relay_mode,
        admin::set_relay_mode,
        admin::suspend,
        admin::resume,
        admin::faults,
        admin::set_faults,
        admin::sink_offsets,
        admin::sink_consumer_groups,
        audit::list,
        dlq::list,
        dlq::replay_many,
        dlq::get,
        dlq::replay,
        dlq::discard,
        dlq::edit_payload,
        dlq::groups,
        dlq::replay_group,
        dlq::discard_group,
        health::healthz,
        health::readyz,
        document,
    ),
    components(schemas(ErrorBody)),
    modifiers(&LayerAnswers),
    tags(
        (name = "orders", description = "Orders and their outbox events"),
        (name = "topics", description = "The embedded topic log the relay publishes to"),
        (name = "admin", description = "The relay, its sink and fault injection (admin token)"),
        (name = "dlq", description = "The dead letter queue (admin token)"),
        (name = "health", description = "Liveness and readiness probes"),
        (name = "meta", description = "This document"),
    )
)]
struct ApiDoc;

/// The document as JSON, rendered on first use: it depends on nothing but the code.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document always serialises")
});

/// `GET /api/openapi.json`: this contract.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    operation_id = "openApiDocument",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object))
)]
pub async fn document() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
}

/// Adds to every operation the answers given before or instead of its handler, and the
/// admin token's security scheme that the admin operations require.
struct LayerAnswers;

impl Modify for LayerAnswers {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                BEARER,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "`Authorization: Bearer <ADMIN_TOKEN>` (a console session cookie \
                             works too)",
                        ))
                        .build(),
                ),
            );
        for item in doc.paths.paths.values_mut() {
            for operation in operations(item) {
                for (status, answer) in layer_answers(operation) {
                    let responses = &mut operation.responses.responses;
                    match responses.get_mut(status) {
                        Some(RefOr::T(own)) => also_error_body(own),
                        Some(RefOr::Ref(_)) => {}
                        None => {
                            responses.insert(status.to_string(), RefOr::T(answer));
                        }
                    }
                }
            }
        }
    }
}

/// The operations of one path.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .flatten()
}

/// What the extractors and layers may answer for `operation` instead of its handler.
fn layer_answers(operation: &Operation) -> Vec<(&'static str, Response)> {
    let mut answers = vec![
        (
            "408",
            ResponseBuilder::new()
                .description("The request took longer than `REQUEST_TIMEOUT` (no body)")
                .build(),
        ),
        (
            "503",
            error("`unavailable`: overloaded (`MAX_REQUESTS`) or the store cannot take it now")
                .header("Retry-After", retry_after())
                .build(),
        ),
    ];
    let has_body = operation.request_body.is_some();
    if has_body || operation.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
        answers.push((
            "400",
            error(
                "A malformed request: `malformed_json`, `unreadable_body`, `invalid_query`, \
                 `invalid_id`, `invalid_cursor` or `invalid_idempotency_key`",
            )
            .build(),
        ));
    }
    if has_body {
        answers.extend([
            (
                "413",
                error("`payload_too_large`: the body exceeds 64 KiB").build(),
            ),
            (
                "415",
                error("`unsupported_media_type`: the body is not `application/json`").build(),
            ),
            (
                "422",
                error("`invalid_body`: JSON of the wrong shape; `details` names the field").build(),
            ),
        ]);
    }
    if operation.security.is_some() {
        answers.extend([
            (
                "401",
                error("`unauthorized`: no or a wrong admin token")
                    .header("WWW-Authenticate", Header::new(String::schema()))
                    .build(),
            ),
            (
                "403",
                error("`cross_site`: a session-authenticated change from another origin").build(),
            ),
            (
                "429",
                error("`too_many_attempts`: too many wrong admin tokens from this address")
                    .header("Retry-After", retry_after())
                    .build(),
            ),
        ]);
    }
    answers
}

/// An answer with an [`ErrorBody`] and `description`.
fn error(description: &str) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", Content::new(Some(error_body())))
}

/// A reference to the [`ErrorBody`] schema.
fn error_body() -> RefOr<Schema> {
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(ErrorBody::name()))
}

/// `Retry-After`: whole seconds to wait.
fn retry_after() -> Header {
    Header::new(
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0)),
    )
}

/// Lets a handler's own answer with the status of a layer's carry the layer's error body too
/// (`/readyz` answers 503 with its report; shed load answers 503 with an [`ErrorBody`]).
fn also_error_body(own: &mut Response) {
    for content in own.content.values_mut() {
        if let RefOr::T(Content {
            schema: Some(schema),
            ..
        }) = content
            && *schema != error_body()
        {
            let either = OneOfBuilder::new()
                .item(schema.clone())
                .item(error_body())
                .build();
            *schema = RefOr::T(Schema::OneOf(either));
        }
    }
}

/// The error answers that several handlers share, named once for their annotations'
/// `responses(...)` lists: each adds one answer with an [`ErrorBody`], in the place it is cited.
#[allow(
    dead_code,
    reason = "never built: the annotations use only their derived `IntoResponses`"
)]
pub(super) mod answers {
    use app::dto::ErrorBody;
    use utoipa::IntoResponses;

    /// `422` of a body that fails its checks or has the wrong shape.
    #[derive(IntoResponses)]
    #[response(status = 422, description = "`validation_failed` or `invalid_body`")]
    pub struct InvalidBody(ErrorBody);

    /// `404` of a dead letter's id.
    #[derive(IntoResponses)]
    #[response(status = 404, description = "`not_found`: no such record")]
    pub struct NoSuchRecord(ErrorBody);

    /// `409` of an action on a dead letter that is no longer pending.
    #[derive(IntoResponses)]
    #[response(status = 409, description = "`not_pending` or `in_progress`")]
    pub struct NotPending(ErrorBody);

    /// `404` of a failure group without pending records.
    #[derive(IntoResponses)]
    #[response(
        status = 404,
        description = "`not_found`: no pending record in that group"
    )]
    pub struct NoPendingInGroup(ErrorBody);

    /// `404` of an order's id.
    #[derive(IntoResponses)]
    #[response(status = 404, description = "`not_found`: no such order")]
    pub struct NoSuchOrder(ErrorBody);

    /// `409` and `422` of a change to an order.
    #[derive(IntoResponses)]
    pub enum OrderChangeRefused {
        #[response(
            status = 409,
            description = "`version_conflict` (re-read the order) or `order_cancelled`"
        )]
        Conflict(ErrorBody),
        #[response(
            status = 422,
            description = "`validation_failed` (`details` names each field) or `invalid_body`"
        )]
        Invalid(ErrorBody),
    }

    /// `404` and `503` of the operations that ask the broker.
    #[derive(IntoResponses)]
    pub enum BrokerUnreachable {
        #[response(
            status = 404,
            description = "`not_found`: the sink is the embedded log"
        )]
        EmbeddedSink(ErrorBody),
        #[response(status = 503, description = "`sink_unavailable`: no broker answers")]
        NoBroker(ErrorBody),
    }
}
