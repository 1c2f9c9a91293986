//! `/healthz` (the process answers; the state of each component) and `/readyz` (it can do
//! its job: 503 when the store cannot take durable writes or the relay task is gone). An open
//! circuit breaker or an active simulated fault makes the service `degraded`, not down: orders
//! are still taken and the relay catches up once the sink is back.

use super::AppState;
use crate::publish::Publisher;
use crate::relay::activity::RelayState;
use crate::resilience::breaker::BreakerState;
use crate::store::StoreError;
use app::dto::{ComponentDto as Component, ComponentStatus as Status, HealthDto, HealthVerdict};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use std::time::Duration;

/// How long readiness waits for the write probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The relay task, the sink behind its circuit breaker, and fault injection.
fn relay_components(state: &AppState) -> Vec<Component> {
    let activity = state.relay.activity.get();
    let (status, detail) = match activity.state {
        RelayState::Running | RelayState::Retrying | RelayState::Paused => (
            Status::Up,
            format!(
                "{} at position {}",
                activity.state.as_str(),
                activity.checkpoint
            ),
        ),
        RelayState::Starting => (
            Status::Degraded,
            activity
                .last_error
                .map_or("starting".to_string(), |e| format!("restarting after: {e}")),
        ),
        RelayState::Suspended => (
            Status::Degraded,
            format!(
                "suspended by an operator at position {}",
                activity.checkpoint
            ),
        ),
        RelayState::Stopped => (Status::Down, "the relay task has stopped".to_string()),
    };
    let relay = Component {
        name: "relay".into(),
        status,
        detail,
    };
    let breaker = state.relay.breaker.snapshot();
    let sink = state.relay.faults.name();
    let sink = match breaker.state {
        BreakerState::Closed => Component {
            name: "sink".into(),
            status: Status::Up,
            detail: format!("{sink}: circuit breaker closed"),
        },
        other => Component {
            name: "sink".into(),
            status: Status::Degraded,
            detail: format!(
                "{sink}: circuit breaker {} after {}",
                other.as_str(),
                breaker.transitions.last().map_or("", |t| t.reason.as_str())
            ),
        },
    };
    let fault = state.relay.faults.fault();
    let faults = Component {
        name: "faults".into(),
        status: if fault.is_active() {
            Status::Degraded
        } else {
            Status::Up
        },
        detail: serde_json::to_string(&fault).unwrap_or_default(),
    };
    vec![relay, sink, faults]
}

/// Liveness: always 200 while the process answers, with the state of each component.
pub async fn healthz(State(state): State<AppState>) -> Json<HealthDto> {
    Json(HealthDto {
        status: HealthVerdict::Ok,
        components: relay_components(&state),
    })
}

/// Readiness: a durable write probe through the writer, plus the relay's components.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<HealthDto>) {
    let store = match tokio::time::timeout(PROBE_TIMEOUT, state.orders.check_writable()).await {
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
    let mut components = vec![Component {
        name: "store".into(),
        status: if store.is_ok() {
            Status::Up
        } else {
            Status::Down
        },
        detail: store.unwrap_or_else(|e| e),
    }];
    components.extend(relay_components(&state));
    let worst = components
        .iter()
        .map(|c| c.status)
        .max_by_key(|s| match s {
            Status::Up => 0,
            Status::Degraded => 1,
            Status::Down => 2,
        })
        .unwrap_or(Status::Up);
    let (code, status) = match worst {
        Status::Up => (StatusCode::OK, HealthVerdict::Ready),
        Status::Degraded => (StatusCode::OK, HealthVerdict::Degraded),
        Status::Down => (StatusCode::SERVICE_UNAVAILABLE, HealthVerdict::NotReady),
    };
    (code, Json(HealthDto { status, components }))
}
