//! One module per route.

pub mod console;
mod not_found;
mod order_detail;
mod orders;

pub use not_found::NotFound;
pub use order_detail::OrderDetailPage;
pub use orders::OrdersPage;

/// Marks the server-rendered response as 404 Not Found (no-op in the browser).
fn set_not_found() {
    #[cfg(feature = "ssr")]
    if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
}
