//! Admin endpoints (all need the admin token): relay control.

use super::AppState;
use super::auth::Admin;
use super::error::AppError;
use super::extract::ApiJson;
use crate::relay::RelayMode;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeBody {
    mode: RelayMode,
}

#[derive(Debug, Serialize)]
pub struct ModeAnswer {
    mode: RelayMode,
}

/// `GET /api/admin/relay/mode`: the relay's current mode.
pub async fn relay_mode(_admin: Admin, State(state): State<AppState>) -> Json<ModeAnswer> {
    Json(ModeAnswer {
        mode: *state.relay_mode.borrow(),
    })
}

/// `POST /api/admin/relay/mode`: switches polling ↔ streaming at run time. The checkpoint is
/// untouched, so no event is lost or skipped by the switch.
pub async fn set_relay_mode(
    _admin: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ModeBody>,
) -> Result<Json<ModeAnswer>, AppError> {
    state.relay_mode.send_replace(body.mode);
    tracing::info!(mode = ?body.mode, "relay mode switched");
    Ok(Json(ModeAnswer { mode: body.mode }))
}
