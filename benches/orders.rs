//! `make bench`: durable order creation over HTTP against the release server binary, and in
//! the same run the baseline: the store's write path called directly (no HTTP), with the same
//! durability (`synchronous=FULL`), the same concurrency, and the same relay publishing every
//! event to the embedded topic log in streaming mode, so the two differ only by HTTP.
//!
//! Options (after `--`): `--connections N` (default 64), `--seconds S` (default 10),
//! `--rounds R` (default 3): HTTP and the direct baseline take turns R times, and the ratio is
//! taken between their medians (one pair of runs moved by ±0.05 from run to run).
//! Prints a Markdown report for docs/BENCHMARKS.md, with the CPU time each side spent per
//! order (read from /proc), because client and server share this machine's cores.
//!
//! The load generator keeps one keep-alive HTTP/1.1 connection per worker and writes the
//! same pre-built request on it each time, reading each answer whole (httparse), so that as
//! little CPU as possible goes to the client.
//!
//! This process runs on the runtime the server builds by default (`WORKER_THREADS` unset:
//! one worker fewer than the CPUs, the writer thread keeping a core): the baseline's store
//! and relay then run as the server's do, and the load generator takes no more threads than
//! the server's own workers.

use clap::Parser;
use futures::future::join_all;
use outbox::config::Config;
use outbox::store::OrderStore;
use outbox::store::sqlite::SqliteStore;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::embedded::{self, CUSTOMER, InProcessRelay};
use support::{Server, cpu_seconds, rss_mib};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;

/// Settings from the command line.
struct Options {
    connections: usize,
    seconds: u64,
    rounds: usize,
}

fn options() -> Options {
    Options {
        connections: support::arg("--connections", 64),
        seconds: support::arg("--seconds", 10),
        rounds: support::arg("--rounds", 3usize).max(1),
    }
}

/// Completed operations and their latencies.
struct Run {
    ok: usize,
    failed: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// CPU seconds spent by (server, load generator) during the run.
    cpu: (f64, f64),
    /// How long after the load stopped the relay had every event on the topic.
    drain: Duration,
    /// The server's resident memory at the end of the load, in MiB (0 when in-process).
    server_rss: f64,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        support::percentile(&self.latencies, p)
    }

    fn row(&self, name: &str) -> String {
        let per_order = |cpu: f64| cpu * 1e6 / self.ok.max(1) as f64;
        format!(
            "| {name} | {:.0} | {:.1} | {:.1} | {} | {} | {:.0} | {:.0} | {} |",
            self.per_second(),
            self.percentile(0.50).as_secs_f64() * 1e3,
            self.percentile(0.99).as_secs_f64() * 1e3,
            self.ok,
            self.failed,
            per_order(self.cpu.0),
            per_order(self.cpu.1),
            self.drain.as_millis(),
        )
    }
}

/// Runs `workers` loops until the deadline. Each worker starts from `init(worker)` and calls
/// `op(state)` repeatedly; `op` hands the state back with whether the operation succeeded.
async fn drive<S, Init, InitFut, Op, OpFut>(
    workers: usize,
    duration: Duration,
    init: Init,
    op: Op,
) -> Run
where
    S: Send + 'static,
    Init: Fn(usize) -> InitFut + Clone + Send + 'static,
    InitFut: std::future::Future<Output = S> + Send,
    Op: Fn(S) -> OpFut + Clone + Send + 'static,
    OpFut: std::future::Future<Output = (S, bool)> + Send,
{
    let mut states = Vec::with_capacity(workers);
    for w in 0..workers {
        states.push(init.clone()(w).await);
    }
    let start = Instant::now();
    let deadline = start + duration;
    let tasks = states.into_iter().map(|mut state| {
        let op = op.clone();
        tokio::spawn(async move {
            let (mut ok, mut failed, mut latencies) = (0, 0, Vec::new());
            while Instant::now() < deadline {
                let t = Instant::now();
                let (next, success) = op(state).await;
                state = next;
                if success {
                    ok += 1;
                    latencies.push(t.elapsed());
                } else {
                    failed += 1;
                }
            }
            (ok, failed, latencies)
        })
    });
    let mut run = Run {
        ok: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
        cpu: (0.0, 0.0),
        drain: Duration::ZERO,
        server_rss: 0.0,
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

/// Waits until the embedded topic log holds as many messages as the outbox has events, and
/// says how long that took.
async fn drain_time(data_dir: &std::path::Path) -> Duration {
    let db = data_dir.join(outbox::store::sqlite::DATABASE_FILE);
    let conn = rusqlite::Connection::open(db).expect("open database");
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap_or(-1) };
    let start = Instant::now();
    while count("SELECT count(*) FROM topic_messages") < count("SELECT count(*) FROM outbox") {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the relay never caught up"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

/// One keep-alive HTTP/1.1 connection of the load generator. It writes the same pre-built
/// create request every time and reads each answer whole — status line, headers and the
/// `Content-Length` body — before sending the next; nothing else runs on its behalf (a hyper
/// client connection adds a task and two channel hand-offs per request, which cost the
/// server's shared cores about 3 µs of CPU per order).
struct Client {
    stream: TcpStream,
    /// The whole request: head and body.
    request: Vec<u8>,
    /// The answer read so far.
    answer: Vec<u8>,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr, worker: usize) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let body = json!({"customer_id": CUSTOMER, "items": [{"sku": format!("B-{worker}"), "quantity": 1, "unit_price_cents": 999}]});
        let body = serde_json::to_vec(&body).expect("json");
        let mut request = format!(
            "POST /api/orders HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&body);
        Self {
            stream,
            request,
            answer: Vec::with_capacity(4096),
        }
    }

    /// Creates one order: true if the answer was `201 Created`, read to its end.
    async fn create(&mut self) -> bool {
        if self.stream.write_all(&self.request).await.is_err() {
            return false;
        }
        self.answer.clear();
        loop {
            match self.stream.read_buf(&mut self.answer).await {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&self.answer) {
                Ok(httparse::Status::Complete(head)) => {
                    let length = response
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                        .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
                        .expect("the server answers with a Content-Length");
                    if self.answer.len() >= head + length {
                        return response.code == Some(201);
                    }
                }
                Ok(httparse::Status::Partial) => {}
                Err(_) => return false,
            }
        }
    }
}

async fn http_run(o: &Options, connections: usize) -> Run {
    let data = tempfile::tempdir().expect("temp dir");
    let server = Server::start(data.path(), &[]).await;
    let (server_pid, addr) = (server.pid, server.addr);
    let init = move |worker: usize| Client::connect(addr, worker);
    let op = |mut client: Client| async move {
        let ok = client.create().await;
        (client, ok)
    };
    let (server_cpu, client_cpu) = (cpu_seconds(server_pid), cpu_seconds(std::process::id()));
    let mut run = drive(connections, Duration::from_secs(o.seconds), init, op).await;
    run.cpu = (
        cpu_seconds(server_pid) - server_cpu,
        cpu_seconds(std::process::id()) - client_cpu,
    );
    run.server_rss = rss_mib(server_pid);
    drop(server);
    run
}

async fn store_run(o: &Options, concurrency: usize) -> Run {
    let data = tempfile::tempdir().expect("temp dir");
    let sqlite =
        Arc::new(SqliteStore::open(&embedded::store_options(data.path())).expect("store opens"));
    // The server's defaults: streaming relay into the embedded topic log.
    let relay = InProcessRelay::spawn(Arc::clone(&sqlite));
    let init = move |_| {
        let store = Arc::clone(&sqlite);
        async move { store }
    };
    let op = |store: Arc<SqliteStore>| async move {
        let ok = store
            .apply_traced(embedded::create(), embedded::trace())
            .await
            .is_ok();
        (store, ok)
    };
    let cpu = cpu_seconds(std::process::id());
    let mut run = drive(concurrency, Duration::from_secs(o.seconds), init, op).await;
    // The store and the relay run inside this process: all of it is "server" time.
    run.cpu = (cpu_seconds(std::process::id()) - cpu, 0.0);
    run.drain = drain_time(data.path()).await;
    relay.stop().await;
    run
}

fn main() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let defaults = Config::try_parse_from(["outbox"]).expect("the default configuration");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(defaults.worker_threads(cpus))
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(run());
}

async fn run() {
    let o = options();
    let c = o.connections;
    eprintln!(
        "running: {c} connections, {} s per scenario, {} rounds",
        o.seconds, o.rounds
    );
    let (mut https, mut stores) = (Vec::new(), Vec::new());
    for round in 1..=o.rounds {
        eprintln!("round {round}: HTTP, then the direct store");
        https.push(http_run(&o, c).await);
        stores.push(store_run(&o, c).await);
    }
    let single = store_run(&o, 1).await;
    println!("Machine: {}  ", support::machine());
    println!(
        "Command: `make bench BENCH_ARGS=\"--connections {c} --seconds {} --rounds {}\"`\n",
        o.seconds, o.rounds
    );
    println!(
        "| scenario | orders/s | p50 ms | p99 ms | ok | failed | server CPU µs/order | load generator CPU µs/order | relay drained after (ms) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (round, (http, store)) in https.iter().zip(&stores).enumerate() {
        let round = round + 1;
        println!(
            "{}",
            http.row(&format!("{round}: HTTP POST /api/orders, {c} connections"))
        );
        println!(
            "{}",
            store.row(&format!(
                "{round}: store.apply direct (baseline), {c} concurrent"
            ))
        );
    }
    println!(
        "{}",
        single.row("store.apply direct, 1 at a time (no group commit possible)")
    );
    let median = |runs: &mut Vec<Run>| {
        runs.sort_by(|a, b| a.per_second().total_cmp(&b.per_second()));
        runs.swap_remove(runs.len() / 2)
    };
    let (http, store) = (median(&mut https), median(&mut stores));
    println!(
        "\nMedians: HTTP {:.0} orders/s, direct store {:.0}; HTTP / direct-store ratio: **{:.2}**. \
         Server RSS at the end of the median HTTP run: {:.0} MiB.",
        http.per_second(),
        store.per_second(),
        http.per_second() / store.per_second(),
        http.server_rss
    );
}
