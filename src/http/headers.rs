//! Security headers on every response: no MIME sniffing, no framing, a referrer policy, a
//! Content-Security-Policy, and `Cache-Control: no-store` on admin data.
//!
//! Pages carry a policy of their own, with a fresh nonce for the inline scripts Leptos emits
//! to hydrate them ([`page_policy`], set while the page renders); everything else (JSON,
//! static files, the live feed) gets [`DEFAULT_POLICY`], which allows nothing to run.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

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

/// Adds the headers; a page's own policy is kept.
pub async fn secure(request: Request, next: Next) -> Response {
    let admin_data = request.uri().path().starts_with("/api/admin");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
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
    response
}
