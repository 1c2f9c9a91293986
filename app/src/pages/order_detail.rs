//! `/orders/:id`: one order and its events as a timeline, newest first, a page at a time
//! (`?cursor=` continues to older events).

use super::not_found::Missing;
use crate::api::order_detail;
use crate::components::event_timeline::EventTimeline;
use crate::components::status_badge::StatusBadge;
use crate::dto::OrderDetailDto;
use crate::format;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

#[component]
pub fn OrderDetailPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let cursor = move || query.read().get("cursor");
    let detail = Resource::new(
        move || (id(), cursor()),
        |(id, cursor)| order_detail(id, cursor),
    );
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading order…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(Some(d)) => view! { <OrderView detail=d paged=cursor().is_some()/> }.into_any(),
                    Ok(None) => view! {
                        <Missing title="Order not found" message="No order has this id."/>
                    }.into_any(),
                    Err(e) => view! { <p class="alert alert-error" role="alert">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// `paged` is true when the events shown are not the newest ones.
#[component]
fn OrderView(detail: OrderDetailDto, paged: bool) -> impl IntoView {
    let OrderDetailDto {
        order,
        events,
        next_cursor,
    } = detail;
    let here = format!("/orders/{}", order.id);
    let newest = paged.then(|| here.clone());
    let older = next_cursor.map(|c| format!("{here}?cursor={c}"));
    let title = format!("Order {}", format::short_id(&order.id));
    view! {
        <Title text=title.clone()/>
        <p class="breadcrumb"><a href="/orders">"Orders"</a>" / "<span class="mono">{format::short_id(&order.id).to_string()}</span></p>
        <h1>{title}" " <StatusBadge status=order.status/></h1>
        <div class="detail-layout">
            <section class="card" aria-labelledby="summary-title">
                <h2 id="summary-title">"Summary"</h2>
                <dl class="meta">
                    <dt>"Order id"</dt><dd class="mono">{order.id.clone()}</dd>
                    <dt>"Customer"</dt><dd class="mono">{order.customer_id.clone()}</dd>
                    <dt>"Version"</dt><dd>{order.version}</dd>
                    <dt>"Created"</dt><dd>{format::timestamp(&order.created_at)}</dd>
                    <dt>"Updated"</dt><dd>{format::timestamp(&order.updated_at)}</dd>
                    <dt>"Total"</dt><dd>{format::money(order.total_cents)}</dd>
                    {order.cancel_reason.clone().map(|r| view! { <dt>"Cancel reason"</dt><dd>{r}</dd> })}
                </dl>
                <div class="table-wrap">
                    <table>
                        <thead>
                            <tr>
                                <th scope="col">"SKU"</th>
                                <th scope="col" class="num">"Quantity"</th>
                                <th scope="col" class="num">"Unit price"</th>
                                <th scope="col" class="num">"Line total"</th>
                            </tr>
                        </thead>
                        <tbody>
                            {order.items.iter().map(|i| view! {
                                <tr>
                                    <td class="mono">{i.sku.clone()}</td>
                                    <td class="num">{i.quantity}</td>
                                    <td class="num">{format::money(i.unit_price_cents)}</td>
                                    <td class="num">{format::money(u64::from(i.quantity) * i.unit_price_cents)}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
            </section>
            <section class="card" aria-labelledby="events-title">
                <h2 id="events-title">"Events"</h2>
                <p class="muted">
                    "Operators: "
                    <a href=format!("/console/dlq?aggregate_id={}", order.id) data-testid="order-dlq-link">"dead letters of this order"</a>
                </p>
                <EventTimeline events/>
                <nav class="pager" aria-label="Event pages">
                    {newest.map(|href| view! { <a href=href>"← Newest events"</a> })}
                    {older.map(|href| view! { <a href=href data-testid="older-events">"Older events →"</a> })}
                </nav>
            </section>
        </div>
    }
}
