//! Admin endpoints (all need the admin token): relay mode and status, fault injection.

use super::AppState;
use super::auth::Admin;
use super::error::AppError;
use super::extract::ApiJson;
use crate::domain::{EventType, ValidationErrors, timestamp};
use crate::publish::faults::Fault;
use crate::publish::{PartitionOffsets, Publisher};

use crate::views;
use app::dto::{RelayModeDto, RelayStatusDto, SuspensionDto};
use axum::Json;
use axum::extract::State;
use chrono::Utc;

/// `GET /api/admin/relay/mode`: the relay's current mode.
pub async fn relay_mode(_admin: Admin, State(state): State<AppState>) -> Json<RelayModeDto> {
    Json(RelayModeDto {
        mode: *state.relay_mode.borrow(),
    })
}

/// `POST /api/admin/relay/mode`: switches polling ↔ streaming at run time. The checkpoint is
/// untouched, so no event is lost or skipped by the switch.
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
pub async fn suspend(_admin: Admin, State(state): State<AppState>) -> Json<SuspensionDto> {
    state.relay.suspension.suspend();
    tracing::warn!("relay suspended by an operator");
    Json(SuspensionDto { suspended: true })
}

/// `POST /api/admin/relay/resume`: ends a suspension; the relay carries on from its checkpoint.
pub async fn resume(_admin: Admin, State(state): State<AppState>) -> Json<SuspensionDto> {
    state.relay.suspension.resume();
    tracing::info!("relay resumed by an operator");
    Json(SuspensionDto { suspended: false })
}

/// `GET /api/admin/relay`: mode, state, checkpoint, backlog, breaker with its recent
/// transitions, dead letters per status, and the simulated fault if one is active.
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

/// `GET /api/admin/faults`: the simulated fault (`{"mode": "none"}` when there is none).
pub async fn faults(_admin: Admin, State(state): State<AppState>) -> Json<Fault> {
    Json(state.relay.faults.fault())
}

/// `POST /api/admin/faults`: sets the simulated fault: `none`, `down`, `slow` (with
/// `latency_ms`) or `poison` (with `event_type` and/or `every_n`).
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
