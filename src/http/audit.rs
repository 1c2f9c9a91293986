//! The audit log of operator actions: [`Audit`], one route layer in front of every route,
//! writes an entry for each state-changing admin request and console sign-in or sign-out
//! (who, from where, what, on what, how it ended); [`list`] serves `GET /api/admin/audit`.
//!
//! The action is named from the method and the matched route ([`action`]), so handlers know
//! nothing of it, and a new admin route is recorded under a name derived from its path
//! without a change here. Reads (GET, HEAD, …) are not recorded.
//!
//! What is never recorded, so nobody can fill the log: requests that carry no credential at
//! all (no live session cookie, no bearer token, no token in the sign-in form), and 429
//! answers (an address locked out for guessing). A wrong token is recorded as refused; the
//! throttle ([`super::throttle`]) bounds how many of those one address makes. Secrets never
//! reach the log: a session appears as [`session_marker`], a bearer token as `bearer`.
//!
//! Writing the entry must not fail the action: if the store cannot take it, a warning is
//! logged and the operator gets the action's own answer.

use super::AppState;
use super::auth::Admin;
use super::error::AppError;
use super::extract::{ApiQuery, BODY_LIMIT, page_limit};
use super::throttle::ClientAddr;
use crate::domain::timestamp;
use crate::store::audit::{ActionFilter, AuditEntry, AuditOutcome, AuditQuery, NewAuditEntry};
use app::dto::{AuditEntryDto, AuditPageDto};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::convert::Infallible;
use std::task::{Context, Poll};

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 100;
/// Longest target stored (a bulk replay's filter is cut here).
const MAX_TARGET: usize = 200;
/// The console's sign-in and sign-out routes.
const SIGN_IN: &str = "/auth/sign-in";
const SIGN_OUT: &str = "/auth/sign-out";
/// Routes under this prefix are admin routes.
const ADMIN: &str = "/api/admin/";

/// Where an action's target comes from, besides its route's path parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detail {
    /// The path parameters say it all (or there is no target).
    Path,
    /// This field of the JSON body (`mode`).
    Field(&'static str),
    /// The whole JSON body, compacted (a fault, a bulk replay's selection).
    Body,
    /// The sign-in form: whether it carried a token decides whether the attempt is recorded.
    SignIn,
}

/// The routes with their own action names: method, route (`*` for each path parameter,
/// whatever its name), action, and where its target comes from.
const ACTIONS: &[(Method, &str, &str, Detail)] = &[
    (Method::POST, SIGN_IN, "session.sign_in", Detail::SignIn),
    (Method::POST, SIGN_OUT, "session.sign_out", Detail::Path),
    (
        Method::POST,
        "/api/admin/relay/mode",
        "relay.mode",
        Detail::Field("mode"),
    ),
    (
        Method::POST,
        "/api/admin/relay/suspend",
        "relay.suspend",
        Detail::Path,
    ),
    (
        Method::POST,
        "/api/admin/relay/resume",
        "relay.resume",
        Detail::Path,
    ),
    (
        Method::POST,
        "/api/admin/faults",
        "faults.set",
        Detail::Body,
    ),
    (
        Method::POST,
        "/api/admin/dlq/replay",
        "dlq.bulk_replay",
        Detail::Body,
    ),
    (
        Method::POST,
        "/api/admin/dlq/*/replay",
        "dlq.replay",
        Detail::Path,
    ),
    (
        Method::POST,
        "/api/admin/dlq/*/discard",
        "dlq.discard",
        Detail::Path,
    ),
    (
        Method::PUT,
        "/api/admin/dlq/*/payload",
        "dlq.edit",
        Detail::Path,
    ),
    (
        Method::POST,
        "/api/admin/dlq/groups/*/replay",
        "dlq.group.replay",
        Detail::Path,
    ),
    (
        Method::POST,
        "/api/admin/dlq/groups/*/discard",
        "dlq.group.discard",
        Detail::Path,
    ),
];

/// An audited request: its action's name and where its target comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Action {
    name: Cow<'static, str>,
    detail: Detail,
}

/// Whether `route` (axum's matched path, `{name}` for each parameter) has the shape
/// `pattern` (`*` for each parameter).
fn same_shape(route: &str, pattern: &str) -> bool {
    let (mut route, mut pattern) = (route.split('/'), pattern.split('/'));
    loop {
        match (route.next(), pattern.next()) {
            (None, None) => return true,
            (Some(r), Some("*")) if r.starts_with('{') => {}
            (Some(r), Some(p)) if r == p => {}
            _ => return false,
        }
    }
}

/// The action of a state-changing `method` on `route`, if it is audited: a name from
/// [`ACTIONS`], or for another admin route `admin.` and its fixed segments (with the method
/// unless it is POST), so new endpoints are recorded too.
fn action(method: &Method, route: &str) -> Option<Action> {
    // Most requests (orders, pages, reads) leave here, before any route is compared.
    let operator = route.starts_with(ADMIN) || route == SIGN_IN || route == SIGN_OUT;
    if method.is_safe() || !operator {
        return None;
    }
    if let Some((_, _, name, detail)) = ACTIONS
        .iter()
        .find(|(m, pattern, _, _)| m == method && same_shape(route, pattern))
    {
        return Some(Action {
            name: Cow::Borrowed(name),
            detail: *detail,
        });
    }
    let rest = route.strip_prefix(ADMIN)?;
    let mut name = String::from("admin");
    for segment in rest
        .split('/')
        .filter(|s| !s.is_empty() && !s.starts_with('{'))
    {
        name.push('.');
        name.push_str(segment);
    }
    if method != Method::POST {
        name.push('.');
        name.push_str(&method.as_str().to_ascii_lowercase());
    }
    Some(Action {
        name: Cow::Owned(name),
        detail: Detail::Path,
    })
}

/// A session as the log names it: 12 hex digits of its token's SHA-256, enough to tell
/// sessions apart and useless for taking one over.
pub fn session_marker(token: &str) -> String {
    Sha256::digest(token.as_bytes())[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Who sent a request, as far as the log is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Who {
    /// A live console session, by its marker.
    Session(String),
    /// The right admin token.
    Bearer,
    /// A wrong bearer token: recorded only when refused (the throttle bounds those).
    WrongBearer,
    /// No credential: not recorded.
    Nobody,
}

impl Who {
    /// Checked the way [`super::auth::is_admin`] checks, without counting a wrong token.
    fn of(headers: &HeaderMap, state: &AppState) -> Self {
        if let Some(token) = state.sessions.token_in(headers)
            && state.sessions.is_valid(token)
        {
            return Who::Session(session_marker(token));
        }
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match bearer {
            Some(token) if state.admin_token.matches(token.trim()) => Who::Bearer,
            Some(_) => Who::WrongBearer,
            None => Who::Nobody,
        }
    }

    /// The entry's `session`.
    fn label(&self) -> Option<String> {
        match self {
            Who::Session(marker) => Some(marker.clone()),
            Who::Bearer | Who::WrongBearer => Some("bearer".into()),
            Who::Nobody => None,
        }
    }
}

/// How a request ended, from its answer; `None` for answers that are not recorded (429, or
/// a sign-in refused unchecked because the address is locked out).
fn outcome(detail: Detail, status: StatusCode, location: Option<&str>) -> Option<AuditOutcome> {
    if status == StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    if detail == Detail::SignIn && status == StatusCode::SEE_OTHER {
        let query = location.and_then(|l| l.split_once('?')).map(|(_, q)| q);
        let error = query.and_then(|q| q.split('&').find_map(|p| p.strip_prefix("error=")));
        return match error {
            Some("throttled") => None,
            Some(_) => Some(AuditOutcome::Refused),
            None => Some(AuditOutcome::Ok),
        };
    }
    Some(match status.as_u16() {
        200..=399 => AuditOutcome::Ok,
        401 | 403 => AuditOutcome::Refused,
        _ => AuditOutcome::Failed,
    })
}

/// The session a successful sign-in started: the token in its `Set-Cookie`.
fn started_session(response: &Response) -> Option<String> {
    let cookie = response.headers().get(header::SET_COOKIE)?.to_str().ok()?;
    let (_, rest) = cookie.split_once('=')?;
    let token = rest.split(';').next()?;
    (!token.is_empty()).then(|| session_marker(token))
}

/// `text` cut to [`MAX_TARGET`] characters.
fn bounded(text: &str) -> String {
    match text.char_indices().nth(MAX_TARGET) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// What the body says about the target, per `detail` (JSON bodies only).
fn body_target(detail: Detail, body: &[u8]) -> Option<String> {
    let json = || serde_json::from_slice::<serde_json::Value>(body).ok();
    match detail {
        Detail::Field(name) => json()?.get(name)?.as_str().map(str::to_string),
        Detail::Body => json().map(|v| v.to_string()),
        Detail::Path | Detail::SignIn => None,
    }
}

/// The sign-in form's field that matters here.
#[derive(Deserialize)]
struct TokenField {
    #[serde(default)]
    token: String,
}

/// Whether the sign-in form `body` carried a token (a form without one is not an attempt
/// the throttle counts, so it is not recorded).
async fn presents_token(headers: &HeaderMap, body: Bytes) -> bool {
    let mut form = Request::new(Body::from(body));
    // Of a GET, `Form` would read the query string instead.
    *form.method_mut() = Method::POST;
    if let Some(kind) = headers.get(header::CONTENT_TYPE) {
        form.headers_mut()
            .insert(header::CONTENT_TYPE, kind.clone());
    }
    axum::Form::<TokenField>::from_request(form, &())
        .await
        .is_ok_and(|axum::Form(f)| !f.token.is_empty())
}

/// Puts [`Audit`] in front of routes (as a route layer, so the matched route is known).
#[derive(Clone)]
pub struct AuditLayer {
    state: AppState,
}

impl AuditLayer {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

impl<S> tower::Layer<S> for AuditLayer {
    type Service = Audit<S>;

    fn layer(&self, inner: S) -> Audit<S> {
        Audit {
            inner,
            state: self.state.clone(),
        }
    }
}

/// A route whose operator actions are recorded. Every other request goes straight to the
/// route: as an `axum::middleware::from_fn`, the check cost every order about 17,000
/// instructions (a clone of the route stack, and every route compared), now a prefix test.
#[derive(Clone)]
pub struct Audit<S> {
    inner: S,
    state: AppState,
}

impl<S> tower::Service<Request> for Audit<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let audited = request
            .extensions()
            .get::<MatchedPath>()
            .and_then(|route| action(request.method(), route.as_str()));
        let Some(action) = audited else {
            return Box::pin(self.inner.call(request));
        };
        // The route that was made ready goes with the request; a clone waits for the next.
        let waiting = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, waiting);
        let state = self.state.clone();
        Box::pin(async move { Ok(record(state, action, request, ready).await) })
    }
}

/// Runs an audited request through `route` and records it (see the module docs).
async fn record<S>(state: AppState, action: Action, request: Request, mut route: S) -> Response
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    let (mut parts, body) = request.into_parts();
    let Ok(ClientAddr(address)) = ClientAddr::from_request_parts(&mut parts, &state).await;
    let params = RawPathParams::from_request_parts(&mut parts, &state)
        .await
        .map(|p| p.iter().map(|(_, v)| v).collect::<Vec<_>>().join("/"))
        .unwrap_or_default();
    let who = Who::of(&parts.headers, &state);
    let (body, detail, presented) = if action.detail == Detail::Path {
        (body, None, false)
    } else {
        match axum::body::to_bytes(body, BODY_LIMIT).await {
            Ok(bytes) => {
                let presented = action.detail == Detail::SignIn
                    && presents_token(&parts.headers, bytes.clone()).await;
                let detail = body_target(action.detail, &bytes);
                (Body::from(bytes), detail, presented)
            }
            Err(_) => return AppError::PayloadTooLarge { limit: BODY_LIMIT }.into_response(),
        }
    };
    let Ok(response) = route.call(Request::from_parts(parts, body)).await;
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|l| l.to_str().ok());
    let Some(outcome) = outcome(action.detail, response.status(), location) else {
        return response;
    };
    let session = match (&action.detail, &who) {
        (Detail::SignIn, _) if presented => started_session(&response),
        (Detail::SignIn, _) | (_, Who::Nobody) => return response,
        (_, Who::WrongBearer) if outcome != AuditOutcome::Refused => return response,
        _ => who.label(),
    };
    let target = [Some(params).filter(|p| !p.is_empty()), detail]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let entry = NewAuditEntry {
        at: chrono::Utc::now(),
        session,
        address: address.to_canonical().to_string(),
        action: action.name.into_owned(),
        target: (!target.is_empty()).then(|| bounded(&target)),
        status: response.status().as_u16(),
        outcome,
    };
    let name = entry.action.clone();
    if let Err(e) = state.audit.record_audit(entry).await {
        tracing::warn!(error = %e, action = %name, "the audit log did not take an operator action");
    }
    response
}

/// `GET /api/admin/audit` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Page size, 1–100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(minimum = 1)]
    before: Option<i64>,
    /// An action (`dlq.replay`), or a prefix ending in `.` (`dlq.`): `a-z`, `0-9`, `.`, `_`.
    #[param(min_length = 1, max_length = 64, pattern = "^[a-z0-9._]+$")]
    action: Option<String>,
}

fn entry_dto(found: AuditEntry) -> AuditEntryDto {
    let e = found.entry;
    AuditEntryDto {
        id: found.id,
        at: timestamp(&e.at),
        session: e.session,
        address: e.address,
        action: e.action,
        target: e.target,
        status: e.status,
        outcome: e.outcome,
    }
}

/// `GET /api/admin/audit`: operator actions, newest first, paginated by `before`.
#[utoipa::path(
    get,
    path = "/api/admin/audit",
    operation_id = "listAuditEntries",
    tag = "admin",
    security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, description = "One page of entries", body = app::dto::AuditPageDto))
)]
pub async fn list(
    _admin: Admin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<AuditPageDto>, AppError> {
    let limit = page_limit(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    if query.before.is_some_and(|b| b < 1) {
        return Err(AppError::invalid_query(
            "before must be a value returned as next_cursor".into(),
        ));
    }
    let action = query
        .action
        .as_deref()
        .map(ActionFilter::parse)
        .transpose()
        .map_err(AppError::invalid_query)?;
    // One more than asked tells whether another page follows.
    let mut items = state
        .audit
        .audit_entries(AuditQuery {
            before: query.before,
            action,
            limit: limit + 1,
        })
        .await?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    Ok(Json(AuditPageDto {
        next_cursor: more.then(|| items.last().map(|e| e.id)).flatten(),
        items: items.into_iter().map(entry_dto).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(method: Method, route: &str) -> Option<String> {
        action(&method, route).map(|a| a.name.into_owned())
    }

    #[test]
    fn known_routes_get_their_names_whatever_their_parameters_are_called() {
        for (method, route, expected) in [
            (Method::POST, "/auth/sign-in", "session.sign_in"),
            (Method::POST, "/auth/sign-out", "session.sign_out"),
            (Method::POST, "/api/admin/relay/mode", "relay.mode"),
            (Method::POST, "/api/admin/relay/suspend", "relay.suspend"),
            (Method::POST, "/api/admin/relay/resume", "relay.resume"),
            (Method::POST, "/api/admin/faults", "faults.set"),
            (Method::POST, "/api/admin/dlq/replay", "dlq.bulk_replay"),
            (Method::POST, "/api/admin/dlq/{id}/replay", "dlq.replay"),
            (Method::POST, "/api/admin/dlq/{id}/discard", "dlq.discard"),
            (Method::PUT, "/api/admin/dlq/{id}/payload", "dlq.edit"),
            (
                Method::POST,
                "/api/admin/dlq/groups/{key}/replay",
                "dlq.group.replay",
            ),
            (
                Method::POST,
                "/api/admin/dlq/groups/{group}/discard",
                "dlq.group.discard",
            ),
        ] {
            assert_eq!(name(method, route).as_deref(), Some(expected), "{route}");
        }
    }

    #[test]
    fn other_admin_changes_get_a_name_from_their_path_and_reads_none() {
        assert_eq!(
            name(Method::POST, "/api/admin/dlq/{id}/requeue").as_deref(),
            Some("admin.dlq.requeue")
        );
        assert_eq!(
            name(Method::DELETE, "/api/admin/dlq/groups/{key}").as_deref(),
            Some("admin.dlq.groups.delete")
        );
        for (method, route) in [
            (Method::GET, "/api/admin/relay"),
            (Method::GET, "/api/admin/audit"),
            (Method::HEAD, "/api/admin/dlq/{id}"),
            (Method::POST, "/api/orders"),
            (Method::POST, "/api/{*rest}"),
        ] {
            assert_eq!(name(method.clone(), route), None, "{method} {route}");
        }
    }

    #[test]
    fn outcomes_follow_the_answer_and_throttled_ones_are_skipped() {
        let see_other = StatusCode::SEE_OTHER;
        for (detail, status, location, expected) in [
            (Detail::Path, StatusCode::OK, None, Some(AuditOutcome::Ok)),
            (
                Detail::Path,
                StatusCode::UNAUTHORIZED,
                None,
                Some(AuditOutcome::Refused),
            ),
            (
                Detail::Path,
                StatusCode::FORBIDDEN,
                None,
                Some(AuditOutcome::Refused),
            ),
            (
                Detail::Path,
                StatusCode::NOT_FOUND,
                None,
                Some(AuditOutcome::Failed),
            ),
            (
                Detail::Path,
                StatusCode::REQUEST_TIMEOUT,
                None,
                Some(AuditOutcome::Failed),
            ),
            (Detail::Path, StatusCode::TOO_MANY_REQUESTS, None, None),
            (
                Detail::SignIn,
                see_other,
                Some("/console"),
                Some(AuditOutcome::Ok),
            ),
            (
                Detail::SignIn,
                see_other,
                Some("/console/sign-in?error=invalid&next=%2Fconsole"),
                Some(AuditOutcome::Refused),
            ),
            (
                Detail::SignIn,
                see_other,
                Some("/console/sign-in?error=throttled"),
                None,
            ),
        ] {
            assert_eq!(
                outcome(detail, status, location),
                expected,
                "{status} {location:?}"
            );
        }
    }

    #[test]
    fn targets_come_from_the_body_and_are_bounded() {
        assert_eq!(
            body_target(Detail::Field("mode"), br#"{"mode":"streaming"}"#).as_deref(),
            Some("streaming")
        );
        assert_eq!(
            body_target(Detail::Body, br#"{ "kind": "down" }"#).as_deref(),
            Some(r#"{"kind":"down"}"#)
        );
        assert_eq!(body_target(Detail::Body, b"not json"), None);
        assert_eq!(body_target(Detail::Path, br#"{"mode":"x"}"#), None);
        let long = "é".repeat(MAX_TARGET + 5);
        assert_eq!(bounded(&long).chars().count(), MAX_TARGET + 1);
    }

    #[test]
    fn session_markers_are_short_and_stable_and_not_the_token() {
        let token = "0123456789abcdef0123456789abcdef";
        let marker = session_marker(token);
        assert_eq!(marker.len(), 12);
        assert_eq!(marker, session_marker(token));
        assert!(!token.contains(&marker));
        assert_ne!(marker, session_marker("another"));
    }
}
