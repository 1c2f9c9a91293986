//! The server binary: parse the configuration, start, serve until SIGINT or SIGTERM.
//!
//! It allocates with mimalloc rather than glibc's malloc. Every relayed message is built on
//! one thread and freed on another (SQLite reader, tokio worker, librdkafka's threads), and
//! glibc's malloc and free took about a third of the server's CPU while draining a backlog
//! (`perf`, docs/BENCHMARKS.md). mimalloc is built without transparent huge pages
//! (`no_thp`): with them, the idle server held about 65 MiB instead of about 30.

use clap::Parser;
use outbox::config::Config;
use outbox::startup::Application;
use outbox::telemetry;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    telemetry::logs::init(config.log_format);
    let app = match Application::build(&config).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "start-up failed");
            return ExitCode::FAILURE;
        }
    };
    // Scripts and tests read this line from stdout to learn the address.
    println!("listening on http://{}", app.local_addr());
    tracing::info!(addr = %app.local_addr(), data_dir = %config.sqlite.data_dir.display(), "serving");
    app.run_until_stopped(shutdown_signal()).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}
