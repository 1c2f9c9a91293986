//! The page for unknown routes (HTTP 404).

use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn NotFound() -> impl IntoView {
    super::set_status(404);
    view! {
        <Title text="Not found"/>
        <section class="card empty">
            <h1>"Page not found"</h1>
            <p>"There is nothing here. " <a href="/orders">"Back to the orders"</a></p>
        </section>
    }
}
