//! Not-found pages (HTTP 404): unknown routes and unknown orders.

use leptos::prelude::*;
use leptos_meta::Title;

/// A 404 card with a way back to the orders.
#[component]
pub fn Missing(title: &'static str, message: &'static str) -> impl IntoView {
    super::set_not_found();
    view! {
        <Title text=title/>
        <section class="card empty">
            <h1>{title}</h1>
            <p>{message}" " <a href="/orders">"Back to the orders"</a></p>
        </section>
    }
}

/// The fallback for unknown routes.
#[component]
pub fn NotFound() -> impl IntoView {
    view! { <Missing title="Page not found" message="There is nothing here."/> }
}
