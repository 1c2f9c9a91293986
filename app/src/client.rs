//! The console's calls from the browser: the admin JSON API (with the session cookie, which
//! the browser sends by itself) and the live feed over `EventSource`.
//!
//! They run only once the page is hydrated, from effects and click handlers; the server
//! renders the pages' loading state and never calls them.

use leptos::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Runs `call` in the browser and puts its outcome into `into` (nothing happens on the server).
pub fn load<T, F>(into: RwSignal<Option<Result<T, String>>>, call: F)
where
    T: Send + Sync + 'static,
    F: std::future::Future<Output = Result<T, String>> + 'static,
{
    leptos::task::spawn_local(async move {
        into.set(Some(call.await));
    });
}

/// `GET path`, decoded from JSON.
pub async fn get<T: DeserializeOwned>(path: &str) -> Result<T, String> {
    bodiless(Verb::Get, path).await
}

/// `POST path` without a body (actions named by their path), the answer decoded from JSON.
pub async fn post_empty<T: DeserializeOwned>(path: &str) -> Result<T, String> {
    bodiless(Verb::Post, path).await
}

/// The methods the console uses.
enum Verb {
    Get,
    Post,
    Put,
}

/// A request of `verb` to `path`.
#[cfg(feature = "hydrate")]
fn request(verb: Verb, path: &str) -> gloo_net::http::RequestBuilder {
    match verb {
        Verb::Get => gloo_net::http::Request::get(path),
        Verb::Post => gloo_net::http::Request::post(path),
        Verb::Put => gloo_net::http::Request::put(path),
    }
}

async fn bodiless<T: DeserializeOwned>(verb: Verb, path: &str) -> Result<T, String> {
    #[cfg(feature = "hydrate")]
    {
        let response = request(verb, path)
            .send()
            .await
            .map_err(|e| format!("the request failed: {e}"))?;
        read(response).await
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (verb, path);
        Err(SERVER_SIDE.into())
    }
}

/// `POST path` with `body` as JSON, the answer decoded from JSON.
pub async fn post<T: DeserializeOwned, B: Serialize>(path: &str, body: &B) -> Result<T, String> {
    with_body(Verb::Post, path, body).await
}

/// `PUT path` with `body` as JSON (replacing what `path` names), the answer decoded from JSON.
pub async fn put<T: DeserializeOwned, B: Serialize>(path: &str, body: &B) -> Result<T, String> {
    with_body(Verb::Put, path, body).await
}

async fn with_body<T: DeserializeOwned, B: Serialize>(
    verb: Verb,
    path: &str,
    body: &B,
) -> Result<T, String> {
    #[cfg(feature = "hydrate")]
    {
        let response = request(verb, path)
            .json(body)
            .map_err(|e| format!("the request could not be built: {e}"))?
            .send()
            .await
            .map_err(|e| format!("the request failed: {e}"))?;
        read(response).await
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (verb, path, body);
        Err(SERVER_SIDE.into())
    }
}

#[cfg(not(feature = "hydrate"))]
const SERVER_SIDE: &str = "only available in the browser";

/// The body of a 2xx answer, or the API's error message.
#[cfg(feature = "hydrate")]
async fn read<T: DeserializeOwned>(response: gloo_net::http::Response) -> Result<T, String> {
    if response.ok() {
        return response
            .json::<T>()
            .await
            .map_err(|e| format!("unreadable answer: {e}"));
    }
    if response.status() == 401 {
        return Err("Your session has ended: sign in again.".into());
    }
    let status = response.status();
    match response.json::<crate::dto::ErrorBody>().await {
        Ok(body) => Err(body.message),
        Err(_) => Err(format!("the server answered {status}")),
    }
}

/// Whether the live feed is connected (only the browser build ever connects).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub enum FeedState {
    Connecting,
    Connected,
    /// The browser lost the stream and is reconnecting by itself.
    Reconnecting,
}

/// Subscribes to `/api/live` for as long as the current component lives: each snapshot goes
/// to `on_snapshot`, each `breaker` or `dlq` event to `on_change`; `state` follows the
/// connection. `EventSource` reconnects by itself after an error.
pub fn subscribe_live(
    state: RwSignal<FeedState>,
    on_snapshot: impl Fn(crate::dto::LiveSnapshotDto) + 'static,
    on_change: impl Fn() + 'static,
) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        use wasm_bindgen::closure::Closure;
        let Ok(source) = web_sys::EventSource::new("/api/live") else {
            state.set(FeedState::Reconnecting);
            return;
        };
        let opened = Closure::<dyn Fn()>::new(move || state.set(FeedState::Connected));
        let failed = Closure::<dyn Fn()>::new(move || state.set(FeedState::Reconnecting));
        let snapshot =
            Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
                if let Some(text) = event.data().as_string()
                    && let Ok(s) = serde_json::from_str(&text)
                {
                    state.set(FeedState::Connected);
                    on_snapshot(s);
                }
            });
        let change = Closure::<dyn Fn()>::new(on_change);
        source.set_onopen(Some(opened.as_ref().unchecked_ref()));
        source.set_onerror(Some(failed.as_ref().unchecked_ref()));
        let _ =
            source.add_event_listener_with_callback("snapshot", snapshot.as_ref().unchecked_ref());
        for name in ["breaker", "dlq"] {
            let _ = source.add_event_listener_with_callback(name, change.as_ref().unchecked_ref());
        }
        // The closures live as long as the stream; both end when the page leaves.
        let kept = send_wrapper::SendWrapper::new((source, opened, failed, snapshot, change));
        on_cleanup(move || kept.0.close());
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (state, on_snapshot, on_change);
    }
}
