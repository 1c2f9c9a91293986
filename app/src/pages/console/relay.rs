//! `/console/relay`: switch the relay's mode, suspend and resume it, inject faults, and
//! browse the embedded topic log.

use super::{BreakerBadge, ConsoleNav, Notice, NoticeLine};
use crate::client;
use crate::dto::{PartitionOffsetsDto, RelayStatusDto, TopicDto, TopicMessagesDto};
use crate::format;
use leptos::prelude::*;
use leptos_meta::Title;
use serde_json::{Value, json};

/// Messages shown per topic: the newest ones.
const LATEST: i64 = 20;

#[component]
pub fn RelayPage() -> impl IntoView {
    let status = RwSignal::new(None::<Result<RelayStatusDto, String>>);
    let notice = RwSignal::new(None::<Notice>);
    let refresh = move || client::load(status, client::get("/api/admin/relay"));
    Effect::new(move |_| refresh());
    // Runs an admin call, reports it, and shows the relay's new status.
    let act = move |path: &'static str, body: Value, done: String| {
        leptos::task::spawn_local(async move {
            let outcome = client::post::<Value, _>(path, &body).await;
            notice.set(Some(match outcome {
                Ok(_) => Notice::Done(done),
                Err(e) => Notice::Failed(e),
            }));
            refresh();
        });
    };
    let current = move |f: fn(&RelayStatusDto) -> String| {
        move || {
            status.with(|s| {
                s.as_ref()
                    .and_then(|r| r.as_ref().ok())
                    .map_or_else(|| "–".into(), f)
            })
        }
    };
    let breaker = Signal::derive(move || {
        status.with(|s| {
            s.as_ref()
                .and_then(|r| r.as_ref().ok())
                .map_or_else(|| "unknown".into(), |s| s.breaker.state.clone())
        })
    });
    let suspended = move || current(|s| s.state.clone())() == "suspended";
    let mode = RwSignal::new("streaming".to_string());
    let fault = RwSignal::new("none".to_string());
    // The forms start from what the relay is doing now.
    Effect::new(move |_| {
        if let Some(Ok(s)) = status.get() {
            mode.set(s.mode.clone());
            let active = s
                .fault
                .as_ref()
                .and_then(|f| f["mode"].as_str().map(str::to_string));
            fault.set(active.unwrap_or_else(|| "none".into()));
        }
    });
    let latency = RwSignal::new("500".to_string());
    let event_type = RwSignal::new(String::new());
    let every_n = RwSignal::new(String::new());
    let apply_fault = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let kind = fault.get();
        let body = match kind.as_str() {
            "slow" => {
                json!({ "mode": "slow", "latency_ms": latency.get().trim().parse::<u64>().unwrap_or(0) })
            }
            "poison" => {
                let mut body = json!({ "mode": "poison" });
                if !event_type.get().is_empty() {
                    body["event_type"] = json!(event_type.get());
                }
                if let Ok(n) = every_n.get().trim().parse::<u64>() {
                    body["every_n"] = json!(n);
                }
                body
            }
            other => json!({ "mode": other }),
        };
        act("/api/admin/faults", body, format!("Fault set to {kind}."));
    };
    view! {
        <Title text="Relay controls"/>
        <ConsoleNav/>
        <h1>"Relay controls"</h1>
        <NoticeLine notice/>
        <section class="stats" aria-label="Relay status">
            <div class="stat"><span class="stat-label">"Mode"</span><span class="stat-value" data-testid="relay-mode">{current(|s| s.mode.clone())}</span></div>
            <div class="stat"><span class="stat-label">"State"</span><span class="stat-value" data-testid="relay-state">{current(|s| s.state.clone())}</span></div>
            <div class="stat"><span class="stat-label">"Sink"</span><span class="stat-value">{current(|s| s.sink.clone())}</span></div>
            <div class="stat"><span class="stat-label">"Pending"</span><span class="stat-value" data-testid="relay-pending">{current(|s| s.pending.to_string())}</span></div>
            <div class="stat"><span class="stat-label">"Circuit breaker"</span><span class="stat-value"><BreakerBadge state=breaker/></span></div>
            <div class="stat"><span class="stat-label">"Active fault"</span><span class="stat-value" data-testid="relay-fault">{current(|s| s.fault.as_ref().and_then(|f| f["mode"].as_str().map(str::to_string)).unwrap_or_else(|| "none".into()))}</span></div>
        </section>
        <div class="controls-layout">
            <section class="card" aria-labelledby="mode-title">
                <h2 id="mode-title">"Mode"</h2>
                <form class="stack" on:submit=move |ev| {
                    ev.prevent_default();
                    let m = mode.get();
                    act("/api/admin/relay/mode", json!({ "mode": m }), format!("Relay mode switched to {m}."));
                }>
                    <label for="mode">"Relay mode"</label>
                    <select id="mode" name="mode" prop:value=mode on:change=move |ev| mode.set(event_target_value(&ev))>
                        <option value="streaming">"streaming: publish on every commit"</option>
                        <option value="polling">"polling: query every poll interval"</option>
                    </select>
                    <button type="submit">"Switch mode"</button>
                </form>
                <h2>"Run"</h2>
                <p class="muted">"Suspending records what is in flight, then sends nothing until resumed; orders are still taken."</p>
                {move || if suspended() {
                    view! { <button type="button" on:click=move |_| act("/api/admin/relay/resume", json!({}), "Relay resumed.".into())>"Resume relay"</button> }.into_any()
                } else {
                    view! { <button type="button" class="button-secondary" on:click=move |_| act("/api/admin/relay/suspend", json!({}), "Relay suspended.".into())>"Suspend relay"</button> }.into_any()
                }}
            </section>
            <section class="card" aria-labelledby="fault-title">
                <h2 id="fault-title">"Fault injection"</h2>
                <form class="stack" on:submit=apply_fault>
                    <label for="fault">"Simulated fault"</label>
                    <select id="fault" name="fault" prop:value=fault on:change=move |ev| fault.set(event_target_value(&ev))>
                        <option value="none">"none: the sink works"</option>
                        <option value="down">"down: every publish fails"</option>
                        <option value="slow">"slow: add latency"</option>
                        <option value="poison">"poison: refuse some events for good"</option>
                    </select>
                    <label for="latency">"Latency (ms, for slow)"</label>
                    <input id="latency" type="number" min="1" max="60000" prop:value=latency on:input=move |ev| latency.set(event_target_value(&ev))/>
                    <label for="poison-type">"Event type (for poison)"</label>
                    <select id="poison-type" on:change=move |ev| event_type.set(event_target_value(&ev))>
                        <option value="">"any"</option>
                        <option value="OrderCreated">"OrderCreated"</option>
                        <option value="OrderItemsUpdated">"OrderItemsUpdated"</option>
                        <option value="OrderCancelled">"OrderCancelled"</option>
                    </select>
                    <label for="every-n">"One in N (for poison)"</label>
                    <input id="every-n" type="number" min="1" prop:value=every_n on:input=move |ev| every_n.set(event_target_value(&ev))/>
                    <button type="submit">"Apply fault"</button>
                </form>
            </section>
        </div>
        <TopicBrowser status/>
    }
}

/// The embedded topic log's topics and their newest messages; with Kafka, where to look.
#[component]
fn TopicBrowser(status: RwSignal<Option<Result<RelayStatusDto, String>>>) -> impl IntoView {
    let topics = RwSignal::new(None::<Result<Vec<TopicDto>, String>>);
    let messages = RwSignal::new(None::<Result<TopicMessagesDto, String>>);
    Effect::new(move |_| client::load(topics, client::get("/api/topics")));
    let open = move |t: TopicDto| {
        let from = (t.next_offset - LATEST).max(0);
        let path = format!(
            "/api/topics/{}/messages?from_offset={from}&limit={LATEST}",
            format::query_value(&t.topic)
        );
        client::load(messages, async move { client::get(&path).await });
    };
    let kafka = move || status.with(|s| matches!(s, Some(Ok(s)) if s.sink == "kafka"));
    view! {
        <section class="card" aria-labelledby="topics-title">
            <h2 id="topics-title">"Topics"</h2>
            {move || kafka().then(|| view! { <KafkaOffsets/> })}
            {move || match topics.get() {
                None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="alert alert-error" role="alert">{e}</p> }.into_any(),
                Some(Ok(list)) if list.is_empty() => view! { <p class="muted">"Nothing published to the embedded log yet."</p> }.into_any(),
                Some(Ok(list)) => view! {
                    <ul class="topic-list">
                        {list.into_iter().map(|t| {
                            let label = format!("{} ({} messages)", t.topic, t.messages);
                            view! { <li><button type="button" class="link-button" on:click=move |_| open(t.clone())>{label}</button></li> }
                        }).collect_view()}
                    </ul>
                }.into_any(),
            }}
            {move || messages.get().map(|m| match m {
                Err(e) => view! { <p class="alert alert-error" role="alert">{e}</p> }.into_any(),
                Ok(m) => view! {
                    <div class="table-wrap">
                        <table data-testid="topic-messages">
                            <caption>{format!("{}: the newest messages (end offset {})", m.topic, m.end_offset)}</caption>
                            <thead><tr><th scope="col" class="num">"Offset"</th><th scope="col">"Key"</th><th scope="col">"Event"</th><th scope="col">"Event id"</th></tr></thead>
                            <tbody>
                                {m.messages.into_iter().rev().map(|msg| view! {
                                    <tr>
                                        <td class="num">{msg.offset}</td>
                                        <td class="mono">{format::short_id(&msg.key).to_string()}</td>
                                        <td>{msg.headers["event_type"].as_str().unwrap_or("").to_string()}</td>
                                        <td class="mono">{msg.headers["event_id"].as_str().unwrap_or("").to_string()}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }.into_any(),
            })}
        </section>
    }
}

/// The Kafka topics' partitions with their oldest and latest offsets, as the broker reports.
#[component]
fn KafkaOffsets() -> impl IntoView {
    let offsets = RwSignal::new(None::<Result<Vec<PartitionOffsetsDto>, String>>);
    Effect::new(move |_| client::load(offsets, client::get("/api/admin/sink/offsets")));
    view! {
        <h3>"On the Kafka broker"</h3>
        {move || match offsets.get() {
            None => view! { <p class="muted">"Asking the broker…"</p> }.into_any(),
            Some(Err(e)) => view! { <p class="alert alert-error" role="alert">{e}</p> }.into_any(),
            Some(Ok(list)) => view! {
                <div class="table-wrap">
                    <table data-testid="kafka-offsets">
                        <thead><tr><th scope="col">"Topic"</th><th scope="col" class="num">"Partition"</th><th scope="col" class="num">"Oldest offset"</th><th scope="col" class="num">"Next offset"</th></tr></thead>
                        <tbody>
                            {list.into_iter().map(|p| view! {
                                <tr><td class="mono">{p.topic}</td><td class="num">{p.partition}</td><td class="num">{p.low}</td><td class="num">{p.high}</td></tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
            }.into_any(),
        }}
        <h3>"Embedded log"</h3>
        <p class="muted">"What the relay published before Kafka was configured, if anything."</p>
    }
}
