//! The events of one order as a timeline, newest last.

use crate::dto::{DeliveryDto, EventDto};
use crate::format;
use leptos::prelude::*;

#[component]
pub fn EventTimeline(events: Vec<EventDto>) -> impl IntoView {
    view! {
        <ol class="timeline" aria-label="Events">
            {events
                .into_iter()
                .map(|e| {
                    let payload = serde_json::to_string_pretty(&e.payload).unwrap_or_default();
                    let kind = e.event_type.clone();
                    view! {
                        <li class="timeline-item" data-event-type=kind>
                            <div class="timeline-head">
                                <strong class="event-type">{e.event_type}</strong>
                                <span class="muted">" v"{e.aggregate_version}</span>
                                <time datetime=e.occurred_at.clone()>{format::timestamp(&e.occurred_at)}</time>
                            </div>
                            <DeliveryState delivery=e.delivery/>
                            <dl class="meta">
                                <dt>"Event id"</dt><dd class="mono">{e.event_id}</dd>
                                <dt>"Commit position"</dt><dd class="mono">{e.position}</dd>
                                <dt>"Schema"</dt><dd>{e.schema_version}</dd>
                            </dl>
                            <details>
                                <summary>"Payload"</summary>
                                <pre class="payload">{payload}</pre>
                            </details>
                        </li>
                    }
                })
                .collect_view()}
        </ol>
    }
}

/// Pending, or where and how fast the relay published the event.
#[component]
fn DeliveryState(delivery: Option<DeliveryDto>) -> impl IntoView {
    match delivery {
        None => view! {
            <p class="delivery delivery-pending">
                <span class="badge badge-pending">"pending"</span>" not yet published"
            </p>
        }
        .into_any(),
        Some(d) => {
            let place = match (d.partition, d.offset) {
                (Some(p), Some(o)) => format!(" · partition {p} · offset {o}"),
                (None, Some(o)) => format!(" · offset {o}"),
                _ => String::new(),
            };
            view! {
                <p class="delivery delivery-published">
                    <span class="badge badge-published">"published"</span>" "
                    <span class="mono">{d.topic}</span>{place}
                    " · "{d.latency_ms}" ms after commit"
                </p>
            }
            .into_any()
        }
    }
}
