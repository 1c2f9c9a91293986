//! Building and running the application: open the store, bind the listener, serve until the
//! shutdown future completes. Tests use the same path with port 0 and a temporary directory.

use crate::cdc;
use crate::config::Secret;
use crate::config::{Config, StoreKind};
use crate::domain::AGGREGATE_TYPE_ORDER;
use crate::http::auth::AdminToken;
use crate::http::session::Sessions;
use crate::http::throttle::AuthThrottle;
use crate::http::{self, AppState, RelayHandles};
use crate::publish::faults::FaultInjector;
use crate::publish::kafka::{KafkaPublisher, KafkaSetupError};
use crate::publish::local::LocalLogPublisher;
use crate::publish::{Publisher, TopicRouter};
use crate::relay::replay::Replayer;
use crate::relay::runner::{self, RelaySettings};
use crate::relay::{Batching, retention, snapshots};
use crate::resilience::Resilience;
use crate::resilience::breaker::CircuitBreaker;

use crate::store::OutboxStore;
use crate::store::scylla::ScyllaStore;
use crate::store::sqlite::{OpenError, SqliteStore};
use crate::telemetry::Telemetry;
use crate::telemetry::live::LiveHub;
use crate::telemetry::metrics::Metrics;
use leptos::config::LeptosOptions;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long shutdown waits for the relay to finish its step in flight.
const RELAY_STOP_TIMEOUT: Duration = Duration::from_secs(5);

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
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// A built application, ready to serve.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    local_addr: SocketAddr,
    /// Set to true to stop the background tasks; the relay finishes its step in flight first.
    stop_relay: watch::Sender<bool>,
    /// Set to true when shutdown begins, so live-feed streams end and do not hold it up.
    closing: watch::Sender<bool>,
    /// The relay and the retention sweeper.
    background: Vec<JoinHandle<()>>,
}

impl Application {
    pub async fn build(config: &Config) -> Result<Self, StartupError> {
        let topics = TopicRouter::new(&config.topic_template).map_err(StartupError::Config)?;
        // The embedded file always holds the embedded topic log; with STORE=sqlite, the
        // orders and the outbox too.
        let embedded = Arc::new(SqliteStore::open(&config.sqlite())?);
        let scylla = match config.scylla.store {
            StoreKind::Sqlite => None,
            StoreKind::Scylla => Some(Arc::new(ScyllaStore::open(&config.scylla_options()).await?)),
        };
        let store: Arc<dyn OutboxStore> = match &scylla {
            Some(scylla) => scylla.clone(),
            None => embedded.clone(),
        };
        let bind = |source| StartupError::Bind {
            addr: config.site_addr,
            source,
        };
        let listener = TcpListener::bind(config.site_addr).await.map_err(bind)?;
        let local_addr = listener.local_addr().map_err(bind)?;
        let leptos_options = LeptosOptions::builder()
            .output_name("outbox")
            .site_root(config.site_root.to_string_lossy().as_ref())
            .site_pkg_dir("pkg")
            .site_addr(local_addr)
            .build();
        let sink: Arc<dyn Publisher> = match config.kafka() {
            Some(kafka) => {
                let topic = topics.topic_for(AGGREGATE_TYPE_ORDER);
                tracing::info!(brokers = %kafka.brokers, %topic, "publishing to Kafka");
                Arc::new(KafkaPublisher::new(&kafka, vec![topic])?)
            }
            None => Arc::new(LocalLogPublisher::new(embedded.clone())),
        };
        let (closing, closing_rx) = watch::channel(false);
        let telemetry = Telemetry {
            metrics: Arc::new(Metrics::new()),
            live: Arc::new(LiveHub::new(closing_rx)),
        };
        let faults = Arc::new(FaultInjector::new(sink));
        let breaker = Arc::new(CircuitBreaker::new(config.breaker()).with_observer({
            let telemetry = telemetry.clone();
            move |t| telemetry.breaker_transition(t)
        }));
        let resilience = Resilience::new(config.retry(), Arc::clone(&breaker));
        let relay = RelayHandles {
            activity: Arc::default(),
            hold: Arc::new(watch::Sender::new(false)),
            breaker: Arc::clone(&breaker),
            faults: Arc::clone(&faults),
            replayer: Arc::new(Replayer {
                store: store.clone(),
                publisher: faults.clone(),
                resilience: resilience.clone(),
                topics: topics.clone(),
                telemetry: telemetry.clone(),
            }),
        };
        let (stop_relay, stopped) = watch::channel(false);
        let (relay_mode, mode) = watch::channel(config.relay_mode);
        let settings = RelaySettings {
            mode,
            hold: relay.hold.subscribe(),
            poll_interval: Duration::from_millis(config.poll_interval_ms),
            batching: Batching {
                size: config.relay_batch_size,
                depth: config.relay_pipeline_depth,
            },
            topics,
            resilience,
            activity: Arc::clone(&relay.activity),
            telemetry: telemetry.clone(),
        };
        let background = vec![
            snapshots::spawn(
                Arc::clone(&telemetry.live),
                snapshots::Sources {
                    log: store.clone(),
                    dead_letters: store.clone(),
                    activity: Arc::clone(&relay.activity),
                    mode: relay_mode.subscribe(),
                    breaker: Arc::clone(&relay.breaker),
                    faults: Arc::clone(&faults),
                },
                stopped.clone(),
            ),
            match &scylla {
                None => runner::spawn(store.clone(), faults, settings, stopped.clone()),
                // ScyllaDB: the polling runner or the CDC reader, as the mode asks, while this
                // instance holds the relay lease.
                Some(scylla) => cdc::relays::spawn(
                    Arc::clone(scylla),
                    config.scylla.cdc_timing(),
                    relay_mode.subscribe(),
                    faults,
                    settings,
                    stopped.clone(),
                ),
            },
            retention::spawn(
                store.clone(),
                retention::Retention {
                    outbox: config.outbox_retention,
                    idempotency_keys: config.idempotency_key_ttl,
                },
                Duration::from_millis(config.retention_interval_ms),
                stopped,
            ),
        ];
        let secret = config.admin_token.clone().unwrap_or_else(|| {
            let generated = Secret::generate();
            // The only time the secret is ever written out.
            tracing::warn!(
                admin_token = generated.expose(),
                "ADMIN_TOKEN is not set: generated one for this run (shown only now)"
            );
            generated
        });
        let router = http::router(AppState {
            orders: store.clone(),
            outbox: store.clone(),
            dead_letters: store,
            topic_log: embedded,
            admin_token: AdminToken::new(&secret),
            sessions: Arc::new(Sessions::new(config.console_session_ttl)),
            auth_throttle: Arc::new(AuthThrottle::new(
                config.auth_failure_limit,
                config.auth_failure_window,
            )),
            relay_mode: Arc::new(relay_mode),
            relay,
            metrics: telemetry.metrics,
            live: telemetry.live,
            leptos_options: Arc::new(leptos_options),
        });
        Ok(Self {
            listener,
            router,
            local_addr,
            stop_relay,
            closing,
            background,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes: stops taking requests, lets those in flight finish,
    /// then stops the relay after its step in flight (its checkpoint saved).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let closing = self.closing;
        let shutdown = async move {
            shutdown.await;
            let _ = closing.send(true);
        };
        // Connection info gives handlers the peer's address (the admin-token throttle).
        let router = self
            .router
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        let served = axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(StartupError::Serve);
        let _ = self.stop_relay.send(true);
        let stopped = async {
            for task in self.background {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(RELAY_STOP_TIMEOUT, stopped)
            .await
            .is_err()
        {
            tracing::warn!("the relay did not stop within {RELAY_STOP_TIMEOUT:?}");
        }
        served
    }
}
