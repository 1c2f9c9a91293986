//! `make bench-cpu`: what the server spends per relayed event and per created order, counted
//! in instructions by callgrind (valgrind). Seconds differ 2× between the machines here and
//! with whatever else runs; instruction counts do not, so these figures compare across
//! machines and runs.
//!
//! Each figure is the difference between two runs under callgrind — one doing the work for
//! `--events` (default 10,000) events or orders, one doing none (start, idle, stop) — divided
//! by the count, so start-up and shutdown cancel out. Every thread of the process counts
//! (tokio's, the SQLite writer, librdkafka's).
//!
//! 1. **Relay → embedded log.** A backlog committed before the server starts; the release
//!    server (default settings) drains it into the embedded topic log.
//! 2. **Relay → Kafka.** The same backlog drained into tansu (`TANSU`; not under callgrind).
//! 3. **HTTP create.** Creates over 16 keep-alive connections to the release server (its relay
//!    publishing each event to the embedded log, as by default).
//! 4. **Direct create** (the baseline of 3): this binary itself under callgrind, committing
//!    the same creates through the store with the same relay in-process, 16 at a time.
//!
//! The callgrind files are kept in `target/bench-cpu/` for `callgrind_annotate`.
//! Prints a Markdown report for docs/BENCHMARKS.md.

use futures::future::join_all;
use outbox::store::sqlite::SqliteStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::embedded::{self, CUSTOMER, InProcessRelay};
use support::{Broker, Server, arg, machine};
use tokio::process::Command as Process;

mod support;

/// Clients (and in-process writers) creating orders at once.
const CONCURRENCY: usize = 16;
/// The flag that makes this binary the in-process workload of scenario 4.
const DIRECT: &str = "--direct-creates";

/// Where callgrind's files go.
fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-cpu");
    std::fs::create_dir_all(&dir).expect("target/bench-cpu");
    dir
}

/// valgrind with callgrind writing to `target/bench-cpu/<name>.out`.
fn callgrind(name: &str) -> (Vec<String>, PathBuf) {
    let file = out_dir().join(format!("{name}.out"));
    let wrapper = vec![
        "valgrind".to_string(),
        "--tool=callgrind".into(),
        "--quiet".into(),
        format!("--callgrind-out-file={}", file.display()),
    ];
    (wrapper, file)
}

/// The instruction total of a finished callgrind run (its `totals:` or `summary:` line).
fn instructions(file: &Path) -> u64 {
    let text = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("{} is readable: {e}", file.display()));
    text.lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no instruction total in {}", file.display()))
}

/// Runs the server under callgrind as `name` on a backlog of `events`, with `env`, until
/// its relay has handled them all; returns the instructions it executed.
async fn relay_run(name: &str, events: usize, env: &[(&str, &str)]) -> u64 {
    let dir = tempfile::tempdir().expect("temp dir");
    drop(embedded::prefill(dir.path(), events).await);
    let (wrapper, file) = callgrind(name);
    let server = Server::start_under(&wrapper, dir.path(), env).await;
    let conn = embedded::database(dir.path());
    let start = Instant::now();
    while embedded::checkpoint(&conn) < events as i64 {
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "the relay never drained"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
    instructions(&file)
}

/// Sends `count` creates to the server at `addr`, `CONCURRENCY` at a time.
async fn http_creates(addr: std::net::SocketAddr, count: usize) {
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/api/orders");
    let body = serde_json::json!({"customer_id": CUSTOMER, "items": [{"sku": "B-1", "quantity": 1, "unit_price_cents": 999}]});
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    join_all((0..CONCURRENCY).map(|_| {
        let (http, url, body, next) = (http.clone(), url.clone(), body.clone(), Arc::clone(&next));
        async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                let response = http.post(&url).json(&body).send().await.expect("sent");
                assert_eq!(response.status(), 201, "created");
            }
        }
    }))
    .await;
}

/// The server under callgrind as `name`, sent `orders` creates over HTTP, then stopped
/// once its relay has published them; returns the instructions it executed.
async fn http_run(name: &str, orders: usize) -> u64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let (wrapper, file) = callgrind(name);
    let server = Server::start_under(&wrapper, dir.path(), &[]).await;
    http_creates(server.addr, orders).await;
    let conn = embedded::database(dir.path());
    while embedded::checkpoint(&conn) < orders as i64 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
    instructions(&file)
}

/// This binary under callgrind as `name`, committing `orders` creates in-process.
async fn direct_run(name: &str, orders: usize) -> u64 {
    let (wrapper, file) = callgrind(name);
    let status = Process::new(&wrapper[0])
        .args(&wrapper[1..])
        .arg(std::env::current_exe().expect("this binary"))
        .args([DIRECT, &orders.to_string()])
        .status()
        .await
        .expect("valgrind runs");
    assert!(status.success(), "the direct run failed: {status}");
    instructions(&file)
}

/// Scenario 4's workload, run inside callgrind: `orders` creates, 16 at a time, through the
/// store with the server's relay in-process; returns once the relay has published them.
async fn direct_creates(orders: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store =
        Arc::new(SqliteStore::open(&embedded::store_options(dir.path())).expect("store opens"));
    let relay = InProcessRelay::spawn(Arc::clone(&store));
    embedded::create_many(&store, orders, CONCURRENCY).await;
    let conn = embedded::database(dir.path());
    while embedded::checkpoint(&conn) < orders as i64 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    relay.stop().await;
}

/// Instructions per unit of work: the run with `count` units less the run with none.
fn per_unit(with: u64, without: u64, count: usize) -> f64 {
    with.saturating_sub(without) as f64 / count as f64
}

#[tokio::main]
async fn main() {
    if let Some(orders) = std::env::args()
        .skip_while(|a| a != DIRECT)
        .nth(1)
        .and_then(|n| n.parse().ok())
    {
        return direct_creates(orders).await;
    }
    let n: usize = arg("--events", 10_000);
    eprintln!("callgrind runs of {n} events/orders (each a few minutes under valgrind)");
    let log = per_unit(
        relay_run("relay-log", n, &[]).await,
        relay_run("relay-log-idle", 0, &[]).await,
        n,
    );
    let broker = Broker::start().await;
    let kafka_env = [("KAFKA_BROKERS", broker.address.as_str())];
    let kafka = per_unit(
        relay_run("relay-kafka", n, &kafka_env).await,
        relay_run("relay-kafka-idle", 0, &kafka_env).await,
        n,
    );
    let http = per_unit(http_run("http", n).await, http_run("http-idle", 0).await, n);
    let direct = per_unit(
        direct_run("direct", n).await,
        direct_run("direct-idle", 0).await,
        n,
    );
    println!("### Instructions per event and per order (`make bench-cpu`)\n");
    println!("Machine: {}; {n} events/orders per run.\n", machine());
    println!("| scenario | instructions |");
    println!("|---|---:|");
    println!("| relay → embedded log, per event | {log:.0} |");
    println!("| relay → Kafka (tansu), per event | {kafka:.0} |");
    println!("| HTTP create (+ its relay to the embedded log), per order | {http:.0} |");
    println!("| direct store create (+ the same relay), per order | {direct:.0} |");
    println!("\nHTTP / direct: {:.2}×", http / direct);
}
