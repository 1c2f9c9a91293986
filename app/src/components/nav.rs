//! The top bar: product name and main navigation.

use leptos::prelude::*;
use leptos_router::components::A;

#[component]
pub fn Nav() -> impl IntoView {
    view! {
        <a class="skip-link" href="#main">"Skip to content"</a>
        <header class="topbar">
            <a class="brand" href="/">
                <span class="brand-mark" aria-hidden="true">"⇄"</span>
                "Outbox console"
            </a>
            <nav aria-label="Main">
                <ul>
                    <li><A href="/orders">"Orders"</A></li>
                    <li><a href="/console">"Console"</a></li>
                </ul>
            </nav>
        </header>
    }
}
