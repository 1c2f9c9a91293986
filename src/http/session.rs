//! Console sessions: signing in with the admin token starts a session, carried by an
//! HttpOnly, SameSite=Strict cookie, so the browser can use the admin API (and the admin part
//! of the live feed, which `EventSource` cannot send a bearer token to) without holding the
//! token in script-readable storage.
//!
//! Sessions live in memory: a restart signs everyone out. Only the SHA-256 digest of each
//! session token is kept. Served over HTTPS (`SECURE_COOKIES`), the cookie is `Secure` and
//! named with the `__Host-` prefix, so no other host (a sibling subdomain) can set it; and
//! the server reads only a single cookie of its own name: a request carrying two (one tossed
//! in by another host) is not signed in.

use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Name of the session cookie over plain HTTP.
pub const COOKIE: &str = "outbox_session";
/// Name of the session cookie over HTTPS: the browser takes it only from this very host,
/// over a secure connection, for path `/`.
pub const SECURE_COOKIE: &str = "__Host-outbox_session";

/// Most live sessions at once: a new sign-in past it ends the session that would expire
/// first, so the table is bounded however often someone with the token signs in.
pub const MAX_SESSIONS: usize = 1_000;

/// The live console sessions.
#[derive(Debug)]
pub struct Sessions {
    /// How long a session lasts after sign-in.
    ttl: Duration,
    /// Whether the cookie is `Secure` (and named [`SECURE_COOKIE`]) for HTTPS.
    secure: bool,
    /// Expiry of each live session, by the digest of its token.
    live: Mutex<HashMap<[u8; 32], Instant>>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    /// Sessions lasting `ttl`, with a `Secure` cookie when `secure` (served over HTTPS).
    pub fn new(ttl: Duration, secure: bool) -> Self {
        Self {
            ttl,
            secure,
            live: Mutex::default(),
        }
    }

    /// The cookie's name.
    fn name(&self) -> &'static str {
        if self.secure { SECURE_COOKIE } else { COOKIE }
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
        while live.len() >= MAX_SESSIONS {
            let first_to_expire = live.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k);
            match first_to_expire {
                Some(key) => live.remove(&key),
                None => break,
            };
        }
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
        self.token_in(headers).is_some_and(|t| self.is_valid(t))
    }

    /// The `Set-Cookie` value that carries a new session's `token`.
    pub fn cookie(&self, token: &str) -> String {
        self.set_cookie(token, self.ttl.as_secs())
    }

    /// The `Set-Cookie` value that removes the session cookie.
    pub fn cleared_cookie(&self) -> String {
        self.set_cookie("", 0)
    }

    fn set_cookie(&self, value: &str, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Strict{secure}; Max-Age={max_age}",
            self.name()
        )
    }

    /// The session token among the request's cookies: the one cookie of this server's name
    /// (none if there are several).
    pub fn token_in<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        let mut ours = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| *name == self.name())
            .map(|(_, value)| value);
        let token = ours.next()?;
        ours.next().is_none().then_some(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn sessions_start_end_and_expire() {
        let sessions = Sessions::new(Duration::from_secs(60), false);
        let token = sessions.start();
        assert!(sessions.is_valid(&token));
        assert!(!sessions.is_valid("not-a-session"));
        sessions.end(&token);
        assert!(!sessions.is_valid(&token));

        let short = Sessions::new(Duration::ZERO, false);
        let token = short.start();
        assert!(
            !short.is_valid(&token),
            "a session past its expiry is refused"
        );
    }

    #[test]
    fn the_session_table_is_bounded_and_keeps_the_newest() {
        let sessions = Sessions::new(Duration::from_secs(3600), false);
        let first = sessions.start();
        let tokens: Vec<String> = (0..MAX_SESSIONS + 50).map(|_| sessions.start()).collect();
        assert_eq!(sessions.lock().len(), MAX_SESSIONS);
        assert!(!sessions.is_valid(&first), "the oldest session made room");
        assert!(
            tokens[MAX_SESSIONS + 49..]
                .iter()
                .all(|t| sessions.is_valid(t))
        );
    }

    #[test]
    fn the_cookie_is_http_only_and_same_site_strict_and_read_back() {
        let sessions = Sessions::new(Duration::from_secs(3600), false);
        let token = sessions.start();
        let cookie = sessions.cookie(&token);
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(cookie.contains("Max-Age=3600"));
        let mut headers = HeaderMap::new();
        let sent = format!("theme=dark; {COOKIE}={token}; other=1");
        headers.insert(header::COOKIE, HeaderValue::from_str(&sent).unwrap());
        assert_eq!(sessions.token_in(&headers), Some(token.as_str()));
        assert!(sessions.signed_in(&headers));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("outbox_session=forged"),
        );
        assert!(!sessions.signed_in(&headers));
        // A second cookie of the same name, tossed in by another host: neither is read.
        let tossed = format!("{COOKIE}={token}; {COOKIE}=tossed");
        headers.insert(header::COOKIE, HeaderValue::from_str(&tossed).unwrap());
        assert!(!sessions.signed_in(&headers));
        assert_eq!(
            sessions.cleared_cookie(),
            format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
        );
    }

    #[test]
    fn over_https_the_cookie_is_secure_and_host_only() {
        let sessions = Sessions::new(Duration::from_secs(60), true);
        let token = sessions.start();
        let cookie = sessions.cookie(&token);
        assert!(cookie.starts_with("__Host-outbox_session="), "{cookie}");
        assert!(cookie.contains("; Secure") && cookie.contains("Path=/"));
        assert!(!cookie.contains("Domain"));
        let mut headers = HeaderMap::new();
        let plain = format!("{COOKIE}={token}");
        headers.insert(header::COOKIE, HeaderValue::from_str(&plain).unwrap());
        assert!(
            !sessions.signed_in(&headers),
            "only the __Host- cookie is read"
        );
        let secure = format!("{SECURE_COOKIE}={token}");
        headers.insert(header::COOKIE, HeaderValue::from_str(&secure).unwrap());
        assert!(sessions.signed_in(&headers));
    }
}
