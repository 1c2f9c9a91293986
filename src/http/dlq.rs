//! The dead letter queue's admin endpoints (all need the admin token): list with filters and
//! text search, read one, replay one or many, discard one.

use super::AppState;
use super::auth::Admin;
use super::error::AppError;
use super::extract::{ApiJson, ApiQuery};
use crate::domain::{EventType, OrderId, ValidationErrors};
use crate::relay::replay::ReplayError;
use crate::store::StoreError;
use crate::store::dead_letters::{DeadLetterFilter, DeadLetterStatus};

use crate::views;
use app::dto::{BulkReplayDto, DeadLetterDto, DeadLetterPageDto, ReplayResultDto};
use app::dto::{BulkReplayOutcome, BulkReplayRequest, DiscardRequest};
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use std::collections::BTreeSet;

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;
/// Most records one bulk replay handles.
pub const MAX_BULK: u32 = 1000;
/// Longest text search and discard reason.
const MAX_TEXT: usize = 200;
const MAX_REASON: usize = 500;

/// `GET /api/admin/dlq` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `OrderCreated`, `OrderItemsUpdated` or `OrderCancelled`.
    event_type: Option<String>,
    /// The order's id.
    #[param(format = Uuid)]
    aggregate_id: Option<String>,
    /// Part of the event id, payload or error message.
    #[param(min_length = 1, max_length = 200)]
    q: Option<String>,
    #[param(value_type = Option<app::dto::DeadLetterStatus>)]
    status: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(minimum = 1)]
    cursor: Option<i64>,
}

/// 1 to `max` characters, none of them control characters.
fn plain_text(text: &str, max: usize) -> bool {
    !text.is_empty() && text.chars().count() <= max && !text.chars().any(char::is_control)
}

fn bad_query(message: String) -> AppError {
    AppError::BadRequest {
        code: "invalid_query",
        message,
    }
}

/// Checks the filter fields; `field` names them in errors.
fn filter(
    event_type: Option<String>,
    aggregate_id: Option<String>,
    q: Option<String>,
) -> Result<DeadLetterFilter, String> {
    if let Some(t) = &event_type {
        EventType::parse(t).ok_or_else(|| format!("event_type {t:?} is not an event type"))?;
    }
    let aggregate_id = aggregate_id
        .map(|id| OrderId::parse(&id).map_err(|m| format!("aggregate_id {m}")))
        .transpose()?;
    if q.as_deref().is_some_and(|text| !plain_text(text, MAX_TEXT)) {
        return Err(format!(
            "q must be 1 to {MAX_TEXT} characters without control characters"
        ));
    }
    Ok(DeadLetterFilter {
        event_type,
        aggregate_id,
        text: q,
        ..DeadLetterFilter::default()
    })
}

/// `GET /api/admin/dlq`: records matching the filters, newest first, paginated by `cursor`.
#[utoipa::path(
    get,
    path = "/api/admin/dlq",
    operation_id = "listDeadLetters",
    tag = "dlq",
    security(("bearer" = [])),
    params(ListQuery),
    responses((
        status = 200,
        description = "One page of records",
        body = app::dto::DeadLetterPageDto
    ))
)]
pub async fn list(
    _admin: Admin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<DeadLetterPageDto>, AppError> {
    let mut f = filter(query.event_type, query.aggregate_id, query.q).map_err(bad_query)?;
    f.status = query
        .status
        .map(|s| {
            DeadLetterStatus::parse(&s).ok_or_else(|| {
                bad_query(format!(
                    "status {s:?} is not pending, replayed or discarded"
                ))
            })
        })
        .transpose()?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(bad_query(format!("limit must be between 1 and {MAX_PAGE}")));
    }
    if query.cursor.is_some_and(|c| c < 1) {
        return Err(bad_query("cursor must be a positive record id".into()));
    }
    f.before_id = query.cursor;
    // One more than asked tells whether another page follows.
    f.limit = limit + 1;
    let mut items = state.dead_letters.dead_letters(f).await?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    Ok(Json(DeadLetterPageDto {
        next_cursor: more.then(|| items.last().map(|d| d.id)).flatten(),
        items: items.iter().map(views::dead_letter).collect(),
    }))
}

/// The `{id}` path segment as a record id (400 unless a positive integer).
fn record_id(raw: &str) -> Result<i64, AppError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| AppError::BadRequest {
            code: "invalid_id",
            message: "a dead letter id is a positive integer".into(),
        })
}

/// `GET /api/admin/dlq/{id}`: one record with its replay history.
#[utoipa::path(
    get,
    path = "/api/admin/dlq/{id}",
    operation_id = "getDeadLetter",
    tag = "dlq",
    security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The record's id")),
    responses(
        (status = 200, description = "The record", body = app::dto::DeadLetterDto),
        (status = 404, description = "`not_found`: no such record", body = app::dto::ErrorBody),
    )
)]
pub async fn get(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeadLetterDto>, AppError> {
    let id = record_id(&id)?;
    let letter = state
        .dead_letters
        .dead_letter(id)
        .await?
        .ok_or(AppError::NotFound("dead letter"))?;
    Ok(Json(views::dead_letter(&letter)))
}

impl From<ReplayError> for AppError {
    fn from(e: ReplayError) -> Self {
        match e {
            ReplayError::NotFound => AppError::NotFound("dead letter"),
            ReplayError::NotPending(status) => StoreError::NotPending(status).into(),
            ReplayError::InProgress => AppError::InProgress(e.to_string()),
            ReplayError::SinkUnavailable { .. } => AppError::SinkUnavailable(e.to_string()),
            ReplayError::Failed(_) => AppError::ReplayFailed(e.to_string()),
            ReplayError::Store(s) => s.into(),
        }
    }
}

/// `POST /api/admin/dlq/{id}/replay`: publishes the original envelope (same `event_id`);
/// 200 with the record, now `replayed`, once the sink acknowledged.
#[utoipa::path(
    post,
    path = "/api/admin/dlq/{id}/replay",
    operation_id = "replayDeadLetter",
    tag = "dlq",
    security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The record's id")),
    responses(
        (status = 200, description = "The record, now `replayed`", body = app::dto::DeadLetterDto),
        (status = 404, description = "`not_found`: no such record", body = app::dto::ErrorBody),
        (status = 409, description = "`not_pending` or `in_progress`", body = app::dto::ErrorBody),
        (
            status = 502,
            description = "`replay_failed`: the sink refused it (attempt recorded)",
            body = app::dto::ErrorBody
        ),
        (
            status = 503,
            description = "`sink_unavailable`: the circuit breaker is open",
            body = app::dto::ErrorBody
        ),
    )
)]
pub async fn replay(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeadLetterDto>, AppError> {
    let id = record_id(&id)?;
    let letter = state.relay.replayer.replay(id).await?;
    Ok(Json(views::dead_letter(&letter)))
}

/// `POST /api/admin/dlq/replay`: replays the listed records (or up to 1,000 pending ones
/// matching the filter) oldest first, and reports each outcome.
#[utoipa::path(
    post,
    path = "/api/admin/dlq/replay",
    operation_id = "replayDeadLetters",
    tag = "dlq",
    security(("bearer" = [])),
    request_body = app::dto::BulkReplayRequest,
    responses(
        (status = 200, description = "Each record's outcome", body = app::dto::BulkReplayDto),
        (
            status = 422,
            description = "`validation_failed` or `invalid_body`",
            body = app::dto::ErrorBody
        ),
    )
)]
pub async fn replay_many(
    _admin: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<BulkReplayRequest>,
) -> Result<Json<BulkReplayDto>, AppError> {
    let mut errors = ValidationErrors::default();
    let ids: Vec<i64> = match (body.ids, body.filter) {
        (Some(ids), None) => {
            if ids.is_empty() || ids.len() > MAX_BULK as usize {
                errors.add("ids", format!("give 1 to {MAX_BULK} ids"));
            }
            if ids.iter().any(|id| *id < 1) {
                errors.add("ids", "ids are positive integers");
            }
            // Oldest first: per-aggregate order is kept among the replayed events.
            ids.into_iter()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        }
        (None, Some(f)) => match filter(f.event_type, f.aggregate_id, f.q) {
            Ok(mut f) => {
                f.status = Some(DeadLetterStatus::Pending);
                f.limit = MAX_BULK;
                let mut ids: Vec<i64> = state
                    .dead_letters
                    .dead_letters(f)
                    .await?
                    .iter()
                    .map(|d| d.id)
                    .collect();
                ids.reverse();
                ids
            }
            Err(message) => {
                errors.add("filter", message);
                Vec::new()
            }
        },
        _ => {
            errors.add("", "give either ids or filter");
            Vec::new()
        }
    };
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let mut report = BulkReplayDto {
        replayed: 0,
        failed: 0,
        skipped: 0,
        results: Vec::with_capacity(ids.len()),
    };
    for id in ids {
        let (outcome, error) = match state.relay.replayer.replay(id).await {
            Ok(_) => {
                report.replayed += 1;
                (BulkReplayOutcome::Replayed, None)
            }
            Err(
                e @ (ReplayError::NotFound | ReplayError::NotPending(_) | ReplayError::InProgress),
            ) => {
                report.skipped += 1;
                (BulkReplayOutcome::Skipped, Some(e.to_string()))
            }
            Err(ReplayError::Store(e)) => return Err(e.into()),
            Err(e) => {
                report.failed += 1;
                (BulkReplayOutcome::Failed, Some(e.to_string()))
            }
        };
        report.results.push(ReplayResultDto { id, outcome, error });
    }
    Ok(Json(report))
}

/// `POST /api/admin/dlq/{id}/discard`: sets a pending record aside, with a reason.
#[utoipa::path(
    post,
    path = "/api/admin/dlq/{id}/discard",
    operation_id = "discardDeadLetter",
    tag = "dlq",
    security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The record's id")),
    request_body = app::dto::DiscardRequest,
    responses(
        (status = 200, description = "The record, now `discarded`", body = app::dto::DeadLetterDto),
        (status = 404, description = "`not_found`: no such record", body = app::dto::ErrorBody),
        (status = 409, description = "`not_pending` or `in_progress`", body = app::dto::ErrorBody),
        (
            status = 422,
            description = "`validation_failed` or `invalid_body`",
            body = app::dto::ErrorBody
        ),
    )
)]
pub async fn discard(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DiscardRequest>,
) -> Result<Json<DeadLetterDto>, AppError> {
    let id = record_id(&id)?;
    let reason = body.reason.trim();
    if reason.is_empty()
        || reason.chars().count() > MAX_REASON
        || reason.chars().any(char::is_control)
    {
        let mut errors = ValidationErrors::default();
        errors.add(
            "reason",
            format!("must be 1 to {MAX_REASON} characters without control characters"),
        );
        return Err(errors.into());
    }
    let letter = state.relay.replayer.discard(id, reason.to_string()).await?;
    Ok(Json(views::dead_letter(&letter)))
}
