//! All settings in one typed struct, read from flags or environment variables (`outbox --help`
//! lists them, grouped per subsystem, with their defaults). Each group turns into the options
//! its subsystem takes; where a subsystem has its own defaults (retry, breaker), the flags
//! take theirs from it, so every default is written once. Durations are written one way
//! (`250ms`, `30s`, `15m`, `12h`, `7d`: [`duration`]); secrets never show in `Debug` output.

pub mod duration;

use crate::cdc::timing::{CdcPreset, CdcTiming};
use crate::domain::Secret;
use crate::publish::kafka::{KafkaSettings, MAX_LAG_GROUPS};
use crate::publish::{
    DEFAULT_CLOUDEVENTS_SOURCE, DEFAULT_TOPIC_TEMPLATE, Encoder, EventFormat, TopicRouter,
    valid_source,
};
use crate::resilience::breaker::BreakerConfig;
use crate::resilience::retry::{Jitter, RetryConfig};
use crate::store::scylla::{ScyllaOptions, TlsOptions};
use crate::store::sqlite::{SqliteOptions, Synchronous};
use crate::telemetry::logs::LogFormat;
use app::dto::RelayMode;
use clap::Parser;
use duration::{Interval, between};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A day and a year, for the bounds of long durations.
const DAY: Duration = secs(86_400);
const YEAR: Duration = secs(365 * 86_400);

/// Transactional outbox console: order API, transactional writer and operations UI.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Config {
    #[command(flatten, next_help_heading = "HTTP server and console")]
    pub server: ServerConfig,

    #[command(flatten, next_help_heading = "Embedded store (SQLite)")]
    pub sqlite: SqliteConfig,

    #[command(flatten, next_help_heading = "Relay")]
    pub relay: RelayConfig,

    #[command(flatten, next_help_heading = "Retention")]
    pub retention: RetentionConfig,

    #[command(flatten, next_help_heading = "Kafka sink")]
    pub kafka: KafkaConfig,

    #[command(flatten, next_help_heading = "Retries")]
    pub retry: RetryArgs,

    #[command(flatten, next_help_heading = "Circuit breaker")]
    pub breaker: BreakerArgs,

    /// The store and, on ScyllaDB, its connection and CDC relay.
    #[command(flatten, next_help_heading = "ScyllaDB store")]
    pub scylla: ScyllaConfig,

    /// Log lines as `json` or `pretty` text; unset: JSON unless stderr is a terminal.
    #[arg(long, env = "LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// OTLP/HTTP collector to export spans to (HTTP request, store commit, relay publish):
    /// a base URL such as `http://127.0.0.1:4318`, `/v1/traces` appended. Unset: no spans.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_parser = otlp_endpoint)]
    pub otel_exporter_otlp_endpoint: Option<String>,

    /// `service.name` of the exported spans.
    #[arg(long, env = "OTEL_SERVICE_NAME", default_value = "outbox")]
    pub otel_service_name: String,
}

/// An OTLP/HTTP endpoint: plain `http://` (the exporter's client is built without TLS; run a
/// collector beside the server and let it forward over TLS).
fn otlp_endpoint(text: &str) -> Result<String, String> {
    let rest = text
        .strip_prefix("http://")
        .ok_or_else(|| format!("{text:?}: use an http:// URL of an OTLP/HTTP collector"))?;
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        return Err(format!("{text:?} names no host"));
    }
    Ok(text.to_string())
}

/// Where the server listens, and who may act as an operator.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerConfig {
    /// Address to listen on.
    #[arg(long, env = "LEPTOS_SITE_ADDR", default_value = "127.0.0.1:3000")]
    pub site_addr: SocketAddr,

    /// Directory of the built browser assets (cargo-leptos writes them to target/site).
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,

    /// Secret for admin actions (`Authorization: Bearer …`). Unset: a random one is generated
    /// at start-up and printed once to the log.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true, value_parser = Secret::parse)]
    pub admin_token: Option<Secret>,

    /// Whether operators may inject faults (`POST /api/admin/faults`), a drill tool: on for
    /// `make run`, off in the container image unless set.
    #[arg(long, env = "FAULT_INJECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub fault_injection: bool,

    /// The console is served over HTTPS (directly or behind a TLS proxy): the session cookie
    /// is `Secure` and named `__Host-outbox_session`, so only this host can set it.
    #[arg(long, env = "SECURE_COOKIES")]
    pub secure_cookies: bool,

    /// How long a console sign-in lasts.
    #[arg(long, env = "CONSOLE_SESSION_TTL", default_value_t = Interval(secs(8 * 3600)), value_parser = between(secs(1), YEAR))]
    pub console_session_ttl: Interval,

    /// Wrong admin tokens (bearer or sign-in) one client address may present within
    /// `AUTH_FAILURE_WINDOW` before it is refused (429) until the oldest leaves the window.
    #[arg(long, env = "AUTH_FAILURE_LIMIT", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub auth_failure_limit: u32,

    /// How long a client may take to send a request's head (request line and headers);
    /// slower connections are closed.
    #[arg(long, env = "HEADER_READ_TIMEOUT", default_value_t = Interval(secs(10)), value_parser = between(ms(100), secs(600)))]
    pub header_read_timeout: Interval,

    /// How long a request (other than the live feed) may take, body included; past it, 408.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value_t = Interval(secs(30)), value_parser = between(ms(100), secs(3600)))]
    pub request_timeout: Interval,

    /// Most requests (other than the live feed) handled at once; past it, 503 with
    /// `Retry-After`.
    #[arg(long, env = "MAX_REQUESTS", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_requests: u32,

    /// Most open connections; past it, new connections are closed at once.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Most live-feed streams (`/api/live`) open at once; past it, 503 with `Retry-After`.
    #[arg(long, env = "LIVE_MAX_CLIENTS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub live_max_clients: u32,

    /// The window of `AUTH_FAILURE_LIMIT`.
    #[arg(long, env = "AUTH_FAILURE_WINDOW", default_value_t = Interval(secs(300)), value_parser = between(secs(1), DAY))]
    pub auth_failure_window: Interval,

    /// Threads that serve requests and run the relay. Unset: one fewer than the CPUs with the
    /// embedded store (its single writer thread needs a core of its own: with two workers on
    /// two cores, HTTP creates were 12 % slower), every CPU with ScyllaDB; at least 1.
    #[arg(long, env = "WORKER_THREADS", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub worker_threads: Option<u32>,
}

/// The embedded store: the SQLite file in `DATA_DIR` and its group-commit writer.
#[derive(Debug, Clone, clap::Args)]
pub struct SqliteConfig {
    /// Directory for the embedded store's files (the SQLite database lives here).
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// SQLite durability: `full` syncs every commit to disk before it is acknowledged.
    #[arg(long, env = "SQLITE_SYNCHRONOUS", value_enum, default_value = "full")]
    pub sqlite_synchronous: Synchronous,

    /// Most order changes committed together in one transaction (group commit).
    #[arg(long, env = "WRITE_BATCH_MAX", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub write_batch_max: u32,

    /// Writes that may wait for the writer; beyond this, requests get 503 and should retry.
    #[arg(long, env = "WRITE_QUEUE_CAPACITY", default_value_t = 8192, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub write_queue_capacity: u32,

    /// Read-only SQLite connections for queries.
    #[arg(long, env = "SQLITE_READERS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub sqlite_readers: u32,
}

/// How the relay finds, batches and routes events.
#[derive(Debug, Clone, clap::Args)]
pub struct RelayConfig {
    /// How the relay learns of new events: `streaming` (woken by every commit) or `polling`.
    #[arg(long, env = "RELAY_MODE", value_enum, default_value = "streaming")]
    pub relay_mode: RelayMode,

    /// Polling mode: wait between queries for new events.
    #[arg(long, env = "POLL_INTERVAL", default_value_t = Interval(ms(500)), value_parser = between(ms(1), secs(60)))]
    pub poll_interval: Interval,

    /// Most events the relay reads and publishes per step.
    #[arg(long, env = "RELAY_BATCH_SIZE", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub relay_batch_size: u32,

    /// Most relay batches sent and not yet recorded: with 2 the next batch is read and
    /// enqueued while the sink acknowledges the last one; 1 sends one batch at a time.
    #[arg(long, env = "RELAY_PIPELINE_DEPTH", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub relay_pipeline_depth: u32,

    /// Topic of each event; `{aggregate_type}` is replaced (orders → `outbox.event.order`).
    #[arg(long, env = "TOPIC_TEMPLATE", default_value = DEFAULT_TOPIC_TEMPLATE)]
    pub topic_template: String,

    /// Record layout: `outbox` (envelope headers `event_id`, `event_type`, …) or
    /// `cloudevents` (CloudEvents 1.0 Kafka binding, binary mode: `ce_id`, `ce_type`, …).
    /// Applies to Kafka, the embedded log and dead-letter replays alike.
    #[arg(long, env = "EVENT_FORMAT", value_enum, default_value = "outbox")]
    pub event_format: EventFormat,

    /// CloudEvents `source` attribute (`ce_source`) of every event, a URI reference.
    #[arg(long, env = "CLOUDEVENTS_SOURCE", default_value = DEFAULT_CLOUDEVENTS_SOURCE,
          value_parser = valid_source)]
    pub cloudevents_source: String,
}

/// How long stored things are kept.
#[derive(Debug, Clone, clap::Args)]
pub struct RetentionConfig {
    /// Published events older than this are deleted.
    #[arg(long, env = "OUTBOX_RETENTION", default_value_t = Interval(7 * DAY), value_parser = duration::any)]
    pub outbox_retention: Interval,

    /// Idempotency keys are kept at least this long; afterwards the retention sweep deletes
    /// them, and a request that uses the key again creates a new order.
    #[arg(long, env = "IDEMPOTENCY_KEY_TTL", default_value_t = Interval(DAY), value_parser = duration::any)]
    pub idempotency_key_ttl: Interval,

    /// Messages of the embedded topic log older than this are deleted (like Kafka's
    /// `retention.ms`).
    #[arg(long, env = "TOPIC_LOG_RETENTION", default_value_t = Interval(7 * DAY), value_parser = duration::any)]
    pub topic_log_retention: Interval,

    /// Each topic of the embedded log keeps at most this many messages, the newest (like
    /// Kafka's `retention.bytes`, counted in messages).
    #[arg(long, env = "TOPIC_LOG_MAX_MESSAGES", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub topic_log_max_messages: u64,

    /// Audit log entries (operator actions) are kept at least this long; afterwards the
    /// retention sweep deletes them.
    #[arg(long, env = "AUDIT_RETENTION", default_value_t = Interval(90 * DAY), value_parser = duration::any)]
    pub audit_retention: Interval,

    /// How often the retention sweep runs.
    #[arg(long, env = "RETENTION_INTERVAL", default_value_t = Interval(secs(60)), value_parser = between(ms(10), DAY))]
    pub retention_interval: Interval,
}

/// The Kafka or Redpanda sink (unset brokers: the embedded topic log).
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaConfig {
    /// Kafka/Redpanda bootstrap servers (`host:port,…`). Unset: the embedded topic log.
    #[arg(long, env = "KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,

    /// Partitions of topics the relay creates before its first publish.
    #[arg(long, env = "KAFKA_PARTITIONS", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub kafka_partitions: i32,

    /// Replication factor of topics the relay creates before its first publish.
    #[arg(long, env = "KAFKA_REPLICATION", default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=100))]
    pub kafka_replication: i32,

    /// Bound of the producer's send buffer, in KiB (librdkafka's own default is 1 GiB).
    #[arg(long, env = "KAFKA_QUEUE_MAX_KBYTES", default_value_t = 32_768, value_parser = clap::value_parser!(u32).range(1..=2_097_151))]
    pub kafka_queue_max_kbytes: u32,

    /// How long the producer keeps retrying one message before reporting it failed
    /// (librdkafka's `message.timeout.ms`). Long, so a broker outage does not make the
    /// producer give up on (and later resend) what it holds.
    #[arg(long, env = "KAFKA_MESSAGE_TIMEOUT", default_value_t = Interval(secs(300)), value_parser = between(ms(1), secs(3600)))]
    pub kafka_message_timeout: Interval,

    /// How long one relay publish waits for acknowledgements before counting it as failed
    /// (the messages stay queued and are picked up by the retry).
    #[arg(long, env = "KAFKA_ACK_TIMEOUT", default_value_t = Interval(secs(5)), value_parser = between(ms(1), secs(600)))]
    pub kafka_ack_timeout: Interval,

    /// Consumer groups whose lag the console and `/metrics` report (`group,group`, at most
    /// 50). Unset: every consumer group with committed offsets on the relay's topics, among
    /// the first 50 of the cluster by name.
    #[arg(long, env = "KAFKA_LAG_GROUPS", value_parser = parse_lag_groups)]
    pub kafka_lag_groups: Option<LagGroups>,
}

/// The consumer groups named by `KAFKA_LAG_GROUPS`: 1 to [`MAX_LAG_GROUPS`] distinct names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LagGroups(pub Vec<String>);

/// `group,group`: names of 1–255 characters without control characters, at most
/// [`MAX_LAG_GROUPS`] of them; repeats count once.
fn parse_lag_groups(text: &str) -> Result<LagGroups, String> {
    let mut groups: Vec<String> = Vec::new();
    for name in text.split(',').map(str::trim) {
        if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
            return Err(format!(
                "{name:?} is not a consumer group name (1–255 characters, no control characters)"
            ));
        }
        if !groups.iter().any(|g| g == name) {
            groups.push(name.to_owned());
        }
    }
    if groups.len() > MAX_LAG_GROUPS {
        return Err(format!("at most {MAX_LAG_GROUPS} consumer groups"));
    }
    Ok(LagGroups(groups))
}

/// How failed publishes are retried; the defaults are [`RetryConfig::default`]'s.
#[derive(Debug, Clone, clap::Args)]
pub struct RetryArgs {
    /// Attempts per event while the sink takes other messages, before it is dead-lettered.
    /// An outage (nothing gets through) never uses them up.
    #[arg(long, env = "RETRY_MAX_ATTEMPTS", default_value_t = RetryConfig::default().max_attempts, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub retry_max_attempts: u32,

    /// Wait after the first failed publish (before jitter).
    #[arg(long, env = "RETRY_INITIAL_DELAY", default_value_t = Interval(RetryConfig::default().initial_delay), value_parser = between(ms(1), secs(600)))]
    pub retry_initial_delay: Interval,

    /// Longest wait between publish attempts (before jitter).
    #[arg(long, env = "RETRY_MAX_DELAY", default_value_t = Interval(RetryConfig::default().max_delay), value_parser = between(ms(1), secs(600)))]
    pub retry_max_delay: Interval,

    /// Growth of the wait from one attempt to the next.
    #[arg(long, env = "RETRY_MULTIPLIER", default_value_t = RetryConfig::default().multiplier, value_parser = parse_multiplier)]
    pub retry_multiplier: f64,

    /// Randomness of each wait: `full` (uniform between zero and the wait) or `none`.
    #[arg(long, env = "RETRY_JITTER", value_enum, default_value_t = RetryConfig::default().jitter)]
    pub retry_jitter: Jitter,
}

/// When the circuit breaker around the sink opens and how it recovers; the defaults are
/// [`BreakerConfig::default`]'s.
#[derive(Debug, Clone, clap::Args)]
pub struct BreakerArgs {
    /// Consecutive failed publishes that open the circuit breaker.
    #[arg(long, env = "BREAKER_FAILURE_THRESHOLD", default_value_t = BreakerConfig::default().failure_threshold, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub breaker_failure_threshold: u32,

    /// How long the open breaker refuses publishes before probing.
    #[arg(long, env = "BREAKER_OPEN_TIMEOUT", default_value_t = Interval(BreakerConfig::default().open_timeout), value_parser = between(ms(1), secs(3600)))]
    pub breaker_open_timeout: Interval,

    /// Probe publishes allowed at a time while the breaker is half-open.
    #[arg(long, env = "BREAKER_HALF_OPEN_MAX_CALLS", default_value_t = BreakerConfig::default().half_open_max_calls, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub breaker_half_open_max_calls: u32,

    /// Successful probes that close a half-open breaker.
    #[arg(long, env = "BREAKER_SUCCESS_THRESHOLD", default_value_t = BreakerConfig::default().success_threshold, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub breaker_success_threshold: u32,
}

/// Which store holds orders and the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// The embedded SQLite file in DATA_DIR.
    Sqlite,
    /// A ScyllaDB cluster (SCYLLA_*); the embedded topic log, if used, stays in DATA_DIR.
    Scylla,
}

/// Settings of the ScyllaDB store (used with `--store scylla`).
#[derive(Debug, Clone, clap::Args)]
pub struct ScyllaConfig {
    /// Which store holds orders and the outbox: `sqlite` (embedded) or `scylla`.
    #[arg(long, env = "STORE", value_enum, default_value = "sqlite")]
    pub store: StoreKind,

    /// ScyllaDB contact points (`host:port,…`); the driver discovers the other nodes.
    #[arg(
        long,
        env = "SCYLLA_NODES",
        default_value = "127.0.0.1:9042",
        value_delimiter = ','
    )]
    pub scylla_nodes: Vec<String>,

    /// Keyspace of the store, created at start-up if missing.
    #[arg(long, env = "SCYLLA_KEYSPACE", default_value = "outbox", value_parser = parse_keyspace)]
    pub scylla_keyspace: String,

    /// User name for password authentication (with SCYLLA_PASSWORD).
    #[arg(long, env = "SCYLLA_USERNAME", requires = "scylla_password")]
    pub scylla_username: Option<String>,

    /// Password for password authentication (with SCYLLA_USERNAME).
    #[arg(
        long,
        env = "SCYLLA_PASSWORD",
        hide_env_values = true,
        requires = "scylla_username",
        value_parser = Secret::password
    )]
    pub scylla_password: Option<Secret>,

    /// Connect to ScyllaDB over TLS, verifying the nodes' certificates.
    #[arg(long, env = "SCYLLA_TLS")]
    pub scylla_tls: bool,

    /// CA certificates (PEM) that sign the nodes' certificates; implies TLS. Unset: the
    /// system's trusted CAs.
    #[arg(long, env = "SCYLLA_TLS_CA_FILE")]
    pub scylla_tls_ca_file: Option<PathBuf>,

    /// Replication factor of the keyspace when it is created: 3 survives a node down; use 1
    /// only on a one-node development cluster (more replicas than a datacenter has nodes is
    /// refused at start-up, fewer than 3 on a cluster of 3 or more is logged as an error).
    #[arg(long, env = "SCYLLA_REPLICATION_FACTOR", default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=9))]
    pub scylla_replication_factor: u8,

    /// How long outbox events live on ScyllaDB before they expire: longer than any relay
    /// outage you want to survive.
    #[arg(long, env = "OUTBOX_TTL", default_value_t = Interval(7 * DAY), value_parser = between(secs(1), YEAR))]
    pub outbox_ttl: Interval,

    /// Polling relay on ScyllaDB: how far behind now it reads, so writes in flight have
    /// committed (also twice the driver's request timeout).
    #[arg(long, env = "SCYLLA_SETTLE", default_value_t = Interval(secs(4)), value_parser = between(ms(200), secs(600)))]
    pub scylla_settle: Interval,

    /// Polling relay on ScyllaDB: how old an announced event that has not committed must be
    /// before the relay settles its outcome with a LOCAL_SERIAL read (skipping it if it
    /// failed). At least the settle interval plus 1 s of clock skew.
    #[arg(long, env = "SCYLLA_ORPHAN_TIMEOUT", default_value_t = Interval(secs(5)), value_parser = between(secs(1), DAY))]
    pub scylla_orphan_timeout: Interval,

    /// CDC relay timing: `default` (scylla-cdc's defaults, 30–40 s latency) or `low-latency`
    /// (about 3 s, 40 times the queries).
    #[arg(long, env = "CDC_PRESET", value_enum, default_value = "default")]
    pub cdc_preset: CdcPreset,

    /// CDC relay: most log time one query reads (overrides the preset).
    #[arg(long, env = "CDC_WINDOW", value_parser = between(ms(1), secs(3600)))]
    pub cdc_window: Option<Interval>,

    /// CDC relay: how far behind now the reader stays (overrides the preset).
    #[arg(long, env = "CDC_SAFETY", value_parser = between(ms(0), secs(3600)))]
    pub cdc_safety: Option<Interval>,

    /// CDC relay: wait between reads once caught up (overrides the preset).
    #[arg(long, env = "CDC_SLEEP", value_parser = between(ms(1), secs(3600)))]
    pub cdc_sleep: Option<Interval>,
}

impl ScyllaConfig {
    /// Store options derived from this configuration and the idempotency keys' lifetime
    /// (a setting of every store; [`Config::scylla_options`] passes it).
    pub fn options(&self, idempotency_key_ttl: Duration) -> ScyllaOptions {
        let tls = (self.scylla_tls || self.scylla_tls_ca_file.is_some()).then(|| TlsOptions {
            ca_file: self.scylla_tls_ca_file.clone(),
        });
        ScyllaOptions {
            nodes: self.scylla_nodes.clone(),
            keyspace: self.scylla_keyspace.clone(),
            credentials: self
                .scylla_username
                .clone()
                .zip(self.scylla_password.clone()),
            tls,
            replication_factor: self.scylla_replication_factor,
            outbox_ttl: self.outbox_ttl.into(),
            idempotency_key_ttl,
            settle: self.scylla_settle.into(),
            orphan_timeout: self.scylla_orphan_timeout.into(),
        }
    }

    /// The CDC reader's timing: the preset, with explicit intervals replacing its own, and
    /// the safety interval raised to what the store's write timeout needs (logged if it was
    /// below).
    pub fn cdc_timing(&self) -> CdcTiming {
        let asked = self.cdc_preset.timing().with_overrides(
            self.cdc_window.map(Duration::from),
            self.cdc_safety.map(Duration::from),
            self.cdc_sleep.map(Duration::from),
        );
        let write_timeout = crate::store::scylla::write_timeout(self.scylla_settle.into());
        let timing = asked.with_safety_floor(CdcTiming::safety_floor(write_timeout));
        if timing != asked {
            tracing::warn!(
                asked = ?asked.safety,
                used = ?timing.safety,
                "CDC safety interval raised: a shorter one could miss writes that land late"
            );
        }
        timing
    }
}

/// A keyspace name that is safe to splice into CQL.
fn parse_keyspace(text: &str) -> Result<String, String> {
    crate::store::scylla::schema::check_keyspace(text)
        .map(|()| text.to_string())
        .map_err(|e| e.to_string())
}

impl Config {
    /// The ScyllaDB store's options.
    pub fn scylla_options(&self) -> ScyllaOptions {
        self.scylla
            .options(self.retention.idempotency_key_ttl.into())
    }

    /// Kafka settings, when brokers are configured.
    /// How events become records: the topic template, the format and its source.
    pub fn encoder(&self) -> Result<Encoder, String> {
        let r = &self.relay;
        Ok(Encoder::new(
            TopicRouter::new(&r.topic_template)?,
            r.event_format,
            &r.cloudevents_source,
        ))
    }

    pub fn kafka(&self) -> Option<KafkaSettings> {
        let k = &self.kafka;
        k.kafka_brokers.as_ref().map(|brokers| KafkaSettings {
            brokers: brokers.clone(),
            partitions: k.kafka_partitions,
            replication: k.kafka_replication,
            queue_max_kbytes: k.kafka_queue_max_kbytes,
            message_timeout: k.kafka_message_timeout.into(),
            ack_timeout: k.kafka_ack_timeout.into(),
        })
    }

    /// The consumer groups whose lag is reported (`KAFKA_LAG_GROUPS`); empty: any.
    pub fn kafka_lag_groups(&self) -> Vec<String> {
        self.kafka
            .kafka_lag_groups
            .clone()
            .map(|g| g.0)
            .unwrap_or_default()
    }

    /// The retry policy.
    pub fn retry(&self) -> RetryConfig {
        let r = &self.retry;
        RetryConfig {
            max_attempts: r.retry_max_attempts,
            initial_delay: r.retry_initial_delay.into(),
            max_delay: r.retry_max_delay.into(),
            multiplier: r.retry_multiplier,
            jitter: r.retry_jitter,
        }
    }

    /// The circuit breaker's settings.
    pub fn breaker(&self) -> BreakerConfig {
        let b = &self.breaker;
        BreakerConfig {
            failure_threshold: b.breaker_failure_threshold,
            open_timeout: b.breaker_open_timeout.into(),
            half_open_max_calls: b.breaker_half_open_max_calls,
            success_threshold: b.breaker_success_threshold,
        }
    }

    /// Store options derived from this configuration.
    /// The runtime's worker threads: `WORKER_THREADS`, else as its help says for `cpus`.
    pub fn worker_threads(&self, cpus: usize) -> usize {
        match (self.server.worker_threads, self.scylla.store) {
            (Some(n), _) => n as usize,
            (None, StoreKind::Sqlite) => cpus.saturating_sub(1).max(1),
            (None, StoreKind::Scylla) => cpus.max(1),
        }
    }

    pub fn sqlite(&self) -> SqliteOptions {
        let s = &self.sqlite;
        SqliteOptions {
            data_dir: s.data_dir.clone(),
            synchronous: s.sqlite_synchronous,
            max_batch: s.write_batch_max as usize,
            queue_capacity: s.write_queue_capacity as usize,
            readers: s.sqlite_readers as usize,
        }
    }
}

/// A retry multiplier: a number from 1 to 10.
fn parse_multiplier(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if (1.0..=10.0).contains(&value) {
        Ok(value)
    } else {
        Err("must be between 1 and 10".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// The README's configuration table: (variables of a row, its default column).
    fn documented() -> Vec<(Vec<String>, String)> {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("\n## Configuration\n")
            .nth(1)
            .expect("the section");
        let table = section.split("\n## ").next().unwrap();
        table
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|row| {
                let cells: Vec<&str> = row.split(" | ").collect();
                let vars = cells[0]
                    .trim_start_matches("| ")
                    .split(", ")
                    .map(|v| v.trim_matches('`').to_string())
                    .collect();
                (vars, cells[1].to_string())
            })
            .collect()
    }

    /// The value a default cell names: the first `code` in it, or none ("unset", "generated",
    /// "preset", …).
    fn default_in(cell: &str) -> Option<&str> {
        let start = cell.strip_prefix('`')?;
        start.split('`').next()
    }

    #[test]
    fn the_writer_thread_keeps_a_core_of_its_own_on_the_embedded_store() {
        let parse = |args: &[&str]| Config::try_parse_from([&["outbox"], args].concat()).unwrap();
        let embedded = parse(&[]);
        let threads =
            |c: &Config, cpus| (1..=cpus).map(|n| c.worker_threads(n)).collect::<Vec<_>>();
        assert_eq!(threads(&embedded, 4), [1, 1, 2, 3]);
        assert_eq!(threads(&parse(&["--store", "scylla"]), 4), [1, 2, 3, 4]);
        assert_eq!(threads(&parse(&["--worker-threads", "6"]), 2), [6, 6]);
        assert!(Config::try_parse_from(["outbox", "--worker-threads", "0"]).is_err());
    }

    /// Every setting is in the README's table with the default clap applies (which is also
    /// what `--help` shows), and every row of the table is a setting.
    #[test]
    fn the_readme_documents_every_setting_with_its_real_default() {
        let mut command = Config::command();
        // Building fills in what clap derives (a flag's `false`), as `--help` shows it.
        command.build();
        let settings: std::collections::BTreeMap<String, Option<String>> = command
            .get_arguments()
            .filter_map(|a| {
                let env = a.get_env()?.to_str()?.to_string();
                let default = a.get_default_values();
                let default = (!default.is_empty()).then(|| {
                    default
                        .iter()
                        .map(|v| v.to_string_lossy())
                        .collect::<Vec<_>>()
                        .join(",")
                });
                Some((env, default))
            })
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        for (vars, cell) in documented() {
            for var in vars {
                // The log filter belongs to the tracing subscriber, not to the flags.
                if var == "RUST_LOG" {
                    assert_eq!(default_in(&cell), Some("info"));
                    continue;
                }
                let actual = settings
                    .get(&var)
                    .unwrap_or_else(|| panic!("{var} is documented but is no setting"));
                assert_eq!(actual.as_deref(), default_in(&cell), "{var}: {cell}");
                seen.insert(var);
            }
        }
        let missing: Vec<&String> = settings.keys().filter(|k| !seen.contains(*k)).collect();
        assert!(
            missing.is_empty(),
            "settings missing from the README: {missing:?}"
        );
    }

    #[test]
    fn lag_groups_are_distinct_sensible_names_and_few() {
        assert_eq!(
            parse_lag_groups("billing, shipping,billing").unwrap().0,
            ["billing", "shipping"]
        );
        for bad in ["", "a,,b", "a,\u{7}", &"x".repeat(256)] {
            assert!(parse_lag_groups(bad).is_err(), "{bad:?} accepted");
        }
        let many: Vec<String> = (0..=MAX_LAG_GROUPS).map(|i| format!("g{i}")).collect();
        assert!(parse_lag_groups(&many.join(",")).is_err());
        assert!(parse_lag_groups(&many[1..].join(",")).is_ok());
    }

    /// Parsing an empty environment gives every component the documented defaults. Settings
    /// the test's own environment happens to set (`make` exports two) are given their
    /// defaults on the command line, which wins over the environment.
    #[test]
    fn documented_defaults_reach_the_components_that_use_them() {
        let command = Config::command();
        let mut argv = vec!["outbox".to_string()];
        for arg in command.get_arguments() {
            let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) else {
                continue;
            };
            if std::env::var_os(env).is_none() {
                continue;
            }
            match arg.get_default_values().first() {
                Some(default) => {
                    argv.push(format!("--{long}"));
                    argv.push(default.to_string_lossy().into_owned());
                }
                None => eprintln!("{env:?} is set in this environment; its default is not checked"),
            }
        }
        let c = Config::try_parse_from(argv).unwrap();
        let secs = Duration::from_secs;
        assert_eq!(c.server.site_addr.to_string(), "127.0.0.1:3000");
        let sqlite = c.sqlite();
        assert_eq!(sqlite.data_dir, PathBuf::from("./data"));
        assert_eq!(sqlite.synchronous, Synchronous::Full);
        assert_eq!(
            (sqlite.max_batch, sqlite.queue_capacity, sqlite.readers),
            (512, 8192, 4)
        );
        assert_eq!(c.relay.relay_mode, RelayMode::Streaming);
        assert_eq!(Duration::from(c.relay.poll_interval), ms(500));
        assert_eq!(
            (c.relay.relay_batch_size, c.relay.relay_pipeline_depth),
            (500, 2)
        );
        let retry = c.retry();
        assert_eq!((retry.max_attempts, retry.jitter), (5, Jitter::Full));
        assert_eq!((retry.initial_delay, retry.max_delay), (ms(100), ms(500)));
        assert_eq!(retry.multiplier, 2.0);
        assert_eq!(
            retry,
            RetryConfig::default(),
            "the relay's own default agrees"
        );
        let breaker = c.breaker();
        assert_eq!(breaker.failure_threshold, 5);
        assert_eq!(breaker.open_timeout, secs(30));
        assert_eq!(
            (breaker.half_open_max_calls, breaker.success_threshold),
            (1, 3)
        );
        assert_eq!(
            breaker,
            BreakerConfig::default(),
            "the breaker's own default agrees"
        );
        if std::env::var_os("KAFKA_BROKERS").is_none() {
            assert!(c.kafka().is_none(), "the embedded topic log by default");
        }
        let k = &c.kafka;
        assert_eq!((k.kafka_partitions, k.kafka_replication), (3, 1));
        assert_eq!(k.kafka_queue_max_kbytes, 32768);
        assert_eq!(Duration::from(k.kafka_message_timeout), secs(300));
        assert_eq!(Duration::from(k.kafka_ack_timeout), secs(5));
        let server = &c.server;
        assert!(server.fault_injection && !server.secure_cookies);
        assert_eq!(Duration::from(server.header_read_timeout), secs(10));
        assert_eq!(Duration::from(server.request_timeout), secs(30));
        assert_eq!((server.max_requests, server.max_connections), (512, 1024));
        assert_eq!(server.live_max_clients, 100);
        assert_eq!(Duration::from(server.console_session_ttl), secs(8 * 3600));
        assert_eq!(server.auth_failure_limit, 10);
        assert_eq!(Duration::from(server.auth_failure_window), secs(300));
        let r = &c.retention;
        assert_eq!(Duration::from(r.outbox_retention), secs(7 * 86_400));
        assert_eq!(Duration::from(r.idempotency_key_ttl), secs(86_400));
        assert_eq!(Duration::from(r.topic_log_retention), secs(7 * 86_400));
        assert_eq!(r.topic_log_max_messages, 1_000_000);
        assert_eq!(Duration::from(r.retention_interval), secs(60));
        assert_eq!(Duration::from(r.audit_retention), secs(90 * 86_400));
        assert_eq!(c.relay.topic_template, DEFAULT_TOPIC_TEMPLATE);
        assert_eq!(c.relay.event_format, EventFormat::Outbox);
        assert_eq!(c.relay.cloudevents_source, DEFAULT_CLOUDEVENTS_SOURCE);
        let scylla = c.scylla_options();
        assert_eq!(scylla.nodes, ["127.0.0.1:9042"]);
        assert_eq!(
            (scylla.keyspace.as_str(), scylla.replication_factor),
            ("outbox", 3)
        );
        assert!(scylla.credentials.is_none() && scylla.tls.is_none());
        assert_eq!(scylla.outbox_ttl, secs(7 * 86_400));
        assert_eq!(scylla.idempotency_key_ttl, secs(86_400));
        assert_eq!((scylla.settle, scylla.orphan_timeout), (secs(4), secs(5)));
        assert_eq!(c.scylla.cdc_timing(), CdcPreset::Default.timing());
    }

    #[test]
    fn durations_are_written_one_way_everywhere() {
        let c = Config::try_parse_from([
            "outbox",
            "--poll-interval",
            "50ms",
            "--retry-initial-delay",
            "2s",
            "--breaker-open-timeout",
            "1m",
            "--kafka-ack-timeout",
            "750ms",
        ])
        .unwrap();
        assert_eq!(Duration::from(c.relay.poll_interval), ms(50));
        assert_eq!(c.retry().initial_delay, secs(2));
        assert_eq!(c.breaker().open_timeout, secs(60));
        assert_eq!(Duration::from(c.kafka.kafka_ack_timeout), ms(750));
        for args in [
            &["outbox", "--poll-interval", "500"][..],
            &["outbox", "--poll-interval", "0ms"],
            &["outbox", "--poll-interval", "2m"],
            &["outbox", "--retry-max-delay", "fast"],
        ] {
            assert!(Config::try_parse_from(args).is_err(), "{args:?}");
        }
        // `--help` shows each duration's default in the same syntax.
        let help = Config::command().render_long_help().to_string();
        for default in [
            "[default: 500ms]",
            "[default: 30s]",
            "[default: 7d]",
            "[default: 8h]",
        ] {
            assert!(help.contains(default), "{default} in --help");
        }
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let c = Config::try_parse_from([
            "outbox",
            "--admin-token",
            "admin-token-0123456789",
            "--scylla-username",
            "relay",
            "--scylla-password",
            "hunter2-but-longer",
        ])
        .unwrap();
        let shown = format!("{c:?} {:?}", c.scylla_options());
        assert!(!shown.contains("admin-token-0123456789"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let (user, password) = c.scylla_options().credentials.unwrap();
        assert_eq!(
            (user.as_str(), password.expose()),
            ("relay", "hunter2-but-longer")
        );
    }

    #[test]
    fn the_store_defaults_to_sqlite_and_scylla_settings_parse() {
        let c = Config::try_parse_from(["outbox"]).unwrap();
        assert_eq!(c.scylla.store, StoreKind::Sqlite);
        let c = Config::try_parse_from([
            "outbox",
            "--store",
            "scylla",
            "--scylla-nodes",
            "10.0.0.1:9042,10.0.0.2:9042",
            "--scylla-keyspace",
            "shop",
            "--scylla-tls-ca-file",
            "/etc/ca.pem",
            "--outbox-ttl",
            "2d",
        ])
        .unwrap();
        let o = c.scylla_options();
        assert_eq!(o.nodes, ["10.0.0.1:9042", "10.0.0.2:9042"]);
        assert_eq!(o.keyspace, "shop");
        assert!(o.credentials.is_none());
        assert_eq!(
            o.tls.and_then(|t| t.ca_file),
            Some(PathBuf::from("/etc/ca.pem"))
        );
        assert_eq!(o.outbox_ttl, Duration::from_secs(2 * 86_400));
        assert_eq!(o.idempotency_key_ttl, Duration::from_secs(86_400));
    }

    #[test]
    fn cdc_presets_and_overrides() {
        let c = Config::try_parse_from(["outbox", "--cdc-preset", "low-latency"]).unwrap();
        assert_eq!(c.scylla.cdc_timing(), CdcPreset::LowLatency.timing());
        let c = Config::try_parse_from(["outbox", "--cdc-safety", "5s"]).unwrap();
        let t = c.scylla.cdc_timing();
        assert_eq!(t.safety, Duration::from_secs(5));
        assert_eq!(t.window, CdcPreset::Default.timing().window);
        // Below the floor (half the settle interval plus a second of clock skew), raised.
        let c = Config::try_parse_from(["outbox", "--cdc-safety", "200ms"]).unwrap();
        assert_eq!(c.scylla.cdc_timing().safety, Duration::from_secs(3));
        let args = ["outbox", "--cdc-safety", "200ms", "--scylla-settle", "10s"];
        let c = Config::try_parse_from(args).unwrap();
        assert_eq!(c.scylla.cdc_timing().safety, Duration::from_secs(6));
        assert!(Config::try_parse_from(["outbox", "--cdc-preset", "fast"]).is_err());
    }

    #[test]
    fn bad_scylla_settings_are_refused() {
        for args in [
            &["outbox", "--store", "cassandra"][..],
            &["outbox", "--scylla-keyspace", "drop;table"],
            &["outbox", "--scylla-username", "u"],
            &["outbox", "--scylla-replication-factor", "0"],
            &["outbox", "--scylla-settle", "10ms"],
            &["outbox", "--outbox-ttl", "forever"],
        ] {
            assert!(Config::try_parse_from(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn nonsense_values_are_refused() {
        assert!(Config::try_parse_from(["outbox", "--write-batch-max", "0"]).is_err());
        assert!(Config::try_parse_from(["outbox", "--sqlite-synchronous", "off"]).is_err());
        assert!(Config::try_parse_from(["outbox", "--site-addr", "nowhere"]).is_err());
        for ttl in ["", "24", "1.5h", "-1d", "1w"] {
            let args = ["outbox", "--idempotency-key-ttl", ttl];
            assert!(Config::try_parse_from(args).is_err(), "{ttl:?}");
        }
    }

    #[test]
    fn the_otlp_endpoint_must_be_a_plain_http_url() {
        assert!(otlp_endpoint("http://127.0.0.1:4318").is_ok());
        for bad in [
            "https://collector:4318",
            "collector:4318",
            "http://",
            "http://a b",
            "",
        ] {
            assert!(otlp_endpoint(bad).is_err(), "{bad:?}");
        }
        let c = Config::try_parse_from(["outbox"]).unwrap();
        assert_eq!(c.otel_exporter_otlp_endpoint, None, "no spans by default");
        assert_eq!(c.otel_service_name, "outbox");
    }
}
