//! `make bench`: durable order creation over HTTP against the release server binary, and in
//! the same run the baseline: the store's write path called directly (no HTTP), with the same
//! durability (`synchronous=FULL`) and the same concurrency.
//!
//! Options (after `--`): `--connections N` (default 64), `--seconds S` (default 10).
//! Prints a Markdown report for docs/BENCHMARKS.md.

use futures::future::join_all;
use outbox::domain::{NewOrder, RawItem};
use outbox::store::sqlite::{SqliteOptions, SqliteStore, Synchronous};
use outbox::store::{Command, OutboxStore};
use serde_json::json;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command as Process;

const CUSTOMER: &str = "0193a5e0-7d1c-7b3a-9c4e-2f5d6a7b8c9d";

/// Settings from the command line.
struct Options {
    connections: usize,
    seconds: u64,
}

fn options() -> Options {
    let mut o = Options {
        connections: 64,
        seconds: 10,
    };
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        match pair[0].as_str() {
            "--connections" => o.connections = pair[1].parse().expect("--connections N"),
            "--seconds" => o.seconds = pair[1].parse().expect("--seconds S"),
            _ => {}
        }
    }
    o
}

/// Completed operations and their latencies.
struct Run {
    ok: usize,
    failed: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i]
    }

    fn row(&self, name: &str) -> String {
        format!(
            "| {name} | {:.0} | {:.1} | {:.1} | {} | {} |",
            self.per_second(),
            self.percentile(0.50).as_secs_f64() * 1e3,
            self.percentile(0.99).as_secs_f64() * 1e3,
            self.ok,
            self.failed
        )
    }
}

/// Runs `workers` loops of `op` until the deadline and gathers the results.
async fn drive<F, Fut>(workers: usize, duration: Duration, op: F) -> Run
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let start = Instant::now();
    let deadline = start + duration;
    let tasks = (0..workers).map(|w| {
        let op = op.clone();
        tokio::spawn(async move {
            let (mut ok, mut failed, mut latencies) = (0, 0, Vec::new());
            let mut n = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                if op(w * 1_000_000 + n).await {
                    ok += 1;
                    latencies.push(t.elapsed());
                } else {
                    failed += 1;
                }
                n += 1;
            }
            (ok, failed, latencies)
        })
    });
    let mut run = Run {
        ok: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for r in join_all(tasks).await {
        let (ok, failed, latencies) = r.expect("worker");
        run.ok += ok;
        run.failed += failed;
        run.latencies.extend(latencies);
    }
    run.elapsed = start.elapsed();
    run.latencies.sort_unstable();
    run
}

async fn http_run(o: &Options, connections: usize) -> Run {
    let data = tempfile::tempdir().expect("temp dir");
    let mut server = Process::new(env!("CARGO_BIN_EXE_outbox"))
        .env("DATA_DIR", data.path())
        .env("LEPTOS_SITE_ADDR", "127.0.0.1:0")
        .env("SQLITE_SYNCHRONOUS", "full")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("server starts");
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let line = lines.next_line().await.unwrap().expect("address line");
    let url = format!("{}/api/orders", line.trim_start_matches("listening on "));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap();
    let run = drive(connections, Duration::from_secs(o.seconds), move |n| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let body = json!({"customer_id": CUSTOMER, "items": [{"sku": format!("B-{n}"), "quantity": 1, "unit_price_cents": 999}]});
            matches!(client.post(&url).json(&body).send().await, Ok(r) if r.status() == 201)
        }
    })
    .await;
    server.start_kill().ok();
    run
}

async fn store_run(o: &Options, concurrency: usize) -> Run {
    let data = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn OutboxStore> = Arc::new(
        SqliteStore::open(&SqliteOptions {
            data_dir: data.path().to_path_buf(),
            synchronous: Synchronous::Full,
            max_batch: 512,
            queue_capacity: 8192,
            readers: 1,
        })
        .expect("store opens"),
    );
    drive(concurrency, Duration::from_secs(o.seconds), move |n| {
        let store = Arc::clone(&store);
        async move {
            let items = [RawItem {
                sku: format!("B-{n}"),
                quantity: 1,
                unit_price_cents: 999,
            }];
            let order = NewOrder::parse(CUSTOMER, &items).expect("valid order");
            store
                .apply(Command::Create {
                    order,
                    idempotency_key: None,
                })
                .await
                .is_ok()
        }
    })
    .await
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

#[tokio::main]
async fn main() {
    let o = options();
    let c = o.connections;
    eprintln!("running: {c} connections, {} s per scenario", o.seconds);
    let http = http_run(&o, c).await;
    let store = store_run(&o, c).await;
    let single = store_run(&o, 1).await;
    println!("Machine: {}  ", machine());
    println!(
        "Command: `make bench BENCH_ARGS=\"--connections {c} --seconds {}\"`\n",
        o.seconds
    );
    println!("| scenario | orders/s | p50 ms | p99 ms | ok | failed |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "{}",
        http.row(&format!("HTTP POST /api/orders, {c} connections"))
    );
    println!(
        "{}",
        store.row(&format!("store.apply direct (baseline), {c} concurrent"))
    );
    println!(
        "{}",
        single.row("store.apply direct, 1 at a time (no group commit possible)")
    );
    println!(
        "\nHTTP / direct-store ratio: {:.2}",
        http.per_second() / store.per_second()
    );
}
