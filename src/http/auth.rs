//! Authentication of admin actions: `Authorization: Bearer <ADMIN_TOKEN>`, or a console
//! session started by signing in with that token ([`super::session`]).
//!
//! The secret is kept only as a SHA-256 digest and compared in constant time; requests
//! without the right token get 401 and change nothing. Wrong tokens count against the
//! client's address ([`super::throttle`]); an address with too many gets 429.

use super::AppState;
use super::error::AppError;
use super::throttle::ClientAddr;
use crate::domain::Secret;
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
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

/// Whether `headers` carry the cookie of a live console session or `Authorization: Bearer
/// <the admin token>`. A wrong bearer token counts against `client`; while `client` is locked
/// out, no token is checked and the wait is returned instead.
pub fn is_admin(
    headers: &axum::http::HeaderMap,
    client: ClientAddr,
    state: &AppState,
) -> Result<bool, AppError> {
    if state.sessions.signed_in(headers) {
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

/// Proof that the request carried the admin token or a console session. Handlers that take
/// it are admin-only. Cookie-carried sessions are SameSite=Strict, so another site cannot
/// make a signed-in browser call them.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Ok(client) = ClientAddr::from_request_parts(parts, state).await;
        if is_admin(&parts.headers, client, state)? {
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

    #[test]
    fn secrets_are_validated_and_never_printed() {
        assert!(Secret::parse("short").is_err());
        assert!(Secret::parse("has a space in it, sadly").is_err());
        let s = Secret::parse("sixteen-chars-ok").unwrap();
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(Secret::generate().expose().len(), 64);
    }
}
