//! The events of one order as a timeline, newest last.

use crate::dto::{DeliveryDto, EventDto, EventPathDto, EventState, GroupProgressDto};
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
                            <DeliveryState event_id=e.event_id.clone() delivery=e.delivery path=e.path/>
                            <dl class="meta">
                                <dt>"Event id"</dt><dd class="mono">{e.event_id}</dd>
                                <dt>"Commit position"</dt><dd class="mono">{e.position}</dd>
                                <dt>"Schema"</dt><dd>{e.schema_version}</dd>
                                {e.trace_id.map(|t| view! {
                                    <dt>"Trace id"</dt><dd class="mono" data-testid="trace-id">{t}</dd>
                                })}
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

/// Pending, or where and how fast the relay published the event; for operators (`path`), also
/// whether it was dead-lettered or replayed, and which consumer groups have read it.
#[component]
fn DeliveryState(
    event_id: String,
    delivery: Option<DeliveryDto>,
    path: Option<EventPathDto>,
) -> impl IntoView {
    let (state, dead_letter, consumers) = match path {
        Some(p) => (Some(p.state), p.dead_letter, p.consumers),
        None => (None, None, None),
    };
    let record = dead_letter.map(|d| {
        view! {
            " · "
            <a href=format!("/console/dlq?q={}", format::query_value(&event_id))
                data-testid="dead-letter-link">{format!("dead letter #{}", d.id)}</a>
            {format!(" ({})", d.status)}
        }
    });
    let line = match (state, delivery) {
        (Some(EventState::DeadLettered), _) => view! {
            <p class="delivery delivery-dead" data-state="dead_lettered">
                <span class="badge badge-dead-lettered">"dead-lettered"</span>
                " not published: the sink refused it"{record}
            </p>
        }
        .into_any(),
        (_, None) => view! {
            <p class="delivery delivery-pending" data-state="pending">
                <span class="badge badge-pending">"pending"</span>" not yet published"
            </p>
        }
        .into_any(),
        (state, Some(d)) => {
            let place = match (d.partition, d.offset) {
                (Some(p), Some(o)) => format!(" · partition {p} · offset {o}"),
                (None, Some(o)) => format!(" · offset {o}"),
                _ => String::new(),
            };
            let (name, badge) = if state == Some(EventState::Replayed) {
                ("replayed", "badge badge-replayed")
            } else {
                ("published", "badge badge-published")
            };
            view! {
                <p class="delivery delivery-published" data-state=name>
                    <span class=badge>{name}</span>" "
                    <span class="mono">{d.topic}</span>{place}
                    " · "{d.latency_ms}" ms after commit"{record}
                </p>
            }
            .into_any()
        }
    };
    view! {
        {line}
        {consumers.filter(|c| !c.is_empty()).map(|c| view! { <ConsumedBy groups=c/> })}
    }
}

/// Which consumer groups on the event's topic have read it.
#[component]
fn ConsumedBy(groups: Vec<GroupProgressDto>) -> impl IntoView {
    view! {
        <ul class="consumers" aria-label="Consumer groups">
            {groups.into_iter().map(|g| {
                let (badge, text) = if g.consumed {
                    ("badge badge-published", "consumed")
                } else {
                    ("badge badge-pending", "not yet consumed")
                };
                let committed = g.committed.map_or_else(
                    || "no offset committed on this partition".to_string(),
                    |c| format!("committed offset {c}"),
                );
                let name = g.group.clone();
                view! {
                    <li data-group=g.group>
                        <span class="mono">{name}</span>" "
                        <span class=badge>{text}</span>
                        <span class="muted">" "{committed}</span>
                    </li>
                }
            }).collect_view()}
        </ul>
    }
}
