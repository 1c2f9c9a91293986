//! On ScyllaDB the two relay modes are two relays: polling is the step-function runner over
//! the pending index, streaming is the CDC reader. This runs the one the mode asks for, and
//! only while this instance owns the relay (see [`super::lease`]). When the mode changes it
//! stops the running relay (after its event in flight) and starts the other; when the lease is
//! lost it stops it. Each relay resumes from its own checkpoints, so a swap can publish some
//! events again (same `event_id`), never skip them.

use app::dto::RelayMode;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Starts one relay that runs until the token is cancelled.
pub type Start = Box<dyn Fn(CancellationToken) -> JoinHandle<()> + Send>;

/// Why a relay was stopped.
enum End {
    ModeChanged,
    LeaseLost,
    Stopping,
}

/// Runs the relay of the current `mode` while `owner` is true, until `stop` is cancelled.
pub fn spawn(
    mut mode: watch::Receiver<RelayMode>,
    mut owner: watch::Receiver<bool>,
    polling: Start,
    streaming: Start,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let owns = tokio::select! {
                owns = owner.wait_for(|o| *o) => owns.is_ok(),
                () = stop.cancelled() => false,
            };
            if !owns {
                break;
            }
            let current = *mode.borrow_and_update();
            let end = stop.child_token();
            let relay = match current {
                RelayMode::Polling => polling(end.clone()),
                RelayMode::Streaming => streaming(end.clone()),
            };
            let why = tokio::select! {
                changed = mode.changed() => match changed {
                    Ok(()) => End::ModeChanged,
                    Err(_) => End::Stopping,
                },
                _ = owner.wait_for(|o| !*o) => End::LeaseLost,
                () = stop.cancelled() => End::Stopping,
            };
            end.cancel();
            let _ = relay.await;
            match why {
                End::ModeChanged => tracing::info!(
                    from = current.as_str(),
                    "relay mode changed; swapping relays"
                ),
                End::LeaseLost => tracing::warn!("relay lease lost; relay stopped"),
                End::Stopping => break,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A relay that logs its start and end under `name`.
    fn recorder(name: &'static str, log: Arc<Mutex<Vec<String>>>) -> Start {
        Box::new(move |ended: CancellationToken| {
            let log = Arc::clone(&log);
            log.lock().unwrap().push(format!("start {name}"));
            tokio::spawn(async move {
                ended.cancelled().await;
                log.lock().unwrap().push(format!("end {name}"));
            })
        })
    }

    /// Waits until `log` holds `n` lines.
    async fn logged(log: &Arc<Mutex<Vec<String>>>, n: usize) {
        while log.lock().unwrap().len() < n {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn the_mode_picks_the_relay_and_a_switch_swaps_them() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (mode_tx, mode) = watch::channel(RelayMode::Streaming);
        let (_owner_tx, owner) = watch::channel(true);
        let stop = CancellationToken::new();
        let task = spawn(
            mode,
            owner,
            recorder("polling", Arc::clone(&log)),
            recorder("streaming", Arc::clone(&log)),
            stop.clone(),
        );
        logged(&log, 1).await;
        mode_tx.send(RelayMode::Polling).unwrap();
        logged(&log, 3).await;
        stop.cancel();
        task.await.unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            [
                "start streaming",
                "end streaming",
                "start polling",
                "end polling"
            ]
        );
    }

    #[tokio::test]
    async fn a_relay_runs_only_while_this_instance_owns_it() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (_mode_tx, mode) = watch::channel(RelayMode::Polling);
        let (owner_tx, owner) = watch::channel(false);
        let stop = CancellationToken::new();
        let task = spawn(
            mode,
            owner,
            recorder("polling", Arc::clone(&log)),
            recorder("streaming", Arc::clone(&log)),
            stop.clone(),
        );
        tokio::task::yield_now().await;
        assert!(log.lock().unwrap().is_empty(), "no relay without the lease");
        owner_tx.send(true).unwrap();
        logged(&log, 1).await;
        owner_tx.send(false).unwrap();
        logged(&log, 2).await;
        stop.cancel();
        task.await.unwrap();
        assert_eq!(*log.lock().unwrap(), ["start polling", "end polling"]);
    }
}
