//! The HTTP edge: the JSON API under `/api`, health probes, and the Leptos pages with their
//! server functions.

mod admin;
mod audit;
pub mod auth;
mod bounded;
mod console;
mod dlq;
mod edge;
pub mod error;
pub mod extract;
pub mod headers;
pub mod health;
mod live;
mod metrics;
mod openapi;
mod orders;
pub mod request_id;
pub mod session;
pub mod throttle;
mod topics;
pub mod trace;

use crate::publish::faults::FaultInjector;
use crate::publish::local::TopicLog;
use crate::relay::replay::Replayer;
use app::dto::RelayMode;

use crate::relay::activity::RelayActivity;
use crate::relay::backlog::BacklogGauge;
use crate::relay::suspension::Suspension;
use crate::resilience::breaker::CircuitBreaker;

use crate::store::{AuditLog, DeadLetterStore, OrderStore, OutboxLog};
use crate::telemetry::live::LiveHub;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::spans::Spans;
use crate::ui::UiBridge;
use app::api::OrdersApi;
use auth::AdminToken;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::{HeaderValue, header};
use axum::routing::{any, get, post, put};
use error::AppError;
use extract::BODY_LIMIT;
use leptos::config::LeptosOptions;
use leptos::prelude::{provide_context, use_context};
use leptos_axum::{LeptosRoutes, generate_route_list};
use session::Sessions;
use std::sync::Arc;
use tokio::sync::watch;
use tower_http::limit::RequestBodyLimitLayer;

/// What every handler can reach, behind one `Arc`: the state is cloned for every extractor
/// and middleware of every request, and one counter is cheaper than a score of them.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl Services {
    /// Where the order pages and `GET /api/orders/{id}` learn where events went (for admins).
    pub fn event_paths(&self) -> crate::views::EventPaths {
        crate::views::EventPaths {
            dead_letters: Arc::clone(&self.dead_letters),
            sink: Arc::clone(&self.relay.faults) as Arc<dyn crate::publish::Publisher>,
        }
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services behind [`AppState`].
pub struct Services {
    /// Orders: the transactional writer and the order reads.
    pub orders: Arc<dyn OrderStore>,
    /// The outbox as the relay sees it (backlog, deliveries).
    pub outbox: Arc<dyn OutboxLog>,
    /// The dead letter queue.
    pub dead_letters: Arc<dyn DeadLetterStore>,
    /// Where operator actions are recorded ([`audit`]).
    pub audit: Arc<dyn AuditLog>,
    /// The embedded topic log, readable through `/api/topics`.
    pub topic_log: Arc<dyn TopicLog>,
    /// Digest of the admin secret that admin endpoints require.
    pub admin_token: AdminToken,
    /// Console sessions, started by signing in with the admin token.
    pub sessions: Arc<Sessions>,
    /// Wrong admin tokens per client address, to stop guessing.
    pub auth_throttle: Arc<throttle::AuthThrottle>,
    /// The relay's mode; admin requests switch it.
    pub relay_mode: Arc<watch::Sender<RelayMode>>,
    /// The relay's moving parts that admin endpoints show and steer.
    pub relay: RelayHandles,
    pub metrics: Arc<Metrics>,
    /// Span export (OTLP), off unless configured.
    pub spans: Arc<Spans>,
    /// The live feed behind `/api/live`.
    pub live: Arc<LiveHub>,
    /// The readiness write probe's last result, reused for a moment.
    pub ready_probe: Arc<health::ReadyProbe>,
    /// Where the pages find their assets and how they name the bundle (shared with
    /// leptos, which takes it by `Arc`).
    pub leptos_options: Arc<LeptosOptions>,
}

/// Shared with the running relay.
#[derive(Clone)]
pub struct RelayHandles {
    /// What the relay is doing, as its runner reports it.
    pub activity: Arc<RelayActivity>,
    /// Its backlog, counted where the relay runs.
    pub backlog: Arc<BacklogGauge>,
    /// The operator's suspension of the relay.
    pub suspension: Suspension,
    pub breaker: Arc<CircuitBreaker>,
    /// The sink as the relay sees it, with fault injection in front.
    pub faults: Arc<FaultInjector>,
    /// Whether operators may set faults (`FAULT_INJECTION`).
    pub fault_injection: bool,
    /// Publishes dead letters again through the same sink and breaker.
    pub replayer: Arc<Replayer>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        LeptosOptions::clone(&state.leptos_options)
    }
}

/// The JSON API under `/api`. Unknown paths and methods answer in the API's error format.
///
/// The routes carry their full paths and are merged into the application router rather than
/// nested under `/api`: a nested router rewrites every request's URI on the way in, which cost
/// about 3,000 instructions per request (`make bench-cpu`).
fn api() -> Router<AppState> {
    let no_route = || async { AppError::NoRoute };
    Router::new()
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/orders", post(orders::create).get(orders::list))
        .route("/api/orders/{id}", get(orders::get))
        .route("/api/orders/{id}/items", put(orders::replace_items))
        .route("/api/orders/{id}/cancel", post(orders::cancel))
        .route("/api/topics", get(topics::list))
        .route("/api/topics/{topic}/messages", get(topics::messages))
        .route("/api/admin/relay", get(admin::relay_status))
        .route(
            "/api/admin/relay/mode",
            get(admin::relay_mode).post(admin::set_relay_mode),
        )
        .route("/api/admin/relay/suspend", post(admin::suspend))
        .route("/api/admin/relay/resume", post(admin::resume))
        .route(
            "/api/admin/faults",
            get(admin::faults).post(admin::set_faults),
        )
        .route("/api/admin/sink/offsets", get(admin::sink_offsets))
        .route(
            "/api/admin/sink/consumer-groups",
            get(admin::sink_consumer_groups),
        )
        .route("/api/admin/audit", get(audit::list))
        .route("/api/admin/dlq", get(dlq::list))
        .route("/api/admin/dlq/replay", post(dlq::replay_many))
        .route("/api/admin/dlq/groups", get(dlq::groups))
        .route(
            "/api/admin/dlq/groups/{group}/replay",
            post(dlq::replay_group),
        )
        .route(
            "/api/admin/dlq/groups/{group}/discard",
            post(dlq::discard_group),
        )
        .route("/api/admin/dlq/{id}", get(dlq::get))
        .route("/api/admin/dlq/{id}/replay", post(dlq::replay))
        .route("/api/admin/dlq/{id}/discard", post(dlq::discard))
        .route("/api/admin/dlq/{id}/payload", put(dlq::edit_payload))
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
        .route("/api", any(no_route))
        .route("/api/", any(no_route))
        .route("/api/{*rest}", any(no_route))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

/// What one request may take: time, and a place among those handled at once.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Past it, 408 (`REQUEST_TIMEOUT`).
    pub timeout: std::time::Duration,
    /// Past it, 503 with `Retry-After` (`MAX_REQUESTS`).
    pub concurrent: usize,
}

/// The whole application router. Every route but the live feed (a stream meant to stay open)
/// is bounded by `limits`.
pub fn router(state: AppState, limits: RequestLimits) -> Router {
    let sessions = Arc::clone(&state.sessions);
    let ui: Arc<dyn OrdersApi> = Arc::new(UiBridge::new(
        Arc::clone(&state.orders),
        Arc::clone(&state.outbox),
        Arc::clone(&state.metrics),
        Arc::clone(&state.spans),
        state.event_paths(),
        Arc::new(move |headers: &axum::http::HeaderMap| sessions.signed_in(headers)),
    ));
    let meter = Arc::clone(&state.metrics);
    // Every page render: the UI's service, and the page's security policy with the nonce
    // leptos_axum generated for this response's inline hydration scripts.
    let context = move || {
        provide_context(Arc::clone(&ui));
        let nonce = leptos::nonce::use_nonce();
        let response = use_context::<leptos_axum::ResponseOptions>();
        if let (Some(nonce), Some(response)) = (nonce, response)
            && let Ok(policy) = HeaderValue::from_str(&headers::page_policy(&nonce.to_string()))
        {
            response.insert_header(header::CONTENT_SECURITY_POLICY, policy);
        }
    };
    let routes = generate_route_list(app::App);
    let options = LeptosOptions::clone(&state.leptos_options);
    let bounded = bounded::BoundedLayer::new(limits.concurrent, limits.timeout);
    Router::new()
        .leptos_routes_with_context(&state, routes, context.clone(), move || {
            app::shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(context, app::shell))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            console::guard,
        ))
        .route("/auth/sign-in", post(console::sign_in))
        .route("/auth/sign-out", post(console::sign_out))
        // Server functions read their bodies themselves; this bounds them like the API.
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(axum::middleware::from_fn(error::json_errors))
        .merge(api())
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::scrape))
        .layer(bounded)
        // Outside `bounded`, so an action that timed out or was shed is recorded too.
        .route_layer(audit::AuditLayer::new(state.clone()))
        .route("/api/live", get(live::live))
        .layer(edge::EdgeLayer::new(meter, Arc::clone(&state.spans)))
        .with_state(state)
}
