//! One module per route.

mod not_found;
mod order_detail;
mod orders;

pub use not_found::NotFound;
pub use order_detail::OrderDetailPage;
pub use orders::OrdersPage;

/// Sets the HTTP status of the server-rendered response (no-op in the browser).
fn set_status(_code: u16) {
    #[cfg(feature = "ssr")]
    if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
        if let Ok(code) = http::StatusCode::from_u16(_code) {
            response.set_status(code);
        }
    }
}
