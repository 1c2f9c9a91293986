//! Extractors that turn request parts into typed values or a clear 4xx [`AppError`].

use super::error::AppError;
use crate::domain::OrderId;
use crate::store::IdempotencyKey;
use app::dto::FieldErrorDto;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::{HeaderMap, HeaderName, header, request::Parts};
use serde::de::DeserializeOwned;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON body: `application/json` (or `+json`), at most [`BODY_LIMIT`] bytes, no trailing data,
/// deserialised with the path of any type error.
pub struct ApiJson<T>(pub T);

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    // Compared without a lower-cased copy: this runs for every JSON request.
    let essence = value.split(';').next().unwrap_or("").trim().as_bytes();
    let ends_with = |suffix: &[u8]| {
        essence.len() >= suffix.len()
            && essence[essence.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
    };
    let starts_with = |prefix: &[u8]| {
        essence.len() >= prefix.len() && essence[..prefix.len()].eq_ignore_ascii_case(prefix)
    };
    essence.eq_ignore_ascii_case(b"application/json")
        || (starts_with(b"application/") && ends_with(b"+json"))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        if !is_json(req.headers()) {
            return Err(AppError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                AppError::PayloadTooLarge { limit: BODY_LIMIT }
            } else {
                AppError::BadRequest {
                    code: "unreadable_body",
                    message: rejection.body_text(),
                }
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Deserialises `bytes`, telling syntax errors (400) from shape errors (422, with the field).
/// Good bodies are read directly; only a failed one is read again, tracking the path to the
/// field at fault (tracking it always cost as much as the reading).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = match e.path().to_string() {
            p if p == "." => "body".to_string(),
            p => p,
        };
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => AppError::InvalidBody(vec![FieldErrorDto {
                field,
                message: inner.to_string(),
            }]),
            _ => AppError::MalformedJson(inner.to_string()),
        }
    })?;
    de.end()
        .map_err(|e| AppError::MalformedJson(e.to_string()))?;
    Ok(value)
}

/// The `{id}` path segment as an order id (400 when it is not a UUID).
pub struct OrderIdPath(pub OrderId);

impl<S: Send + Sync> FromRequestParts<S> for OrderIdPath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let invalid = |message: String| AppError::BadRequest {
            code: "invalid_id",
            message,
        };
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| invalid(e.body_text()))?;
        OrderId::parse(&raw)
            .map(OrderIdPath)
            .map_err(|m| invalid(format!("order id {m}")))
    }
}

/// The optional `Idempotency-Key` header.
pub struct OptionalIdempotencyKey(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for OptionalIdempotencyKey {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        const HEADER: HeaderName = HeaderName::from_static("idempotency-key");
        let Some(value) = parts.headers.get(HEADER) else {
            return Ok(Self(None));
        };
        let invalid = |m: String| AppError::BadRequest {
            code: "invalid_idempotency_key",
            message: format!("Idempotency-Key {m}"),
        };
        let text = value
            .to_str()
            .map_err(|_| invalid("may contain only visible ASCII characters".into()))?;
        IdempotencyKey::parse(text)
            .map(|k| Self(Some(k)))
            .map_err(invalid)
    }
}

/// Query parameters, with a 400 `invalid_query` on malformed values.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| AppError::invalid_query(e.body_text()))
    }
}

/// A query's page size: `default` when absent; 400 `invalid_query` outside 1 to `max`.
pub fn page_limit(limit: Option<u32>, default: u32, max: u32) -> Result<u32, AppError> {
    let limit = limit.unwrap_or(default);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(AppError::invalid_query(format!(
            "limit must be between 1 and {max}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        n: u32,
    }

    #[test]
    fn syntax_errors_are_malformed_and_shape_errors_name_the_field() {
        assert!(matches!(
            parse_json::<Body>(b"{"),
            Err(AppError::MalformedJson(_))
        ));
        assert!(matches!(
            parse_json::<Body>(b""),
            Err(AppError::MalformedJson(_))
        ));
        assert!(matches!(
            parse_json::<Body>(b"{\"n\":1} x"),
            Err(AppError::MalformedJson(_))
        ));
        match parse_json::<Body>(b"{\"n\":\"one\"}") {
            Err(AppError::InvalidBody(d)) => assert_eq!(d[0].field, "n"),
            other => panic!("unexpected {other:?}"),
        }
        match parse_json::<Body>(b"{\"n\":1,\"x\":2}") {
            Err(AppError::InvalidBody(d)) => assert!(d[0].message.contains("unknown field")),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(parse_json::<Body>(b"{\"n\":1}").unwrap().n, 1);
    }

    #[test]
    fn json_content_types() {
        let mut h = HeaderMap::new();
        assert!(!is_json(&h));
        for (value, ok) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/merge-patch+json", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
            ("APPLICATION/VND.API+JSON ; x=1", true),
            ("application/jsonp", false),
            ("text/plain+json", false),
            ("+json", false),
            ("", false),
        ] {
            h.insert(header::CONTENT_TYPE, value.parse().unwrap());
            assert_eq!(is_json(&h), ok, "{value}");
        }
    }
}
