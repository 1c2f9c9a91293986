//! `/console/relay`: switch the relay's mode, suspend and resume it, inject faults, browse the
//! embedded topic log, and with Kafka, watch the partitions and the consumer groups' lag.

use super::{BreakerBadge, ConsoleNav, Notice, NoticeLine};
use crate::client;
use crate::dto::{
    ConsumerGroupsDto, Fault, KAFKA_SINK, LiveSnapshotDto, PartitionOffsetsDto, RelayMode,
    RelayModeDto, RelayState, RelayStatusDto, SuspensionDto, TopicDto, TopicMessagesDto,
};
use crate::format;
use leptos::prelude::*;
use leptos_meta::Title;

/// Messages shown per topic: the newest ones.
const LATEST: i64 = 20;

/// The Kafka tables are asked again every this many live-feed snapshots (one per 500 ms).
const SNAPSHOTS_PER_REFRESH: u32 = 4;

/// The status the relay page shows, reloaded after every action.
type Status = RwSignal<Option<Result<RelayStatusDto, String>>>;

/// Runs an admin `call`, reports how it went in `notice` (`done` on success), and reloads
/// the relay's status.
fn act<T: 'static>(
    call: impl std::future::Future<Output = Result<T, String>> + 'static,
    done: String,
    notice: RwSignal<Option<Notice>>,
    status: Status,
) {
    leptos::task::spawn_local(async move {
        notice.set(Some(match call.await {
            Ok(_) => Notice::Done(done),
            Err(e) => Notice::Failed(e),
        }));
        client::load(status, client::get("/api/admin/relay"));
    });
}

/// The fault the form describes: `kind` is the selected mode, the other fields its settings.
fn fault_from_form(kind: &str, latency: &str, event_type: String, every_n: &str) -> Fault {
    match kind {
        "down" => Fault::Down {},
        "slow" => Fault::Slow {
            latency_ms: latency.trim().parse().unwrap_or(0),
        },
        "poison" => Fault::Poison {
            event_type: (!event_type.is_empty()).then_some(event_type),
            every_n: every_n.trim().parse().ok(),
        },
        _ => Fault::None {},
    }
}

#[component]
pub fn RelayPage() -> impl IntoView {
    let status: Status = RwSignal::new(None);
    let notice = RwSignal::new(None::<Notice>);
    Effect::new(move |_| client::load(status, client::get("/api/admin/relay")));
    let current = move |f: fn(&RelayStatusDto) -> String| {
        move || {
            status.with(|s| {
                s.as_ref()
                    .and_then(|r| r.as_ref().ok())
                    .map_or_else(|| "–".into(), f)
            })
        }
    };
    let known = move || status.with(|s| s.as_ref().and_then(|r| r.as_ref().ok()).cloned());
    let breaker = Signal::derive(move || known().map(|s| s.breaker.state));
    let suspended = move || known().is_some_and(|s| s.state == RelayState::Suspended);
    let faults_enabled = move || known().is_none_or(|s| s.fault_injection);
    let mode = RwSignal::new(RelayMode::Streaming);
    let fault = RwSignal::new("none".to_string());
    // The forms start from what the relay is doing now.
    Effect::new(move |_| {
        if let Some(Ok(s)) = status.get() {
            mode.set(s.mode);
            fault.set(s.fault.as_ref().map_or("none", Fault::mode).to_string());
        }
    });
    let latency = RwSignal::new("500".to_string());
    let event_type = RwSignal::new(String::new());
    let every_n = RwSignal::new(String::new());
    let apply_fault = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let kind = fault.get();
        let body = fault_from_form(&kind, &latency.get(), event_type.get(), &every_n.get());
        let call = async move { client::post::<Fault, _>("/api/admin/faults", &body).await };
        act(call, format!("Fault set to {kind}."), notice, status);
    };
    let switch_mode = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = RelayModeDto { mode: mode.get() };
        let call =
            async move { client::post::<RelayModeDto, _>("/api/admin/relay/mode", &body).await };
        act(
            call,
            format!("Relay mode switched to {}.", body.mode),
            notice,
            status,
        );
    };
    let hold = move |path: &'static str, done: &'static str| {
        let call = client::post_empty::<SuspensionDto>(path);
        act(call, done.to_string(), notice, status);
    };
    view! {
        <Title text="Relay controls"/>
        <ConsoleNav/>
        <h1>"Relay controls"</h1>
        <NoticeLine notice/>
        <section class="stats" aria-label="Relay status">
            <div class="stat"><span class="stat-label">"Mode"</span><span class="stat-value" data-testid="relay-mode">{current(|s| s.mode.to_string())}</span></div>
            <div class="stat"><span class="stat-label">"State"</span><span class="stat-value" data-testid="relay-state">{current(|s| s.state.to_string())}</span></div>
            <div class="stat"><span class="stat-label">"Sink"</span><span class="stat-value">{current(|s| s.sink.clone())}</span></div>
            <div class="stat"><span class="stat-label">"Pending"</span><span class="stat-value" data-testid="relay-pending">{current(|s| s.pending.to_string())}</span></div>
            <div class="stat"><span class="stat-label">"Circuit breaker"</span><span class="stat-value"><BreakerBadge state=breaker/></span></div>
            <div class="stat"><span class="stat-label">"Active fault"</span><span class="stat-value" data-testid="relay-fault">{current(|s| s.fault.as_ref().map_or("none", Fault::mode).to_string())}</span></div>
        </section>
        <div class="controls-layout">
            <section class="card" aria-labelledby="mode-title">
                <h2 id="mode-title">"Mode"</h2>
                <form class="stack" on:submit=switch_mode>
                    <label for="mode">"Relay mode"</label>
                    <select id="mode" name="mode" prop:value=move || mode.get().as_str()
                        on:change=move |ev| if let Some(m) = RelayMode::parse(&event_target_value(&ev)) { mode.set(m) }>
                        <option value="streaming">"streaming: publish on every commit"</option>
                        <option value="polling">"polling: query every poll interval"</option>
                    </select>
                    <button type="submit">"Switch mode"</button>
                </form>
                <h2>"Run"</h2>
                <p class="muted">"Suspending records what is in flight, then sends nothing until resumed; orders are still taken."</p>
                {move || if suspended() {
                    view! { <button type="button" on:click=move |_| hold("/api/admin/relay/resume", "Relay resumed.")>"Resume relay"</button> }.into_any()
                } else {
                    view! { <button type="button" class="button-secondary" on:click=move |_| hold("/api/admin/relay/suspend", "Relay suspended.")>"Suspend relay"</button> }.into_any()
                }}
            </section>
            <section class="card" aria-labelledby="fault-title">
                <h2 id="fault-title">"Fault injection"</h2>
                {move || (!faults_enabled()).then(|| view! {
                    <p class="muted" data-testid="faults-disabled">"Fault injection is off in this deployment (FAULT_INJECTION=false): a drill tool, enabled where operators rehearse outages."</p>
                })}
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
                    <button type="submit" prop:disabled=move || !faults_enabled()>"Apply fault"</button>
                </form>
            </section>
        </div>
        <TopicBrowser status/>
    }
}

/// The embedded topic log's topics and their newest messages; with Kafka, where to look.
#[component]
fn TopicBrowser(status: Status) -> impl IntoView {
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
    let kafka = move || status.with(|s| matches!(s, Some(Ok(s)) if s.sink == KAFKA_SINK));
    view! {
        <section class="card" aria-labelledby="topics-title">
            <h2 id="topics-title">"Topics"</h2>
            {move || if kafka() {
                view! { <KafkaOffsets/> }.into_any()
            } else {
                view! { <p class="muted" data-testid="lag-kafka-only">"Consumer lag applies to Kafka only: the embedded log has no consumer groups."</p> }.into_any()
            }}
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
                                        <td>{msg.headers.get("event_type").cloned().unwrap_or_default()}</td>
                                        <td class="mono">{msg.headers.get("event_id").cloned().unwrap_or_default()}</td>
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

/// The Kafka topics' partitions with their oldest and latest offsets, as the broker reports,
/// and the consumer groups' lag; both asked again every [`SNAPSHOTS_PER_REFRESH`] snapshots
/// of the live feed.
#[component]
fn KafkaOffsets() -> impl IntoView {
    let offsets = RwSignal::new(None::<Result<Vec<PartitionOffsetsDto>, String>>);
    let groups = RwSignal::new(None::<Result<ConsumerGroupsDto, String>>);
    let refresh = move || {
        client::load(offsets, client::get("/api/admin/sink/offsets"));
        client::load(groups, client::get("/api/admin/sink/consumer-groups"));
    };
    let feed = RwSignal::new(client::FeedState::Connecting);
    let snapshots = StoredValue::new(0u32);
    Effect::new(move |_| {
        refresh();
        client::subscribe_live(
            feed,
            move |_: LiveSnapshotDto| {
                let seen = snapshots.get_value() + 1;
                snapshots.set_value(seen % SNAPSHOTS_PER_REFRESH);
                if seen == SNAPSHOTS_PER_REFRESH {
                    refresh();
                }
            },
            || {},
        );
    });
    view! {
        <h3>"On the Kafka broker"</h3>
        {move || match offsets.get() {
            None => view! { <p class="muted">"Asking the broker…"</p> }.into_any(),
            Some(Err(e)) => view! { <p class="alert alert-error" role="alert">{e}</p> }.into_any(),
            Some(Ok(list)) => view! {
                <div class="table-wrap">
                    <table data-testid="kafka-offsets" class="card-rows">
                        <thead><tr><th scope="col">"Topic"</th><th scope="col" class="num">"Partition"</th><th scope="col" class="num">"Oldest offset"</th><th scope="col" class="num">"Next offset"</th></tr></thead>
                        <tbody>
                            {list.into_iter().map(|p| view! {
                                <tr>
                                    <td data-label="Topic" class="mono">{p.topic}</td>
                                    <td data-label="Partition" class="num">{p.partition}</td>
                                    <td data-label="Oldest offset" class="num">{p.low}</td>
                                    <td data-label="Next offset" class="num">{p.high}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
            }.into_any(),
        }}
        <ConsumerLag groups/>
        <h3>"Embedded log"</h3>
        <p class="muted">"What the relay published before Kafka was configured, if anything."</p>
    }
}

/// The consumer groups with committed offsets on the outbox topics: each partition's committed
/// offset, end and lag.
#[component]
fn ConsumerLag(groups: RwSignal<Option<Result<ConsumerGroupsDto, String>>>) -> impl IntoView {
    view! {
        <h3>"Consumer groups"</h3>
        {move || match groups.get() {
            None => view! { <p class="muted">"Asking the broker…"</p> }.into_any(),
            Some(Err(e)) => view! { <p class="alert alert-error" role="alert">{e}</p> }.into_any(),
            Some(Ok(g)) if g.partitions.is_empty() => view! {
                <p class="muted" data-testid="no-consumer-groups">"No consumer group has committed offsets on these topics."</p>
            }.into_any(),
            Some(Ok(g)) => view! {
                {g.truncated.then(|| view! {
                    <p class="muted">"The cluster has more consumer groups than are checked (50): name yours in KAFKA_LAG_GROUPS."</p>
                })}
                <div class="table-wrap">
                    <table data-testid="consumer-lag" class="card-rows">
                        <thead><tr><th scope="col">"Group"</th><th scope="col">"Topic"</th><th scope="col" class="num">"Partition"</th><th scope="col" class="num">"Committed offset"</th><th scope="col" class="num">"End offset"</th><th scope="col" class="num">"Lag"</th></tr></thead>
                        <tbody>
                            {g.partitions.into_iter().map(|p| view! {
                                <tr>
                                    <td data-label="Group" class="mono">{p.group}</td>
                                    <td data-label="Topic" class="mono">{p.topic}</td>
                                    <td data-label="Partition" class="num">{p.partition}</td>
                                    <td data-label="Committed offset" class="num">{p.committed.map_or_else(|| "–".to_string(), |c| c.to_string())}</td>
                                    <td data-label="End offset" class="num">{p.end}</td>
                                    <td data-label="Lag" class="num">{p.lag}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
            }.into_any(),
        }}
    }
}
