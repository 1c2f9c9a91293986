//! `AppError`: the one error type of the HTTP edge. Every failure becomes a JSON body
//! `{"error": code, "message": text, "details": [...]}` with a fitting 4xx/5xx status.
//! Internal details are logged once here and never sent to clients.

use crate::domain::ValidationErrors;
use crate::publish::local::LogError;
use crate::store::StoreError;
use crate::views::{self, Problem};
use app::dto::{ErrorBody, FieldErrorDto};
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Errors that reach HTTP clients.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400: a request line problem: bad path id, query parameter or header.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 400: the body is not JSON at all.
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    /// 422: JSON of the wrong shape: wrong types, unknown or missing fields.
    #[error("request body does not match the expected shape")]
    InvalidBody(Vec<FieldErrorDto>),
    /// 422: well-formed values that break the rules.
    #[error("validation failed")]
    Validation(ValidationErrors),
    /// 404: says what was missing (`order`, `topic`, `dead letter`, …).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A store error, as [`views::problem`] describes it to every client.
    #[error("{}", .0.message)]
    Store(Problem),
    /// 409: another request is replaying or discarding the same dead letter.
    #[error("{0}")]
    InProgress(String),
    /// 503: the sink is unavailable (circuit breaker open); nothing was attempted.
    #[error("{0}")]
    SinkUnavailable(String),
    /// 502: the sink did not acknowledge a replay; the attempt is recorded.
    #[error("{0}")]
    ReplayFailed(String),
    #[error("no such endpoint")]
    NoRoute,
    /// 401: an admin action without the right `Authorization: Bearer` token.
    #[error("admin authentication required")]
    Unauthorized,
    /// 403: fault injection is off in this deployment (`FAULT_INJECTION=false`).
    #[error("fault injection is disabled in this deployment (FAULT_INJECTION)")]
    FaultsDisabled,
    /// 403: a state change authenticated by the session cookie, sent from another origin.
    #[error(
        "cross-site requests may not change anything: use this site's console, or a bearer token"
    )]
    CrossSite,
    /// 429: too many wrong admin tokens from this address lately; see `http::throttle`.
    #[error("too many wrong admin tokens from this address; retry in {} s", retry_after_secs(.0))]
    TooManyAttempts(std::time::Duration),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// 503: as many live-feed streams are open as `LIVE_MAX_CLIENTS` allows.
    #[error("too many live-feed clients; retry shortly")]
    TooManyLiveClients,
    /// 503: temporarily unable to take the request; clients should retry.
    #[error("the service is temporarily overloaded, retry shortly")]
    Unavailable,
    /// 500: a bug or an unexpected failure; the cause is logged, not returned.
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        AppError::Store(views::problem(e))
    }
}

impl From<LogError> for AppError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Unavailable(_) => AppError::Unavailable,
            LogError::Failed(_) => AppError::Internal(e.to_string()),
        }
    }
}

impl From<ValidationErrors> for AppError {
    fn from(e: ValidationErrors) -> Self {
        AppError::Validation(e)
    }
}

impl AppError {
    /// 400 `invalid_query`: a query parameter the handler refuses.
    pub fn invalid_query(message: String) -> Self {
        AppError::BadRequest {
            code: "invalid_query",
            message,
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            AppError::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            AppError::InvalidBody(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
            AppError::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            AppError::Store(p) => (p.status, p.code),
            AppError::SinkUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "sink_unavailable"),
            AppError::InProgress(_) => (StatusCode::CONFLICT, "in_progress"),
            AppError::ReplayFailed(_) => (StatusCode::BAD_GATEWAY, "replay_failed"),
            AppError::NoRoute => (StatusCode::NOT_FOUND, "no_route"),
            AppError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AppError::CrossSite => (StatusCode::FORBIDDEN, "cross_site"),
            AppError::FaultsDisabled => (StatusCode::FORBIDDEN, "faults_disabled"),
            AppError::TooManyAttempts(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            AppError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            AppError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            AppError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            AppError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            AppError::TooManyLiveClients => (StatusCode::SERVICE_UNAVAILABLE, "too_many_clients"),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    fn details(&self) -> Vec<FieldErrorDto> {
        match self {
            AppError::InvalidBody(d) => d.clone(),
            AppError::Validation(v) => v
                .errors()
                .iter()
                .map(|e| FieldErrorDto {
                    field: e.field.clone(),
                    message: e.message.clone(),
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let cause = match &self {
            AppError::Internal(cause) => Some(cause),
            AppError::Store(p) => p.cause.as_ref(),
            _ => None,
        };
        if let Some(cause) = cause {
            tracing::error!(%cause, "request failed");
        }
        let body = ErrorBody {
            error: code.to_string(),
            message: self.to_string(),
            details: self.details(),
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let AppError::TooManyAttempts(wait) = &self {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(wait)),
            );
        }
        response
    }
}

/// Whole seconds to wait, rounded up so a client that waits them is not refused again.
pub fn retry_after_secs(wait: &std::time::Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// Whether `path` is answered by handlers that are not the JSON API's own: the pages' server
/// functions (run by leptos) and the console's sign-in forms.
fn form_path(path: &str) -> bool {
    path.starts_with("/fn/") || path.starts_with("/auth/")
}

/// Makes the error answers of the server functions and sign-in forms JSON like the API's:
/// what the layers in front of them answer in plain text (the body limit's 413, leptos's
/// 400 for an unknown server function) becomes the matching [`AppError`]. Answers already in
/// JSON (a server function's own errors) and every page stay as they are.
pub async fn json_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let ours = form_path(request.uri().path());
    let response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !ours || json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge {
            limit: super::extract::BODY_LIMIT,
        },
        // leptos answers 400 for a server function it does not know.
        StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND => AppError::NoRoute,
        StatusCode::METHOD_NOT_ALLOWED => AppError::MethodNotAllowed,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => AppError::UnsupportedMediaType,
        status if status.is_client_error() => AppError::BadRequest {
            code: "unreadable_body",
            message: "the request could not be read".into(),
        },
        status => AppError::Internal(format!("a form handler answered {status}")),
    };
    error.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// Status, `Retry-After` and the JSON body of `e`'s answer.
    async fn answer(e: AppError) -> (StatusCode, Option<String>, ErrorBody) {
        let response = e.into_response();
        let status = response.status();
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, retry, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_full_write_queue_is_503_unavailable_with_retry_after_one_second() {
        for e in [StoreError::Overloaded, StoreError::WriterStopped] {
            let (status, retry, body) = answer(e.into()).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(retry.as_deref(), Some("1"));
            assert_eq!(body.error, "unavailable");
        }
    }

    #[tokio::test]
    async fn internal_failures_are_500_with_a_fixed_message_and_no_detail() {
        for e in [
            AppError::from(StoreError::Backend("disk I/O error at /var/secret".into())),
            AppError::from(StoreError::Corrupt("row 7: /var/secret".into())),
            AppError::Internal("/var/secret went away".into()),
        ] {
            let (status, _, body) = answer(e).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(body.error, "internal");
            assert_eq!(body.message, "internal error");
            assert!(body.details.is_empty());
        }
    }
}
