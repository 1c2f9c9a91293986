//! A coloured badge for an order status.

use crate::dto::OrderStatusDto;
use leptos::prelude::*;

#[component]
pub fn StatusBadge(status: OrderStatusDto) -> impl IntoView {
    let class = format!("badge badge-{status}");
    view! { <span class=class>{status.as_str()}</span> }
}
