//! One relay per keyspace, however many instances run: the relay lease. Each instance tries
//! every [`RENEW_EVERY`] to take or renew a lease row with a lightweight transaction and a
//! [`LEASE_TTL`]; the one holding it runs the relay (see [`super::switch`]), the others stand
//! by. A crashed owner's lease expires with its TTL; a stopping owner releases it at once.
//! An owner that cannot renew gives the relay up at its next attempt, at the latest
//! [`UNRENEWED_AT_MOST`] after it sent its last renewal, so [`HANDOVER_MARGIN`] before the
//! lease can expire for the others.

use crate::relay::activity::{RelayActivity, RelayState};
use crate::relay::runner::pause;
use crate::store::scylla::ScyllaStore;
use crate::store::scylla::statements::LEASE_REQUEST_TIMEOUT;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a lease lasts without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// How often the lease is taken or renewed (attempts start this far apart, however long
/// each took).
pub const RENEW_EVERY: Duration = Duration::from_secs(5);
/// The longest an owner that can no longer renew keeps the relay after it sent its last
/// renewal: until its next attempt, which starts [`RENEW_EVERY`] later, has failed (lease
/// statements time out after [`LEASE_REQUEST_TIMEOUT`], whatever the store's timeout).
pub const UNRENEWED_AT_MOST: Duration = RENEW_EVERY.saturating_add(LEASE_REQUEST_TIMEOUT);
/// How long before its lease can pass to another instance such an owner has given the relay
/// up, at least (the lease's TTL runs from when the renewal applied, after it was sent).
pub const HANDOVER_MARGIN: Duration = LEASE_TTL.saturating_sub(UNRENEWED_AT_MOST);

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
        let sent = Instant::now();
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
        // The next attempt starts RENEW_EVERY after this one did, not after it ended.
        let next = (sent + RENEW_EVERY).saturating_duration_since(Instant::now());
        if !pause(next, &release).await {
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
    use crate::store::scylla::statements::Stmt;
    use crate::store::scylla::tests::scripted;
    use std::sync::Mutex;

    /// The figures `docs/SCYLLA.md` gives: an owner that cannot renew gives the relay up at
    /// most 7 s after its last renewal, at least 8 s before the lease can pass on; every
    /// lease statement has the short, fixed timeout those figures assume.
    #[test]
    fn an_owner_that_cannot_renew_stops_at_least_8_s_before_its_lease_can_pass() {
        assert_eq!(UNRENEWED_AT_MOST, Duration::from_secs(7));
        assert_eq!(HANDOVER_MARGIN, Duration::from_secs(8));
        for stmt in [Stmt::TakeLease, Stmt::RenewLease, Stmt::ReleaseLease] {
            assert_eq!(stmt.request_timeout(), Some(LEASE_REQUEST_TIMEOUT));
        }
    }

    /// Holds the lease over `fake` for a new instance, until `release`.
    async fn holder(
        fake: Arc<FakeCluster>,
        release: &CancellationToken,
    ) -> (
        watch::Receiver<bool>,
        Arc<RelayActivity>,
        tokio::task::JoinHandle<()>,
    ) {
        let store = Arc::new(scripted(fake).await);
        let (owner, owns) = watch::channel(false);
        let activity = Arc::new(RelayActivity::default());
        let task = tokio::spawn(hold(store, owner, Arc::clone(&activity), release.clone()));
        (owns, activity, task)
    }

    /// On a paused clock, every lease statement taking its whole request timeout: renewals
    /// that get through only just in time, then one that times out. The owner gives the relay
    /// up within [`UNRENEWED_AT_MOST`] of sending its last good renewal, which holds the lease
    /// for [`LEASE_TTL`] from then at least.
    #[tokio::test(start_paused = true)]
    async fn an_owner_whose_renewals_are_slow_then_fail_gives_up_in_time() {
        let fake = Arc::new(FakeCluster::default());
        let sent = Arc::new(Mutex::new(Vec::new()));
        let renewals = Arc::clone(&sent);
        // The fourth renewal, and every later one, times out.
        fake.respond(Stmt::RenewLease, move |_| {
            let mut sent = renewals.lock().unwrap();
            sent.push(Instant::now());
            if sent.len() < 4 {
                applied(true)
            } else {
                timeout()
            }
        });
        for stmt in [Stmt::TakeLease, Stmt::RenewLease, Stmt::ReleaseLease] {
            fake.slow(stmt, LEASE_REQUEST_TIMEOUT);
        }
        let release = CancellationToken::new();
        let (mut owns, _, task) = holder(fake.clone(), &release).await;
        owns.wait_for(|o| *o).await.unwrap();
        tokio::time::timeout(LEASE_TTL * 2, owns.wait_for(|o| !*o))
            .await
            .expect("the relay given up")
            .unwrap();
        let last_renewed = sent.lock().unwrap()[2];
        let given_up = Instant::now() - last_renewed;
        assert!(given_up <= UNRENEWED_AT_MOST, "{given_up:?}");
        assert!(LEASE_TTL - given_up >= HANDOVER_MARGIN, "{given_up:?}");
        release.cancel();
        task.await.unwrap();
    }

    /// The lease over a scripted cluster and a paused clock: a free lease is taken, an owner
    /// whose renewal fails stops at once, a lease held by another instance means standing by,
    /// and stopping releases it.
    #[tokio::test(start_paused = true)]
    async fn the_lease_is_taken_kept_lost_and_released() {
        let fake = Arc::new(FakeCluster::default());
        // No lease row yet: the renewal does not apply, the take does.
        fake.always(Stmt::RenewLease, applied(false));
        let release = CancellationToken::new();
        let (mut owns, activity, task) = holder(fake.clone(), &release).await;
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
        task.await.unwrap();
        assert!(!*owns.borrow());
        assert_eq!(fake.count(Stmt::ReleaseLease), 1);
    }
}
