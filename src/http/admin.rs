//! Admin endpoints (all need the admin token): relay mode and status, fault injection.

use super::AppState;
use super::auth::Admin;
use super::error::AppError;
use super::extract::{ApiJson, ApiQuery};
use super::openapi::answers::{BrokerUnreachable, InvalidBody};
use crate::domain::{EventType, ValidationErrors, timestamp};
use crate::publish::faults::Fault;
use crate::publish::{ConsumerGroups, PartitionOffsets, Publisher};

use crate::views;
use app::dto::{RelayModeDto, RelayStatusDto, SuspensionDto};
use axum::Json;
use axum::extract::State;
use chrono::Utc;
use serde::Deserialize;

/// `GET /api/admin/relay/mode`: the relay's current mode.
#[utoipa::path(
    get,
    path = "/api/admin/relay/mode",
    operation_id = "getRelayMode",
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, description = "The relay's mode", body = app::dto::RelayModeDto))
)]
pub async fn relay_mode(_admin: Admin, State(state): State<AppState>) -> Json<RelayModeDto> {
    Json(RelayModeDto {
        mode: *state.relay_mode.borrow(),
    })
}

/// `POST /api/admin/relay/mode`: switches polling ↔ streaming at run time. The checkpoint is
/// untouched, so no event is lost or skipped by the switch.
#[utoipa::path(
    post,
    path = "/api/admin/relay/mode",
    operation_id = "setRelayMode",
    tag = "admin",
    security(("bearer" = [])),
    request_body = app::dto::RelayModeDto,
    responses((status = 200, description = "The mode now in effect", body = app::dto::RelayModeDto))
)]
pub async fn set_relay_mode(
    _admin: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RelayModeDto>,
) -> Result<Json<RelayModeDto>, AppError> {
    state.relay_mode.send_replace(body.mode);
    tracing::info!(mode = %body.mode, "relay mode switched");
    Ok(Json(body))
}

/// `POST /api/admin/relay/suspend`: the relay records what is in flight, then reads and sends
/// nothing until resumed. Orders are still taken; their events wait as pending.
#[utoipa::path(
    post,
    path = "/api/admin/relay/suspend",
    operation_id = "suspendRelay",
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, description = "Suspended", body = app::dto::SuspensionDto))
)]
pub async fn suspend(_admin: Admin, State(state): State<AppState>) -> Json<SuspensionDto> {
    state.relay.suspension.suspend();
    tracing::warn!("relay suspended by an operator");
    Json(SuspensionDto { suspended: true })
}

/// `POST /api/admin/relay/resume`: ends a suspension; the relay carries on from its checkpoint.
#[utoipa::path(
    post,
    path = "/api/admin/relay/resume",
    operation_id = "resumeRelay",
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, description = "Not suspended", body = app::dto::SuspensionDto))
)]
pub async fn resume(_admin: Admin, State(state): State<AppState>) -> Json<SuspensionDto> {
    state.relay.suspension.resume();
    tracing::info!("relay resumed by an operator");
    Json(SuspensionDto { suspended: false })
}

/// `GET /api/admin/relay`: mode, state, checkpoint, backlog, breaker with its recent
/// transitions, dead letters per status, and the simulated fault if one is active.
#[utoipa::path(
    get,
    path = "/api/admin/relay",
    operation_id = "getRelayStatus",
    tag = "admin",
    security(("bearer" = [])),
    responses((
        status = 200,
        description = "What the relay is doing",
        body = app::dto::RelayStatusDto
    ))
)]
pub async fn relay_status(
    _admin: Admin,
    State(state): State<AppState>,
) -> Result<Json<RelayStatusDto>, AppError> {
    let activity = state.relay.activity.get();
    let backlog = state.relay.backlog.read().await.unwrap_or_default();
    let counts = state.dead_letters.dead_letter_counts().await?;
    let fault = state.relay.faults.fault();
    let mode = *state.relay_mode.borrow();
    Ok(Json(RelayStatusDto {
        mode,
        state: activity.state,
        state_since: timestamp(&activity.since),
        last_error: activity.last_error,
        sink: state.relay.faults.name().to_string(),
        checkpoint: activity.checkpoint,
        pending: backlog.pending,
        oldest_pending_age_ms: backlog
            .oldest
            .map(|t| (Utc::now() - t).num_milliseconds().max(0)),
        breaker: views::breaker(&state.relay.breaker.snapshot()),
        dead_letters: views::dead_letter_counts(&counts),
        fault: fault.is_active().then_some(fault),
        fault_injection: state.relay.fault_injection,
    }))
}

/// `GET /api/admin/sink/offsets`: each partition's low and high offset on the Kafka broker;
/// 404 `not_found` when the sink is the embedded log (browse it through `/api/topics`), 503 when
/// no broker answers.
#[utoipa::path(
    get,
    path = "/api/admin/sink/offsets",
    operation_id = "getSinkOffsets",
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (
            status = 200,
            description = "Each partition's offsets",
            body = Vec<app::dto::PartitionOffsetsDto>
        ),
        BrokerUnreachable,
    )
)]
pub async fn sink_offsets(
    _admin: Admin,
    State(state): State<AppState>,
) -> Result<Json<Vec<PartitionOffsets>>, AppError> {
    match state.relay.faults.offsets().await {
        None => Err(AppError::NotFound("Kafka sink")),
        Some(Ok(offsets)) => Ok(Json(offsets)),
        Some(Err(e)) => Err(AppError::SinkUnavailable(e.message)),
    }
}

/// The query of `GET /api/admin/sink/consumer-groups`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConsumerGroupsQuery {
    /// Only this consumer group: 1–255 characters, no control characters.
    #[param(min_length = 1, max_length = 255)]
    group: Option<String>,
}

impl ConsumerGroupsQuery {
    /// The group asked for, if any; 400 `invalid_query` for a name no group can have.
    fn group(&self) -> Result<Option<&str>, AppError> {
        match self.group.as_deref() {
            Some(g) if g.is_empty() || g.len() > 255 || g.chars().any(char::is_control) => {
                Err(AppError::invalid_query(
                    "group must be 1 to 255 characters without control characters".into(),
                ))
            }
            group => Ok(group),
        }
    }
}

/// `GET /api/admin/sink/consumer-groups?group=`: the consumer groups with committed offsets on
/// the Kafka sink's topics (those of `KAFKA_LAG_GROUPS` only, when it is set), with each
/// partition's committed offset, end and lag; 404 `not_found` with the embedded log, 503 when
/// no broker answers.
#[utoipa::path(
    get,
    path = "/api/admin/sink/consumer-groups",
    operation_id = "getSinkConsumerGroups",
    tag = "admin",
    security(("bearer" = [])),
    params(ConsumerGroupsQuery),
    responses(
        (
            status = 200,
            description = "Each group's partitions with their lag",
            body = app::dto::ConsumerGroupsDto
        ),
        (
            status = 400,
            description = "`invalid_query`: a bad group name or an unknown parameter",
            body = app::dto::ErrorBody
        ),
        BrokerUnreachable,
    )
)]
pub async fn sink_consumer_groups(
    _admin: Admin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ConsumerGroupsQuery>,
) -> Result<Json<ConsumerGroups>, AppError> {
    let group = query.group()?;
    match state.relay.faults.consumer_groups().await {
        None => Err(AppError::NotFound("Kafka sink")),
        Some(Ok(mut groups)) => {
            if let Some(group) = group {
                groups.partitions.retain(|p| p.group == group);
            }
            Ok(Json(groups))
        }
        Some(Err(e)) => Err(AppError::SinkUnavailable(e.message)),
    }
}

/// `GET /api/admin/faults`: the simulated fault (`{"mode": "none"}` when there is none).
#[utoipa::path(
    get,
    path = "/api/admin/faults",
    operation_id = "getFault",
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, description = "The simulated fault", body = app::dto::Fault))
)]
pub async fn faults(_admin: Admin, State(state): State<AppState>) -> Json<Fault> {
    Json(state.relay.faults.fault())
}

/// `POST /api/admin/faults`: sets the simulated fault: `none`, `down`, `slow` (with
/// `latency_ms`) or `poison` (with `event_type` and/or `every_n`).
#[utoipa::path(
    post,
    path = "/api/admin/faults",
    operation_id = "setFault",
    tag = "admin",
    security(("bearer" = [])),
    request_body = app::dto::Fault,
    responses(
        (status = 200, description = "The fault now simulated", body = app::dto::Fault),
        (
            status = 403,
            description = "`faults_disabled` (`FAULT_INJECTION=false`) or `cross_site`",
            body = app::dto::ErrorBody
        ),
        InvalidBody,
    )
)]
pub async fn set_faults(
    _admin: Admin,
    State(state): State<AppState>,
    ApiJson(fault): ApiJson<Fault>,
) -> Result<Json<Fault>, AppError> {
    if !state.relay.fault_injection {
        return Err(AppError::FaultsDisabled);
    }
    if let Err(message) = fault.validate() {
        let mut errors = ValidationErrors::default();
        errors.add("", message);
        return Err(errors.into());
    }
    if let Fault::Poison {
        event_type: Some(t),
        ..
    } = &fault
        && EventType::parse(t).is_none()
    {
        let mut errors = ValidationErrors::default();
        errors.add("event_type", format!("{t:?} is not an event type"));
        return Err(errors.into());
    }
    state.relay.faults.set(fault.clone());
    Ok(Json(fault))
}
