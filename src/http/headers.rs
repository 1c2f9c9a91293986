//! Security headers on every response: no MIME sniffing, no framing, a referrer policy, a
//! Content-Security-Policy, and `Cache-Control: no-store` on admin data.
//!
//! Pages carry a policy of their own, with a fresh nonce for the inline scripts Leptos emits
//! to hydrate them ([`page_policy`], set while the page renders); everything else (JSON,
//! static files, the live feed) gets [`DEFAULT_POLICY`], which allows nothing to run.

use axum::http::{HeaderMap, HeaderValue, header};

/// The policy of responses that are not pages: they load nothing and may not be framed.
pub const DEFAULT_POLICY: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// The policy of a page: its own scripts and styles, the inline hydration scripts that carry
/// `nonce`, WebAssembly (the hydrated app), calls back to this origin (the API, the live
/// feed), forms posting here, and no framing.
pub fn page_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// Whether a response to `path` is admin data, which must not be cached.
pub fn is_admin_data(path: &str) -> bool {
    path.starts_with("/api/admin")
}

/// Adds the headers to a response; a page's own policy is kept.
pub fn secure(headers: &mut HeaderMap, admin_data: bool) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DEFAULT_POLICY),
        );
    }
    if admin_data {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}
