//! The node tag in the low bits of every position this process hands out (see [`position`]),
//! held exclusively: a process claims a free tag with a lightweight transaction and a TTL,
//! renews it while it runs, and releases it when it stops. It uses the tag only while the
//! claim has a safe margin left, so a process that cannot renew stops writing well before the
//! tag could pass to another; if the tag was taken over after all, it claims a new one. Two
//! live processes therefore never share a tag, and their positions never collide (which
//! would drop a second dead letter, overwrite a delivery, or let the relay's cursor skip a
//! twin).
//!
//! [`position`]: super::position

use super::ScyllaStore;
use super::cluster::values;
use super::position::NODE_BITS;
use super::statements::{Stmt, applied};
use crate::store::StoreError;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long a claim lasts without renewal.
pub const TAG_TTL: Duration = Duration::from_secs(60);
/// How often the claim is renewed.
pub const RENEW_TAG_EVERY: Duration = Duration::from_secs(10);
/// A claim is used only while more than this is left of it: the time a process that can no
/// longer renew keeps from writing before anyone else could claim its tag.
pub const TAG_MARGIN: Duration = Duration::from_secs(20);

/// How many tags there are.
const TAGS: u64 = 1 << NODE_BITS;

/// This process's tag and its claim.
#[derive(Debug)]
pub struct PositionTag {
    /// Who claims, in the tag table.
    owner: Uuid,
    held: Mutex<Option<Held>>,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    tag: u64,
    /// Until when it may be used: the claim's TTL from when it was sent, less the margin.
    usable_until: Instant,
}

impl Default for PositionTag {
    fn default() -> Self {
        Self {
            owner: Uuid::new_v4(),
            held: Mutex::new(None),
        }
    }
}

impl PositionTag {
    /// The tag, if its claim is still safe to use.
    pub fn current(&self) -> Result<u64, StoreError> {
        match *self.held.lock().expect("tag") {
            Some(held) if Instant::now() < held.usable_until => Ok(held.tag),
            Some(_) => Err(StoreError::Unavailable(
                "this instance could not renew its position tag; writes wait until it can".into(),
            )),
            None => Err(StoreError::Unavailable(
                "this instance holds no position tag yet".into(),
            )),
        }
    }

    fn set(&self, tag: u64, sent: Instant) {
        let usable_until = sent + TAG_TTL - TAG_MARGIN;
        *self.held.lock().expect("tag") = Some(Held { tag, usable_until });
    }

    fn tag(&self) -> Option<u64> {
        self.held.lock().expect("tag").map(|h| h.tag)
    }
}

fn ttl_seconds() -> i32 {
    TAG_TTL.as_secs() as i32
}

impl ScyllaStore {
    /// Claims a free tag, trying them all from a random one.
    pub(super) async fn claim_tag(&self) -> Result<u64, StoreError> {
        let owner = self.tag.owner;
        let first = fastrand::u64(..TAGS);
        for i in 0..TAGS {
            let tag = (first + i) % TAGS;
            let sent = Instant::now();
            let claim = values![tag as i32, owner, ttl_seconds()];
            if applied(&self.run(Stmt::ClaimTag, claim).await?)? {
                self.tag.set(tag, sent);
                tracing::info!(tag, "claimed a position tag");
                return Ok(tag);
            }
        }
        Err(StoreError::Unavailable(
            "every position tag is held by another instance".into(),
        ))
    }

    /// Renews the claim; claims another tag if this one was taken over.
    pub(super) async fn renew_tag(&self) -> Result<(), StoreError> {
        let Some(tag) = self.tag.tag() else {
            return self.claim_tag().await.map(drop);
        };
        let owner = self.tag.owner;
        let sent = Instant::now();
        let renew = values![ttl_seconds(), owner, tag as i32, owner];
        if applied(&self.run(Stmt::RenewTag, renew).await?)? {
            self.tag.set(tag, sent);
            Ok(())
        } else {
            tracing::warn!(tag, "the position tag was taken over; claiming another");
            self.claim_tag().await.map(drop)
        }
    }

    /// Keeps the tag renewed until `stop` is cancelled, then releases it.
    pub async fn hold_tag(&self, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(RENEW_TAG_EVERY) => {}
                () = stop.cancelled() => break,
            }
            if let Err(error) = self.renew_tag().await {
                tracing::warn!(%error, "cannot renew the position tag");
            }
        }
        if let Some(tag) = self.tag.tag() {
            let release = values![tag as i32, self.tag.owner];
            if let Err(error) = self.run(Stmt::ReleaseTag, release).await {
                tracing::warn!(%error, "cannot release the position tag; it expires by itself");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::scylla::cluster::fake::{FakeCluster, applied, timeout};
    use crate::store::scylla::tests::{create, scripted};
    use crate::store::{Applied, OrderStore};
    use scylla::value::CqlValue;
    use std::sync::Arc;

    /// The tag each `ClaimTag` asked for.
    fn claimed(fake: &FakeCluster) -> Vec<u64> {
        fake.values(Stmt::ClaimTag)
            .iter()
            .map(|v| match v[0] {
                Some(CqlValue::Int(tag)) => tag as u64,
                ref other => panic!("tag {other:?}"),
            })
            .collect()
    }

    fn position(applied: Applied) -> u64 {
        match applied {
            Applied::Written { event, .. } => event.position,
            Applied::Replayed { .. } => unreachable!("no idempotency key"),
        }
    }

    #[tokio::test]
    async fn positions_carry_a_tag_no_other_live_instance_holds() {
        let fake = Arc::new(FakeCluster::default());
        // Two tags are held by other instances.
        fake.then(Stmt::ClaimTag, applied(false))
            .then(Stmt::ClaimTag, applied(false));
        let store = scripted(fake.clone()).await;
        let tags = claimed(&fake);
        assert_eq!(tags.len(), 3, "{tags:?}");
        assert_eq!(tags[1], (tags[0] + 1) % TAGS);
        let held = tags[2];
        let p = position(store.apply(create()).await.unwrap());
        assert_eq!(p & (TAGS - 1), held);
    }

    #[tokio::test(start_paused = true)]
    async fn an_instance_that_cannot_renew_stops_writing_before_its_tag_could_pass_on() {
        let fake = Arc::new(FakeCluster::default());
        let store = scripted(fake.clone()).await;
        fake.always(Stmt::RenewTag, timeout());
        store.apply(create()).await.unwrap();
        // Renewals fail from now on; the claim is used up to TTL - margin, never beyond.
        tokio::time::advance(TAG_TTL - TAG_MARGIN - Duration::from_secs(1)).await;
        assert!(store.renew_tag().await.is_err());
        store.apply(create()).await.unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        let indexed = fake.count(Stmt::IndexEvent);
        assert!(matches!(
            store.apply(create()).await,
            Err(StoreError::Unavailable(_))
        ));
        assert_eq!(fake.count(Stmt::IndexEvent), indexed, "nothing written");
        // A renewal that gets through makes it usable again.
        fake.always(Stmt::RenewTag, applied(true));
        store.renew_tag().await.unwrap();
        store.apply(create()).await.unwrap();
    }

    #[tokio::test]
    async fn a_tag_taken_over_is_replaced_by_a_free_one() {
        let fake = Arc::new(FakeCluster::default());
        let store = scripted(fake.clone()).await;
        fake.then(Stmt::RenewTag, applied(false));
        store.renew_tag().await.unwrap();
        let second = *claimed(&fake).last().unwrap();
        let p = position(store.apply(create()).await.unwrap());
        assert_eq!(p & (TAGS - 1), second);
        assert_eq!(claimed(&fake).len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_tag_is_renewed_while_held_and_released_at_shutdown() {
        let fake = Arc::new(FakeCluster::default());
        let store = scripted(fake.clone()).await;
        let held = values![claimed(&fake)[0] as i32, store.tag.owner];
        let stop = CancellationToken::new();
        let shutdown = async {
            tokio::time::sleep(2 * RENEW_TAG_EVERY + Duration::from_secs(1)).await;
            assert_eq!(fake.count(Stmt::ReleaseTag), 0, "held while running");
            stop.cancel();
        };
        tokio::join!(store.hold_tag(stop.clone()), shutdown);
        assert_eq!(fake.count(Stmt::RenewTag), 2);
        assert_eq!(fake.values(Stmt::ReleaseTag), [held]);
        let last = fake.log.lock().unwrap().last().map(|(s, _)| *s);
        assert_eq!(
            last,
            Some(Stmt::ReleaseTag),
            "nothing runs after the release"
        );
    }
}
