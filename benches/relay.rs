//! `make bench`, relay part: the relay publishing to a real Kafka-protocol broker (tansu, the
//! binary named by `TANSU`, which the Makefile sets), beside a raw rdkafka producer measured
//! in the same run against the same broker.
//!
//! 1. **Backlog drain.** `--backlog` events (default 100,000) are committed while no server
//!    runs; then the release server starts with `KAFKA_BROKERS` and its relay drains them.
//!    Events/s from the server's start until its checkpoint covers the backlog; the server's
//!    RSS is sampled while it drains and once it is idle. **Baseline:** a raw `FutureProducer`
//!    with the relay's producer settings sends the very same messages (built from the same
//!    outbox) to another topic on the same broker, all enqueued at once and then awaited;
//!    timed from before it creates its clients and topic, as the server is from its start.
//!    The two take turns for `--rounds` rounds (default 3), each drain on a fresh copy of the
//!    backlog; the report compares their medians.
//! 2. **Commit→acknowledged latency** at a steady `--rate` (default 1,000 orders/s) for
//!    `--seconds` (default 10), in streaming and in polling mode (`--poll-interval-ms`, default
//!    500): creates over HTTP paced by a timer; afterwards each event's latency is its
//!    delivery's `published_at` (taken when the broker acknowledged) minus its `occurred_at`
//!    (stamped before the commit), read from the database.
//!
//! Prints a Markdown report for docs/BENCHMARKS.md.

use futures::future::join_all;
use outbox::publish::kafka::{self, KafkaSettings};
use outbox::publish::{DEFAULT_CLOUDEVENTS_SOURCE, Encoder, EventFormat, Message, TopicRouter};
use outbox::store::OutboxLog;
use outbox::store::sqlite::SqliteStore;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;
use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};
use support::embedded::{self, CUSTOMER};
use support::{Broker, Server, cpu_seconds, percentile, rss_mib};

mod support;

const PARTITIONS: i32 = 3;
/// The admin secret of the bench's servers (fault injection needs it).
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";

/// The server's settings for the Kafka sink, and the same for the baseline producer.
fn kafka_settings(broker: &Broker) -> KafkaSettings {
    KafkaSettings {
        brokers: broker.address.clone(),
        partitions: PARTITIONS,
        replication: 1,
        queue_max_kbytes: 32_768,
        message_timeout: Duration::from_secs(300),
        ack_timeout: Duration::from_secs(5),
    }
}

/// Commits `events` creates into a new store in `dir` and returns the messages the relay
/// will make of them, routed to `raw_topic_template` instead.
async fn prefill(dir: &Path, events: usize, raw_topic_template: &str) -> Vec<Message> {
    let store = embedded::prefill(dir, events).await;
    let encoder = Encoder::new(
        TopicRouter::new(raw_topic_template).expect("template"),
        EventFormat::Outbox,
        DEFAULT_CLOUDEVENTS_SOURCE,
    );
    let mut messages = Vec::with_capacity(events);
    while messages.len() < events {
        let after = messages.len() as u64;
        let batch = store.events_after(after, 10_000).await.expect("read");
        messages.extend(batch.iter().map(|e| encoder.message(e)));
    }
    messages
}

/// A copy of the prefilled store in a new directory, so every round drains the same backlog.
fn copy_store(prefilled: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(prefilled).expect("prefilled dir") {
        let entry = entry.expect("dir entry");
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
    }
    dir
}

/// The one integer `sql` selects.
fn scalar(conn: &rusqlite::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap_or(0)
}

/// What the backlog drain measured.
struct Drain {
    events: usize,
    elapsed: Duration,
    /// From the server's start to its first recorded acknowledgement.
    first_ack: Duration,
    peak_rss: f64,
    idle_rss: f64,
    cpu: f64,
}

/// Starts the server on the prefilled `dir` and waits until its relay has acknowledged all
/// `events`, sampling its memory.
async fn drain(dir: &Path, broker: &Broker, events: usize) -> Drain {
    let partitions = PARTITIONS.to_string();
    let start = Instant::now();
    let server = Server::start(
        dir,
        &[
            ("KAFKA_BROKERS", &broker.address),
            ("KAFKA_PARTITIONS", &partitions),
        ],
    )
    .await;
    let conn = embedded::database(dir);
    let mut peak_rss: f64 = 0.0;
    let mut first_ack = None;
    loop {
        let checkpoint = embedded::checkpoint(&conn);
        if checkpoint > 0 && first_ack.is_none() {
            first_ack = Some(start.elapsed());
        }
        if checkpoint >= events as i64 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "the relay never drained"
        );
        peak_rss = peak_rss.max(rss_mib(server.pid));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = start.elapsed();
    let cpu = cpu_seconds(server.pid);
    // Let the allocator settle, then look again: nothing is arriving any more.
    tokio::time::sleep(Duration::from_secs(3)).await;
    Drain {
        events,
        elapsed,
        first_ack: first_ack.unwrap_or(elapsed),
        peak_rss,
        idle_rss: rss_mib(server.pid),
        cpu,
    }
}

/// The raw producer: every message enqueued as fast as the buffer allows, then all awaited.
/// Timed like the relay, from before its clients exist: creating them, the topic, and the
/// producer's first metadata are part of both sides' work.
async fn raw_producer(broker: &Broker, messages: &[Message]) -> Duration {
    let start = Instant::now();
    let settings = kafka_settings(broker);
    let admin: AdminClient<DefaultClientContext> = kafka::producer_config(&settings)
        .create()
        .expect("admin client");
    let topics: Vec<NewTopic<'_>> = vec![NewTopic::new(
        &messages[0].topic,
        PARTITIONS,
        TopicReplication::Fixed(1),
    )];
    admin
        .create_topics(&topics, &AdminOptions::new())
        .await
        .expect("create topic");
    let producer: FutureProducer = kafka::producer_config(&settings)
        .create()
        .expect("producer");
    let mut pending = VecDeque::new();
    for m in messages {
        loop {
            match producer.send_result(kafka::record(m)) {
                Ok(delivery) => {
                    pending.push_back(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    let oldest = pending.pop_front().expect("a full queue has messages");
                    oldest.await.expect("delivery").expect("acknowledged");
                }
                Err((e, _)) => panic!("send failed: {e}"),
            }
        }
    }
    for delivery in pending {
        delivery.await.expect("delivery").expect("acknowledged");
    }
    start.elapsed()
}

/// What one steady-rate run measured.
struct Steady {
    sent: usize,
    ok: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

/// Creates one order; true on 201.
async fn create_order(http: reqwest::Client, url: String) -> bool {
    let body = serde_json::json!({"customer_id": CUSTOMER, "items": [{"sku": "L-1", "quantity": 1, "unit_price_cents": 999}]});
    http.post(url)
        .json(&body)
        .send()
        .await
        .is_ok_and(|r| r.status() == 201)
}

/// Sends `count` creates to `url` at `rate` per second (each on its own task, so a slow
/// answer does not slow the pace); returns how many succeeded.
async fn paced(url: String, rate: u32, count: usize) -> usize {
    let http = reqwest::Client::new();
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut requests = Vec::with_capacity(count);
    for _ in 0..count {
        ticks.tick().await;
        requests.push(tokio::spawn(create_order(http.clone(), url.clone())));
    }
    join_all(requests)
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(true)))
        .count()
}

/// A server publishing to `broker` under `name`'s own topic, with `env` added, after one
/// warm-up order (the first publish creates the topic). Returns it with its database.
async fn warm_server(
    broker: &Broker,
    dir: &Path,
    name: &str,
    env: &[(&str, &str)],
) -> (Server, rusqlite::Connection) {
    let partitions = PARTITIONS.to_string();
    let template = format!("bench.{name}.{{aggregate_type}}");
    let base = [
        ("KAFKA_BROKERS", broker.address.as_str()),
        ("KAFKA_PARTITIONS", &partitions),
        ("TOPIC_TEMPLATE", &template),
        ("ADMIN_TOKEN", ADMIN_TOKEN),
    ];
    let server = Server::start(dir, &[&base[..], env].concat()).await;
    let conn = embedded::database(dir);
    let url = format!("http://{}/api/orders", server.addr);
    assert!(create_order(reqwest::Client::new(), url).await);
    while embedded::checkpoint(&conn) < 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (server, conn)
}

/// Creates orders over HTTP at `rate` per second for `seconds` against a server in `mode`,
/// then reads every event's commit→acknowledged latency from the database.
async fn steady(broker: &Broker, mode: &str, poll_ms: u64, rate: u32, seconds: u64) -> Steady {
    let dir = tempfile::tempdir().expect("temp dir");
    let poll = format!("{poll_ms}ms");
    let (server, conn) = warm_server(
        broker,
        dir.path(),
        mode,
        &[("RELAY_MODE", mode), ("POLL_INTERVAL", &poll)],
    )
    .await;
    let sent = usize::try_from(u64::from(rate) * seconds).expect("count");
    let start = Instant::now();
    let ok = paced(format!("http://{}/api/orders", server.addr), rate, sent).await;
    let elapsed = start.elapsed();
    let last = scalar(&conn, "SELECT coalesce(max(position), 0) FROM outbox");
    while embedded::checkpoint(&conn) < last {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(server);
    // Read back through the store, as the order page does.
    let store = SqliteStore::open(&embedded::store_options(dir.path())).expect("store opens");
    let mut latencies = Vec::with_capacity(sent);
    let mut after = 1;
    loop {
        let events = store.events_after(after, 10_000).await.expect("read");
        let Some(last) = events.last() else { break };
        after = last.position;
        let positions = events.iter().map(|e| e.position).collect();
        let delivered = store.deliveries(positions).await.expect("deliveries");
        latencies.extend(events.iter().map(|e| {
            let published = delivered[&e.position].published_at;
            (published - e.envelope.occurred_at)
                .to_std()
                .unwrap_or(Duration::ZERO)
        }));
    }
    latencies.sort_unstable();
    Steady {
        sent,
        ok,
        elapsed,
        latencies,
    }
}

/// What the outage scenario measured.
struct Outage {
    /// From clearing the fault until everything committed before that was acknowledged.
    recovery: Duration,
    /// Events waiting when the fault was cleared.
    backlog: i64,
    ok: usize,
    sent: usize,
    dead_letters: i64,
    /// The breaker's transitions, as `from→to` names.
    transitions: Vec<String>,
}

/// Steady creates at `rate` per second; after 5 s the sink fails (fault injection `down`)
/// for `outage`, then works again; measures how long the relay takes to catch up. Runs with
/// the default retry and breaker settings.
async fn outage(broker: &Broker, rate: u32, outage: Duration) -> Outage {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, conn) = warm_server(broker, dir.path(), "outage", &[]).await;
    let before = Duration::from_secs(5);
    let total = before + outage + Duration::from_secs(5);
    let sent = usize::try_from(u64::from(rate) * total.as_secs()).expect("count");
    let load = tokio::spawn(paced(
        format!("http://{}/api/orders", server.addr),
        rate,
        sent,
    ));
    let admin = |body: serde_json::Value| {
        let url = format!("http://{}/api/admin/faults", server.addr);
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .bearer_auth(ADMIN_TOKEN)
                .json(&body)
                .send()
                .await
                .expect("fault request");
            assert!(r.status().is_success(), "fault request: {}", r.status());
        }
    };
    tokio::time::sleep(before).await;
    admin(serde_json::json!({"mode": "down"})).await;
    tokio::time::sleep(outage).await;
    let target = scalar(&conn, "SELECT coalesce(max(position), 0) FROM outbox");
    let backlog = target - embedded::checkpoint(&conn);
    let cleared = Instant::now();
    admin(serde_json::json!({"mode": "none"})).await;
    while embedded::checkpoint(&conn) < target {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let recovery = cleared.elapsed();
    let ok = load.await.expect("load");
    let status: serde_json::Value = reqwest::Client::new()
        .get(format!("http://{}/api/admin/relay", server.addr))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("status JSON");
    let transitions = status["breaker"]["transitions"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    format!(
                        "{}→{}",
                        t["from"].as_str().unwrap_or("?"),
                        t["to"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Outage {
        recovery,
        backlog,
        ok,
        sent,
        dead_letters: scalar(&conn, "SELECT count(*) FROM dead_letters"),
        transitions,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    let backlog: usize = support::arg("--backlog", 100_000);
    let rate: u32 = support::arg("--rate", 1_000);
    let seconds: u64 = support::arg("--seconds", 10);
    let poll_ms: u64 = support::arg("--poll-interval-ms", 500);
    let rounds: usize = support::arg("--rounds", 3);
    let broker = Broker::start().await;

    eprintln!("committing a backlog of {backlog} events");
    let prefilled = tempfile::tempdir().expect("temp dir");
    let messages = prefill(prefilled.path(), backlog, "bench.raw.{aggregate_type}").await;
    let bytes: usize = messages
        .iter()
        .map(|m| {
            m.key.len()
                + m.value.len()
                + m.headers
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>()
        })
        .sum();
    // The two sides take turns, so a disturbance from outside (the machine is shared) hits
    // one round of both rather than all of one; the medians are compared.
    let mut raws = Vec::new();
    let mut drains = Vec::new();
    for round in 1..=rounds {
        eprintln!("round {round}: raw producer, {backlog} messages");
        raws.push(raw_producer(&broker, &messages).await);
        eprintln!("round {round}: relay draining the backlog");
        let dir = copy_store(prefilled.path());
        drains.push(drain(dir.path(), &broker, backlog).await);
    }
    drop(messages);
    let mut steady_runs = Vec::new();
    for mode in ["streaming", "polling"] {
        eprintln!("{mode}: {rate} orders/s for {seconds} s");
        steady_runs.push((mode, steady(&broker, mode, poll_ms, rate, seconds).await));
    }
    let outage_rate: u32 = support::arg("--outage-rate", 500);
    let outage_seconds: u64 = support::arg("--outage-seconds", 10);
    eprintln!("outage: {outage_rate} orders/s, sink down for {outage_seconds} s");
    let o = outage(&broker, outage_rate, Duration::from_secs(outage_seconds)).await;

    let per_second = |n: usize, d: Duration| n as f64 / d.as_secs_f64();
    let median = |mut rates: Vec<f64>| {
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    };
    let relay_rate = median(
        drains
            .iter()
            .map(|d| per_second(d.events, d.elapsed))
            .collect(),
    );
    let raw_rate = median(raws.iter().map(|d| per_second(backlog, *d)).collect());
    let peak_rss = drains.iter().map(|d| d.peak_rss).fold(0.0, f64::max);
    let idle_rss = drains.iter().map(|d| d.idle_rss).fold(0.0, f64::max);
    println!("Machine: {}  ", support::machine());
    println!(
        "Command: `make bench-relay RELAY_BENCH_ARGS=\"--backlog {backlog} --rounds {rounds} --rate {rate} --seconds {seconds} --poll-interval-ms {poll_ms} --outage-rate {outage_rate} --outage-seconds {outage_seconds}\"`  "
    );
    println!(
        "Broker: tansu (memory storage) on loopback; messages average {} bytes (key + value + headers)\n",
        bytes / backlog.max(1)
    );
    println!(
        "| round | raw producer s | raw events/s | relay s | relay events/s | relay's first ack s | server CPU s |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for (round, (raw, d)) in raws.iter().zip(&drains).enumerate() {
        println!(
            "| {} | {:.2} | {:.0} | {:.2} | {:.0} | {:.2} | {:.2} |",
            round + 1,
            raw.as_secs_f64(),
            per_second(backlog, *raw),
            d.elapsed.as_secs_f64(),
            per_second(d.events, d.elapsed),
            d.first_ack.as_secs_f64(),
            d.cpu
        );
    }
    println!(
        "\nMedians: raw producer **{raw_rate:.0} events/s**, relay **{relay_rate:.0} events/s**; \
         relay / raw producer ratio: **{:.2}**. Server RSS: peak while draining **{peak_rss:.0} MiB**, \
         idle after **{idle_rss:.0} MiB**.\n",
        relay_rate / raw_rate,
    );
    println!("| mode | target rate/s | achieved/s | ok | failed | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (mode, s) in &steady_runs {
        println!(
            "| {mode} | {rate} | {:.0} | {} | {} | {:.1} | {:.1} | {:.1} |",
            per_second(s.ok, s.elapsed),
            s.ok,
            s.sent - s.ok,
            ms(percentile(&s.latencies, 0.50)),
            ms(percentile(&s.latencies, 0.99)),
            ms(s.latencies.last().copied().unwrap_or_default()),
        );
    }
    println!(
        "\nOutage: {outage_rate} orders/s, the sink down (fault injection) for {outage_seconds} s after 5 s, default retry and breaker settings. \
         Backlog when the fault was cleared: {} events; caught up **{:.1} s** later. \
         Dead letters afterwards: **{}**. Creates: {} of {} succeeded. Breaker: {}.",
        o.backlog,
        o.recovery.as_secs_f64(),
        o.dead_letters,
        o.ok,
        o.sent,
        o.transitions.join(", ")
    );
}
