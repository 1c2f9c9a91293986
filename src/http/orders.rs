//! The order endpoints of the JSON API.

use super::AppState;
use super::auth::is_admin;
use super::error::AppError;
use super::extract::{ApiJson, ApiQuery, OptionalIdempotencyKey, OrderIdPath, page_limit};
use super::openapi::answers::{NoSuchOrder, OrderChangeRefused};
use super::throttle::ClientAddr;
use super::trace::RequestTrace;
use crate::domain::{
    CancelReason, NewOrder, Order, OrderItems, RawItem, ValidationErrors, Version,
};
use crate::store::{Applied, Command, EventPage, OrderCursor};
use crate::telemetry;
use crate::views;
use app::dto::{OrderDetailDto, OrderPageDto};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// Default and largest page size of `GET /api/orders` and of the events of `GET /api/orders/{id}`.
const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 100;

/// An order as the answer to a change: the JSON of its [`app::dto::OrderDto`], written by
/// [`views::order_json`].
pub struct OrderJson(Vec<u8>);

impl OrderJson {
    fn of(order: &Order) -> Self {
        Self(views::order_json(order))
    }
}

impl IntoResponse for OrderJson {
    fn into_response(self) -> Response {
        let json = HeaderValue::from_static("application/json");
        ([(header::CONTENT_TYPE, json)], self.0).into_response()
    }
}

/// `POST /api/orders`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderBody {
    #[schema(format = Uuid)]
    customer_id: String,
    /// 1 to 100 lines.
    #[schema(value_type = Vec<app::dto::OrderItemDto>, min_items = 1, max_items = 100)]
    items: Vec<RawItem>,
}

/// `PUT /api/orders/{id}/items`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceItemsBody {
    /// 1 to 100 lines.
    #[schema(value_type = Vec<app::dto::OrderItemDto>, min_items = 1, max_items = 100)]
    items: Vec<RawItem>,
    /// The order's `version` as last read (optimistic concurrency).
    #[schema(value_type = u32)]
    expected_version: Version,
}

/// `POST /api/orders/{id}/cancel`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// 1 to 500 characters (trimmed), no control characters but newline and tab.
    #[schema(min_length = 1, max_length = 500)]
    reason: String,
    /// The order's `version` as last read (optimistic concurrency).
    #[schema(value_type = u32)]
    expected_version: Version,
}

/// The query of `GET /api/orders` and `GET /api/orders/{id}`: a page size and where to go on.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(min_length = 1)]
    cursor: Option<String>,
}

impl PageQuery {
    /// `limit`, 1–100, 20 when absent.
    fn limit(&self) -> Result<u32, AppError> {
        page_limit(self.limit, DEFAULT_PAGE, MAX_PAGE)
    }
}

/// A cursor that is not one the API returned.
fn invalid_cursor(message: String) -> AppError {
    AppError::BadRequest {
        code: "invalid_cursor",
        message,
    }
}

/// Creates an order; with an `Idempotency-Key`, retries return the same order.
#[utoipa::path(
    post,
    path = "/api/orders",
    operation_id = "createOrder",
    tag = "orders",
    params(
        (
            "Idempotency-Key" = Option<String>,
            Header,
            min_length = 1,
            max_length = 255,
            pattern = "^[!-~]+$",
            description = "Same key and request: the same order, no second event \
                           (`Idempotent-Replayed: true`); same key, another request: 422"
        ),
        (
            "traceparent" = Option<String>,
            Header,
            description = "W3C trace context (`00-{trace-id}-{parent-id}-{flags}`): the \
                           request and the order's event continue the caller's trace; a \
                           malformed value is ignored"
        ),
        (
            "tracestate" = Option<String>,
            Header,
            description = "W3C trace context: vendor data that goes with `traceparent`"
        ),
    ),
    request_body = CreateOrderBody,
    responses(
        (
            status = 201,
            description = "Created (or, for a repeated `Idempotency-Key`, created before)",
            body = app::dto::OrderDto,
            headers(
                ("Location" = String, description = "`/api/orders/{id}`"),
                ("Idempotent-Replayed" = String, description = "`true` on a replayed answer")
            ),
            links(
                ("read" = (operation_id = "getOrder", parameters(("id" = "$response.body#/id")))),
                (
                    "replace_items" = (
                        operation_id = "replaceOrderItems",
                        parameters(("id" = "$response.body#/id"))
                    )
                ),
                (
                    "cancel" = (
                        operation_id = "cancelOrder",
                        parameters(("id" = "$response.body#/id"))
                    )
                )
            )
        ),
        (
            status = 422,
            description = "`validation_failed` (`details` names each field), `invalid_body`, \
                           or `idempotency_key_reused` (the key came with another request)",
            body = app::dto::ErrorBody
        ),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    OptionalIdempotencyKey(idempotency_key): OptionalIdempotencyKey,
    RequestTrace(trace): RequestTrace,
    ApiJson(body): ApiJson<CreateOrderBody>,
) -> Result<(StatusCode, HeaderMap, OrderJson), AppError> {
    let order = NewOrder::parse(&body.customer_id, &body.items)?;
    let applied = telemetry::apply_command(
        state.orders.as_ref(),
        &state.metrics,
        &state.spans,
        Command::Create {
            order,
            idempotency_key,
        },
        Some(trace),
    )
    .await?;
    let order = applied.order();
    let mut location = String::from("/api/orders/");
    location.push_str(
        order
            .id
            .0
            .hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer()),
    );
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::try_from(location) {
        headers.insert(header::LOCATION, location);
    }
    if matches!(applied, Applied::Replayed { .. }) {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok((StatusCode::CREATED, headers, OrderJson::of(order)))
}

/// The order and one page of its events, newest first: `limit` (1–100, default 20) per page,
/// continued with `cursor`. With admin credentials each event also says where it went
/// (`path`); a wrong token is counted like any other and answered as without one.
#[utoipa::path(
    get,
    path = "/api/orders/{id}",
    operation_id = "getOrder",
    tag = "orders",
    security((), ("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The order's id"), PageQuery),
    responses(
        (
            status = 200,
            description = "The order and a page of its events",
            body = app::dto::OrderDetailDto
        ),
        NoSuchOrder,
    )
)]
pub async fn get(
    State(state): State<AppState>,
    client: ClientAddr,
    method: Method,
    headers: HeaderMap,
    OrderIdPath(id): OrderIdPath,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<OrderDetailDto>, AppError> {
    let page = EventPage::parse(query.cursor.as_deref(), query.limit()?).map_err(invalid_cursor)?;
    let detail =
        views::order_detail(state.orders.as_ref(), state.outbox.as_ref(), id, page).await?;
    let mut detail = detail.ok_or(AppError::NotFound("order"))?;
    // Locked out of token checks (429 elsewhere): answered as the public.
    if is_admin(&method, &headers, client, &state).unwrap_or(false) {
        state.event_paths().add_to(&mut detail, id).await?;
    }
    Ok(Json(detail))
}

/// Newest first, `limit` (1–100, default 20) per page, continued with `cursor`.
#[utoipa::path(
    get,
    path = "/api/orders",
    operation_id = "listOrders",
    tag = "orders",
    params(PageQuery),
    responses((status = 200, description = "One page of orders", body = app::dto::OrderPageDto))
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<OrderPageDto>, AppError> {
    let limit = query.limit()?;
    let cursor = query
        .cursor
        .as_deref()
        .map(OrderCursor::parse)
        .transpose()
        .map_err(invalid_cursor)?;
    let page = state.orders.orders(limit, cursor).await?;
    Ok(Json(OrderPageDto {
        orders: page.orders.iter().map(views::order).collect(),
        next_cursor: page.next.map(|c| c.0.to_string()),
    }))
}

/// Replaces the items of an order at `expected_version`.
#[utoipa::path(
    put,
    path = "/api/orders/{id}/items",
    operation_id = "replaceOrderItems",
    tag = "orders",
    params(("id" = String, Path, format = Uuid, description = "The order's id")),
    request_body = ReplaceItemsBody,
    responses(
        (status = 200, description = "The order, changed", body = app::dto::OrderDto),
        NoSuchOrder,
        OrderChangeRefused,
    )
)]
pub async fn replace_items(
    State(state): State<AppState>,
    OrderIdPath(id): OrderIdPath,
    RequestTrace(trace): RequestTrace,
    ApiJson(body): ApiJson<ReplaceItemsBody>,
) -> Result<OrderJson, AppError> {
    let items = OrderItems::parse(&body.items)?;
    let applied = telemetry::apply_command(
        state.orders.as_ref(),
        &state.metrics,
        &state.spans,
        Command::ReplaceItems {
            id,
            items,
            expected_version: body.expected_version,
        },
        Some(trace),
    )
    .await?;
    Ok(OrderJson::of(applied.order()))
}

/// Cancels an order at `expected_version` with a reason.
#[utoipa::path(
    post,
    path = "/api/orders/{id}/cancel",
    operation_id = "cancelOrder",
    tag = "orders",
    params(("id" = String, Path, format = Uuid, description = "The order's id")),
    request_body = CancelBody,
    responses(
        (status = 200, description = "The order, changed", body = app::dto::OrderDto),
        NoSuchOrder,
        OrderChangeRefused,
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    OrderIdPath(id): OrderIdPath,
    RequestTrace(trace): RequestTrace,
    ApiJson(body): ApiJson<CancelBody>,
) -> Result<OrderJson, AppError> {
    let reason =
        CancelReason::parse(&body.reason).map_err(|m| ValidationErrors::single("reason", m))?;
    let applied = telemetry::apply_command(
        state.orders.as_ref(),
        &state.metrics,
        &state.spans,
        Command::Cancel {
            id,
            reason,
            expected_version: body.expected_version,
        },
        Some(trace),
    )
    .await?;
    Ok(OrderJson::of(applied.order()))
}
