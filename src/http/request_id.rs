//! Request ids: every request gets an `x-request-id` (the caller's, if it is a sane token,
//! otherwise a new UUID), echoed in the response and carried by the request's log span
//! together with the `order_id` a handler records.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// Longest request id taken from a caller.
const MAX_LEN: usize = 128;

/// A caller's id is kept if it is 1–128 characters of `A-Za-z0-9._:-`; anything else (too
/// long, spaces, control or non-ASCII bytes) is replaced, so logs cannot be forged through it.
fn acceptable(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
}

/// The request's id: the caller's if acceptable, else a new UUID; set on the request, for
/// handlers and the response.
pub fn assign(request: &mut Request) -> HeaderValue {
    let id = match request.headers().get(&HEADER) {
        Some(v) if acceptable(v) => v.clone(),
        _ => {
            let mut buffer = uuid::Uuid::encode_buffer();
            let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buffer);
            HeaderValue::from_str(text).expect("a UUID is a valid header value")
        }
    };
    request.headers_mut().insert(HEADER, id.clone());
    id
}

/// The span the request runs in: its id, its W3C trace id, method and path, and the
/// `order_id` a handler records.
pub fn span(id: &HeaderValue, trace_id: &str, request: &Request) -> tracing::Span {
    tracing::info_span!(
        "request",
        request_id = %id.to_str().unwrap_or_default(),
        trace_id,
        method = %request.method(),
        path = %request.uri().path(),
        order_id = tracing::field::Empty,
    )
}
