//! Order commands on ScyllaDB.
//!
//! A command (1) takes a position, (2) writes the event's pending-index entry (and, for a
//! creation, its listing entry), then (3) commits the order's new state and its event in one
//! conditional single-partition batch: `IF NOT EXISTS` on the event's version is the
//! optimistic concurrency check, so of two writers starting from the same version exactly one
//! commits. A crash or a lost race after (2) leaves only index entries that point at no event
//! (or at another writer's event); readers skip those.

use super::ScyllaStore;
use super::cluster::values;
use super::orders::day_of;
use super::position;
use super::rows::micros;
use super::statements::{Stmt, applied};
use crate::domain::StoredEvent;
use crate::domain::{DomainError, EventEnvelope, NewOrder, Order, OrderId, TraceContext};
use crate::store::{Applied, IdempotencyKey, StoreError, fingerprint};
use chrono::{DateTime, Utc};
use scylla::value::CqlValue;
use std::sync::atomic::{AtomicI64, Ordering};

impl ScyllaStore {
    /// Creates an order; with an idempotency key, a retry of the same request returns the
    /// order the first one created.
    pub(super) async fn create(
        &self,
        new: NewOrder,
        key: Option<IdempotencyKey>,
        trace: Option<TraceContext>,
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        let mut id = OrderId::generate();
        if let Some(key) = key {
            let fp = fingerprint(&new);
            let claim = self
                .run(
                    Stmt::ClaimKey,
                    values![
                        key.as_str(),
                        fp.as_str(),
                        id.0,
                        micros(&now),
                        self.key_ttl_seconds,
                    ],
                )
                .await?;
            if !applied(&claim)? {
                let (stored_fp, stored_id) = self.idempotency_key(&key).await?;
                if stored_fp != fp {
                    return Err(StoreError::IdempotencyKeyReused);
                }
                if let Some((order, _, _)) = self.load(stored_id).await? {
                    return Ok(Applied::Replayed { order });
                }
                // The first request claimed the key but has not (yet) created its order:
                // create it under the claimed id; if both get there, one commits.
                id = stored_id;
            }
        }
        let (order, mut event) = Order::create(id, new, now);
        event.trace = trace;
        let position = self.clock.next(now, 0, self.tag.current()?);
        if self.write(&order, &event, position, true, now).await? {
            return Ok(written(order, event, position));
        }
        match self.load(id).await? {
            Some((order, _, _)) => Ok(Applied::Replayed { order }),
            None => Err(StoreError::Unavailable(
                "the order's creation raced with another one; retry".into(),
            )),
        }
    }

    /// Loads an order, lets the state machine decide, and commits the new state with its
    /// event unless another writer changed the order first.
    pub(super) async fn change(
        &self,
        id: OrderId,
        trace: Option<TraceContext>,
        now: DateTime<Utc>,
        decide: impl Fn(&Order) -> Result<(Order, EventEnvelope), DomainError>,
    ) -> Result<Applied, StoreError> {
        let (current, last, _) = self.load(id).await?.ok_or(StoreError::NotFound("order"))?;
        let (order, mut event) = decide(&current)?;
        event.trace = trace;
        let position = self.clock.next(now, last, self.tag.current()?);
        if self.write(&order, &event, position, false, now).await? {
            return Ok(written(order, event, position));
        }
        // Someone else wrote this version: the state machine explains why we cannot.
        let (current, _, _) = self.load(id).await?.ok_or(StoreError::NotFound("order"))?;
        decide(&current)?;
        Err(StoreError::Unavailable(
            "the order changed concurrently; retry".into(),
        ))
    }

    /// The fingerprint and order of a claimed idempotency key.
    async fn idempotency_key(&self, key: &IdempotencyKey) -> Result<(String, OrderId), StoreError> {
        let found = self.run(Stmt::SelectKey, values![key.as_str()]).await?;
        match found.first().map(Vec::as_slice) {
            Some([Some(CqlValue::Text(fp)), Some(CqlValue::Uuid(id))]) => {
                Ok((fp.clone(), OrderId(*id)))
            }
            other => Err(StoreError::Corrupt(format!(
                "idempotency key row {other:?}"
            ))),
        }
    }

    /// Announces the event, then commits it with the order's new state: `Ok(false)` when
    /// another writer had the version. When the event is known not to have been written
    /// (announcing failed, or the race was lost) its index entry is removed at once, so the
    /// polling relay passes it without having to settle it; when the commit's outcome is
    /// unknown (a timeout), the entry stays for the relay to settle.
    async fn write(
        &self,
        order: &Order,
        event: &EventEnvelope,
        position: u64,
        listed: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        if let Err(error) = self.announce(event, position, listed, now).await {
            self.unindex(event, position).await;
            return Err(error);
        }
        let committed = self.commit(order, event, position).await?;
        if !committed {
            self.unindex(event, position).await;
        }
        Ok(committed)
    }

    /// Removes the index entry of an event that was not written (best effort: the relay
    /// settles a leftover entry itself).
    async fn unindex(&self, event: &EventEnvelope, position: u64) {
        let bucket = position::bucket_of(position);
        let entry = values![bucket, position as i64, event.event_id];
        if let Err(error) = self.run(Stmt::UnindexEvent, entry).await {
            tracing::warn!(%error, position, "cannot remove the index entry of an unwritten event");
        }
    }

    /// Writes the event's pending-index entry (and the order's listing entry) before the
    /// commit. Fails, so nothing is committed, if that took so long that the polling relay
    /// may already have read past the position.
    async fn announce(
        &self,
        event: &EventEnvelope,
        position: u64,
        listed: bool,
        taken: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let p = position as i64;
        let bucket = position::bucket_of(position);
        // One write per bucket and process registers the bucket for the relay.
        let ttl = self.ttl_seconds;
        (self.indexed_bucket)
            .ensure(bucket, || self.run(Stmt::AddBucket, values![bucket, ttl]))
            .await?;
        let index = self.run(
            Stmt::IndexEvent,
            values![
                bucket,
                p,
                event.event_id,
                event.aggregate_id.0,
                event.aggregate_version as i32,
                self.ttl_seconds,
            ],
        );
        if listed {
            let day = day_of(taken);
            let list = self.run(Stmt::ListOrder, values![day, p, event.aggregate_id.0]);
            let (a, b) = futures::join!(index, list);
            a?;
            b?;
            // One write per day and process registers the day in the listing.
            (self.listed_day)
                .ensure(i64::from(day), || self.run(Stmt::AddDay, values![day]))
                .await?;
        } else {
            index.await?;
        }
        let spent = (Utc::now() - taken).to_std().unwrap_or_default();
        if spent > self.settle / 2 {
            return Err(StoreError::Unavailable(format!(
                "writing the pending index took {spent:?}; nothing was committed, retry"
            )));
        }
        Ok(())
    }

    /// The conditional batch: the order's state and its event, in one partition. True if it
    /// applied; false if the event's version already exists.
    async fn commit(
        &self,
        order: &Order,
        event: &EventEnvelope,
        position: u64,
    ) -> Result<bool, StoreError> {
        let items =
            serde_json::to_string(&order.items).map_err(|e| StoreError::Backend(e.to_string()))?;
        let state = values![
            order.customer_id.as_uuid(),
            order.status.as_str(),
            order.version as i32,
            items,
            order.cancel_reason.as_ref().map(|r| r.as_str()),
            micros(&order.created_at),
            micros(&order.updated_at),
            position as i64,
            order.id.0,
        ];
        let row = values![
            position as i64,
            event.event_id,
            event.aggregate_type,
            event.aggregate_id.0,
            event.aggregate_version as i32,
            event.event_type.as_str(),
            event.payload.as_str(),
            micros(&event.occurred_at),
            event.schema_version as i32,
            event.trace.as_ref().map(TraceContext::traceparent),
            event.trace.as_ref().and_then(TraceContext::tracestate),
            self.ttl_seconds,
        ];
        let result = self.cluster.commit(state, row).await?;
        let committed = applied(&result)?;
        if committed {
            self.head.send_if_modified(|h| {
                let newer = position > *h;
                if newer {
                    *h = position;
                }
                newer
            });
        }
        Ok(committed)
    }
}

fn written(order: Order, envelope: EventEnvelope, position: u64) -> Applied {
    Applied::Written {
        order,
        event: StoredEvent { position, envelope },
    }
}

/// The last bucket or day this process registered. It is set only once the registration was
/// written: a failed one is written again by the next command instead of being taken as done
/// (which would hide the bucket from the polling relay, or the day from the order list).
#[derive(Debug)]
pub struct Registered(AtomicI64);

impl Default for Registered {
    fn default() -> Self {
        Self(AtomicI64::new(i64::MIN))
    }
}

impl Registered {
    /// Runs `write` unless `key` is the last one registered; records `key` once it succeeded.
    pub async fn ensure<F, T>(&self, key: i64, write: impl FnOnce() -> F) -> Result<(), StoreError>
    where
        F: std::future::Future<Output = Result<T, StoreError>>,
    {
        if self.0.load(Ordering::Relaxed) != key {
            write().await?;
            self.0.store(key, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OrderStore;
    use crate::store::scylla::cluster::fake::{FakeCluster, applied, timeout};
    use crate::store::scylla::tests::{create, create_keyed, last_committed, new_order, scripted};
    use std::sync::Arc;

    /// The first value of each time `stmt` ran.
    fn firsts(fake: &FakeCluster, stmt: Stmt) -> Vec<Option<CqlValue>> {
        fake.values(stmt)
            .into_iter()
            .map(|v| v[0].clone())
            .collect()
    }

    #[tokio::test]
    async fn a_failed_registration_is_written_again_by_the_next_command() {
        let fake = Arc::new(FakeCluster::default());
        fake.then(Stmt::AddBucket, timeout())
            .then(Stmt::AddDay, timeout())
            .always(Stmt::InsertEvent, applied(true));
        let store = scripted(fake.clone()).await;
        // The bucket's registration times out: nothing is committed.
        assert!(store.apply(create()).await.is_err());
        assert_eq!(fake.count(Stmt::InsertEvent), 0);
        // The day's registration times out: nothing is committed either.
        assert!(store.apply(create()).await.is_err());
        assert_eq!(fake.count(Stmt::InsertEvent), 0);
        // Both are written again, and then the order commits.
        store.apply(create()).await.unwrap();
        let buckets = firsts(&fake, Stmt::AddBucket);
        let indexed = firsts(&fake, Stmt::IndexEvent);
        assert!(
            buckets[1..].contains(indexed.last().unwrap()),
            "the committed event's bucket was registered after the failure: {buckets:?}"
        );
        let days = firsts(&fake, Stmt::AddDay);
        let listed = firsts(&fake, Stmt::ListOrder);
        assert!(days[1..].contains(listed.last().unwrap()), "{days:?}");
        // Once registered, a later command in the same bucket and day writes neither again.
        let before = (fake.count(Stmt::AddBucket), fake.count(Stmt::AddDay));
        store.apply(create()).await.unwrap();
        let (indexed, listed) = (
            firsts(&fake, Stmt::IndexEvent),
            firsts(&fake, Stmt::ListOrder),
        );
        let same = |v: &[Option<CqlValue>]| v[v.len() - 1] == v[v.len() - 2];
        if same(&indexed) {
            assert_eq!(fake.count(Stmt::AddBucket), before.0);
        }
        if same(&listed) {
            assert_eq!(fake.count(Stmt::AddDay), before.1);
        }
    }

    /// The order id the commits on `fake` wrote, each time (the last value of `SaveOrder`).
    fn committed_ids(fake: &FakeCluster) -> Vec<Option<CqlValue>> {
        fake.values(Stmt::SaveOrder)
            .into_iter()
            .map(|v| v.last().cloned().flatten())
            .collect()
    }

    /// The first request claimed the key (for `claimed`) and died before creating its order:
    /// every later claim finds the key taken, for the same request.
    fn claimed_by_a_dead_request(fake: &FakeCluster, claimed: OrderId) {
        let held = vec![values![fingerprint(&new_order()), claimed.0]];
        fake.always(Stmt::ClaimKey, applied(false))
            .always(Stmt::SelectKey, Ok(held));
    }

    #[tokio::test]
    async fn a_retry_creates_the_order_under_the_id_its_dead_first_request_claimed() {
        let fake = Arc::new(FakeCluster::default());
        let claimed = OrderId::generate();
        claimed_by_a_dead_request(&fake, claimed);
        let store = scripted(fake.clone()).await;
        // No order under the claimed id yet (SelectOrder finds nothing).
        match store.apply(create_keyed("k-1")).await.unwrap() {
            Applied::Written { order, event } => {
                assert_eq!(order.id, claimed);
                assert_eq!(event.envelope.aggregate_id, claimed);
            }
            Applied::Replayed { .. } => panic!("there was nothing to replay"),
        }
        assert_eq!(committed_ids(&fake), [Some(CqlValue::Uuid(claimed.0))]);
    }

    #[tokio::test]
    async fn of_two_retries_racing_to_create_the_claimed_order_one_commits_the_other_replays() {
        let fake = Arc::new(FakeCluster::default());
        let claimed = OrderId::generate();
        claimed_by_a_dead_request(&fake, claimed);
        let store = scripted(fake.clone()).await;
        // Both retries found no order; the first commits.
        let Applied::Written { order: first, .. } = store.apply(create_keyed("k-1")).await.unwrap()
        else {
            panic!("the first retry creates the order");
        };
        // The second, which also found none, loses `IF NOT EXISTS` and reads the first's order.
        fake.then(Stmt::SelectOrder, Ok(Vec::new()))
            .then(Stmt::InsertEvent, applied(false))
            .then(Stmt::SelectOrder, Ok(vec![last_committed(&fake)]));
        match store.apply(create_keyed("k-1")).await.unwrap() {
            Applied::Replayed { order } => assert_eq!(order, first),
            Applied::Written { .. } => panic!("only one retry may create the order"),
        }
        let id = Some(CqlValue::Uuid(claimed.0));
        assert_eq!(
            committed_ids(&fake),
            [id.clone(), id],
            "both tried the claimed id"
        );
    }
}
