//! Authentication of admin actions: `Authorization: Bearer <ADMIN_TOKEN>`, or a console
//! session started by signing in with that token ([`super::session`]).
//!
//! The secret is kept only as a SHA-256 digest and compared in constant time; requests
//! without the right token get 401 and change nothing. Wrong tokens count against the
//! client's address ([`super::throttle`]); an address with too many gets 429.
//!
//! A session cookie goes with every request the browser makes to this site, including those
//! another site's page triggers (SameSite=Strict stops cross-site ones, but a sibling
//! subdomain or another port is the same *site*). So a state-changing request authenticated
//! by the cookie must also come from this origin ([`same_origin`]), or it gets 403
//! `cross_site`; bearer-token calls cannot be forged by a page and are unaffected.

use super::AppState;
use super::error::AppError;
use super::throttle::ClientAddr;
use crate::domain::Secret;
use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, Method, header, request::Parts};
use sha2::{Digest, Sha256};

/// The admin token as stored: its digest only.
#[derive(Clone)]
pub struct AdminToken([u8; 32]);

impl AdminToken {
    pub fn new(secret: &Secret) -> Self {
        Self(Sha256::digest(secret.expose().as_bytes()).into())
    }

    /// Constant-time check: both sides are hashed to 32 bytes and compared without
    /// short-circuiting, so neither the length nor a prefix of the secret leaks.
    pub fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest
            .iter()
            .zip(self.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// Whether a request came from this site's own pages, or from no web page at all: its
/// `Sec-Fetch-Site` (sent by browsers) is `same-origin` or `none`, and its `Origin`, if any,
/// names the host it was sent to. A request without either header is not a browser page's.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let fetch_site_ok = headers
        .get("sec-fetch-site")
        .is_none_or(|site| matches!(site.as_bytes(), b"same-origin" | b"none"));
    let origin_ok = headers.get(header::ORIGIN).is_none_or(|origin| {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let authority = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, authority)| authority);
        authority.is_some_and(|a| Some(a) == host)
    });
    fetch_site_ok && origin_ok
}

/// Whether a cookie-authenticated request must be refused as cross-site: it changes state
/// (any method but GET, HEAD, OPTIONS and TRACE) and does not come from this origin.
fn refused_cross_site(method: &Method, headers: &HeaderMap) -> bool {
    !method.is_safe() && !same_origin(headers)
}

/// Whether the request (its `method` and `headers`) carries the cookie of a live console
/// session or `Authorization: Bearer <the admin token>`. A wrong bearer token counts against
/// `client`; while `client` is locked out, no token is checked and the wait is returned
/// instead. A session-authenticated request that changes state from another origin is
/// refused (403).
pub fn is_admin(
    method: &Method,
    headers: &HeaderMap,
    client: ClientAddr,
    state: &AppState,
) -> Result<bool, AppError> {
    if state.sessions.signed_in(headers) {
        if refused_cross_site(method, headers) {
            tracing::warn!(client = %client.0, %method, "cross-site admin request refused");
            return Err(AppError::CrossSite);
        }
        return Ok(true);
    }
    let Some(presented) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return Ok(false);
    };
    check_token(presented, client, state)
}

/// Checks a presented admin token for `client`: refused unchecked while the client is locked
/// out, counted against it when wrong.
pub fn check_token(
    presented: &str,
    client: ClientAddr,
    state: &AppState,
) -> Result<bool, AppError> {
    state
        .auth_throttle
        .check(client.0)
        .map_err(AppError::TooManyAttempts)?;
    let right = state.admin_token.matches(presented.trim());
    if !right {
        state.auth_throttle.failed(client.0);
    }
    Ok(right)
}

/// Proof that the request carried the admin token or a console session (from this origin,
/// when it changes state). Handlers that take it are admin-only.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Ok(client) = ClientAddr::from_request_parts(parts, state).await;
        if is_admin(&parts.method, &parts.headers, client, state)? {
            Ok(Admin)
        } else {
            Err(AppError::Unauthorized)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_exactly() {
        let secret = Secret::parse("correct-horse-battery-staple").unwrap();
        let token = AdminToken::new(&secret);
        assert!(token.matches("correct-horse-battery-staple"));
        assert!(!token.matches("correct-horse-battery-stapl"));
        assert!(!token.matches(""));
        assert!(!token.matches("correct-horse-battery-staple "));
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    axum::http::HeaderName::from_static(name),
                    axum::http::HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    #[test]
    fn only_this_origin_or_no_page_at_all_counts_as_same_origin() {
        let host = ("host", "shop.example:3000");
        for allowed in [
            headers(&[host]),
            headers(&[host, ("sec-fetch-site", "same-origin")]),
            headers(&[host, ("sec-fetch-site", "none")]),
            headers(&[host, ("origin", "https://shop.example:3000")]),
        ] {
            assert!(same_origin(&allowed), "{allowed:?}");
        }
        for refused in [
            headers(&[host, ("sec-fetch-site", "same-site")]),
            headers(&[host, ("sec-fetch-site", "cross-site")]),
            headers(&[host, ("origin", "https://shop.example:3001")]),
            headers(&[host, ("origin", "https://admin.shop.example:3000")]),
            headers(&[host, ("origin", "null")]),
            headers(&[("origin", "https://shop.example:3000")]),
        ] {
            assert!(!same_origin(&refused), "{refused:?}");
        }
    }

    #[test]
    fn every_method_that_may_change_state_is_checked_for_its_origin() {
        let foreign = headers(&[("host", "shop.example"), ("origin", "https://evil.example")]);
        for method in ["POST", "PUT", "PATCH", "DELETE", "MADEUP"] {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            assert!(refused_cross_site(&method, &foreign), "{method}");
        }
        for method in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert!(!refused_cross_site(&method, &foreign), "{method}");
        }
    }

    #[test]
    fn secrets_are_validated_and_never_printed() {
        assert!(Secret::parse("short").is_err());
        assert!(Secret::parse("has a space in it, sadly").is_err());
        let s = Secret::parse("sixteen-chars-ok").unwrap();
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(Secret::generate().expose().len(), 64);
    }
}
