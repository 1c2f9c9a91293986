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

fn main() -> ExitCode {
    let config = Config::parse();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads(cpus))
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(serve(config)),
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Starts the application and serves until a shutdown signal.
async fn serve(config: Config) -> ExitCode {
    telemetry::logs::init(config.log_format);
    let app = match Application::build(&config).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "start-up failed");
            return ExitCode::FAILURE;
        }
    };
    // Listening for the signals starts before the address is announced: a SIGTERM sent as
    // soon as the line appears must stop the server gracefully, not kill it.
    let stop = shutdown_signal();
    // Scripts and tests read this line from stdout to learn the address.
    println!("listening on http://{}", app.local_addr());
    tracing::info!(addr = %app.local_addr(), data_dir = %config.sqlite.data_dir.display(), "serving");
    app.run_until_stopped(stop).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Starts listening for SIGINT (Ctrl-C) and SIGTERM now; the future completes on either.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let listen = |kind: SignalKind, name: &'static str| {
        let listening = signal(kind);
        async move {
            match listening {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for {name}");
                    std::future::pending::<()>().await;
                }
            }
        }
    };
    let (interrupt, term) = (
        listen(SignalKind::interrupt(), "SIGINT"),
        listen(SignalKind::terminate(), "SIGTERM"),
    );
    async move {
        tokio::select! {
            () = interrupt => {},
            () = term => {},
        }
        tracing::info!("shutdown signal received");
    }
}
