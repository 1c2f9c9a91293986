//! Console sessions: signing in with the admin token starts a session, carried by an
//! HttpOnly, SameSite=Strict cookie, so the browser can use the admin API (and the admin part
//! of the live feed, which `EventSource` cannot send a bearer token to) without holding the
//! token in script-readable storage.
//!
//! Sessions live in memory: a restart signs everyone out. Only the SHA-256 digest of each
//! session token is kept.

use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Name of the session cookie.
pub const COOKIE: &str = "outbox_session";

/// The live console sessions.
#[derive(Debug)]
pub struct Sessions {
    /// How long a session lasts after sign-in.
    ttl: Duration,
    /// Expiry of each live session, by the digest of its token.
    live: Mutex<HashMap<[u8; 32], Instant>>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            live: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Instant>> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a session and returns its token (244 random bits), for the cookie.
    pub fn start(&self) -> String {
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let now = Instant::now();
        let mut live = self.lock();
        live.retain(|_, expires| *expires > now);
        live.insert(digest(&token), now + self.ttl);
        token
    }

    /// Whether `token` names a live session; an expired one is forgotten.
    pub fn is_valid(&self, token: &str) -> bool {
        let key = digest(token);
        let mut live = self.lock();
        match live.get(&key) {
            Some(expires) if *expires > Instant::now() => true,
            Some(_) => {
                live.remove(&key);
                false
            }
            None => false,
        }
    }

    /// Ends the session of `token` (sign-out).
    pub fn end(&self, token: &str) {
        self.lock().remove(&digest(token));
    }

    /// Whether `headers` carry the cookie of a live session.
    pub fn signed_in(&self, headers: &HeaderMap) -> bool {
        token_in(headers).is_some_and(|t| self.is_valid(t))
    }

    /// The `Set-Cookie` value that carries a new session's `token`.
    pub fn cookie(&self, token: &str) -> String {
        format!(
            "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
            self.ttl.as_secs()
        )
    }
}

/// The `Set-Cookie` value that removes the session cookie.
pub const CLEARED_COOKIE: &str = "outbox_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0";

/// The session token among the request's cookies, if any.
pub fn token_in(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn sessions_start_end_and_expire() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let token = sessions.start();
        assert!(sessions.is_valid(&token));
        assert!(!sessions.is_valid("not-a-session"));
        sessions.end(&token);
        assert!(!sessions.is_valid(&token));

        let short = Sessions::new(Duration::ZERO);
        let token = short.start();
        assert!(
            !short.is_valid(&token),
            "a session past its expiry is refused"
        );
    }

    #[test]
    fn the_cookie_is_http_only_and_same_site_strict_and_read_back() {
        let sessions = Sessions::new(Duration::from_secs(3600));
        let token = sessions.start();
        let cookie = sessions.cookie(&token);
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(cookie.contains("Max-Age=3600"));
        let mut headers = HeaderMap::new();
        let sent = format!("theme=dark; {COOKIE}={token}; other=1");
        headers.insert(header::COOKIE, HeaderValue::from_str(&sent).unwrap());
        assert_eq!(token_in(&headers), Some(token.as_str()));
        assert!(sessions.signed_in(&headers));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("outbox_session=forged"),
        );
        assert!(!sessions.signed_in(&headers));
    }
}
