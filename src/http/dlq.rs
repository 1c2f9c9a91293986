//! The dead letter queue's admin endpoints (all need the admin token): list with filters and
//! text search, read one, replay one or many, discard one, edit a payload before replaying it,
//! and failure groups (pending records that failed the same way), replayed or discarded
//! together.

use super::AppState;
use super::auth::Admin;
use super::error::AppError;
use super::extract::{ApiJson, ApiQuery, page_limit};
use super::openapi::answers::{InvalidBody, NoPendingInGroup, NoSuchRecord, NotPending};
use crate::domain::{EventType, OrderId, Payload, ValidationErrors, timestamp};
use crate::relay::replay::ReplayError;
use crate::store::StoreError;
use crate::store::dead_letters::{
    self, DeadLetter, DeadLetterFilter, DeadLetterGroup, DeadLetterStatus, is_group_key,
};

use crate::views;
use app::dto::{BulkReplayDto, DeadLetterDto, DeadLetterPageDto, ReplayResultDto};
use app::dto::{BulkReplayOutcome, BulkReplayRequest, DiscardRequest};
use app::dto::{DeadLetterExampleDto, DeadLetterGroupDto, DeadLetterGroupsDto, GroupActionDto};
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::future::Future;

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
    /// A failure group's key (from `GET /api/admin/dlq/groups`): only its records.
    #[param(pattern = "^[0-9a-f]{16}$")]
    group: Option<String>,
}

/// 1 to `max` characters, none of them control characters.
fn plain_text(text: &str, max: usize) -> bool {
    !text.is_empty() && text.chars().count() <= max && !text.chars().any(char::is_control)
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
    let mut f =
        filter(query.event_type, query.aggregate_id, query.q).map_err(AppError::invalid_query)?;
    f.status = query
        .status
        .map(|s| {
            DeadLetterStatus::parse(&s).ok_or_else(|| {
                AppError::invalid_query(format!(
                    "status {s:?} is not pending, replayed or discarded"
                ))
            })
        })
        .transpose()?;
    let limit = page_limit(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    if query.cursor.is_some_and(|c| c < 1) {
        return Err(AppError::invalid_query(
            "cursor must be a positive record id".into(),
        ));
    }
    if let Some(group) = &query.group
        && !is_group_key(group)
    {
        return Err(AppError::invalid_query(format!(
            "group {group:?} is not a group key"
        )));
    }
    f.group = query.group;
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
        NoSuchRecord,
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
        NoSuchRecord,
        NotPending,
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
        InvalidBody,
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
    let run = each(ids, BulkReplayOutcome::Replayed, |id| {
        state.relay.replayer.replay(id)
    })
    .await?;
    Ok(Json(BulkReplayDto {
        replayed: run.succeeded,
        failed: run.failed,
        skipped: run.skipped,
        results: run.results,
    }))
}

/// What an action over many records did, record by record.
struct Run {
    succeeded: usize,
    failed: usize,
    skipped: usize,
    results: Vec<ReplayResultDto>,
}

/// Applies `act` to each of `ids` in turn (one winner per record, as for single calls):
/// records no longer pending or busy are skipped, a refusal by the sink counts as failed, and
/// a store error stops the run.
async fn each<F, Fut>(ids: Vec<i64>, success: BulkReplayOutcome, act: F) -> Result<Run, AppError>
where
    F: Fn(i64) -> Fut,
    Fut: Future<Output = Result<DeadLetter, ReplayError>>,
{
    let mut run = Run {
        succeeded: 0,
        failed: 0,
        skipped: 0,
        results: Vec::with_capacity(ids.len()),
    };
    for id in ids {
        let (outcome, error) = match act(id).await {
            Ok(_) => {
                run.succeeded += 1;
                (success, None)
            }
            Err(
                e @ (ReplayError::NotFound | ReplayError::NotPending(_) | ReplayError::InProgress),
            ) => {
                run.skipped += 1;
                (BulkReplayOutcome::Skipped, Some(e.to_string()))
            }
            Err(ReplayError::Store(e)) => return Err(e.into()),
            Err(e) => {
                run.failed += 1;
                (BulkReplayOutcome::Failed, Some(e.to_string()))
            }
        };
        run.results.push(ReplayResultDto { id, outcome, error });
    }
    Ok(run)
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
        NoSuchRecord,
        NotPending,
        InvalidBody,
    )
)]
pub async fn discard(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DiscardRequest>,
) -> Result<Json<DeadLetterDto>, AppError> {
    let id = record_id(&id)?;
    let reason = discard_reason(&body)?;
    let letter = state.relay.replayer.discard(id, reason).await?;
    Ok(Json(views::dead_letter(&letter)))
}

/// A discard's reason, trimmed: 1 to 500 characters without control characters (422
/// otherwise).
fn discard_reason(body: &DiscardRequest) -> Result<String, AppError> {
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
    Ok(reason.to_string())
}

/// `PUT /api/admin/dlq/{id}/payload`: stores a corrected payload beside the original; the
/// record's replays publish it (same envelope and `event_id`, header `outbox_edited: true`).
#[utoipa::path(
    put,
    path = "/api/admin/dlq/{id}/payload",
    operation_id = "editDeadLetterPayload",
    tag = "dlq",
    security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The record's id")),
    request_body(
        content = Object,
        description = "The new payload: a JSON object keeping the original's `order_id`"
    ),
    responses(
        (status = 200, description = "The record, with `edited_payload`", body = app::dto::DeadLetterDto),
        NoSuchRecord,
        NotPending,
        (
            status = 422,
            description = "`validation_failed`: not an object, or `order_id` changed",
            body = app::dto::ErrorBody
        ),
    )
)]
pub async fn edit_payload(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<DeadLetterDto>, AppError> {
    let id = record_id(&id)?;
    let letter = state
        .dead_letters
        .dead_letter(id)
        .await?
        .ok_or(AppError::NotFound("dead letter"))?;
    if letter.status != DeadLetterStatus::Pending {
        return Err(StoreError::NotPending(letter.status).into());
    }
    let payload = edited_payload(&letter, body)?;
    let letter = state.relay.replayer.edit(id, payload).await?;
    Ok(Json(views::dead_letter(&letter)))
}

/// `body` as the edited payload of `letter`: a JSON object whose `order_id` is the original's
/// (the record stays about the same order, whose key and envelope the replay keeps).
fn edited_payload(letter: &DeadLetter, body: serde_json::Value) -> Result<Payload, AppError> {
    let mut errors = ValidationErrors::default();
    let original = letter.failure.event.envelope.payload.to_value();
    match &body {
        serde_json::Value::Object(fields) if fields.get("order_id") != original.get("order_id") => {
            errors.add("order_id", "must stay the original payload's order_id");
        }
        serde_json::Value::Object(_) => {}
        _ => errors.add("body", "the payload must be a JSON object"),
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    Payload::from_stored(body.to_string()).map_err(|e| AppError::Internal(e.to_string()))
}

/// A group as the API shows it.
fn group_view(g: &DeadLetterGroup) -> DeadLetterGroupDto {
    DeadLetterGroupDto {
        group: g.key.clone(),
        event_type: g.event_type.clone(),
        error_kind: g.kind,
        message: g.message.clone(),
        count: g.count,
        first_seen: timestamp(&g.first_seen),
        last_seen: timestamp(&g.last_seen),
        example: DeadLetterExampleDto {
            id: g.example.id,
            event_id: g.example.failure.event.envelope.event_id.to_string(),
            error_message: g.example.failure.error.clone(),
        },
    }
}

/// `GET /api/admin/dlq/groups`: pending records grouped by event type, error kind and
/// normalised message, largest group first.
#[utoipa::path(
    get,
    path = "/api/admin/dlq/groups",
    operation_id = "listDeadLetterGroups",
    tag = "dlq",
    security(("bearer" = [])),
    responses((status = 200, description = "The failure groups", body = app::dto::DeadLetterGroupsDto))
)]
pub async fn groups(
    _admin: Admin,
    State(state): State<AppState>,
) -> Result<Json<DeadLetterGroupsDto>, AppError> {
    let groups = dead_letters::failure_groups(state.dead_letters.as_ref()).await?;
    Ok(Json(DeadLetterGroupsDto {
        groups: groups.iter().map(group_view).collect(),
    }))
}

/// The `{group}` path segment's pending records, oldest first: 400 unless it is a group key,
/// 404 when no pending record is in that group.
async fn group_members(state: &AppState, group: &str) -> Result<Vec<i64>, AppError> {
    if !is_group_key(group) {
        return Err(AppError::BadRequest {
            code: "invalid_id",
            message: "a group key is 16 lowercase hex digits".into(),
        });
    }
    let ids = dead_letters::group_ids(state.dead_letters.as_ref(), group).await?;
    if ids.is_empty() {
        return Err(AppError::NotFound("dead letter group"));
    }
    Ok(ids)
}

/// Runs `act` on the oldest [`MAX_BULK`] pending records of `group` and says what it did.
async fn act_on_group<F, Fut>(
    state: &AppState,
    group: String,
    success: BulkReplayOutcome,
    act: F,
) -> Result<Json<GroupActionDto>, AppError>
where
    F: Fn(i64) -> Fut,
    Fut: Future<Output = Result<DeadLetter, ReplayError>>,
{
    let mut ids = group_members(state, &group).await?;
    let remaining = ids.len().saturating_sub(MAX_BULK as usize);
    ids.truncate(MAX_BULK as usize);
    let run = each(ids, success, act).await?;
    Ok(Json(GroupActionDto {
        group,
        done: run.results.len(),
        remaining,
        succeeded: run.succeeded,
        failed: run.failed,
        skipped: run.skipped,
        results: run.results,
    }))
}

/// `POST /api/admin/dlq/groups/{group}/replay`: replays the group's pending records, oldest
/// first, at most 1,000 per call.
#[utoipa::path(
    post,
    path = "/api/admin/dlq/groups/{group}/replay",
    operation_id = "replayDeadLetterGroup",
    tag = "dlq",
    security(("bearer" = [])),
    params(("group" = String, Path, pattern = "^[0-9a-f]{16}$", description = "The group's key")),
    responses(
        (status = 200, description = "Each record's outcome", body = app::dto::GroupActionDto),
        NoPendingInGroup,
    )
)]
pub async fn replay_group(
    _admin: Admin,
    State(state): State<AppState>,
    Path(group): Path<String>,
) -> Result<Json<GroupActionDto>, AppError> {
    let replayer = &state.relay.replayer;
    act_on_group(&state, group, BulkReplayOutcome::Replayed, |id| {
        replayer.replay(id)
    })
    .await
}

/// `POST /api/admin/dlq/groups/{group}/discard`: sets the group's pending records aside with
/// one reason, oldest first, at most 1,000 per call.
#[utoipa::path(
    post,
    path = "/api/admin/dlq/groups/{group}/discard",
    operation_id = "discardDeadLetterGroup",
    tag = "dlq",
    security(("bearer" = [])),
    params(("group" = String, Path, pattern = "^[0-9a-f]{16}$", description = "The group's key")),
    request_body = app::dto::DiscardRequest,
    responses(
        (status = 200, description = "Each record's outcome", body = app::dto::GroupActionDto),
        NoPendingInGroup,
        InvalidBody,
    )
)]
pub async fn discard_group(
    _admin: Admin,
    State(state): State<AppState>,
    Path(group): Path<String>,
    ApiJson(body): ApiJson<DiscardRequest>,
) -> Result<Json<GroupActionDto>, AppError> {
    let reason = discard_reason(&body)?;
    let replayer = &state.relay.replayer;
    act_on_group(&state, group, BulkReplayOutcome::Discarded, |id| {
        replayer.discard(id, reason.clone())
    })
    .await
}
