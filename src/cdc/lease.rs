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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::scylla::cluster::fake::{FakeCluster, applied, timeout};
    use crate::store::scylla::statements::{LEASE_REQUEST_TIMEOUT, Stmt};
    use crate::store::scylla::tests::scripted;
    use tokio::time::Instant;

    /// An owner that cannot renew learns it at its next attempt, which ends at most one
    /// renewal interval and one (short, fixed) request timeout after its last renewal: well
    /// before the lease can pass on, whatever the settle interval makes the store's timeout.
    #[test]
    fn an_owner_that_cannot_renew_stops_well_before_its_lease_can_pass() {
        let stopped_by = RENEW_EVERY + LEASE_REQUEST_TIMEOUT;
        assert!(
            LEASE_TTL >= stopped_by + Duration::from_secs(5),
            "{stopped_by:?}"
        );
        for stmt in [Stmt::TakeLease, Stmt::RenewLease, Stmt::ReleaseLease] {
            assert_eq!(stmt.request_timeout(), Some(LEASE_REQUEST_TIMEOUT));
        }
    }

    /// The lease over a scripted cluster and a paused clock: a free lease is taken, an owner
    /// whose renewal fails stops at once, a lease held by another instance means standing by,
    /// and stopping releases it.
    #[tokio::test(start_paused = true)]
    async fn the_lease_is_taken_kept_lost_and_released() {
        let fake = Arc::new(FakeCluster::default());
        // No lease row yet: the renewal does not apply, the take does.
        fake.always(Stmt::RenewLease, applied(false));
        let store = Arc::new(scripted(fake.clone()).await);
        let (owner, mut owns) = watch::channel(false);
        let activity = Arc::new(RelayActivity::default());
        let release = CancellationToken::new();
        let holder = tokio::spawn(hold(
            Arc::clone(&store),
            owner,
            Arc::clone(&activity),
            release.clone(),
        ));
        owns.wait_for(|o| *o).await.unwrap();
        assert_eq!(fake.count(Stmt::TakeLease), 1);
        // Renewals go through: it stays the owner.
        fake.always(Stmt::RenewLease, applied(true));
        tokio::time::sleep(3 * RENEW_EVERY).await;
        assert!(*owns.borrow());
        // A renewal fails: it stops owning at that attempt, long before the TTL runs out.
        fake.always(Stmt::RenewLease, timeout());
        let failing_since = Instant::now();
        owns.wait_for(|o| !*o).await.unwrap();
        assert!(
            failing_since.elapsed() <= RENEW_EVERY,
            "{:?}",
            failing_since.elapsed()
        );
        // Another instance holds it now: this one stands by and says so.
        fake.always(Stmt::RenewLease, applied(false));
        fake.always(Stmt::TakeLease, applied(false));
        tokio::time::sleep(2 * RENEW_EVERY).await;
        assert!(!*owns.borrow());
        let shown = activity.get();
        assert_eq!(shown.state, RelayState::Starting);
        assert!(shown.last_error.unwrap_or_default().contains("standing by"));
        // It frees up: taken again; then stopping releases it.
        fake.always(Stmt::TakeLease, applied(true));
        owns.wait_for(|o| *o).await.unwrap();
        release.cancel();
        holder.await.unwrap();
        assert!(!*owns.borrow());
        assert_eq!(fake.count(Stmt::ReleaseLease), 1);
    }
}
