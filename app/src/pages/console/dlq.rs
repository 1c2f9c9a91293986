//! `/console/dlq`: the dead letter queue. It opens on the failure groups (pending records
//! that failed the same way), each replayed or discarded as a whole after a confirmation, or
//! opened as a filtered list. Filters live in the URL (so a filtered view is a link, e.g. from
//! an order page); records can be selected, opened, edited, replayed or discarded; bulk
//! replays ask for confirmation first.

use super::{ConsoleNav, Notice, NoticeLine};
use crate::client;
use crate::dto::{
    BulkReplayDto, BulkReplayRequest, DeadLetterDto, DeadLetterFilterDto, DeadLetterGroupDto,
    DeadLetterGroupsDto, DeadLetterPageDto, DeadLetterStatus, DiscardRequest, GroupActionDto,
};
use crate::format;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use std::collections::BTreeSet;

/// Records per page.
const PAGE: u32 = 20;

/// The list's filter, as in the page's query string.
#[derive(Debug, Clone, Default, PartialEq)]
struct Filter {
    event_type: String,
    aggregate_id: String,
    status: String,
    q: String,
    /// A failure group's key: only its records.
    group: String,
    cursor: String,
}

impl Filter {
    fn pairs(&self) -> [(&'static str, &str); 5] {
        [
            ("event_type", &self.event_type),
            ("aggregate_id", &self.aggregate_id),
            ("status", &self.status),
            ("q", &self.q),
            ("group", &self.group),
        ]
    }

    /// The admin API's list URL for this filter.
    fn list_url(&self) -> String {
        let mut url = format!("/api/admin/dlq?limit={PAGE}");
        let cursor = [("cursor", self.cursor.as_str())];
        for (name, value) in self.pairs().iter().chain(&cursor) {
            if !value.is_empty() {
                url.push_str(&format!("&{name}={}", format::query_value(value)));
            }
        }
        url
    }

    /// This page's URL for the same filter on the page after `cursor`.
    fn page_url(&self, cursor: i64) -> String {
        let mut url = format!("/console/dlq?cursor={cursor}");
        for (name, value) in self.pairs() {
            if !value.is_empty() {
                url.push_str(&format!("&{name}={}", format::query_value(value)));
            }
        }
        url
    }

    /// The bulk-replay filter (replays only ever take pending records).
    fn replay_body(&self) -> BulkReplayRequest {
        let given = |value: &str| (!value.is_empty()).then(|| value.to_string());
        BulkReplayRequest {
            ids: None,
            filter: Some(DeadLetterFilterDto {
                event_type: given(&self.event_type),
                aggregate_id: given(&self.aggregate_id),
                q: given(&self.q),
            }),
        }
    }
}

/// A bulk replay waiting for the operator's confirmation.
#[derive(Debug, Clone, PartialEq)]
enum Bulk {
    Selected(Vec<i64>),
    Matching,
}

/// What a group action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GroupAction {
    Replay,
    Discard,
}

/// The list of records of `group`: its event type, pending, and the group itself.
fn group_href(group: &DeadLetterGroupDto) -> String {
    format!(
        "/console/dlq?event_type={}&status=pending&group={}",
        format::query_value(&group.event_type),
        group.group
    )
}

/// Runs a group action to the end: it is called again while records remain and the last
/// call resolved some (each call takes at most 1,000), with `progress` telling how far it got.
/// Answers the summary line.
async fn run_group(
    group: String,
    action: GroupAction,
    reason: String,
    total: u64,
    progress: RwSignal<Option<String>>,
) -> Result<String, String> {
    let (verb, path) = match action {
        GroupAction::Replay => ("Replaying", format!("/api/admin/dlq/groups/{group}/replay")),
        GroupAction::Discard => (
            "Discarding",
            format!("/api/admin/dlq/groups/{group}/discard"),
        ),
    };
    let (mut done, mut succeeded, mut failed, mut skipped) = (0, 0, 0, 0);
    let outcome = loop {
        progress.set(Some(format!("{verb} the group: {done} of {total} done…")));
        let call = match action {
            GroupAction::Replay => client::post_empty::<GroupActionDto>(&path).await,
            GroupAction::Discard => {
                let body = DiscardRequest {
                    reason: reason.clone(),
                };
                client::post::<GroupActionDto, _>(&path, &body).await
            }
        };
        let report = match call {
            Ok(report) => report,
            Err(e) => break Err(e),
        };
        done += report.done;
        succeeded += report.succeeded;
        failed += report.failed;
        skipped += report.skipped;
        if report.remaining == 0 || report.succeeded == 0 {
            let what = match action {
                GroupAction::Replay => "replayed",
                GroupAction::Discard => "discarded",
            };
            break Ok(format!(
                "Group {what}: {succeeded} {what}, {failed} failed, {skipped} skipped, {} left.",
                report.remaining + failed
            ));
        }
    };
    progress.set(None);
    outcome
}

#[component]
pub fn DlqPage() -> impl IntoView {
    let query = use_query_map();
    let filter = Memo::new(move |_| {
        let q = query.read();
        let get = |name: &str| q.get(name).unwrap_or_default();
        Filter {
            event_type: get("event_type"),
            aggregate_id: get("aggregate_id"),
            status: get("status"),
            q: get("q"),
            group: get("group"),
            cursor: get("cursor"),
        }
    });
    let page = RwSignal::new(None::<Result<DeadLetterPageDto, String>>);
    let selected = RwSignal::new(BTreeSet::<i64>::new());
    let open = RwSignal::new(None::<Result<DeadLetterDto, String>>);
    let notice = RwSignal::new(None::<Notice>);
    let confirm = RwSignal::new(None::<Bulk>);
    let groups = RwSignal::new(None::<Result<DeadLetterGroupsDto, String>>);
    // A group action under way: how far it got.
    let progress = RwSignal::new(None::<String>);
    let reload = move || {
        let url = filter.get_untracked().list_url();
        client::load(page, async move { client::get(&url).await });
        client::load(
            groups,
            async move { client::get("/api/admin/dlq/groups").await },
        );
    };
    Effect::new(move |_| {
        filter.track();
        selected.set(BTreeSet::new());
        reload();
    });
    let show = move |id: i64| {
        client::load(open, async move {
            client::get(&format!("/api/admin/dlq/{id}")).await
        });
    };
    // After any action: say how it went, reload the list and the open record.
    let finish = move |outcome: Result<String, String>, id: Option<i64>| {
        notice.set(Some(match outcome {
            Ok(text) => Notice::Done(text),
            Err(text) => Notice::Failed(text),
        }));
        reload();
        if let Some(id) = id {
            show(id);
        }
    };
    let edit = move |id: i64, text: String| {
        leptos::task::spawn_local(async move {
            let outcome = match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(payload) => {
                    client::put::<DeadLetterDto, _>(
                        &format!("/api/admin/dlq/{id}/payload"),
                        &payload,
                    )
                    .await
                }
                Err(e) => Err(format!("The payload is not JSON: {e}")),
            }
            .map(|d| {
                format!(
                    "Record {} edited: a replay publishes the edited payload.",
                    d.id
                )
            });
            finish(outcome, Some(id));
        });
    };
    let act_on_group = move |group: String, action: GroupAction, reason: String, total: u64| {
        leptos::task::spawn_local(async move {
            let outcome = run_group(group, action, reason, total, progress).await;
            finish(outcome, None);
        });
    };
    let replay_one = move |id: i64| {
        leptos::task::spawn_local(async move {
            let outcome =
                client::post_empty::<DeadLetterDto>(&format!("/api/admin/dlq/{id}/replay"))
                    .await
                    .map(|d| format!("Record {} replayed: it is {} now.", d.id, d.status));
            finish(outcome, Some(id));
        });
    };
    let discard = move |id: i64, reason: String| {
        leptos::task::spawn_local(async move {
            let outcome = client::post::<DeadLetterDto, _>(
                &format!("/api/admin/dlq/{id}/discard"),
                &DiscardRequest { reason },
            )
            .await
            .map(|d| format!("Record {} discarded.", d.id));
            finish(outcome, Some(id));
        });
    };
    let run_bulk = move |bulk: Bulk| {
        confirm.set(None);
        let body = match &bulk {
            Bulk::Selected(ids) => BulkReplayRequest {
                ids: Some(ids.clone()),
                filter: None,
            },
            Bulk::Matching => filter.get_untracked().replay_body(),
        };
        let group = filter.get_untracked().group;
        if bulk == Bulk::Matching && !group.is_empty() {
            // The group's own replay: the bulk filter cannot name a group.
            let total = page.with_untracked(|p| match p {
                Some(Ok(p)) => p.items.len() as u64,
                _ => 0,
            });
            act_on_group(group, GroupAction::Replay, String::new(), total);
            return;
        }
        leptos::task::spawn_local(async move {
            let outcome = client::post::<BulkReplayDto, _>("/api/admin/dlq/replay", &body)
                .await
                .map(|r| {
                    format!(
                        "Replayed {}, failed {}, skipped {}.",
                        r.replayed, r.failed, r.skipped
                    )
                });
            selected.set(BTreeSet::new());
            finish(outcome, None);
        });
    };
    view! {
        <Title text="Dead letters"/>
        <ConsoleNav/>
        <h1>"Dead letter queue"</h1>
        <NoticeLine notice/>
        {move || progress.get().map(|text| view! {
            <p class="alert" role="status" aria-busy="true" data-testid="group-progress">{text}</p>
        })}
        {move || {
            let f = filter.get();
            if f.group.is_empty() {
                view! { <GroupsCard groups progress act=act_on_group/> }.into_any()
            } else {
                let shown = groups.with(|g| match g {
                    Some(Ok(g)) => g.groups.iter().find(|x| x.group == f.group).map(|x| x.message.clone()),
                    _ => None,
                });
                view! {
                    <p class="group-chip" data-testid="group-filter">
                        "Failure group "<code>{shown.unwrap_or_else(|| f.group.clone())}</code>" · "
                        <a href="/console/dlq">"All groups"</a>
                    </p>
                }.into_any()
            }
        }}
        <FilterForm filter/>
        <div class="bulk-bar" role="group" aria-label="Bulk actions">
            {move || match confirm.get() {
                None => view! {
                    <button type="button" prop:disabled=move || selected.with(BTreeSet::is_empty)
                        on:click=move |_| confirm.set(Some(Bulk::Selected(selected.get().into_iter().collect())))>
                        {move || format!("Replay selected ({})", selected.with(BTreeSet::len))}
                    </button>
                    <button type="button" class="button-secondary" on:click=move |_| confirm.set(Some(Bulk::Matching))>
                        "Replay all matching the filter"
                    </button>
                }.into_any(),
                Some(bulk) => {
                    let question = match &bulk {
                        Bulk::Selected(ids) => format!("Replay the {} selected record(s)?", ids.len()),
                        Bulk::Matching => "Replay every pending record matching the filter (up to 1,000)?".to_string(),
                    };
                    view! {
                        <p class="confirm" role="alert">{question}</p>
                        <button type="button" on:click=move |_| run_bulk(bulk.clone())>"Yes, replay"</button>
                        <button type="button" class="button-secondary" on:click=move |_| confirm.set(None)>"Cancel"</button>
                    }.into_any()
                }
            }}
        </div>
        <div class="dlq-layout">
            <section class="card" aria-labelledby="records-title">
                <h2 id="records-title">"Records"</h2>
                {move || match page.get() {
                    None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                    Some(Err(e)) => view! { <p class="alert alert-error" role="alert">{e}</p> }.into_any(),
                    Some(Ok(p)) if p.items.is_empty() => view! { <p class="muted" data-testid="dlq-empty">"No dead letters match."</p> }.into_any(),
                    Some(Ok(p)) => {
                        let next = p.next_cursor.map(|c| filter.get_untracked().page_url(c));
                        view! {
                            <div class="table-wrap">
                                <table class="dlq-table">
                                    <thead>
                                        <tr>
                                            <th scope="col"><span class="visually-hidden">"Select"</span></th>
                                            <th scope="col" class="num">"Id"</th>
                                            <th scope="col">"Event"</th>
                                            <th scope="col">"Order"</th>
                                            <th scope="col">"Error"</th>
                                            <th scope="col" class="num">"Failures"</th>
                                            <th scope="col">"Status"</th>
                                            <th scope="col"><span class="visually-hidden">"Open"</span></th>
                                        </tr>
                                    </thead>
                                    <tbody>
                                        {p.items.into_iter().map(|d| {
                                            let id = d.id;
                                            let pending = d.status == DeadLetterStatus::Pending;
                                            view! {
                                                <tr data-dlq-id=id data-status=d.status.as_str()>
                                                    <td>
                                                        <input type="checkbox" aria-label=format!("Select record {id}") prop:disabled=!pending
                                                            prop:checked=move || selected.with(|s| s.contains(&id))
                                                            on:change=move |_| selected.update(|s| if !s.remove(&id) { s.insert(id); })/>
                                                    </td>
                                                    <td class="num">{id}</td>
                                                    <td>{d.event.event_type.clone()}" v"{d.event.aggregate_version}</td>
                                                    <td><a class="mono" href=format!("/orders/{}", d.event.aggregate_id)>{format::short_id(&d.event.aggregate_id).to_string()}</a></td>
                                                    <td><span class="muted">{d.error_kind.as_str()}": "</span>{d.error_message.clone()}</td>
                                                    <td class="num">{d.failure_count}</td>
                                                    <td><span class=format!("badge badge-{}", d.status) data-testid="dlq-status">{d.status.as_str()}</span></td>
                                                    <td><button type="button" class="link-button" on:click=move |_| show(id)>"Open"</button></td>
                                                </tr>
                                            }
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            </div>
                            <nav class="pager" aria-label="Pagination">
                                {next.map(|href| view! { <a href=href>"Older →"</a> })}
                            </nav>
                        }.into_any()
                    }
                }}
            </section>
            <section class="card" aria-labelledby="record-title" aria-live="polite">
                <h2 id="record-title">"Record"</h2>
                {move || match open.get() {
                    None => view! { <p class="muted">"Open a record to see its event, error and history."</p> }.into_any(),
                    Some(Err(e)) => view! { <p class="alert alert-error" role="alert">{e}</p> }.into_any(),
                    Some(Ok(d)) => view! { <RecordView record=d replay=replay_one discard edit/> }.into_any(),
                }}
            </section>
        </div>
    }
}

/// The filter form: a plain GET form, so filters are links and work before hydration.
#[component]
fn FilterForm(filter: Memo<Filter>) -> impl IntoView {
    let f = move || filter.get();
    view! {
        <form method="get" action="/console/dlq" class="filters card" role="search" aria-label="Filter dead letters">
            <div class="field">
                <label for="f-type">"Event type"</label>
                <select id="f-type" name="event_type">
                    {["", "OrderCreated", "OrderItemsUpdated", "OrderCancelled"].into_iter().map(|t| view! {
                        <option value=t selected=move || f().event_type == t>{if t.is_empty() { "any" } else { t }}</option>
                    }).collect_view()}
                </select>
            </div>
            <div class="field">
                <label for="f-status">"Status"</label>
                <select id="f-status" name="status">
                    {std::iter::once("").chain(DeadLetterStatus::ALL.iter().map(|s| s.as_str())).map(|s| view! {
                        <option value=s selected=move || f().status == s>{if s.is_empty() { "any" } else { s }}</option>
                    }).collect_view()}
                </select>
            </div>
            <div class="field">
                <label for="f-aggregate">"Order id"</label>
                <input id="f-aggregate" name="aggregate_id" class="mono" prop:value=move || f().aggregate_id/>
            </div>
            <div class="field">
                <label for="f-q">"Search"</label>
                <input id="f-q" name="q" type="search" placeholder="event id, payload or error" prop:value=move || f().q/>
            </div>
            {move || (!f().group.is_empty()).then(|| view! { <input type="hidden" name="group" prop:value=move || f().group/> })}
            <button type="submit">"Filter"</button>
        </form>
    }
}

/// The failure groups: how many records failed each way, since when, and one real message;
/// each can be opened as a list, or replayed or discarded as a whole after a confirmation.
#[component]
fn GroupsCard(
    groups: RwSignal<Option<Result<DeadLetterGroupsDto, String>>>,
    progress: RwSignal<Option<String>>,
    act: impl Fn(String, GroupAction, String, u64) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    // The group and action waiting for confirmation.
    let confirm = RwSignal::new(None::<(String, GroupAction)>);
    let reason = RwSignal::new(String::new());
    let busy = move || progress.with(Option::is_some);
    view! {
        <section class="card groups-card" aria-labelledby="groups-title" data-testid="dlq-groups">
            <h2 id="groups-title">"Failure groups"</h2>
            {move || match groups.get() {
                None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="alert alert-error" role="alert">{e}</p> }.into_any(),
                Some(Ok(g)) if g.groups.is_empty() => view! { <p class="muted" data-testid="groups-empty">"No pending dead letters."</p> }.into_any(),
                Some(Ok(g)) => view! {
                    <div class="table-wrap">
                        <table class="groups-table card-rows">
                            <thead>
                                <tr>
                                    <th scope="col" class="num">"Count"</th>
                                    <th scope="col">"Event type"</th>
                                    <th scope="col">"Failure"</th>
                                    <th scope="col">"First seen"</th>
                                    <th scope="col">"Last seen"</th>
                                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                                </tr>
                            </thead>
                            <tbody>
                                {g.groups.into_iter().map(|group| {
                                    let key = group.group.clone();
                                    let row_key = key.clone();
                                    let count = group.count;
                                    let asking = {
                                        let key = key.clone();
                                        move || confirm.with(|c| c.as_ref().filter(|(k, _)| *k == key).map(|(_, a)| *a))
                                    };
                                    view! {
                                        <tr data-group=row_key data-testid="dlq-group">
                                            <td class="num" data-label="Count" data-testid="group-count">{count}</td>
                                            <td data-label="Event type">{group.event_type.clone()}</td>
                                            <td data-label="Failure">
                                                <span class="muted">{group.error_kind.as_str()}": "</span>
                                                <a href=group_href(&group) data-testid="group-open">{group.message.clone()}</a>
                                                <br/><span class="muted" title="One record of the group">"e.g. #"{group.example.id}": "{group.example.error_message.clone()}</span>
                                            </td>
                                            <td data-label="First seen"><time datetime=group.first_seen.clone()>{format::timestamp(&group.first_seen)}</time></td>
                                            <td data-label="Last seen"><time datetime=group.last_seen.clone()>{format::timestamp(&group.last_seen)}</time></td>
                                            <td class="group-actions">
                                                {move || {
                                                    let key = key.clone();
                                                    match asking() {
                                                        None => view! {
                                                            <button type="button" prop:disabled=busy on:click={
                                                                let key = key.clone();
                                                                move |_| confirm.set(Some((key.clone(), GroupAction::Replay)))
                                                            }>"Replay group"</button>
                                                            <button type="button" class="button-danger" prop:disabled=busy on:click=move |_| {
                                                                reason.set(String::new());
                                                                confirm.set(Some((key.clone(), GroupAction::Discard)));
                                                            }>"Discard group"</button>
                                                        }.into_any(),
                                                        Some(GroupAction::Replay) => view! {
                                                            <p class="confirm" role="alert">{format!("Replay all {count} record(s) of this group?")}</p>
                                                            <button type="button" on:click=move |_| {
                                                                confirm.set(None);
                                                                act(key.clone(), GroupAction::Replay, String::new(), count);
                                                            }>"Yes, replay"</button>
                                                            <button type="button" class="button-secondary" on:click=move |_| confirm.set(None)>"Cancel"</button>
                                                        }.into_any(),
                                                        Some(GroupAction::Discard) => view! {
                                                            <form class="inline-form" on:submit=move |ev| {
                                                                ev.prevent_default();
                                                                confirm.set(None);
                                                                act(key.clone(), GroupAction::Discard, reason.get(), count);
                                                            }>
                                                                <label for="group-reason">{format!("Discard all {count} record(s)? Reason")}</label>
                                                                <input id="group-reason" required maxlength="500" prop:value=reason on:input=move |ev| reason.set(event_target_value(&ev))/>
                                                                <button type="submit" class="button-danger">"Yes, discard"</button>
                                                                <button type="button" class="button-secondary" on:click=move |_| confirm.set(None)>"Cancel"</button>
                                                            </form>
                                                        }.into_any(),
                                                    }
                                                }}
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }.into_any(),
            }}
        </section>
    }
}

/// One record: its event, headers, payload, error and replay history, with its actions.
#[component]
fn RecordView(
    record: DeadLetterDto,
    replay: impl Fn(i64) + Copy + Send + Sync + 'static,
    discard: impl Fn(i64, String) + Copy + Send + Sync + 'static,
    /// Stores the given text as the record's edited payload.
    edit: impl Fn(i64, String) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let id = record.id;
    let e = record.event;
    let payload = serde_json::to_string_pretty(&e.payload).unwrap_or_default();
    let edited = record
        .edited_payload
        .as_ref()
        .map(|p| serde_json::to_string_pretty(p).unwrap_or_default());
    // The payload being edited (the edited one, else the original), while the editor is open.
    let draft = RwSignal::new(None::<String>);
    let start = edited.clone().unwrap_or_else(|| payload.clone());
    let reason = RwSignal::new(String::new());
    let pending = record.status == DeadLetterStatus::Pending;
    view! {
        <div data-testid="dlq-record" data-dlq-id=id>
            <p>
                <span class=format!("badge badge-{}", record.status) data-testid="record-status">{record.status.as_str()}</span>" "
                {record.discard_reason.clone().map(|r| view! { <span class="muted">"Reason: "{r}</span> })}
            </p>
            <dl class="meta">
                <dt>"event_id"</dt><dd class="mono">{e.event_id.clone()}</dd>
                <dt>"event_type"</dt><dd>{e.event_type.clone()}</dd>
                <dt>"aggregate_type"</dt><dd>{e.aggregate_type.clone()}</dd>
                <dt>"aggregate_id"</dt><dd class="mono"><a href=format!("/orders/{}", e.aggregate_id)>{e.aggregate_id.clone()}</a></dd>
                <dt>"aggregate_version"</dt><dd>{e.aggregate_version}</dd>
                <dt>"occurred_at"</dt><dd>{format::timestamp(&e.occurred_at)}</dd>
                <dt>"schema_version"</dt><dd>{e.schema_version}</dd>
                <dt>"Error"</dt><dd>{record.error_kind.as_str()}": "{record.error_message.clone()}</dd>
                <dt>"Failures"</dt><dd>{record.failure_count}" (first "{format::timestamp(&record.first_failed_at)}", last "{format::timestamp(&record.last_failed_at)}")"</dd>
                <dt>"Order broken for"</dt><dd class="muted">{record.order_broken_for.clone()}</dd>
            </dl>
            <h3>{if edited.is_some() { "Original payload" } else { "Payload" }}</h3>
            <pre class="payload" data-testid="original-payload">{payload}</pre>
            {edited.map(|text| view! {
                <h3>"Edited payload "<span class="muted">"(edited "{record.edited_at.as_deref().map(format::timestamp).unwrap_or_default()}"; replays publish this)"</span></h3>
                <pre class="payload" data-testid="edited-payload">{text}</pre>
            })}
            {move || draft.get().map(|text| view! {
                <form class="payload-editor" on:submit=move |ev| {
                    ev.prevent_default();
                    if let Some(text) = draft.get_untracked() {
                        edit(id, text);
                    }
                }>
                    <label for="payload-editor">"Edit payload (JSON object; order_id must stay)"</label>
                    <textarea id="payload-editor" class="mono" rows="10" prop:value=text on:input=move |ev| draft.set(Some(event_target_value(&ev)))></textarea>
                    <div class="record-actions">
                        <button type="submit">"Save payload"</button>
                        <button type="button" class="button-secondary" on:click=move |_| draft.set(None)>"Cancel"</button>
                    </div>
                </form>
            })}
            <h3>"Replay history"</h3>
            {if record.attempts.is_empty() {
                view! { <p class="muted">"Never replayed."</p> }.into_any()
            } else {
                view! {
                    <ol class="attempts">
                        {record.attempts.into_iter().map(|a| view! {
                            <li><time datetime=a.at.clone()>{format::timestamp(&a.at)}</time>" "<strong>{a.outcome.as_str()}</strong>" "<span class="muted">{a.detail}</span></li>
                        }).collect_view()}
                    </ol>
                }.into_any()
            }}
            {pending.then(|| view! {
                <div class="record-actions">
                    <button type="button" on:click=move |_| replay(id)>"Replay"</button>
                    <button type="button" class="button-secondary" on:click=move |_| draft.set(Some(start.clone()))>"Edit payload"</button>
                    <form class="inline-form" on:submit=move |ev| {
                        ev.prevent_default();
                        discard(id, reason.get());
                    }>
                        <label for="discard-reason">"Discard reason"</label>
                        <input id="discard-reason" required maxlength="500" prop:value=reason on:input=move |ev| reason.set(event_target_value(&ev))/>
                        <button type="submit" class="button-danger">"Discard"</button>
                    </form>
                </div>
            })}
        </div>
    }
}
