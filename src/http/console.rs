//! The operations console's door: sign-in and sign-out (plain HTML form posts, so they work
//! before the page is interactive), and the guard that sends visitors without a session from
//! `/console/...` to the sign-in page.

use super::AppState;
use super::auth::{check_token, same_origin};
use super::error::AppError;
use super::throttle::ClientAddr;
use app::format::query_value;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// Where the console starts.
pub const HOME: &str = "/console";
/// The sign-in page (a Leptos page; it posts to [`sign_in`]).
pub const SIGN_IN_PAGE: &str = "/console/sign-in";

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct SignInForm {
    token: String,
    /// The console page to go to afterwards.
    #[serde(default)]
    next: Option<String>,
}

/// `next` if it is a console page, else the console's home: never a redirect off the site.
fn console_page(next: Option<&str>) -> &str {
    match next {
        Some(path)
            if (path == HOME || path.starts_with("/console/"))
                && !path.contains("//")
                && !path.contains('\\')
                && path.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            path
        }
        _ => HOME,
    }
}

fn see_other(location: &str, cookie: Option<&str>) -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(value) = location.parse() {
        headers.insert(header::LOCATION, value);
    }
    if let Some(value) = cookie.and_then(|c| c.parse().ok()) {
        headers.insert(header::SET_COOKIE, value);
    }
    (StatusCode::SEE_OTHER, headers).into_response()
}

/// `POST /auth/sign-in`: checks the admin token (in constant time) and starts a session. A
/// wrong or missing token goes back to the sign-in page with `error=invalid` and no cookie;
/// an address locked out for too many wrong tokens gets `error=throttled`, unchecked.
pub async fn sign_in(
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Response {
    // Another site's page posting guesses must not lock the operator's address out.
    if !same_origin(&headers) {
        tracing::warn!(client = %client.0, "cross-site sign-in refused");
        return AppError::CrossSite.into_response();
    }
    let Ok(Form(form)) = form else {
        return see_other(&format!("{SIGN_IN_PAGE}?error=invalid"), None);
    };
    let next = console_page(form.next.as_deref());
    let refused = match check_token(&form.token, client, &state) {
        Ok(true) => None,
        Ok(false) => {
            tracing::warn!(client = %client.0, "console sign-in refused: wrong admin token");
            Some("invalid")
        }
        Err(_) => {
            tracing::warn!(client = %client.0, "console sign-in refused: too many wrong tokens");
            Some("throttled")
        }
    };
    if let Some(error) = refused {
        let back = format!("{SIGN_IN_PAGE}?error={error}&next={}", query_value(next));
        return see_other(&back, None);
    }
    let token = state.sessions.start();
    tracing::info!("console session started");
    see_other(next, Some(&state.sessions.cookie(&token)))
}

/// `POST /auth/sign-out`: ends the session and removes the cookie (from this origin only:
/// another site may not sign the operator out).
pub async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return AppError::CrossSite.into_response();
    }
    if let Some(token) = state.sessions.token_in(&headers) {
        state.sessions.end(token);
    }
    see_other(
        &format!("{SIGN_IN_PAGE}?signed_out=1"),
        Some(&state.sessions.cleared_cookie()),
    )
}

/// Sends requests for console pages without a live session to the sign-in page, with the page
/// they wanted as `next`. Nothing else is affected.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let console = path == HOME || path.starts_with("/console/");
    if console && path != SIGN_IN_PAGE && !state.sessions.signed_in(request.headers()) {
        let back = format!(
            "{SIGN_IN_PAGE}?next={}",
            query_value(console_page(Some(path)))
        );
        return see_other(&back, None);
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_pages_are_followed_after_sign_in() {
        assert_eq!(console_page(Some("/console/dlq")), "/console/dlq");
        assert_eq!(console_page(Some("/console")), "/console");
        for hostile in [
            "https://evil.example/",
            "//evil.example",
            "/console//evil.example",
            "/consolex",
            "/orders",
            "/console/\\evil",
            "/console/a b",
        ] {
            assert_eq!(console_page(Some(hostile)), HOME, "{hostile}");
        }
        assert_eq!(console_page(None), HOME);
    }
}
