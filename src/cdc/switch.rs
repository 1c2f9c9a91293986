//! On ScyllaDB the two relay modes are two relays: polling is the step-function runner over
//! the pending index, streaming is the CDC reader. This runs the one the mode asks for and,
//! when the mode changes, stops it (after its event in flight) and starts the other. Each
//! resumes from its own checkpoints, so a switch can publish some events again (same
//! `event_id`), never skip them.

use crate::relay::RelayMode;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Starts one relay that runs until the receiver becomes true.
pub type Start = Box<dyn Fn(watch::Receiver<bool>) -> JoinHandle<()> + Send>;

/// Runs the relay of the current `mode` until `stop` becomes true.
pub fn spawn(
    mut mode: watch::Receiver<RelayMode>,
    polling: Start,
    streaming: Start,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let current = *mode.borrow_and_update();
            let (end, ended) = watch::channel(false);
            let relay = match current {
                RelayMode::Polling => polling(ended),
                RelayMode::Streaming => streaming(ended),
            };
            let stopping = tokio::select! {
                changed = mode.changed() => changed.is_err(),
                _ = stop.wait_for(|s| *s) => true,
            };
            let _ = end.send(true);
            let _ = relay.await;
            if stopping {
                break;
            }
            tracing::info!(
                from = current.as_str(),
                "relay mode changed; swapping relays"
            );
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A relay that logs its start and end under `name`.
    fn recorder(name: &'static str, log: Arc<Mutex<Vec<String>>>) -> Start {
        Box::new(move |mut ended: watch::Receiver<bool>| {
            let log = Arc::clone(&log);
            log.lock().unwrap().push(format!("start {name}"));
            tokio::spawn(async move {
                let _ = ended.wait_for(|e| *e).await;
                log.lock().unwrap().push(format!("end {name}"));
            })
        })
    }

    #[tokio::test]
    async fn the_mode_picks_the_relay_and_a_switch_swaps_them() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (mode_tx, mode) = watch::channel(RelayMode::Streaming);
        let (stop_tx, stop) = watch::channel(false);
        let task = spawn(
            mode,
            recorder("polling", Arc::clone(&log)),
            recorder("streaming", Arc::clone(&log)),
            stop,
        );
        let started = |n: usize| {
            let log = Arc::clone(&log);
            async move {
                while log.lock().unwrap().len() < n {
                    tokio::task::yield_now().await;
                }
            }
        };
        started(1).await;
        mode_tx.send(RelayMode::Polling).unwrap();
        started(3).await;
        stop_tx.send(true).unwrap();
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
}
