//! `/orders`: the create form and the order list, newest first, with cursor pagination.

use crate::api::list_orders;
use crate::components::order_form::OrderForm;
use crate::components::status_badge::StatusBadge;
use crate::format;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn OrdersPage() -> impl IntoView {
    let query = use_query_map();
    let cursor = move || query.read().get("cursor");
    let page = Resource::new(cursor, list_orders);
    view! {
        <Title text="Orders"/>
        <h1>"Orders"</h1>
        <div class="orders-layout">
            <OrderForm/>
            <section class="card" aria-labelledby="order-list-title">
                <h2 id="order-list-title">"Recent orders"</h2>
                <Suspense fallback=|| view! { <p class="muted">"Loading orders…"</p> }>
                    {move || Suspend::new(async move {
                        match page.await {
                            Err(e) => view! { <p class="alert alert-error" role="alert">{e.to_string()}</p> }.into_any(),
                            Ok(p) if p.orders.is_empty() => view! { <p class="muted">"No orders yet."</p> }.into_any(),
                            Ok(p) => {
                                let next = p.next_cursor.map(|c| format!("/orders?cursor={c}"));
                                view! {
                                    <div class="table-wrap">
                                        <table class="orders-table">
                                            <thead>
                                                <tr>
                                                    <th scope="col">"Order"</th>
                                                    <th scope="col">"Status"</th>
                                                    <th scope="col" class="num">"Items"</th>
                                                    <th scope="col" class="num">"Total"</th>
                                                    <th scope="col" class="num">"Version"</th>
                                                    <th scope="col">"Created (UTC)"</th>
                                                </tr>
                                            </thead>
                                            <tbody>
                                                {p.orders.into_iter().map(|o| view! {
                                                    <tr data-order-id=o.id.clone()>
                                                        <td><a class="mono" href=format!("/orders/{}", o.id) title=o.id.clone()>{format::short_id(&o.id).to_string()}</a></td>
                                                        <td><StatusBadge status=o.status/></td>
                                                        <td class="num">{o.items.len()}</td>
                                                        <td class="num">{format::money(o.total_cents)}</td>
                                                        <td class="num">{o.version}</td>
                                                        <td><time datetime=o.created_at.clone()>{format::timestamp_utc(&o.created_at)}</time></td>
                                                    </tr>
                                                }).collect_view()}
                                            </tbody>
                                        </table>
                                    </div>
                                    <nav class="pager" aria-label="Pagination">
                                        {cursor().map(|_| view! { <a href="/orders">"← Newest"</a> })}
                                        {next.map(|href| view! { <a href=href>"Older →"</a> })}
                                    </nav>
                                }.into_any()
                            }
                        }
                    })}
                </Suspense>
            </section>
        </div>
    }
}
