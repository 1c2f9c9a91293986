//! `/healthz` (the process answers; the state of each component) and `/readyz` (it can do
//! its job: 503 when the store cannot take durable writes or the relay task is gone). An open
//! circuit breaker or an active simulated fault makes the service `degraded`, not down: orders
//! are still taken and the relay catches up once the sink is back.
//!
//! Both are public, so they say up / degraded / down per component in fixed words: no error
//! text, breaker reason or fault settings (those are in the admin relay status and the log).
//! The readiness write probe runs at most once per [`PROBE_FRESH`]; requests meanwhile get
//! its last result, so anonymous clients cannot make the store write at their rate.

use super::AppState;
use crate::relay::activity::RelayState;
use crate::resilience::breaker::BreakerState;
use crate::store::StoreError;
use app::dto::{ComponentDto as Component, ComponentStatus as Status, HealthDto, HealthVerdict};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How long readiness waits for the write probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a write probe's result is reused.
pub const PROBE_FRESH: Duration = Duration::from_secs(1);

/// The last readiness write probe: when it ran and what it found (`Err`: the fixed words
/// that say why the store is down).
#[derive(Debug, Default)]
pub struct ReadyProbe(Mutex<Option<(Instant, Result<(), &'static str>)>>);

impl ReadyProbe {
    /// The store's writability: the last probe's result while it is fresh, else a new
    /// probe's (concurrent requests wait for the one probe in flight).
    async fn check(&self, state: &AppState) -> Result<(), &'static str> {
        let mut last = self.0.lock().await;
        if let Some((at, result)) = *last
            && at.elapsed() < PROBE_FRESH
        {
            return result;
        }
        let result = match tokio::time::timeout(PROBE_TIMEOUT, state.orders.check_writable()).await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: store write probe failed");
                Err(match e {
                    StoreError::Overloaded => "write queue full",
                    StoreError::WriterStopped => "writer stopped",
                    StoreError::Unavailable(_) => "database busy or locked",
                    _ => "write probe failed",
                })
            }
            Err(_) => {
                tracing::warn!("readiness: store write probe timed out");
                Err("write probe timed out")
            }
        };
        *last = Some((Instant::now(), result));
        result
    }
}

/// The relay task, the sink behind its circuit breaker, and fault injection, as `state` shows
/// them.
fn relay_components(state: &AppState) -> Vec<Component> {
    components(
        state.relay.activity.get().state,
        state.relay.breaker.state(),
        state.relay.faults.fault().is_active(),
    )
}

/// The relay's components in fixed words: its task's `relay` state, the `sink`'s breaker,
/// whether a simulated fault is `faulted`.
fn components(relay: RelayState, sink: BreakerState, faulted: bool) -> Vec<Component> {
    let component = |name: &str, status, detail: &str| Component {
        name: name.into(),
        status,
        detail: detail.into(),
    };
    let relay = match relay {
        s @ (RelayState::Running | RelayState::Retrying | RelayState::Paused) => {
            component("relay", Status::Up, s.as_str())
        }
        RelayState::Starting => component("relay", Status::Degraded, "starting"),
        RelayState::Suspended => component("relay", Status::Degraded, "suspended by an operator"),
        RelayState::Stopped => component("relay", Status::Down, "the relay task has stopped"),
    };
    let sink = match sink {
        BreakerState::Closed => component("sink", Status::Up, "circuit breaker closed"),
        BreakerState::Open => component("sink", Status::Degraded, "circuit breaker open"),
        BreakerState::HalfOpen => component("sink", Status::Degraded, "circuit breaker half-open"),
    };
    let faults = if faulted {
        component("faults", Status::Degraded, "a simulated fault is active")
    } else {
        component("faults", Status::Up, "none")
    };
    vec![relay, sink, faults]
}

/// Liveness: always 200 while the process answers, with the state of each component.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "health",
    responses((status = 200, description = "The process answers", body = app::dto::HealthDto))
)]
pub async fn healthz(State(state): State<AppState>) -> Json<HealthDto> {
    Json(HealthDto {
        status: HealthVerdict::Ok,
        components: relay_components(&state),
    })
}

/// Readiness: a durable write probe through the writer (at most once per [`PROBE_FRESH`]),
/// plus the relay's components.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "health",
    responses(
        (status = 200, description = "`ready`, or `degraded`", body = app::dto::HealthDto),
        (
            status = 503,
            description = "`not_ready`: a component is down",
            body = app::dto::HealthDto
        ),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<HealthDto>) {
    let store = match state.ready_probe.check(&state).await {
        Ok(()) => Component {
            name: "store".into(),
            status: Status::Up,
            detail: "takes durable writes".into(),
        },
        Err(why) => Component {
            name: "store".into(),
            status: Status::Down,
            detail: why.into(),
        },
    };
    let mut components = vec![store];
    components.extend(relay_components(&state));
    readiness(components)
}

/// The readiness answer for `components`: 503 `not_ready` if any is down, else 200, `ready`
/// or `degraded`.
fn readiness(components: Vec<Component>) -> (StatusCode, Json<HealthDto>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn store_up() -> Component {
        Component {
            name: "store".into(),
            status: Status::Up,
            detail: "takes durable writes".into(),
        }
    }

    fn ready(relay: RelayState, sink: BreakerState, faulted: bool) -> (StatusCode, HealthVerdict) {
        let mut all = vec![store_up()];
        all.extend(components(relay, sink, faulted));
        let (code, Json(body)) = readiness(all);
        (code, body.status)
    }

    #[test]
    fn a_stopped_relay_task_is_not_ready() {
        assert_eq!(
            ready(RelayState::Stopped, BreakerState::Closed, false),
            (StatusCode::SERVICE_UNAVAILABLE, HealthVerdict::NotReady)
        );
    }

    #[test]
    fn a_suspended_relay_an_open_breaker_or_a_fault_is_degraded_not_down() {
        let degraded = (StatusCode::OK, HealthVerdict::Degraded);
        assert_eq!(
            ready(RelayState::Suspended, BreakerState::Closed, false),
            degraded
        );
        assert_eq!(
            ready(RelayState::Running, BreakerState::Open, false),
            degraded
        );
        assert_eq!(
            ready(RelayState::Running, BreakerState::HalfOpen, false),
            degraded
        );
        assert_eq!(
            ready(RelayState::Retrying, BreakerState::Closed, true),
            degraded
        );
        assert_eq!(
            ready(RelayState::Paused, BreakerState::Closed, false),
            (StatusCode::OK, HealthVerdict::Ready)
        );
    }
}
