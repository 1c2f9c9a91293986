//! One relay per keyspace, however many instances run: the relay lease. Each instance tries
//! every [`RENEW_EVERY`] to take or renew a lease row with a lightweight transaction and a
//! [`LEASE_TTL`]; the one holding it runs the relay (see [`super::switch`]), the others stand
//! by. A crashed owner's lease expires with its TTL; a stopping owner releases it at once.
//! An owner that cannot renew stops its relay at its next attempt, well before the lease
//! expires for the others.

use crate::relay::activity::{RelayActivity, RelayState};
use crate::relay::runner::pause;
use crate::store::scylla::ScyllaStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long a lease lasts without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// How often the lease is taken or renewed.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);

/// Takes and renews the lease for this process, telling `owner` whether it holds it, until
/// `release` is cancelled; then releases it.
pub async fn hold(
    store: Arc<ScyllaStore>,
    owner: watch::Sender<bool>,
    activity: Arc<RelayActivity>,
    release: CancellationToken,
) {
    let me = uuid::Uuid::new_v4();
    loop {
        let held = store
            .take_relay_lease(me, LEASE_TTL)
            .await
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "cannot take or renew the relay lease");
                false
            });
        let changed = owner.send_if_modified(|o| std::mem::replace(o, held) != held);
        if !held {
            let note = "standing by: another instance owns the relay".to_string();
            activity.set(RelayState::Starting, None, Some(note));
        } else if changed {
            tracing::info!(%me, "this instance owns the relay");
        }
        if !pause(RENEW_EVERY, &release).await {
            break;
        }
    }
    owner.send_replace(false);
    if let Err(error) = store.release_relay_lease(me).await {
        tracing::warn!(%error, "cannot release the relay lease; it expires by itself");
    }
}
