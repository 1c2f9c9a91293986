//! The operations console under `/console`: sign-in, the live dashboard, the dead letter
//! queue, the relay controls and the audit log. The server lets only signed-in operators
//! reach these pages (and the admin API they call); see `src/http/console.rs`.

mod audit;
mod dashboard;
mod dlq;
mod relay;
mod sign_in;

pub use audit::AuditPage;
pub use dashboard::DashboardPage;
pub use dlq::DlqPage;
pub use relay::RelayPage;
pub use sign_in::SignInPage;

use crate::dto::BreakerState;
use leptos::prelude::*;
use leptos_router::hooks::use_location;

/// The console's own navigation, with sign-out (a plain form post: works before hydration).
#[component]
fn ConsoleNav() -> impl IntoView {
    let path = use_location().pathname;
    let link = move |href: &'static str, label: &'static str| {
        let current = move || (path.get() == href).then_some("page");
        view! { <li><a href=href aria-current=current>{label}</a></li> }
    };
    view! {
        <nav class="console-nav" aria-label="Console">
            <ul>
                {link("/console", "Dashboard")}
                {link("/console/dlq", "Dead letters")}
                {link("/console/relay", "Relay")}
                {link("/console/audit", "Audit log")}
            </ul>
            <form method="post" action="/auth/sign-out" class="sign-out">
                <button type="submit" class="button-secondary">"Sign out"</button>
            </form>
        </nav>
    }
}

/// What a console action reports back.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Notice {
    Done(String),
    Failed(String),
}

/// The outcome of the last action, announced to screen readers.
#[component]
fn NoticeLine(notice: RwSignal<Option<Notice>>) -> impl IntoView {
    view! {
        <div class="notice-slot" role="status" aria-live="polite" data-testid="notice">
            {move || notice.get().map(|n| match n {
                Notice::Done(text) => view! { <p class="alert alert-success">{text}</p> }.into_any(),
                Notice::Failed(text) => view! { <p class="alert alert-error">{text}</p> }.into_any(),
            })}
        </div>
    }
}

/// The breaker state as a badge: `CLOSED`, `HALF-OPEN` or `OPEN` (`UNKNOWN` until known).
#[component]
fn BreakerBadge(#[prop(into)] state: Signal<Option<BreakerState>>) -> impl IntoView {
    let name = move || state.get().map_or("unknown", BreakerState::as_str);
    let class = move || format!("badge breaker breaker-{}", name());
    let text = move || name().replace('_', "-").to_uppercase();
    view! { <span class=class data-testid="breaker">{text}</span> }
}
