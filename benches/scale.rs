//! `make bench-scale`: does a read cost more as the data grows? The same public and admin
//! reads are timed against the release server on two data sets, one with `--small` orders
//! and one with `--large` (default 1,000 and 100,000; every fourth order changed once, so
//! 1.25 events per order, plus one busy order changed once per hundred orders). The oldest
//! events become dead letters, `--dead` of them (default 3,000) but at most half the events
//! (so the small set has fewer, the large one the full count), and the rest are relayed into
//! the embedded topic log. Target: no read's p50 more than 2× slower on the large set.
//!
//! Options (after `--`): `--small N`, `--large N`, `--dead N`, `--requests N` (timed requests
//! per read, default 200, after 20 untimed ones). Prints a Markdown report.

use futures::future::join_all;
use outbox::domain::{NewOrder, OrderId, RawItem};
use outbox::publish::local::LocalLogPublisher;
use outbox::publish::{Encoder, PublishError};
use outbox::relay::{Batching, Outcome, Relay};
use outbox::resilience::Resilience;
use outbox::resilience::breaker::CircuitBreaker;
use outbox::store::dead_letters::NewDeadLetter;
use outbox::store::sqlite::{SqliteOptions, SqliteStore, Synchronous};
use outbox::store::{Applied, Command, OrderStore, OutboxLog, RELAY_NAME};
use outbox::telemetry::Telemetry;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{Server, cpu_seconds, percentile, rss_mib};

mod support;

const CUSTOMER: &str = "0193a5e0-7d1c-7b3a-9c4e-2f5d6a7b8c9d";
const ADMIN_TOKEN: &str = "scale-bench-admin-token-0123";
/// Orders written at a time while preparing (the writer commits them as one group).
const CHUNK: usize = 500;

/// The reads timed, by name and path (`{order}` is an order with two events, `{busy}` the
/// order with a change per hundred orders).
const READS: [(&str, &str); 11] = [
    ("order list (first page)", "/api/orders"),
    ("order detail", "/api/orders/{order}"),
    ("busy order detail", "/api/orders/{busy}"),
    ("busy order page (HTML)", "/orders/{busy}"),
    ("topic list", "/api/topics"),
    (
        "topic tail (last 50)",
        "/api/topics/outbox.event.order/messages?from_offset={tail}&limit=50",
    ),
    ("DLQ page", "/api/admin/dlq?limit=50"),
    ("DLQ text search", "/api/admin/dlq?limit=50&q=SCALE-7"),
    ("relay status", "/api/admin/relay"),
    ("metrics", "/metrics"),
    ("orders page (HTML)", "/orders"),
];

/// What a prepared data set holds, and what the server used on it.
struct DataSet {
    orders: usize,
    events: u64,
    dead: usize,
    /// An order with two events.
    order: OrderId,
    /// An order with `orders / 100` changes: its detail must not cost more as it grows.
    busy: OrderId,
    /// The topic log's next offset.
    end: i64,
    /// The server's CPU seconds during the timed reads, and its RSS (MiB) after them.
    cpu: f64,
    rss: f64,
}

fn options(dir: &Path) -> SqliteOptions {
    SqliteOptions {
        data_dir: dir.to_path_buf(),
        synchronous: Synchronous::Normal,
        max_batch: CHUNK,
        queue_capacity: 4 * CHUNK,
        readers: 2,
    }
}

fn create(i: usize) -> Command {
    let items = [RawItem {
        sku: format!("SCALE-{}", i % 1000),
        quantity: 1,
        unit_price_cents: 999,
    }];
    Command::Create {
        order: NewOrder::parse(CUSTOMER, &items).expect("valid order"),
        idempotency_key: None,
    }
}

/// Creates an order and changes it `changes` times, one after the other.
async fn busy_order(store: &SqliteStore, changes: usize) -> OrderId {
    let id = store.apply(create(0)).await.expect("create").order().id;
    for change in 0..changes {
        let items = outbox::domain::OrderItems::parse(&[RawItem {
            sku: format!("BUSY-{change}"),
            quantity: 1,
            unit_price_cents: 5,
        }])
        .expect("valid items");
        let command = Command::ReplaceItems {
            id,
            items,
            expected_version: u32::try_from(change + 1).expect("version"),
        };
        store.apply(command).await.expect("change");
    }
    id
}

/// Writes `orders` orders (every fourth changed once), dead-letters the first `dead` events
/// (at most half of them) and relays the rest into the embedded topic log.
async fn prepare(dir: &Path, orders: usize, dead: usize) -> DataSet {
    let store = Arc::new(SqliteStore::open(&options(dir)).expect("store opens"));
    let mut changed = None;
    for start in (0..orders).step_by(CHUNK) {
        let writes = (start..(start + CHUNK).min(orders)).map(|i| {
            let store = Arc::clone(&store);
            async move { (i, store.apply(create(i)).await.expect("create")) }
        });
        let created = join_all(writes).await;
        let changes = created
            .iter()
            .filter(|(i, _)| i % 4 == 0)
            .map(|(_, applied)| {
                let (store, id) = (Arc::clone(&store), applied.order().id);
                async move {
                    let items = outbox::domain::OrderItems::parse(&[RawItem {
                        sku: "SCALE-X".into(),
                        quantity: 2,
                        unit_price_cents: 5,
                    }])
                    .expect("valid items");
                    let command = Command::ReplaceItems {
                        id,
                        items,
                        expected_version: 1,
                    };
                    match store.apply(command).await.expect("change") {
                        Applied::Written { order, .. } | Applied::Replayed { order } => order.id,
                    }
                }
            });
        let ids = join_all(changes).await;
        changed = changed.or(ids.get(ids.len() / 2).copied());
    }
    let busy = busy_order(&store, orders / 100).await;
    let dead = dead.min(store.backlog(0).await.expect("backlog").pending as usize / 2);
    let poisoned = store
        .events_after(0, u32::try_from(dead).expect("count"))
        .await
        .expect("read");
    if let Some(last) = poisoned.last() {
        let now = chrono::Utc::now();
        let letters = poisoned
            .iter()
            .map(|e| {
                let refused = PublishError::permanent("refused by the scale bench");
                NewDeadLetter::new(e.clone(), refused, 1, now, now)
            })
            .collect();
        store
            .record_progress(RELAY_NAME, last.position, Vec::new(), letters)
            .await
            .expect("dead letters");
    }
    let resilience = Resilience::new(
        Default::default(),
        Arc::new(CircuitBreaker::new(Default::default())),
    );
    let publisher = Arc::new(LocalLogPublisher::new(store.clone()));
    let mut relay = Relay::resume(
        store.clone(),
        publisher,
        Encoder::default(),
        resilience,
        Telemetry::default(),
        Batching::serial(1000),
    )
    .await
    .expect("relay");
    while relay.step().await.expect("relay step") != Outcome::Idle {}
    let events = relay.checkpoint();
    let end = outbox::publish::local::TopicLog::topic(&*store, "outbox.event.order".into())
        .await
        .expect("topic")
        .map_or(0, |t| t.next_offset);
    DataSet {
        orders,
        events,
        dead,
        order: changed.expect("a changed order"),
        busy,
        end,
        cpu: 0.0,
        rss: 0.0,
    }
}

/// p50 and p95 of `requests` GETs of `path` (after 20 untimed ones).
async fn time_read(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    requests: usize,
) -> (Duration, Duration) {
    let url = format!("{base}{path}");
    let get = || async {
        let response = client
            .get(&url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.bytes().await.expect("body");
    };
    for _ in 0..20 {
        get().await;
    }
    let mut times = Vec::with_capacity(requests);
    for _ in 0..requests {
        let started = Instant::now();
        get().await;
        times.push(started.elapsed());
    }
    times.sort();
    (percentile(&times, 0.50), percentile(&times, 0.95))
}

/// Prepares a data set of `orders` orders and times every read against the server on it.
async fn measure(
    orders: usize,
    dead: usize,
    requests: usize,
) -> (DataSet, Vec<(Duration, Duration)>) {
    let dir = tempfile::tempdir().expect("temp dir");
    eprintln!("preparing {orders} orders and up to {dead} dead letters");
    let mut data = prepare(dir.path(), orders, dead).await;
    let server = Server::start(dir.path(), &[("ADMIN_TOKEN", ADMIN_TOKEN)]).await;
    let cpu_before = cpu_seconds(server.pid);
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::new();
    let mut results = Vec::new();
    for (name, path) in READS {
        let path = path
            .replace("{order}", &data.order.to_string())
            .replace("{busy}", &data.busy.to_string())
            .replace("{tail}", &(data.end - 50).max(0).to_string());
        eprintln!("timing {name} on {orders} orders");
        results.push(time_read(&client, &base, &path, requests).await);
    }
    data.cpu = cpu_seconds(server.pid) - cpu_before;
    data.rss = rss_mib(server.pid);
    (data, results)
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

#[tokio::main]
async fn main() {
    let small: usize = support::arg("--small", 1_000);
    let large: usize = support::arg("--large", 100_000);
    let dead: usize = support::arg("--dead", 3_000);
    let requests: usize = support::arg("--requests", 200);
    let (a, small_times) = measure(small, dead, requests).await;
    let (b, large_times) = measure(large, dead, requests).await;
    println!("Machine: {}  ", support::machine());
    println!(
        "Command: `make bench-scale SCALE_BENCH_ARGS=\"--small {small} --large {large} --dead {dead} --requests {requests}\"`  "
    );
    println!(
        "Data: {} orders / {} events / {} dead letters and {} orders / {} events / {} dead letters (the busy order has {} and {} events), the other events relayed to the embedded topic log; {requests} timed GETs per read, one at a time.\n",
        a.orders,
        a.events,
        a.dead,
        b.orders,
        b.events,
        b.dead,
        small / 100 + 1,
        large / 100 + 1
    );
    println!(
        "| read | p50 ms, {small} | p95 ms, {small} | p50 ms, {large} | p95 ms, {large} | p50 ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let mut worst: f64 = 0.0;
    for (((name, _), (p50a, p95a)), (p50b, p95b)) in
        READS.iter().zip(&small_times).zip(&large_times)
    {
        let ratio = p50b.as_secs_f64() / p50a.as_secs_f64().max(1e-9);
        worst = worst.max(ratio);
        println!(
            "| {name} | {} | {} | {} | {} | {ratio:.2} |",
            ms(*p50a),
            ms(*p95a),
            ms(*p50b),
            ms(*p95b)
        );
    }
    println!("\nWorst p50 ratio: **{worst:.2}** (target ≤ 2).");
    println!(
        "Server CPU during the timed reads: {:.1} s ({small}) and {:.1} s ({large}); RSS after them: {:.0} and {:.0} MiB.",
        a.cpu, b.cpu, a.rss, b.rss
    );
}
