//! The Leptos UI of the outbox console: server-rendered, then hydrated in the browser.
//!
//! # Layout
//!
//! - [`dto`]: serde types shared by the server and the browser (JSON API and server functions).
//! - [`api`]: the server functions and the `OrdersApi` trait (with `ssr`) that the server
//!   binary implements over its store.
//! - `client`: the console's calls from the browser (admin JSON API, live feed).
//! - `pages/`: one module per route (`pages/console/` for the operations console);
//!   `components/`: pieces shared by pages; `format`: display helpers.
//!
//! Features: `ssr` for the server build, `hydrate` for the browser (wasm) build.

pub mod api;
mod client;
mod components;
pub mod dto;
pub mod format;
mod pages;

use components::nav::Nav;
use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{SsrMode, path};
use pages::console::{AuditPage, DashboardPage, DlqPage, RelayPage, SignInPage};
use pages::{NotFound, OrderDetailPage, OrdersPage};

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// Routes and the app frame.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Tells end-to-end tests (and curious people) that the page is interactive now.
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Stylesheet id="leptos" href="/pkg/outbox.css"/>
        <Title formatter=|page: String| format!("{page} · Outbox console")/>
        <Router>
            <Nav/>
            <main id="main" class="page">
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=OrdersPage ssr=SsrMode::Async/>
                    <Route path=path!("/orders") view=OrdersPage ssr=SsrMode::Async/>
                    <Route path=path!("/orders/:id") view=OrderDetailPage ssr=SsrMode::Async/>
                    <Route path=path!("/console") view=DashboardPage/>
                    <Route path=path!("/console/sign-in") view=SignInPage/>
                    <Route path=path!("/console/dlq") view=DlqPage/>
                    <Route path=path!("/console/relay") view=RelayPage/>
                    <Route path=path!("/console/audit") view=AuditPage/>
                </Routes>
            </main>
        </Router>
    }
}

/// Entry point of the browser bundle.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
}
