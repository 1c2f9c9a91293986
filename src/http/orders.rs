//! The order endpoints of the JSON API.

use super::AppState;
use super::error::AppError;
use super::extract::{ApiJson, ApiQuery, OptionalIdempotencyKey, OrderIdPath};
use crate::domain::{CancelReason, NewOrder, OrderItems, RawItem, ValidationErrors, Version};
use crate::store::{Applied, Command, EventPage, OrderCursor};
use crate::telemetry;
use crate::views;
use app::dto::{OrderDetailDto, OrderDto, OrderPageDto};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;

/// Default and largest page size of `GET /api/orders` and of the events of `GET /api/orders/{id}`.
const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 100;

/// `POST /api/orders`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderBody {
    customer_id: String,
    items: Vec<RawItem>,
}

/// `PUT /api/orders/{id}/items`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaceItemsBody {
    items: Vec<RawItem>,
    expected_version: Version,
}

/// `POST /api/orders/{id}/cancel`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    reason: String,
    expected_version: Version,
}

/// The query of `GET /api/orders` and `GET /api/orders/{id}`: a page size and where to go on.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

impl PageQuery {
    /// `limit`, 1–100, 20 when absent.
    fn limit(&self) -> Result<u32, AppError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if (1..=MAX_PAGE).contains(&limit) {
            Ok(limit)
        } else {
            Err(AppError::BadRequest {
                code: "invalid_query",
                message: format!("limit must be between 1 and {MAX_PAGE}"),
            })
        }
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
pub async fn create(
    State(state): State<AppState>,
    OptionalIdempotencyKey(idempotency_key): OptionalIdempotencyKey,
    ApiJson(body): ApiJson<CreateOrderBody>,
) -> Result<(StatusCode, HeaderMap, Json<OrderDto>), AppError> {
    let order = NewOrder::parse(&body.customer_id, &body.items)?;
    let applied = state
        .orders
        .apply(Command::Create {
            order,
            idempotency_key,
        })
        .await?;
    telemetry::order_applied(&state.metrics, &applied);
    let dto = views::order(applied.order());
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/orders/{}", dto.id)) {
        headers.insert(header::LOCATION, location);
    }
    if matches!(applied, Applied::Replayed { .. }) {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok((StatusCode::CREATED, headers, Json(dto)))
}

/// The order and one page of its events, newest first: `limit` (1–100, default 20) per page,
/// continued with `cursor`.
pub async fn get(
    State(state): State<AppState>,
    OrderIdPath(id): OrderIdPath,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<OrderDetailDto>, AppError> {
    let page = EventPage::parse(query.cursor.as_deref(), query.limit()?).map_err(invalid_cursor)?;
    let detail =
        views::order_detail(state.orders.as_ref(), state.outbox.as_ref(), id, page).await?;
    Ok(Json(detail.ok_or(AppError::NotFound("order"))?))
}

/// Newest first, `limit` (1–100, default 20) per page, continued with `cursor`.
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
pub async fn replace_items(
    State(state): State<AppState>,
    OrderIdPath(id): OrderIdPath,
    ApiJson(body): ApiJson<ReplaceItemsBody>,
) -> Result<Json<OrderDto>, AppError> {
    let items = OrderItems::parse(&body.items)?;
    let applied = state
        .orders
        .apply(Command::ReplaceItems {
            id,
            items,
            expected_version: body.expected_version,
        })
        .await?;
    telemetry::order_applied(&state.metrics, &applied);
    Ok(Json(views::order(applied.order())))
}

/// Cancels an order at `expected_version` with a reason.
pub async fn cancel(
    State(state): State<AppState>,
    OrderIdPath(id): OrderIdPath,
    ApiJson(body): ApiJson<CancelBody>,
) -> Result<Json<OrderDto>, AppError> {
    let reason =
        CancelReason::parse(&body.reason).map_err(|m| ValidationErrors::single("reason", m))?;
    let applied = state
        .orders
        .apply(Command::Cancel {
            id,
            reason,
            expected_version: body.expected_version,
        })
        .await?;
    telemetry::order_applied(&state.metrics, &applied);
    Ok(Json(views::order(applied.order())))
}
