//! Drives the relay in a background task: one step after another, waiting between them in
//! the configured mode, restarting from the saved checkpoint with backoff after an error or a
//! panic, and stopping cleanly (after the step in flight) when asked to.

use super::activity::{RelayActivity, RelayState};
use super::restart::RestartBackoff;
use super::suspension::Suspension;
use super::{Batching, Outcome, Relay, RelayError};
use crate::publish::{Encoder, Publisher};
use crate::resilience::Resilience;
use crate::resilience::breaker::BreakerState;
use crate::store::OutboxLog;
use crate::telemetry::Telemetry;
use app::dto::RelayMode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often an idle relay probes the sink while the breaker is not closed.
const IDLE_PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// First and longest wait before a failed relay is restarted.
const RESTART_MIN: Duration = Duration::from_millis(100);
const RESTART_MAX: Duration = Duration::from_secs(10);

/// How the relay runs.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// The current mode; changing it takes effect at the relay's next wait.
    pub mode: watch::Receiver<RelayMode>,
    /// The operator's suspension (`POST /api/admin/relay/suspend`).
    pub suspension: Suspension,
    /// Wait between polls when idle (polling mode).
    pub poll_interval: Duration,
    pub batching: Batching,
    pub encoder: Encoder,
    pub resilience: Resilience,
    /// Where the runner reports what the relay is doing.
    pub activity: Arc<RelayActivity>,
    pub telemetry: Telemetry,
}

/// Starts the supervised relay. It runs until `stop` is cancelled.
pub fn spawn(
    log: Arc<dyn OutboxLog>,
    publisher: Arc<dyn Publisher>,
    settings: RelaySettings,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(supervise(log, publisher, settings, stop))
}

async fn supervise(
    log: Arc<dyn OutboxLog>,
    publisher: Arc<dyn Publisher>,
    settings: RelaySettings,
    stop: CancellationToken,
) {
    let mut backoff = RestartBackoff::new(RESTART_MIN, RESTART_MAX);
    tracing::info!(mode = ?*settings.mode.borrow(), sink = publisher.name(), "relay starting");
    loop {
        // A panic inside the run ends its task, not the supervisor.
        let run = tokio::spawn(run(
            Arc::clone(&log),
            Arc::clone(&publisher),
            settings.clone(),
            stop.clone(),
        ));
        let (error, progressed) = match run.await {
            Ok(Ok(())) => break,
            Ok(Err((e, progressed))) => (e.to_string(), progressed),
            Err(panic) => (format!("relay task panicked: {panic}"), false),
        };
        let wait = backoff.after_failure(progressed);
        tracing::warn!(%error, retry_in = ?wait, "relay stopped by an error; restarting from its checkpoint");
        settings
            .activity
            .set(RelayState::Starting, None, Some(error));
        if !pause(wait, &stop).await {
            break;
        }
    }
    publisher.close();
    settings.activity.set(RelayState::Stopped, None, None);
    tracing::info!("relay stopped");
}

/// One life of the relay: resume from the checkpoint, then step until stopped or failed.
/// On failure, also says whether any step had succeeded (to reset the restart backoff).
async fn run(
    log: Arc<dyn OutboxLog>,
    publisher: Arc<dyn Publisher>,
    settings: RelaySettings,
    stop: CancellationToken,
) -> Result<(), (RelayError, bool)> {
    let mut commits = log.commits();
    let mut mode = settings.mode;
    let mut hold = settings.suspension.watch();
    let activity = settings.activity;
    let breaker = Arc::clone(&settings.resilience.breaker);
    let mut relay = Relay::resume(
        Arc::clone(&log),
        publisher,
        settings.encoder,
        settings.resilience,
        settings.telemetry,
        settings.batching,
    )
    .await
    .map_err(|e| (e.into(), false))?;
    activity.set(RelayState::Running, Some(relay.checkpoint()), None);
    let mut progressed = false;
    while !stop.is_cancelled() {
        if hold.check() {
            // Suspended: record what is in flight, then wait for the operator.
            relay.finish().await.map_err(|e| (e, progressed))?;
            activity.set(RelayState::Suspended, Some(relay.checkpoint()), None);
            tokio::select! {
                () = hold.resumed() => continue,
                () = stop.cancelled() => break,
            }
        }
        // Mark the newest commit as seen *before* reading, so a commit during the step wakes
        // the next wait instead of being missed.
        commits.borrow_and_update();
        relay.set_mode(*mode.borrow());
        let outcome = relay.step().await;
        let checkpoint = Some(relay.checkpoint());
        match outcome {
            Ok(Outcome::Published { .. }) => {
                progressed = true;
                activity.set(RelayState::Running, checkpoint, None);
            }
            Ok(Outcome::Retrying {
                position,
                attempt,
                delay,
                error,
            }) => {
                tracing::warn!(position, attempt, retry_in = ?delay, %error, "publish failed; retrying");
                activity.set(RelayState::Retrying, checkpoint, Some(error));
                if !pause(delay, &stop).await {
                    break;
                }
            }
            Ok(Outcome::Paused { retry_in }) => {
                activity.set(RelayState::Paused, checkpoint, None);
                if !pause(retry_in, &stop).await {
                    break;
                }
            }
            Ok(Outcome::Idle) if breaker.state() != BreakerState::Closed => {
                // Keep probing the recovering sink even though nothing new arrives.
                if !pause(IDLE_PROBE_INTERVAL, &stop).await {
                    break;
                }
            }
            Ok(Outcome::Idle) => {
                activity.set(RelayState::Running, checkpoint, None);
                // A mode switch or a suspension ends the wait, so it applies at once.
                let current = *mode.borrow_and_update();
                let woke = match current {
                    RelayMode::Polling => tokio::select! {
                        () = tokio::time::sleep(settings.poll_interval) => true,
                        _ = mode.changed() => true,
                        () = hold.changed() => true,
                        () = stop.cancelled() => false,
                    },
                    RelayMode::Streaming => tokio::select! {
                        changed = commits.changed() => changed.is_ok(),
                        _ = mode.changed() => true,
                        () = hold.changed() => true,
                        () = stop.cancelled() => false,
                    },
                };
                if !woke {
                    break;
                }
            }
            Err(e) => return Err((e, progressed)),
        }
    }
    // Stopping: record what is still in flight, so a clean stop sends nothing twice.
    relay.finish().await.map_err(|e| (e, progressed))
}

/// Waits `delay`; false if asked to stop meanwhile.
pub async fn pause(delay: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = stop.cancelled() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::test_support::{Nowhere, ScriptedLog};
    use crate::resilience::breaker::CircuitBreaker;
    use crate::store::StoreError;
    use std::sync::Mutex;
    use tokio::time::Instant;

    /// An outbox log whose reads fail three times, then panic once, then find nothing; it
    /// notes in `reads` when each read came.
    fn troubled(reads: Arc<Mutex<Vec<Instant>>>) -> ScriptedLog {
        ScriptedLog {
            events_after: Box::new(move || {
                let n = {
                    let mut reads = reads.lock().unwrap();
                    reads.push(Instant::now());
                    reads.len()
                };
                match n {
                    1..=3 => Err(StoreError::Unavailable("timed out (injected)".into())),
                    4 => panic!("a bug in a read (injected)"),
                    _ => Ok(Vec::new()),
                }
            }),
            ..Default::default()
        }
    }

    /// After an error the relay restarts from its checkpoint, waiting 100, 200, 400 ms…; a
    /// panic in a run is caught and restarted the same way; then it runs.
    #[tokio::test(start_paused = true)]
    async fn errors_and_panics_restart_the_relay_with_growing_waits() {
        let reads = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::new(troubled(Arc::clone(&reads)));
        let activity = Arc::new(RelayActivity::default());
        let (_mode, mode) = watch::channel(RelayMode::Polling);
        let settings = RelaySettings {
            mode,
            suspension: Suspension::default(),
            poll_interval: Duration::from_secs(1),
            batching: Batching::serial(10),
            encoder: Encoder::default(),
            resilience: Resilience::new(
                Default::default(),
                Arc::new(CircuitBreaker::new(Default::default())),
            ),
            activity: Arc::clone(&activity),
            telemetry: Telemetry::default(),
        };
        let stop = CancellationToken::new();
        let relay = spawn(log, Arc::new(Nowhere), settings, stop.clone());
        // Three errors (restarts after 100, 200, 400 ms), then the fourth life panics at 700 ms:
        // the supervisor reports it and waits 800 ms.
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let shown = activity.get();
        assert_eq!(shown.state, RelayState::Starting);
        assert!(
            shown
                .last_error
                .as_deref()
                .unwrap_or_default()
                .contains("panicked"),
            "{shown:?}"
        );
        // The fifth life runs.
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let reads = reads.lock().unwrap().clone();
        assert!(reads.len() >= 5, "{} reads", reads.len());
        let gaps: Vec<u128> = reads[..5]
            .windows(2)
            .map(|w| (w[1] - w[0]).as_millis())
            .collect();
        assert_eq!(gaps, [100, 200, 400, 800]);
        assert_eq!(activity.get().state, RelayState::Running);
        stop.cancel();
        relay.await.unwrap();
        assert_eq!(activity.get().state, RelayState::Stopped);
    }
}
