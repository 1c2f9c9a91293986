//! The polling relay's reads and writes: events after a position (through the pending index,
//! bucket by bucket), the backlog, checkpoints and delivery records.

use super::ScyllaStore;
use super::cluster::{Row, values};
use super::position::{self, Clock};
use super::rows::{self, EVENT_COLUMNS, NamedRow, micros};
use super::statements::Stmt;
use crate::domain::{DeliveryRecord, StoredEvent};
use crate::store::{Backlog, StoreError};
use chrono::{TimeZone, Utc};
use scylla::value::CqlValue;
use std::collections::HashMap;

/// One pending-index entry.
#[derive(Debug, Clone, Copy)]
struct Entry {
    position: u64,
    event_id: uuid::Uuid,
    aggregate_id: uuid::Uuid,
    version: i32,
}

/// What an entry turned out to be.
enum Found {
    Event(StoredEvent),
    /// The write it announced never committed (or lost its race): skip it.
    Orphan,
    /// Not committed yet, and too young to give up on: stop before it.
    NotYet,
}

impl ScyllaStore {
    /// The registered buckets that may hold entries in (`after`, `through`].
    pub(super) async fn buckets(&self, after: u64, through: u64) -> Result<Vec<i64>, StoreError> {
        let range = values![position::bucket_of(after), position::bucket_of(through)];
        let found = self.run(Stmt::Buckets, range).await?;
        found
            .iter()
            .map(|row| match row.as_slice() {
                [Some(CqlValue::BigInt(b))] => Ok(*b),
                other => Err(StoreError::Corrupt(format!("outbox_buckets row {other:?}"))),
            })
            .collect()
    }

    /// Where reading after `after` may start: past a range an earlier call found empty.
    fn resume_point(&self, after: u64) -> u64 {
        match *self.scanned.lock().expect("scan cache") {
            Some((from, through)) if from == after => through,
            _ => after,
        }
    }

    /// Up to `limit` committed events with a position in (`after`, horizon], in position
    /// order. Index entries are read bucket by bucket; each is checked against its event row.
    pub(super) async fn pending_events(
        &self,
        after: u64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let horizon = Clock::horizon(Utc::now(), self.settle);
        let mut from = self.resume_point(after);
        let mut events = Vec::new();
        for bucket in self.buckets(from, horizon).await? {
            loop {
                let entries = self.entries(bucket, from, horizon, limit).await?;
                let checks = entries.iter().map(|e| self.check(*e));
                for (entry, found) in entries.iter().zip(futures::future::join_all(checks).await) {
                    match found? {
                        Found::Event(event) => events.push(event),
                        Found::Orphan => {}
                        Found::NotYet => return Ok(events),
                    }
                    from = entry.position;
                    if events.len() == limit as usize {
                        return Ok(events);
                    }
                }
                if entries.len() < limit as usize {
                    break;
                }
            }
        }
        if events.is_empty() && from < horizon {
            // Nothing but orphans up to the horizon, and nothing new can appear below it.
            *self.scanned.lock().expect("scan cache") = Some((after, horizon));
        }
        Ok(events)
    }

    async fn entries(
        &self,
        bucket: i64,
        after: u64,
        horizon: u64,
        limit: u32,
    ) -> Result<Vec<Entry>, StoreError> {
        let found = self
            .run(
                Stmt::Pending,
                values![bucket, after as i64, horizon as i64, limit as i32],
            )
            .await?;
        found
            .iter()
            .map(|row| match row.as_slice() {
                [
                    Some(CqlValue::BigInt(p)),
                    Some(CqlValue::Uuid(event_id)),
                    Some(CqlValue::Uuid(aggregate_id)),
                    Some(CqlValue::Int(version)),
                ] => Ok(Entry {
                    position: *p as u64,
                    event_id: *event_id,
                    aggregate_id: *aggregate_id,
                    version: *version,
                }),
                other => Err(StoreError::Corrupt(format!("outbox_by_time row {other:?}"))),
            })
            .collect()
    }

    /// The event an entry announced, read at LOCAL_QUORUM; if it is missing, read again at
    /// LOCAL_SERIAL once the entry is older than the orphan timeout (by default the settle
    /// interval plus clock skew: by then the writer's attempt is over). That read completes a
    /// lightweight transaction left half-done, or cuts it off for good, so a row still
    /// missing after it never appears: the write failed.
    async fn check(&self, entry: Entry) -> Result<Found, StoreError> {
        let key = (entry.aggregate_id, entry.version);
        let mut row = self.read(Stmt::SelectEvent, key).await?;
        if row.is_empty() {
            let age = (Utc::now() - position::time_of(entry.position))
                .to_std()
                .unwrap_or_default();
            if age < self.orphan_timeout {
                return Ok(Found::NotYet);
            }
            row = self.read(Stmt::SelectEventSerial, key).await?;
        }
        let Some(values) = row.first() else {
            tracing::warn!(
                position = entry.position,
                aggregate_id = %entry.aggregate_id,
                "skipping a pending-index entry whose write never committed"
            );
            return Ok(Found::Orphan);
        };
        let event = rows::event(&NamedRow {
            names: &EVENT_COLUMNS,
            values,
        })?;
        Ok(
            if event.envelope.event_id == entry.event_id && event.position == entry.position {
                Found::Event(event)
            } else {
                Found::Orphan
            },
        )
    }

    async fn read(
        &self,
        stmt: Stmt,
        (id, version): (uuid::Uuid, i32),
    ) -> Result<Vec<Row>, StoreError> {
        self.run(stmt, values![id, version]).await
    }

    /// Index entries after `checkpoint` up to now (orphans included), and the oldest one.
    pub(super) async fn pending_backlog(&self, checkpoint: u64) -> Result<Backlog, StoreError> {
        let from = self.resume_point(checkpoint);
        let now = position::last_at(Utc::now());
        let mut backlog = Backlog::default();
        for bucket in self.buckets(from, now).await? {
            let found = self
                .run(Stmt::CountPending, values![bucket, from as i64])
                .await?;
            match found.first().map(Vec::as_slice) {
                Some([Some(CqlValue::BigInt(n)), oldest]) => {
                    backlog.pending += (*n).max(0) as u64;
                    if let (None, Some(CqlValue::BigInt(p))) = (backlog.oldest, oldest) {
                        backlog.oldest = Some(position::time_of(*p as u64));
                    }
                }
                other => return Err(StoreError::Corrupt(format!("count row {other:?}"))),
            }
        }
        Ok(backlog)
    }

    /// The saved checkpoint of `relay` (0 when it never saved one).
    pub(super) async fn saved_checkpoint(&self, relay: &str) -> Result<u64, StoreError> {
        let found = self.run(Stmt::Checkpoint, values![relay]).await?;
        match found.first().map(Vec::as_slice) {
            None => Ok(0),
            Some([Some(CqlValue::BigInt(p))]) => Ok((*p).max(0) as u64),
            other => Err(StoreError::Corrupt(format!("checkpoint row {other:?}"))),
        }
    }

    /// Records where an event went.
    pub(super) async fn save_delivery(
        &self,
        position: u64,
        d: &DeliveryRecord,
    ) -> Result<(), StoreError> {
        let values = values![
            position as i64,
            d.topic.as_str(),
            d.partition,
            d.offset,
            micros(&d.published_at),
            self.ttl_seconds,
        ];
        self.run(Stmt::SaveDelivery, values).await?;
        Ok(())
    }

    /// Deliveries first, the checkpoint last: a crash in between republishes (at least once),
    /// never skips.
    pub(super) async fn save_checkpoint(
        &self,
        relay: &str,
        position: u64,
    ) -> Result<(), StoreError> {
        let values = values![relay, position as i64, micros(&Utc::now())];
        self.run(Stmt::SaveCheckpoint, values).await?;
        Ok(())
    }

    /// Delivery records of `positions`, read concurrently (absent ones are unpublished).
    pub(super) async fn load_deliveries(
        &self,
        positions: Vec<u64>,
    ) -> Result<HashMap<u64, DeliveryRecord>, StoreError> {
        let reads = positions
            .iter()
            .map(|p| self.run(Stmt::Delivery, values![*p as i64]));
        let mut found = HashMap::new();
        for (position, result) in positions.iter().zip(futures::future::join_all(reads).await) {
            let row = result?;
            let Some(values) = row.first() else { continue };
            let record = match values.as_slice() {
                [
                    Some(CqlValue::Text(topic)),
                    partition,
                    offset,
                    Some(CqlValue::BigInt(at)),
                ] => DeliveryRecord {
                    topic: topic.clone(),
                    partition: partition.as_ref().and_then(CqlValue::as_int),
                    offset: offset.as_ref().and_then(CqlValue::as_bigint),
                    published_at: Utc
                        .timestamp_micros(*at)
                        .single()
                        .ok_or_else(|| StoreError::Corrupt(format!("published_at {at}")))?,
                },
                other => return Err(StoreError::Corrupt(format!("delivery row {other:?}"))),
            };
            found.insert(*position, record);
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::dead_letters::{DeadLetterKind, NewDeadLetter};
    use crate::store::scylla::cluster::fake::{FakeCluster, timeout};
    use crate::store::scylla::rows::tests::event_row;
    use crate::store::scylla::tests::{create, scripted};
    use crate::store::{OrderStore, OutboxLog};
    use std::sync::Arc;

    /// A pending-index entry row.
    fn entry(position: u64, event_id: uuid::Uuid, aggregate_id: uuid::Uuid) -> Row {
        values![position as i64, event_id, aggregate_id, 1]
    }

    /// Two entries six seconds old: the first announced a write that failed (no row, at any
    /// consistency), the second one that committed.
    fn cluster() -> (Arc<FakeCluster>, StoredEvent) {
        let fake = Arc::new(FakeCluster::default());
        let taken = position::first_at(Utc::now() - chrono::Duration::seconds(6));
        let committed = event_row();
        let mut second = rows::event(&committed).unwrap();
        second.position = taken + (1 << position::NODE_BITS);
        let failed = entry(taken, uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let ok = entry(
            second.position,
            second.envelope.event_id,
            second.envelope.aggregate_id.0,
        );
        let mut buckets = vec![
            position::bucket_of(taken),
            position::bucket_of(second.position),
        ];
        buckets.dedup();
        let buckets = buckets.into_iter().map(|b| values![b]).collect();
        fake.always(Stmt::Buckets, Ok(buckets));
        fake.respond(Stmt::Pending, move |v| {
            let (Some(CqlValue::BigInt(bucket)), Some(CqlValue::BigInt(after))) = (&v[0], &v[1])
            else {
                panic!("pending {v:?}");
            };
            Ok([&failed, &ok]
                .into_iter()
                .filter(|e| {
                    let Some(CqlValue::BigInt(p)) = e[0] else {
                        unreachable!()
                    };
                    position::bucket_of(p as u64) == *bucket && p > *after
                })
                .cloned()
                .collect())
        });
        let row: Row = EVENT_COLUMNS
            .iter()
            .map(|c| match *c {
                "position" => Some(CqlValue::BigInt(second.position as i64)),
                c => committed.0[c].clone(),
            })
            .collect();
        let wanted = second.envelope.aggregate_id.0;
        fake.respond(Stmt::SelectEvent, move |v| match v[0] {
            Some(CqlValue::Uuid(id)) if id == wanted => Ok(vec![row.clone()]),
            _ => Ok(Vec::new()),
        });
        (fake, second)
    }

    #[tokio::test]
    async fn a_failed_write_holds_the_relay_up_for_seconds_not_a_minute() {
        let (fake, committed) = cluster();
        let store = scripted(fake.clone()).await;
        let events = store.events_after(0, 10).await.unwrap();
        assert_eq!(
            events,
            [committed],
            "the failed write is passed, the next published"
        );
        assert_eq!(
            fake.count(Stmt::SelectEventSerial),
            1,
            "settled with one serial read"
        );
    }

    #[tokio::test]
    async fn a_lost_race_or_a_failed_announcement_removes_its_entry_at_once() {
        let fake = Arc::new(FakeCluster::default());
        let store = scripted(fake.clone()).await;
        // Another writer had the version (and the order is not there to return).
        fake.then(
            Stmt::InsertEvent,
            Ok(vec![vec![Some(CqlValue::Boolean(false))]]),
        );
        assert!(store.apply(create()).await.is_err());
        // The listing entry could not be written.
        fake.then(Stmt::ListOrder, timeout());
        assert!(store.apply(create()).await.is_err());
        let indexed = fake.values(Stmt::IndexEvent);
        let removed = fake.values(Stmt::UnindexEvent);
        assert_eq!(removed.len(), 2);
        for (entry, gone) in indexed.iter().zip(&removed) {
            // (bucket, position, event id) of the entry written.
            assert_eq!(gone[..], entry[..3], "{gone:?}");
        }
        // A commit whose outcome is unknown leaves its entry for the relay to settle.
        fake.then(Stmt::InsertEvent, timeout());
        assert!(store.apply(create()).await.is_err());
        assert_eq!(fake.count(Stmt::UnindexEvent), 2);
    }

    /// What one round of a relay records: two deliveries and a dead letter.
    fn round() -> (Vec<(u64, DeliveryRecord)>, Vec<NewDeadLetter>) {
        let event = rows::event(&event_row()).unwrap();
        let delivery = |offset| DeliveryRecord {
            topic: "orders".into(),
            partition: Some(0),
            offset: Some(offset),
            published_at: Utc::now(),
        };
        let letter = NewDeadLetter {
            kind: DeadLetterKind::Permanent,
            error: "too large".into(),
            failures: 1,
            first_failed_at: Utc::now(),
            last_failed_at: Utc::now(),
            event,
        };
        (vec![(1, delivery(0)), (2, delivery(1))], vec![letter])
    }

    #[tokio::test]
    async fn progress_saves_the_checkpoint_last_and_never_after_a_failed_write() {
        let fake = Arc::new(FakeCluster::default());
        let store = scripted(fake.clone()).await;
        let (deliveries, letters) = round();
        store
            .record_progress("relay", 3, deliveries.clone(), letters.clone())
            .await
            .unwrap();
        let log = fake.log.lock().unwrap().clone();
        let written: Vec<Stmt> = log
            .iter()
            .map(|(s, _)| *s)
            .skip_while(|s| *s == Stmt::ClaimTag)
            .collect();
        assert_eq!(
            written,
            [
                Stmt::InsertDeadLetter,
                Stmt::SaveDelivery,
                Stmt::SaveDelivery,
                Stmt::SaveCheckpoint
            ]
        );
        // A dead letter, or any one delivery, that cannot be written: no checkpoint, so the
        // relay publishes that round again rather than skip it.
        // (statement, how many of it succeed before one fails)
        for (stmt, succeeding) in [
            (Stmt::InsertDeadLetter, 0),
            (Stmt::SaveDelivery, 0),
            (Stmt::SaveDelivery, 1),
        ] {
            let fake = Arc::new(FakeCluster::default());
            for _ in 0..succeeding {
                fake.then(stmt, Ok(Vec::new()));
            }
            fake.then(stmt, timeout());
            let store = scripted(fake.clone()).await;
            let recorded = store
                .record_progress("relay", 3, deliveries.clone(), letters.clone())
                .await;
            assert!(recorded.is_err(), "{stmt:?} #{succeeding}");
            assert_eq!(fake.count(stmt), succeeding + 1);
            assert_eq!(
                fake.count(Stmt::SaveCheckpoint),
                0,
                "{stmt:?} #{succeeding}"
            );
        }
    }
}
