//! Building and running the application: open the stores, build the sink, spawn the
//! background tasks, bind the listener, serve until the shutdown future completes, then stop
//! the background tasks. Tests use the same path with port 0 and a temporary directory.
//!
//! Shutdown has two signals: `closing` (cancelled when shutdown begins, so live-feed streams
//! end and do not hold up the server's graceful stop) and `stop` (cancelled once the server
//! stopped serving; the relay finishes its step in flight and saves its checkpoint). The
//! background tasks are tracked; one that panics or ends early is logged with its name.

use crate::cdc;
use crate::config::{Config, StoreKind};
use crate::domain::{AGGREGATE_TYPE_ORDER, Secret};
use crate::http::auth::AdminToken;
use crate::http::session::Sessions;
use crate::http::throttle::AuthThrottle;
use crate::http::{self, AppState, RelayHandles, Services};
use crate::publish::faults::FaultInjector;
use crate::publish::kafka::{KafkaPublisher, KafkaSetupError};
use crate::publish::local::LocalLogPublisher;
use crate::publish::{Encoder, Publisher};
use crate::relay::activity::RelayActivity;
use crate::relay::backlog::BacklogGauge;
use crate::relay::replay::Replayer;
use crate::relay::runner::{self, RelaySettings};
use crate::relay::suspension::Suspension;
use crate::relay::{Batching, retention, snapshots};
use crate::resilience::Resilience;
use crate::resilience::breaker::CircuitBreaker;
use crate::store::OutboxStore;
use crate::store::scylla::ScyllaStore;
use crate::store::sqlite::{OpenError, SqliteStore};
use crate::telemetry::Telemetry;
use crate::telemetry::live::LiveHub;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::spans::Spans;
use app::dto::RelayMode;
use leptos::config::LeptosOptions;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long shutdown waits for the background tasks (the relay's step in flight) to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot open the store: {0}")]
    Store(#[from] OpenError),
    #[error("cannot open the ScyllaDB store: {0}")]
    Scylla(#[from] crate::store::scylla::OpenError),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Kafka(#[from] KafkaSetupError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What one connection may take.
#[derive(Debug, Clone, Copy)]
struct ConnectionLimits {
    /// Closed if the request head is not in by then (slowloris).
    header_read_timeout: Duration,
    /// Past it, new connections are closed at once.
    max_connections: usize,
}

/// A built application, ready to serve.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    local_addr: SocketAddr,
    connections: ConnectionLimits,
    /// Cancelled when shutdown begins, so live-feed streams end and do not hold it up.
    closing: CancellationToken,
    /// Cancelled once the server stopped serving: the background tasks stop.
    stop: CancellationToken,
    /// The relay, the live snapshots and the retention sweep.
    background: Background,
    /// Exported spans still waiting are sent once the rest has stopped.
    spans: Arc<Spans>,
}

/// The stores: the embedded file always (it holds the embedded topic log), and the store of
/// orders and the outbox, which is that file or a ScyllaDB cluster.
struct Stores {
    embedded: Arc<SqliteStore>,
    /// Set with `STORE=scylla`.
    scylla: Option<Arc<ScyllaStore>>,
    /// Orders and the outbox: `scylla` if set, else `embedded`.
    store: Arc<dyn OutboxStore>,
}

impl Stores {
    async fn open(config: &Config) -> Result<Self, StartupError> {
        let embedded = Arc::new(SqliteStore::open(&config.sqlite())?);
        let scylla = match config.scylla.store {
            StoreKind::Sqlite => None,
            StoreKind::Scylla => Some(Arc::new(ScyllaStore::open(&config.scylla_options()).await?)),
        };
        let store: Arc<dyn OutboxStore> = match &scylla {
            Some(scylla) => scylla.clone(),
            None => embedded.clone(),
        };
        Ok(Self {
            embedded,
            scylla,
            store,
        })
    }
}

/// How long a count of ScyllaDB's pending index is reused by the status page, the live feed
/// and `/metrics`.
const BACKLOG_FRESH_ON_SCYLLA: Duration = Duration::from_secs(5);

/// The relay's shared parts: what the admin API steers and the relay tasks use.
struct RelayParts {
    handles: RelayHandles,
    resilience: Resilience,
    /// Whether this instance runs the relay: always on the embedded store; on ScyllaDB the
    /// relay lease says.
    runs_relay: watch::Sender<bool>,
    /// The mode the admin API switches and the relay follows.
    mode: Arc<watch::Sender<RelayMode>>,
}

/// Background tasks, each logged by name if it panics or ends before shutdown.
struct Background {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Background {
    fn new(stop: CancellationToken) -> Self {
        Self {
            tracker: TaskTracker::new(),
            stop,
        }
    }

    /// Watches the task of `handle`, named `name` in the log.
    fn track(&self, name: &'static str, handle: JoinHandle<()>) {
        let stop = self.stop.clone();
        self.tracker.spawn(async move {
            match handle.await {
                Ok(()) if stop.is_cancelled() => tracing::debug!(task = name, "stopped"),
                Ok(()) => tracing::error!(task = name, "background task ended before shutdown"),
                Err(e) if e.is_panic() => {
                    tracing::error!(task = name, error = %e, "background task panicked");
                }
                Err(e) => tracing::warn!(task = name, error = %e, "background task cancelled"),
            }
        });
    }

    /// Waits up to `limit` for every task to stop; says so if they did not.
    async fn stopped(self, limit: Duration) {
        self.tracker.close();
        if tokio::time::timeout(limit, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("background tasks did not stop within {limit:?}");
        }
    }
}

impl Application {
    pub async fn build(config: &Config) -> Result<Self, StartupError> {
        let encoder = config.encoder().map_err(StartupError::Config)?;
        let stores = Stores::open(config).await?;
        let listener = bind(config.server.site_addr).await?;
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.server.site_addr,
            source,
        })?;
        let closing = CancellationToken::new();
        let spans = Arc::new(match &config.otel_exporter_otlp_endpoint {
            Some(endpoint) => Spans::otlp(endpoint, &config.otel_service_name)
                .map_err(|e| StartupError::Config(e.to_string()))?,
            None => Spans::default(),
        });
        let telemetry = Telemetry::new(
            Arc::new(Metrics::new()),
            Arc::new(LiveHub::new(
                closing.clone(),
                config.server.live_max_clients as usize,
            )),
        )
        .with_spans(Arc::clone(&spans));
        let poll_interval: Duration = config.relay.poll_interval.into();
        (telemetry.metrics.poll_interval).set(poll_interval.as_secs_f64());
        let faults = Arc::new(FaultInjector::new(sink(config, &encoder, &stores)?));
        let relay = relay_parts(config, &stores, &faults, &encoder, &telemetry);
        let stop = CancellationToken::new();
        let background = Background::new(stop.clone());
        spawn_background(
            &background,
            config,
            &stores,
            &relay,
            faults,
            encoder,
            &telemetry,
        );
        let state = AppState::new(Services {
            orders: stores.store.clone(),
            outbox: stores.store.clone(),
            dead_letters: stores.store.clone(),
            audit: stores.store.clone(),
            topic_log: stores.embedded,
            admin_token: AdminToken::new(&admin_secret(config)),
            sessions: Arc::new(Sessions::new(
                config.server.console_session_ttl.into(),
                config.server.secure_cookies,
            )),
            auth_throttle: Arc::new(AuthThrottle::new(
                config.server.auth_failure_limit,
                config.server.auth_failure_window.into(),
            )),
            relay_mode: relay.mode,
            relay: relay.handles,
            metrics: telemetry.metrics,
            spans: Arc::clone(&spans),
            live: telemetry.live,
            ready_probe: Arc::default(),
            leptos_options: Arc::new(
                LeptosOptions::builder()
                    .output_name("outbox")
                    .site_root(config.server.site_root.to_string_lossy().as_ref())
                    .site_pkg_dir("pkg")
                    .site_addr(local_addr)
                    .build(),
            ),
        });
        let limits = http::RequestLimits {
            timeout: config.server.request_timeout.into(),
            concurrent: config.server.max_requests as usize,
        };
        Ok(Self {
            listener,
            router: http::router(state, limits),
            local_addr,
            connections: ConnectionLimits {
                header_read_timeout: config.server.header_read_timeout.into(),
                max_connections: config.server.max_connections as usize,
            },
            closing,
            stop,
            background,
            spans,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes: stops taking requests, lets those in flight finish,
    /// then stops the background tasks (the relay after its step in flight, its checkpoint
    /// saved).
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let closing = self.closing;
        let shutdown = async move {
            shutdown.await;
            closing.cancel();
        };
        serve(self.listener, self.router, self.connections, shutdown).await;
        self.stop.cancel();
        self.background.stopped(STOP_TIMEOUT).await;
        let spans = self.spans;
        if spans.is_on() {
            // The exporter's shutdown waits for its last send.
            let _ = tokio::task::spawn_blocking(move || spans.shutdown()).await;
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets the open connections
/// finish their requests. Each connection gets its peer's address (`ConnectInfo`, for the
/// admin-token throttle) and hyper's timer, so a request head that is not in within
/// `header_read_timeout` closes the connection; past `max_connections` open ones, a new
/// connection is closed at once.
async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::server::graceful::GracefulShutdown;
    use tower::ServiceExt;

    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(%peer, "connection refused: MAX_CONNECTIONS are open");
            continue;
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })
}

/// The sink: Kafka when brokers are configured, else the embedded topic log.
fn sink(
    config: &Config,
    encoder: &Encoder,
    stores: &Stores,
) -> Result<Arc<dyn Publisher>, StartupError> {
    Ok(match config.kafka() {
        Some(kafka) => {
            let topic = encoder.topics().topic_for(AGGREGATE_TYPE_ORDER);
            tracing::info!(brokers = %kafka.brokers, %topic, "publishing to Kafka");
            Arc::new(
                KafkaPublisher::new(&kafka, vec![topic])?
                    .with_lag_groups(config.kafka_lag_groups()),
            )
        }
        None => Arc::new(LocalLogPublisher::new(stores.embedded.clone())),
    })
}

/// The breaker (reporting to telemetry), the retry policy, the replayer, the suspension and
/// the mode: what the relay and the admin API share.
fn relay_parts(
    config: &Config,
    stores: &Stores,
    faults: &Arc<FaultInjector>,
    encoder: &Encoder,
    telemetry: &Telemetry,
) -> RelayParts {
    let breaker = Arc::new(CircuitBreaker::new(config.breaker()).with_observer({
        let telemetry = telemetry.clone();
        move |t| telemetry.breaker_transition(t)
    }));
    let resilience = Resilience::new(config.retry(), Arc::clone(&breaker));
    let activity = Arc::new(RelayActivity::default());
    let runs_relay = watch::Sender::new(stores.scylla.is_none());
    // The embedded store counts its backlog cheaply; ScyllaDB's pending index is counted at
    // most every few seconds.
    let fresh_for = match stores.scylla {
        None => Duration::ZERO,
        Some(_) => BACKLOG_FRESH_ON_SCYLLA,
    };
    let backlog = BacklogGauge::new(
        stores.store.clone(),
        Arc::clone(&activity),
        runs_relay.subscribe(),
        fresh_for,
    );
    let handles = RelayHandles {
        activity,
        backlog: Arc::new(backlog),
        suspension: Suspension::default(),
        breaker,
        faults: Arc::clone(faults),
        fault_injection: config.server.fault_injection,
        replayer: Arc::new(Replayer {
            store: stores.store.clone(),
            publisher: faults.clone(),
            resilience: resilience.clone(),
            encoder: encoder.clone(),
            telemetry: telemetry.clone(),
            claims: Default::default(),
        }),
    };
    RelayParts {
        handles,
        resilience,
        runs_relay,
        mode: Arc::new(watch::Sender::new(config.relay.relay_mode)),
    }
}

/// Starts the live snapshots, the relay (on ScyllaDB: the relays behind the lease) and the
/// retention sweep.
fn spawn_background(
    background: &Background,
    config: &Config,
    stores: &Stores,
    relay: &RelayParts,
    faults: Arc<FaultInjector>,
    encoder: Encoder,
    telemetry: &Telemetry,
) {
    let stop = background.stop.clone();
    let sources = snapshots::Sources {
        backlog: Arc::clone(&relay.handles.backlog),
        dead_letters: stores.store.clone(),
        activity: Arc::clone(&relay.handles.activity),
        mode: relay.mode.subscribe(),
        breaker: Arc::clone(&relay.handles.breaker),
        faults: Arc::clone(&faults),
    };
    let live = Arc::clone(&telemetry.live);
    background.track(
        "live snapshots",
        snapshots::spawn(live, sources, stop.clone()),
    );
    let settings = RelaySettings {
        mode: relay.mode.subscribe(),
        suspension: relay.handles.suspension.clone(),
        poll_interval: config.relay.poll_interval.into(),
        batching: Batching {
            size: config.relay.relay_batch_size,
            depth: config.relay.relay_pipeline_depth,
        },
        encoder,
        resilience: relay.resilience.clone(),
        activity: Arc::clone(&relay.handles.activity),
        telemetry: telemetry.clone(),
    };
    let relay_task = match &stores.scylla {
        None => runner::spawn(stores.store.clone(), faults, settings, stop.clone()),
        // ScyllaDB: the polling runner or the CDC reader, as the mode asks, while this
        // instance holds the relay lease.
        Some(scylla) => cdc::relays::spawn(
            Arc::clone(scylla),
            config.scylla.cdc_timing(),
            relay.mode.subscribe(),
            relay.runs_relay.clone(),
            faults,
            settings,
            stop.clone(),
        ),
    };
    background.track("relay", relay_task);
    if let Some(scylla) = &stores.scylla {
        let (scylla, stop) = (Arc::clone(scylla), stop.clone());
        let tag = tokio::spawn(async move { scylla.hold_tag(stop).await });
        background.track("position tag", tag);
    }
    let kept = retention::Retention {
        outbox: config.retention.outbox_retention.into(),
        idempotency_keys: config.retention.idempotency_key_ttl.into(),
        topic_log: config.retention.topic_log_retention.into(),
        topic_log_messages: config.retention.topic_log_max_messages,
        audit_log: config.retention.audit_retention.into(),
    };
    let interval = config.retention.retention_interval.into();
    let log = stores.embedded.clone();
    let sweep = retention::spawn(stores.store.clone(), log, kept, interval, stop);
    background.track("retention", sweep);
}

/// The admin secret: configured, or generated and shown once.
fn admin_secret(config: &Config) -> Secret {
    config.server.admin_token.clone().unwrap_or_else(|| {
        let generated = Secret::generate();
        // The only time the secret is ever written out.
        tracing::warn!(
            admin_token = generated.expose(),
            "ADMIN_TOKEN is not set: generated one for this run (shown only now)"
        );
        generated
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Log lines written while the test runs.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn background_tasks_that_panic_or_end_early_are_logged_by_name() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _logging = tracing::subscriber::set_default(subscriber);
        let stop = CancellationToken::new();
        let background = Background::new(stop.clone());
        background.track("doomed", tokio::spawn(async { panic!("boom") }));
        background.track("quitter", tokio::spawn(async {}));
        let waiting = stop.clone();
        background.track(
            "patient",
            tokio::spawn(async move { waiting.cancelled().await }),
        );
        // Let the first two end while the application is still running.
        while background.tracker.len() > 1 {
            tokio::task::yield_now().await;
        }
        stop.cancel();
        background.stopped(Duration::from_secs(5)).await;
        let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let line = |task: &str| {
            logs.lines()
                .find(|l| l.contains(&format!("task=\"{task}\"")))
                .unwrap_or_else(|| panic!("no line about {task} in:\n{logs}"))
                .to_string()
        };
        assert!(line("doomed").contains("ERROR"), "{logs}");
        assert!(
            line("doomed").contains("background task panicked"),
            "{logs}"
        );
        assert!(line("quitter").contains("ended before shutdown"), "{logs}");
        assert!(!logs.contains("task=\"patient\"") || line("patient").contains("DEBUG"));
        assert!(!logs.contains("did not stop"), "{logs}");
    }
}
