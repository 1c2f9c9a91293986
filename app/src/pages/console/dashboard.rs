//! `/console`: the relay at a glance, live over `/api/live`: mode and state, processed
//! events, throughput and latency with small charts, the backlog, the breaker with its recent
//! transitions, the DLQ, and a banner while a simulated fault is active.

use super::{BreakerBadge, ConsoleNav};
use crate::client::{self, FeedState};
use crate::dto::{Fault, LiveSnapshotDto, RelayStatusDto};
use crate::format;
use leptos::prelude::*;
use leptos_meta::Title;

/// Samples kept for the charts: one per snapshot (500 ms), so one minute.
const CHART_SAMPLES: usize = 120;

#[component]
pub fn DashboardPage() -> impl IntoView {
    let snapshot = RwSignal::new(None::<LiveSnapshotDto>);
    let feed = RwSignal::new(FeedState::Connecting);
    let rates = RwSignal::new(Vec::<f64>::new());
    let p99s = RwSignal::new(Vec::<f64>::new());
    let status = RwSignal::new(None::<Result<RelayStatusDto, String>>);
    Effect::new(move |_| {
        client::load(status, client::get("/api/admin/relay"));
        client::subscribe_live(
            feed,
            move |s: LiveSnapshotDto| {
                let push = |series: RwSignal<Vec<f64>>, value: f64| {
                    series.update(|v| {
                        v.push(value);
                        if v.len() > CHART_SAMPLES {
                            v.remove(0);
                        }
                    })
                };
                push(rates, s.events_per_second_1s);
                push(p99s, s.latency_p99_ms.unwrap_or(0.0));
                snapshot.set(Some(s));
            },
            // A breaker transition or a DLQ change: the timeline comes with the status.
            move || client::load(status, client::get("/api/admin/relay")),
        );
    });
    let value = move |f: fn(&LiveSnapshotDto) -> String| {
        move || snapshot.with(|s| s.as_ref().map_or_else(|| "–".to_string(), f))
    };
    let breaker = Signal::derive(move || snapshot.with(|s| s.as_ref().map(|s| s.breaker)));
    let fault =
        move || snapshot.with(|s| s.as_ref().and_then(|s| s.fault.as_ref().map(Fault::mode)));
    let dlq = move || snapshot.with(|s| s.as_ref().map_or(0, |s| s.dlq_pending));
    view! {
        <Title text="Console"/>
        <ConsoleNav/>
        <div class="console-head">
            <h1>"Relay dashboard"</h1>
            <FeedIndicator feed/>
        </div>
        <div class="banner-slot">
            {move || fault().map(|mode| view! {
                <p class="banner" role="alert" data-testid="fault-banner">
                    <strong>"Simulated fault active: "</strong>{mode}
                    " · "<a href="/console/relay">"change it on the relay page"</a>
                </p>
            })}
        </div>
        <section class="stats" aria-label="Relay figures">
            <Stat label="Mode" test_id="mode" value=value(|s| s.mode.to_string())/>
            <Stat label="State" test_id="state" value=value(|s| s.state.to_string())/>
            <Stat label="Processed" test_id="processed" value=value(|s| s.published_total.to_string())/>
            <div class="stat">
                <span class="stat-label">"Throughput"</span>
                <span class="stat-value" data-testid="throughput">{value(|s| format!("{:.0}/s", s.events_per_second_1s))}</span>
                <Sparkline series=rates label="Events per second, last minute"/>
            </div>
            <div class="stat">
                <span class="stat-label">"Commit → publish latency"</span>
                <span class="stat-value stat-pair" data-testid="latency">
                    <span>"p50 "{value(|s| ms(s.latency_p50_ms))}</span>
                    <span>"p99 "{value(|s| ms(s.latency_p99_ms))}</span>
                </span>
                <Sparkline series=p99s label="p99 commit to publish latency, last minute"/>
            </div>
            <Stat label="Pending" test_id="pending" value=value(|s| s.pending.to_string())/>
            <Stat label="Oldest pending" test_id="oldest" value=value(|s| s.oldest_pending_age_ms.map_or("–".into(), format::age_ms))/>
            <div class="stat">
                <span class="stat-label">"Circuit breaker"</span>
                <span class="stat-value"><BreakerBadge state=breaker/></span>
            </div>
            <div class="stat">
                <span class="stat-label">"Dead letters pending"</span>
                <a class="stat-value" href="/console/dlq?status=pending" data-testid="dlq-pending">{dlq}</a>
            </div>
        </section>
        <section class="card" aria-labelledby="transitions-title">
            <h2 id="transitions-title">"Recent breaker transitions"</h2>
            {move || match status.get() {
                None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="alert alert-error" role="alert">{e}</p> }.into_any(),
                Some(Ok(s)) if s.breaker.transitions.is_empty() => view! {
                    <p class="muted">"No transitions since the server started: the breaker has stayed closed."</p>
                }.into_any(),
                Some(Ok(s)) => view! {
                    <ol class="transitions" data-testid="transitions">
                        {s.breaker.transitions.into_iter().rev().map(|t| view! {
                            <li>
                                <time datetime=t.at.clone()>{format::timestamp(&t.at)}</time>" "
                                <span class="mono">{t.from.as_str()}" → "{t.to.as_str()}</span>" "
                                <span class="muted">{t.reason}</span>
                            </li>
                        }).collect_view()}
                    </ol>
                }.into_any(),
            }}
        </section>
    }
}

fn ms(value: Option<f64>) -> String {
    value.map_or("–".into(), |v| format!("{v:.1} ms"))
}

/// One figure with its label.
#[component]
fn Stat(
    label: &'static str,
    test_id: &'static str,
    value: impl Fn() -> String + Send + Sync + 'static,
) -> impl IntoView {
    view! {
        <div class="stat">
            <span class="stat-label">{label}</span>
            <span class="stat-value" data-testid=test_id>{value}</span>
        </div>
    }
}

/// Whether the live feed is connected; the browser reconnects by itself.
#[component]
fn FeedIndicator(feed: RwSignal<FeedState>) -> impl IntoView {
    let (class, text) = (
        move || match feed.get() {
            FeedState::Connected => "feed feed-live",
            FeedState::Connecting => "feed",
            FeedState::Reconnecting => "feed feed-down",
        },
        move || match feed.get() {
            FeedState::Connected => "Live",
            FeedState::Connecting => "Connecting…",
            FeedState::Reconnecting => "Disconnected: reconnecting…",
        },
    );
    view! { <p class=class role="status" data-testid="feed">{text}</p> }
}

/// A line chart of `series` as inline SVG, scaled to its largest value.
#[component]
fn Sparkline(series: RwSignal<Vec<f64>>, label: &'static str) -> impl IntoView {
    const WIDTH: f64 = 120.0;
    const HEIGHT: f64 = 32.0;
    let points = move || {
        series.with(|values| {
            let top = values.iter().copied().fold(0.0, f64::max).max(1.0);
            let step = WIDTH / (CHART_SAMPLES - 1) as f64;
            let start = CHART_SAMPLES.saturating_sub(values.len());
            values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let x = (start + i) as f64 * step;
                    let y = HEIGHT - 1.0 - v / top * (HEIGHT - 2.0);
                    format!("{x:.1},{y:.1}")
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
    };
    view! {
        <svg class="sparkline" viewBox="0 0 120 32" width="120" height="32" role="img" aria-label=label>
            <line x1="0" y1="31" x2="120" y2="31" class="sparkline-axis"/>
            <polyline points=points fill="none" stroke="currentColor" stroke-width="1.5"/>
        </svg>
    }
}
