//! `GET /metrics`: every metric is moved by the code path it describes. Scenarios create
//! orders, trip the breaker and fill the dead letter queue through fault injection, and
//! assert the exact values that follow; `promtool check metrics` validates a live scrape.

use crate::helpers::{
    TestApp, eventually, eventually_within, last_position, relay_checkpoint, spawn_app_with,
};
use crate::resilience::FAST;
use app::dto::{
    DeadLetterDto, DeadLetterPageDto, DeadLetterStatus, Fault, RelayMode, RelayModeDto,
};
use reqwest::StatusCode;
use std::collections::BTreeMap;
use std::time::Duration;

/// One scrape: `name{label="value",…}` (labels sorted) → value.
struct Scrape(BTreeMap<String, f64>);

impl Scrape {
    async fn of(app: &TestApp) -> Scrape {
        let response = app.get("/metrics").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        Scrape::parse(&response.text().await.unwrap())
    }

    fn parse(text: &str) -> Scrape {
        let mut values = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = line.rsplit_once(' ').expect("series and value");
            let key = match series.split_once('{') {
                Some((name, labels)) => {
                    let mut pairs: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
                    pairs.sort_unstable();
                    format!("{name}{{{}}}", pairs.join(","))
                }
                None => series.to_string(),
            };
            values.insert(key, value.parse().expect("numeric value"));
        }
        Scrape(values)
    }

    /// The value of a series (0 when it was never touched).
    fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    fn names(&self) -> impl Iterator<Item = &String> {
        self.0.keys()
    }
}

async fn caught_up(app: &TestApp) {
    let db = app.db_path();
    eventually_within(Duration::from_secs(30), "the relay caught up", || async {
        relay_checkpoint(&db) == last_position(&db)
    })
    .await;
}

/// Paths that match no route are counted under `route="unmatched"`, never by their path, so
/// a scanner cannot create a series per path.
#[tokio::test]
async fn unmatched_paths_share_one_route_label() {
    let app = crate::helpers::spawn_app().await;
    for i in 0..30 {
        app.get(&format!("/scan-{i}/wp-login.php")).await;
        app.get(&format!("/api/scan-{i}")).await;
    }
    let text = app.get("/metrics").await.text().await.unwrap();
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .collect();
    assert!(
        series.iter().all(|l| !l.contains("scan-")),
        "no series per path: {series:?}"
    );
    assert!(
        series.iter().any(|l| l.contains("route=\"unmatched\"")),
        "{series:?}"
    );
    assert!(series.len() <= 6, "{series:?}");
}

/// The configured poll interval is exported, for the polling-latency alert to judge by.
#[tokio::test]
async fn the_poll_interval_is_exported_as_configured() {
    let app = spawn_app_with(&["--poll-interval", "750ms"]).await;
    let scrape = Scrape::of(&app).await;
    assert_eq!(scrape.get("relay_poll_interval_seconds"), 0.75);
    assert_eq!(scrape.get("relay_owner"), 1.0);
}

#[tokio::test]
async fn orders_and_deliveries_move_their_metrics() {
    let app = spawn_app_with(&FAST).await;
    let before = Scrape::of(&app).await;
    assert_eq!(before.get("relay_checkpoint_position"), 0.0);
    assert_eq!(before.get("circuit_breaker_state"), 0.0);
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(app.create_order_id(&[&format!("MET-{i}")]).await);
    }
    assert_eq!(
        app.cancel(&ids[0], 1, "metrics").await.status(),
        StatusCode::OK
    );
    caught_up(&app).await;
    let m = Scrape::of(&app).await;
    assert_eq!(m.get("orders_total{event_type=\"OrderCreated\"}"), 3.0);
    assert_eq!(m.get("orders_total{event_type=\"OrderCancelled\"}"), 1.0);
    assert_eq!(
        m.get("cdc_events_processed_total{event_type=\"OrderCreated\",mode=\"streaming\"}"),
        3.0
    );
    assert_eq!(
        m.get("cdc_events_processed_total{event_type=\"OrderCancelled\",mode=\"streaming\"}"),
        1.0
    );
    assert_eq!(m.get("cdc_processing_duration_seconds_count"), 4.0);
    assert_eq!(
        m.get("relay_end_to_end_latency_seconds_count{mode=\"streaming\"}"),
        4.0
    );
    assert!(m.get("relay_end_to_end_latency_seconds_sum{mode=\"streaming\"}") > 0.0);
    assert_eq!(m.get("relay_checkpoint_position"), 4.0);
    assert_eq!(m.get("outbox_pending_events"), 0.0);
    assert_eq!(m.get("outbox_oldest_pending_age_seconds"), 0.0);

    // HTTP: labelled by the matched route, never by the raw path.
    assert_eq!(
        m.get("http_requests_total{method=\"POST\",route=\"/api/orders\",status=\"201\"}"),
        3.0
    );
    assert_eq!(
        m.get(
            "http_requests_total{method=\"POST\",route=\"/api/orders/{id}/cancel\",status=\"200\"}"
        ),
        1.0
    );
    app.get("/api/orders/0193a5e0-7d1c-7b3a-9c4e-2f5d6a7b8c9d")
        .await;
    app.get("/no/such/page/12345").await;
    let m = Scrape::of(&app).await;
    assert_eq!(
        m.get("http_requests_total{method=\"GET\",route=\"/api/orders/{id}\",status=\"404\"}"),
        1.0
    );
    assert!(
        m.names()
            .all(|n| !n.contains("0193a5e0") && !n.contains("12345")),
        "no raw paths in labels"
    );
    assert!(
        m.get(
            "http_request_duration_seconds_count{method=\"POST\",route=\"/api/orders\",status=\"201\"}"
        ) == 3.0
    );

    // Switching modes changes the label of what follows.
    let polling = RelayModeDto {
        mode: RelayMode::Polling,
    };
    let _: RelayModeDto = app.admin_post("/api/admin/relay/mode", Some(polling)).await;
    app.create_order_id(&["MET-P"]).await;
    caught_up(&app).await;
    let m = Scrape::of(&app).await;
    assert_eq!(
        m.get("cdc_events_processed_total{event_type=\"OrderCreated\",mode=\"polling\"}"),
        1.0
    );
}

#[tokio::test]
async fn an_outage_moves_the_breaker_retry_and_lag_metrics() {
    let app = spawn_app_with(&FAST).await;
    app.set_fault(Fault::Down {}).await;
    app.create_order_id(&["OUT-1"]).await;
    eventually("the breaker opens", || async {
        Scrape::of(&app).await.get("circuit_breaker_state") == 1.0
    })
    .await;
    let m = Scrape::of(&app).await;
    assert_eq!(
        m.get("circuit_breaker_transitions_total{from_state=\"closed\",to_state=\"open\"}"),
        1.0
    );
    // Five failures opened it: four of them were followed by a retry.
    assert_eq!(
        m.get("cdc_events_failed_total{event_type=\"OrderCreated\",reason=\"transient\"}"),
        5.0
    );
    assert_eq!(m.get("retry_attempts_total{operation=\"publish\"}"), 4.0);
    assert_eq!(m.get("outbox_pending_events"), 1.0);
    assert!(m.get("outbox_oldest_pending_age_seconds") > 0.0);
    assert_eq!(m.get("relay_checkpoint_position"), 0.0);

    app.set_fault(Fault::None {}).await;
    caught_up(&app).await;
    eventually("the breaker closes", || async {
        Scrape::of(&app).await.get("circuit_breaker_state") == 0.0
    })
    .await;
    let m = Scrape::of(&app).await;
    assert_eq!(
        m.get("circuit_breaker_transitions_total{from_state=\"half_open\",to_state=\"closed\"}"),
        1.0
    );
    assert!(
        m.get("circuit_breaker_transitions_total{from_state=\"open\",to_state=\"half_open\"}")
            >= 1.0
    );
    assert_eq!(m.get("retry_success_total{operation=\"publish\"}"), 1.0);
    assert_eq!(m.get("retry_failure_total{operation=\"publish\"}"), 0.0);
    assert_eq!(m.get("outbox_pending_events"), 0.0);
    assert_eq!(m.get("dlq_messages_total"), 0.0);
    assert_eq!(m.get("dlq_messages_pending"), 0.0);
}

#[tokio::test]
async fn dead_letters_and_replays_move_the_dlq_metrics() {
    let app = spawn_app_with(&FAST).await;
    app.set_fault(Fault::Poison {
        event_type: Some("OrderCancelled".into()),
        every_n: None,
    })
    .await;
    let id = app.create_order_id(&["DLQ-1"]).await;
    assert_eq!(app.cancel(&id, 1, "metrics").await.status(), StatusCode::OK);
    caught_up(&app).await;
    let m = Scrape::of(&app).await;
    assert_eq!(m.get("dlq_messages_total"), 1.0);
    assert_eq!(m.get("dlq_messages_pending"), 1.0);
    assert_eq!(
        m.get("dlq_messages_by_event_type{event_type=\"OrderCancelled\"}"),
        1.0
    );
    assert_eq!(
        m.get("cdc_events_failed_total{event_type=\"OrderCancelled\",reason=\"permanent\"}"),
        1.0
    );
    assert_eq!(
        m.get("circuit_breaker_state"),
        0.0,
        "poison is not an outage"
    );

    let page: DeadLetterPageDto = app.admin_get("/api/admin/dlq").await;
    let letter = page.items[0].id;
    // Still poisoned: a failed replay; then a delivered one.
    let r = app
        .admin(
            reqwest::Method::POST,
            &format!("/api/admin/dlq/{letter}/replay"),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    app.set_fault(Fault::None {}).await;
    let replayed: DeadLetterDto = app
        .admin_post(&format!("/api/admin/dlq/{letter}/replay"), None::<()>)
        .await;
    assert_eq!(replayed.status, DeadLetterStatus::Replayed);
    let m = Scrape::of(&app).await;
    assert_eq!(m.get("dlq_replays_total{outcome=\"failed\"}"), 1.0);
    assert_eq!(m.get("dlq_replays_total{outcome=\"delivered\"}"), 1.0);
    assert_eq!(
        m.get("dlq_messages_total"),
        1.0,
        "a counter: it never goes down"
    );
    assert_eq!(m.get("dlq_messages_pending"), 0.0);
    assert_eq!(
        m.get("dlq_messages_by_event_type{event_type=\"OrderCancelled\"}"),
        0.0
    );
}

/// `promtool check metrics` accepts a live scrape (`make test` installs promtool).
#[tokio::test]
async fn a_live_scrape_passes_promtool() {
    let app = spawn_app_with(&FAST).await;
    app.create_order_id(&["PROM-1"]).await;
    caught_up(&app).await;
    let text = app.get("/metrics").await.text().await.unwrap();
    let mut child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs (`make test` installs Debian's prometheus package)");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(text.as_bytes()).await.unwrap();
    }
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for name in [
        "cdc_events_processed_total",
        "cdc_events_failed_total",
        "cdc_processing_duration_seconds",
        "retry_attempts_total",
        "retry_success_total",
        "retry_failure_total",
        "dlq_messages_total",
        "dlq_messages_pending",
        "dlq_messages_by_event_type",
        "dlq_replays_total",
        "circuit_breaker_state",
        "circuit_breaker_transitions_total",
        "outbox_pending_events",
        "outbox_oldest_pending_age_seconds",
        "relay_end_to_end_latency_seconds",
        "relay_checkpoint_position",
        "relay_owner",
        "relay_poll_interval_seconds",
        "cdc_log_unreadable_seconds",
        "orders_total",
        "http_requests_total",
        "http_request_duration_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} is exported"
        );
    }
}
