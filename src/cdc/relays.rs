//! The relays on ScyllaDB, put together: the lease holder, and the switch that runs the
//! polling runner (over the pending index) or the CDC reader while this instance holds the
//! lease.

use super::lease;
use super::outlet::Outlet;
use super::reader::{self, CdcRelay};
use super::switch;
use super::timing::CdcTiming;
use crate::publish::Publisher;
use app::dto::RelayMode;

use crate::relay::runner::{self, RelaySettings};
use crate::store::OutboxLog;
use crate::store::scylla::ScyllaStore;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Starts the relays; `owner` tells whether this instance holds the lease. The task ends once
/// `stop` is cancelled, the relay stopped and the lease was released.
pub fn spawn(
    scylla: Arc<ScyllaStore>,
    timing: CdcTiming,
    mode: watch::Receiver<RelayMode>,
    owner: watch::Sender<bool>,
    publisher: Arc<dyn Publisher>,
    settings: RelaySettings,
    stop: CancellationToken,
) -> JoinHandle<()> {
    let store: Arc<dyn OutboxLog> = scylla.clone();
    let polling = {
        let (store, publisher, settings) = (store.clone(), publisher.clone(), settings.clone());
        // The runner only ever polls here: ScyllaDB's streaming mode is the CDC reader.
        let (fixed, polling_mode) = watch::channel(RelayMode::Polling);
        Box::new(move |stop| {
            // Holding the sender keeps the runner's mode watch open (a closed one wakes it).
            let _ = &fixed;
            let settings = RelaySettings {
                mode: polling_mode.clone(),
                ..settings.clone()
            };
            runner::spawn(store.clone(), publisher.clone(), settings, stop)
        }) as switch::Start
    };
    let activity = Arc::clone(&settings.activity);
    let streaming = {
        let scylla = Arc::clone(&scylla);
        Box::new(move |stop: CancellationToken| {
            let outlet = Outlet {
                store: store.clone(),
                publisher: publisher.clone(),
                encoder: settings.encoder.clone(),
                resilience: settings.resilience.clone(),
                telemetry: settings.telemetry.clone(),
                stop: stop.clone(),
                suspension: settings.suspension.watch(),
            };
            let relay = CdcRelay {
                store: Arc::clone(&scylla),
                timing,
                outlet: Arc::new(outlet),
                activity: Arc::clone(&settings.activity),
            };
            reader::spawn(relay, stop)
        }) as switch::Start
    };
    let release = CancellationToken::new();
    let owns = owner.subscribe();
    let holder = tokio::spawn(lease::hold(scylla, owner, activity, release.clone()));
    let relays = switch::spawn(mode, owns, polling, streaming, stop);
    tokio::spawn(async move {
        let _ = relays.await;
        // Only once the relay stopped may another instance take over.
        release.cancel();
        let _ = holder.await;
    })
}
