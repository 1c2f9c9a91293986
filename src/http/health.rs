//! `/healthz` (the process answers) and `/readyz` (it can do its job: the store takes writes).

use super::AppState;
use crate::store::StoreError;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use std::time::Duration;

/// How long readiness waits for the write probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The state of one component in `/readyz`.
#[derive(Debug, Serialize)]
pub struct Component {
    name: &'static str,
    /// `up` or `down`.
    status: &'static str,
    detail: String,
}

#[derive(Debug, Serialize)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    status: &'static str,
    components: Vec<Component>,
}

pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let store = match tokio::time::timeout(PROBE_TIMEOUT, state.store.check_writable()).await {
        Ok(Ok(())) => Ok("durable write probe committed".to_string()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: store write probe failed");
            Err(match e {
                StoreError::Overloaded => "write queue full",
                StoreError::WriterStopped => "writer stopped",
                StoreError::Unavailable(_) => "database busy or locked",
                _ => "write probe failed",
            }
            .to_string())
        }
        Err(_) => Err(format!("write probe timed out after {PROBE_TIMEOUT:?}")),
    };
    let ready = store.is_ok();
    let component = Component {
        name: "store",
        status: if ready { "up" } else { "down" },
        detail: store.unwrap_or_else(|e| e),
    };
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        components: vec![component],
    };
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}
