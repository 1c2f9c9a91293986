//! Building and running the application: open the store, bind the listener, serve until the
//! shutdown future completes. Tests use the same path with port 0 and a temporary directory.

use crate::config::Config;
use crate::http::{self, AppState};
use crate::store::sqlite::{OpenError, SqliteStore};
use leptos::config::LeptosOptions;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot open the store: {0}")]
    Store(#[from] OpenError),
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
}

impl Application {
    pub async fn build(config: &Config) -> Result<Self, StartupError> {
        let store = Arc::new(SqliteStore::open(&config.sqlite())?);
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
        let router = http::router(AppState {
            store,
            leptos_options,
        });
        Ok(Self {
            listener,
            router,
            local_addr,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(StartupError::Serve)
    }
}
