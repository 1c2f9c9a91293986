//! Order commands on ScyllaDB.
//!
//! A command (1) takes a position, (2) writes the event's pending-index entry (and, for a
//! creation, its listing entry), then (3) commits the order's new state and its event in one
//! conditional single-partition batch: `IF NOT EXISTS` on the event's version is the
//! optimistic concurrency check, so of two writers starting from the same version exactly one
//! commits. A crash or a lost race after (2) leaves only index entries that point at no event
//! (or at another writer's event); readers skip those.

use super::ScyllaStore;
use super::orders::day_of;
use super::position;
use super::rows::micros;
use super::statements::applied;
use crate::domain::StoredEvent;
use crate::domain::{DomainError, EventEnvelope, NewOrder, Order, OrderId};
use crate::store::{Applied, IdempotencyKey, StoreError, fingerprint};
use chrono::{DateTime, Utc};
use scylla::statement::batch::{Batch, BatchType};
use scylla::value::CqlValue;
use std::sync::atomic::Ordering;

impl ScyllaStore {
    /// Creates an order; with an idempotency key, a retry of the same request returns the
    /// order the first one created.
    pub(super) async fn create(
        &self,
        new: NewOrder,
        key: Option<IdempotencyKey>,
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        let mut id = OrderId::generate();
        if let Some(key) = key {
            let fp = fingerprint(&new);
            let claim = self
                .session
                .execute_unpaged(
                    &self.statements.claim_key,
                    (
                        key.as_str(),
                        fp.as_str(),
                        id.0,
                        micros(&now),
                        self.key_ttl_seconds,
                    ),
                )
                .await?;
            if !applied(claim)? {
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
        let (order, event) = Order::create(id, new, now);
        let position = self.clock.next(now, 0);
        self.announce(&event, position, true, now).await?;
        if self.commit(&order, &event, position).await? {
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
        now: DateTime<Utc>,
        decide: impl Fn(&Order) -> Result<(Order, EventEnvelope), DomainError>,
    ) -> Result<Applied, StoreError> {
        let (current, last, _) = self.load(id).await?.ok_or(StoreError::NotFound("order"))?;
        let (order, event) = decide(&current)?;
        let position = self.clock.next(now, last);
        self.announce(&event, position, false, now).await?;
        if self.commit(&order, &event, position).await? {
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
        let found = super::statements::rows(
            self.session
                .execute_unpaged(&self.statements.select_key, (key.as_str(),))
                .await?,
        )?;
        match found.first().map(Vec::as_slice) {
            Some([Some(CqlValue::Text(fp)), Some(CqlValue::Uuid(id))]) => {
                Ok((fp.clone(), OrderId(*id)))
            }
            other => Err(StoreError::Corrupt(format!(
                "idempotency key row {other:?}"
            ))),
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
        if self.indexed_bucket.swap(bucket, Ordering::Relaxed) != bucket {
            self.session
                .execute_unpaged(&self.statements.add_bucket, (bucket, self.ttl_seconds))
                .await?;
        }
        let index = self.session.execute_unpaged(
            &self.statements.index_event,
            (
                bucket,
                p,
                event.event_id,
                event.aggregate_id.0,
                event.aggregate_version as i32,
                self.ttl_seconds,
            ),
        );
        if listed {
            let day = day_of(taken);
            let list = self
                .session
                .execute_unpaged(&self.statements.list_order, (day, p, event.aggregate_id.0));
            let (a, b) = futures::join!(index, list);
            a?;
            b?;
            // One write per day and process registers the day in the listing.
            if self.listed_day.swap(day, Ordering::Relaxed) != day {
                self.session
                    .execute_unpaged(&self.statements.add_day, (day,))
                    .await?;
            }
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
        let mut batch = Batch::new(BatchType::Unlogged);
        batch.append_statement(self.statements.save_order.clone());
        batch.append_statement(self.statements.insert_event.clone());
        let items =
            serde_json::to_string(&order.items).map_err(|e| StoreError::Backend(e.to_string()))?;
        let state = (
            order.customer_id.as_uuid(),
            order.status.as_str(),
            order.version as i32,
            items,
            order.cancel_reason.as_ref().map(|r| r.as_str().to_string()),
            micros(&order.created_at),
            micros(&order.updated_at),
            position as i64,
            order.id.0,
        );
        let row = (
            position as i64,
            event.event_id,
            event.aggregate_type,
            event.aggregate_id.0,
            event.aggregate_version as i32,
            event.event_type.as_str(),
            event.payload.as_str(),
            micros(&event.occurred_at),
            event.schema_version as i32,
            self.ttl_seconds,
        );
        let result = self.session.batch(&batch, (state, row)).await?;
        let committed = applied(result)?;
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
