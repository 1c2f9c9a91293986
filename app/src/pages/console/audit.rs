//! `/console/audit`: the audit log of operator actions, newest first. The action filter and
//! the page live in the URL (a plain GET form and links, so they work before hydration).

use super::ConsoleNav;
use crate::client;
use crate::dto::{AuditEntryDto, AuditPageDto};
use crate::format;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// Entries per page.
const PAGE: u32 = 25;

/// Action families and names offered as suggestions for the filter.
const SUGGESTED: [&str; 14] = [
    "session.",
    "relay.",
    "dlq.",
    "faults.set",
    "admin.",
    "session.sign_in",
    "session.sign_out",
    "relay.mode",
    "relay.suspend",
    "relay.resume",
    "dlq.replay",
    "dlq.bulk_replay",
    "dlq.discard",
    "dlq.edit",
];

/// The view's filter and page, as in the page's query string.
#[derive(Debug, Clone, Default, PartialEq)]
struct View {
    action: String,
    before: String,
}

impl View {
    /// `path` with this view's action filter, `before` and anything in `extra`.
    fn url(&self, path: &str, extra: &[(&str, &str)]) -> String {
        let pairs = [("action", self.action.as_str())];
        let query: Vec<String> = pairs
            .iter()
            .chain(extra)
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| format!("{name}={}", format::query_value(value)))
            .collect();
        match query.is_empty() {
            true => path.to_string(),
            false => format!("{path}?{}", query.join("&")),
        }
    }

    /// The admin API's URL for this view.
    fn api_url(&self) -> String {
        let limit = PAGE.to_string();
        self.url(
            "/api/admin/audit",
            &[("limit", &limit), ("before", &self.before)],
        )
    }
}

#[component]
pub fn AuditPage() -> impl IntoView {
    let query = use_query_map();
    let view_of = Memo::new(move |_| {
        let q = query.read();
        View {
            action: q.get("action").unwrap_or_default(),
            before: q.get("before").unwrap_or_default(),
        }
    });
    let page = RwSignal::new(None::<Result<AuditPageDto, String>>);
    Effect::new(move |_| {
        let url = view_of.get().api_url();
        client::load(page, async move { client::get(&url).await });
    });
    let current = move || view_of.get();
    view! {
        <Title text="Audit log"/>
        <ConsoleNav/>
        <h1>"Audit log"</h1>
        <p class="muted">"Every operator action — sign-in and sign-out, dead letter replays, edits and discards, relay controls, faults — newest first."</p>
        <form method="get" action="/console/audit" class="filters card" role="search" aria-label="Filter the audit log">
            <div class="field">
                <label for="audit-action">"Action or prefix"</label>
                <input id="audit-action" name="action" type="text" list="audit-actions" class="mono"
                    placeholder="dlq. or relay.mode" autocomplete="off" prop:value=move || current().action/>
                <datalist id="audit-actions">
                    {SUGGESTED.into_iter().map(|a| view! { <option value=a></option> }).collect_view()}
                </datalist>
            </div>
            <button type="submit">"Filter"</button>
            {move || (!current().action.is_empty()).then(|| view! { <a href="/console/audit">"Clear"</a> })}
        </form>
        <section class="card" aria-labelledby="audit-title">
            <h2 id="audit-title">"Entries"</h2>
            {move || match page.get() {
                None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="alert alert-error" role="alert">{e}</p> }.into_any(),
                Some(Ok(p)) if p.items.is_empty() => view! { <p class="muted" data-testid="audit-empty">"No entries match."</p> }.into_any(),
                Some(Ok(p)) => {
                    let older = p.next_cursor.map(|c| current().url("/console/audit", &[("before", &c.to_string())]));
                    let newest = (!current().before.is_empty()).then(|| current().url("/console/audit", &[]));
                    view! {
                        <div class="table-wrap">
                            <table class="audit-table card-rows">
                                <thead>
                                    <tr>
                                        <th scope="col">"When"</th>
                                        <th scope="col">"Action"</th>
                                        <th scope="col">"Target"</th>
                                        <th scope="col">"Outcome"</th>
                                        <th scope="col">"Session"</th>
                                        <th scope="col">"Address"</th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {p.items.into_iter().map(|e| view! { <EntryRow entry=e/> }).collect_view()}
                                </tbody>
                            </table>
                        </div>
                        <nav class="pager" aria-label="Pagination">
                            {newest.map(|href| view! { <a href=href>"← Newest"</a> })}
                            {older.map(|href| view! { <a href=href>"Older →"</a> })}
                        </nav>
                    }.into_any()
                }
            }}
        </section>
    }
}

/// One entry; each cell names its column for the narrow layout, where rows become cards.
#[component]
fn EntryRow(entry: AuditEntryDto) -> impl IntoView {
    let badge = format!("badge badge-audit-{}", entry.outcome);
    view! {
        <tr data-audit-id=entry.id data-action=entry.action.clone()>
            <td data-label="When">{format::timestamp(&entry.at)}</td>
            <td data-label="Action" class="mono">{entry.action.clone()}</td>
            <td data-label="Target" class="mono audit-target">{entry.target.unwrap_or_else(|| "—".into())}</td>
            <td data-label="Outcome">
                <span class=badge data-testid="audit-outcome">{entry.outcome.as_str()}</span>" "
                <span class="muted">{entry.status}</span>
            </td>
            <td data-label="Session" class="mono">{entry.session.unwrap_or_else(|| "—".into())}</td>
            <td data-label="Address" class="mono">{entry.address}</td>
        </tr>
    }
}
