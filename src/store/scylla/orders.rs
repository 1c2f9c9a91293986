//! Reading orders: one order with its events (one partition), and the order list, newest
//! first, from the per-day listing.

use super::ScyllaStore;
use super::cluster::{Row, values};
use super::position;
use super::rows::{self, NamedRow};
use super::statements::{Stmt, order_and_event_columns};
use crate::domain::StoredEvent;
use crate::domain::{Order, OrderId};
use crate::store::{EventPage, OrderCursor, OrderPage, StoreError};
use chrono::{DateTime, Utc};
use scylla::value::CqlValue;

/// Days since the Unix epoch of `t`: the listing's partition.
pub fn day_of(t: DateTime<Utc>) -> i32 {
    t.timestamp().div_euclid(86_400) as i32
}

/// The events among rows of the outbox table (a partition holding only the order's static
/// columns gives one row without an event).
fn events_in(names: &[&'static str], found: &[Row]) -> Result<Vec<StoredEvent>, StoreError> {
    let mut events = Vec::with_capacity(found.len());
    for values in found {
        let row = NamedRow { names, values };
        if rows::Columns::column(&row, "aggregate_version")?.is_some() {
            events.push(rows::event(&row)?);
        }
    }
    Ok(events)
}

impl ScyllaStore {
    /// The order, its newest event position, and its events in version order.
    pub(super) async fn load(
        &self,
        id: OrderId,
    ) -> Result<Option<(Order, u64, Vec<StoredEvent>)>, StoreError> {
        let found = self.run(Stmt::SelectOrder, values![id.0]).await?;
        let names = order_and_event_columns();
        let Some(first) = found.first() else {
            return Ok(None);
        };
        let head = NamedRow {
            names: &names,
            values: first,
        };
        let Some((order, last)) = rows::order(&head)? else {
            return Ok(None);
        };
        Ok(Some((order, last, events_in(&names, &found)?)))
    }

    /// The order with its first event, from one row (the order's static columns come with
    /// every row): the cost does not grow with the order's events.
    async fn order_head(
        &self,
        id: OrderId,
    ) -> Result<Option<(Order, Option<StoredEvent>)>, StoreError> {
        let found = self.run(Stmt::SelectOrderHead, values![id.0]).await?;
        let names = order_and_event_columns();
        let Some(values) = found.first() else {
            return Ok(None);
        };
        let row = NamedRow {
            names: &names,
            values,
        };
        let Some((order, _)) = rows::order(&row)? else {
            return Ok(None);
        };
        let first = events_in(&names, &found)?.into_iter().next();
        Ok(Some((order, first)))
    }

    /// The order and the page of its events `page` asks for, newest first: two queries of
    /// at most one row and `page.limit` rows.
    pub(super) async fn order_page(
        &self,
        id: OrderId,
        page: EventPage,
    ) -> Result<Option<(Order, Vec<StoredEvent>)>, StoreError> {
        let Some((order, _)) = self.order_head(id).await? else {
            return Ok(None);
        };
        let before = page
            .before
            .map_or(i32::MAX, |v| i32::try_from(v).unwrap_or(i32::MAX));
        let limit = i32::try_from(page.limit).unwrap_or(i32::MAX);
        let found = self
            .run(Stmt::SelectEventPage, values![id.0, before, limit])
            .await?;
        Ok(Some((
            order,
            events_in(&order_and_event_columns(), &found)?,
        )))
    }

    /// The order listed under `seq`, unless the entry is left over from a creation that did
    /// not happen (the order is missing, or its first event has another position).
    async fn listed_order(&self, seq: i64, id: OrderId) -> Result<Option<Order>, StoreError> {
        let Some((order, first)) = self.order_head(id).await? else {
            return Ok(None);
        };
        let first = first.filter(|e| e.envelope.aggregate_version == 1);
        Ok(match first {
            Some(e) if e.position != seq as u64 => None,
            _ => Some(order),
        })
    }

    /// Up to `limit` orders created before `before`, newest first.
    pub(super) async fn page(
        &self,
        limit: u32,
        before: Option<OrderCursor>,
    ) -> Result<OrderPage, StoreError> {
        let before = before.map_or(i64::MAX, |c| c.0.min(i64::MAX as u64) as i64);
        let last_day = if before == i64::MAX {
            i32::MAX
        } else {
            day_of(position::time_of(before as u64))
        };
        let days = self.run(Stmt::Days, values![last_day]).await?;
        let wanted = limit as usize + 1;
        let mut found: Vec<(i64, Order)> = Vec::new();
        'days: for day in days {
            let Some(Some(CqlValue::Int(day))) = day.first().cloned() else {
                return Err(StoreError::Corrupt("order_days row".into()));
            };
            let mut below = before;
            loop {
                let entries = self
                    .run(Stmt::Listed, values![day, below, wanted as i32])
                    .await?;
                let exhausted = entries.len() < wanted;
                for entry in entries {
                    let [Some(CqlValue::BigInt(seq)), Some(CqlValue::Uuid(id))] = entry[..] else {
                        return Err(StoreError::Corrupt("orders_by_day row".into()));
                    };
                    below = seq;
                    if let Some(order) = self.listed_order(seq, OrderId(id)).await? {
                        found.push((seq, order));
                        if found.len() == wanted {
                            break 'days;
                        }
                    }
                }
                if exhausted {
                    break;
                }
            }
        }
        let more = found.len() > limit as usize;
        found.truncate(limit as usize);
        let next = more.then(|| OrderCursor(found.last().map_or(0, |(seq, _)| *seq as u64)));
        Ok(OrderPage {
            orders: found.into_iter().map(|(_, order)| order).collect(),
            next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::scylla::cluster::fake::FakeCluster;
    use crate::store::scylla::tests::{create, last_committed, scripted};
    use crate::store::{Applied, OrderStore};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn listing_entries_left_over_from_creations_that_did_not_happen_are_skipped() {
        let fake = Arc::new(FakeCluster::default());
        let store = scripted(fake.clone()).await;
        // Two orders, and what reading each back finds.
        let mut stored = HashMap::new();
        let mut created = Vec::new();
        for _ in 0..2 {
            let Applied::Written { order, event } = store.apply(create()).await.unwrap() else {
                unreachable!("no idempotency key");
            };
            stored.insert(order.id.0, last_committed(&fake));
            created.push((event.position as i64, order));
        }
        let [(a_seq, a), (b_seq, b)] = <[_; 2]>::try_from(created).unwrap();
        let stored = Mutex::new(stored);
        fake.respond(Stmt::SelectOrderHead, move |v| {
            let Some(CqlValue::Uuid(id)) = v[0] else {
                panic!("order head {v:?}")
            };
            Ok(stored
                .lock()
                .unwrap()
                .get(&id)
                .cloned()
                .into_iter()
                .collect())
        });
        let entry = |seq: i64, id: OrderId| values![seq, id.0];
        let day = day_of(position::time_of(b_seq as u64));
        fake.always(Stmt::Days, Ok(vec![values![day]]));
        fake.always(
            Stmt::Listed,
            Ok(vec![
                // A creation that never committed: no such order.
                entry(b_seq + 2, OrderId::generate()),
                // A creation of `a`'s id that lost to the one listed under `a_seq`.
                entry(b_seq + 1, a.id),
                entry(b_seq, b.id),
                entry(a_seq, a.id),
            ]),
        );
        let page = store.orders(10, None).await.unwrap();
        assert_eq!(page.orders, [b, a]);
        assert_eq!(page.next, None);
    }

    #[test]
    fn days_count_from_the_unix_epoch_in_utc() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(day_of(t("1970-01-01T23:59:59Z")), 0);
        assert_eq!(day_of(t("1970-01-02T00:00:00Z")), 1);
        assert_eq!(
            day_of(t("2026-11-27T23:30:00-02:00")),
            day_of(t("2026-11-28T00:00:00Z"))
        );
    }
}
