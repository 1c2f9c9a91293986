//! The store contract: behaviour every `OutboxStore` implementation must show, role by role
//! (orders, the outbox log, dead letters, retention). Each check is a function over
//! `Arc<dyn OutboxStore>`; `contract_tests!` instantiates them for a backend.
//! The ScyllaDB instance runs when `SCYLLA_URI` is set (each test in its own keyspace) and
//! reports itself skipped otherwise.

use crate::helpers::eventually;
use chrono::{SubsecRound, Utc};
use futures::future::join_all;
use outbox::domain::{CancelReason, DomainError, NewOrder, OrderItems, OrderStatus, RawItem};
use outbox::domain::{DeliveryRecord, StoredEvent};
use outbox::store::dead_letters::{
    DeadLetterFilter, DeadLetterKind, DeadLetterStatus, NewDeadLetter, ReplayOutcome,
};

use outbox::store::{Applied, Command, EventPage, IdempotencyKey, OutboxStore, StoreError};
use std::collections::HashSet;
use std::sync::Arc;

fn new_order(sku: &str) -> NewOrder {
    NewOrder::parse(
        "0193a5e0-7d1c-7b3a-9c4e-2f5d6a7b8c9d",
        &[RawItem {
            sku: sku.into(),
            quantity: 1,
            unit_price_cents: 10,
        }],
    )
    .unwrap()
}

fn create(sku: &str) -> Command {
    Command::Create {
        order: new_order(sku),
        idempotency_key: None,
    }
}

fn written(applied: Applied) -> (outbox::domain::Order, outbox::domain::StoredEvent) {
    match applied {
        Applied::Written { order, event } => (order, event),
        Applied::Replayed { .. } => panic!("expected a write"),
    }
}

pub async fn change_and_event_are_stored_together(store: Arc<dyn OutboxStore>) {
    let (order, event) = written(store.apply(create("A")).await.unwrap());
    assert_eq!(event.envelope.aggregate_id, order.id);
    let (stored, events) = store
        .order(order.id, EventPage::latest(100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, order);
    assert_eq!(events, vec![event]);
}

pub async fn versions_advance_with_one_event_each(store: Arc<dyn OutboxStore>) {
    let (order, _) = written(store.apply(create("A")).await.unwrap());
    let items = OrderItems::parse(&[RawItem {
        sku: "B".into(),
        quantity: 2,
        unit_price_cents: 5,
    }])
    .unwrap();
    let replace = Command::ReplaceItems {
        id: order.id,
        items,
        expected_version: 1,
    };
    let (order, _) = written(store.apply(replace).await.unwrap());
    let cancel = Command::Cancel {
        id: order.id,
        reason: CancelReason::parse("r").unwrap(),
        expected_version: 2,
    };
    let (order, _) = written(store.apply(cancel).await.unwrap());
    assert_eq!((order.version, order.status), (3, OrderStatus::Cancelled));
    let (_, events) = store
        .order(order.id, EventPage::latest(100))
        .await
        .unwrap()
        .unwrap();
    let versions: Vec<_> = events
        .iter()
        .map(|e| e.envelope.aggregate_version)
        .collect();
    assert_eq!(versions, [3, 2, 1], "newest first");
    let positions: Vec<_> = events.iter().map(|e| e.position).collect();
    assert!(
        positions.windows(2).all(|w| w[0] > w[1]),
        "positions follow commit order"
    );
}

pub async fn events_are_read_a_page_at_a_time(store: Arc<dyn OutboxStore>) {
    let (order, _) = written(store.apply(create("A")).await.unwrap());
    for version in 1..25 {
        let items = OrderItems::parse(&[RawItem {
            sku: format!("S-{version}"),
            quantity: 1,
            unit_price_cents: 1,
        }])
        .unwrap();
        let replace = Command::ReplaceItems {
            id: order.id,
            items,
            expected_version: version,
        };
        store.apply(replace).await.unwrap();
    }
    let mut page = EventPage::latest(10);
    let mut pages = Vec::new();
    loop {
        let (stored, events) = store.order(order.id, page).await.unwrap().unwrap();
        assert_eq!(
            stored.version, 25,
            "every page comes with the current order"
        );
        let versions: Vec<_> = events
            .iter()
            .map(|e| e.envelope.aggregate_version)
            .collect();
        let next = EventPage::next_cursor(&events);
        pages.push((versions, next));
        match next {
            Some(before) => page = EventPage::parse(Some(&before.to_string()), 10).unwrap(),
            None => break,
        }
    }
    let expected: Vec<(Vec<u32>, Option<u32>)> = vec![
        ((16..=25).rev().collect(), Some(16)),
        ((6..=15).rev().collect(), Some(6)),
        ((1..=5).rev().collect(), None),
    ];
    assert_eq!(pages, expected);
}

pub async fn refused_commands_write_nothing(store: Arc<dyn OutboxStore>) {
    let (order, _) = written(store.apply(create("A")).await.unwrap());
    let stale = Command::Cancel {
        id: order.id,
        reason: CancelReason::parse("r").unwrap(),
        expected_version: 9,
    };
    assert!(matches!(
        store.apply(stale).await,
        Err(StoreError::Domain(DomainError::VersionConflict {
            expected: 9,
            actual: 1
        }))
    ));
    let missing = Command::Cancel {
        id: outbox::domain::OrderId::generate(),
        reason: CancelReason::parse("r").unwrap(),
        expected_version: 1,
    };
    assert!(matches!(
        store.apply(missing).await,
        Err(StoreError::NotFound("order"))
    ));
    let (stored, events) = store
        .order(order.id, EventPage::latest(100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.version, events.len()), (1, 1));
}

pub async fn idempotency_keys_replay_or_refuse(store: Arc<dyn OutboxStore>) {
    let key = || Some(IdempotencyKey::parse("key-1").unwrap());
    let first = store
        .apply(Command::Create {
            order: new_order("A"),
            idempotency_key: key(),
        })
        .await
        .unwrap();
    let again = store
        .apply(Command::Create {
            order: new_order("A"),
            idempotency_key: key(),
        })
        .await
        .unwrap();
    assert!(matches!(again, Applied::Replayed { .. }));
    assert_eq!(again.order().id, first.order().id);
    let other = store
        .apply(Command::Create {
            order: new_order("B"),
            idempotency_key: key(),
        })
        .await;
    assert!(matches!(other, Err(StoreError::IdempotencyKeyReused)));
    assert_eq!(store.orders(100, None).await.unwrap().orders.len(), 1);
}

/// 500 concurrent creations; their positions, distinct, in ascending order.
async fn concurrent_positions(store: &Arc<dyn OutboxStore>) -> Vec<u64> {
    let writes = (0..500).map(|i| {
        let store = Arc::clone(store);
        async move {
            written(store.apply(create(&format!("P{i}"))).await.unwrap())
                .1
                .position
        }
    });
    let mut positions = join_all(writes).await;
    positions.sort_unstable();
    positions
}

pub async fn concurrent_writes_get_distinct_positions(store: Arc<dyn OutboxStore>) {
    let positions = concurrent_positions(&store).await;
    let distinct: HashSet<_> = positions.iter().collect();
    assert_eq!(distinct.len(), 500);
    assert_eq!(store.orders(1000, None).await.unwrap().orders.len(), 500);
}

pub async fn pages_walk_every_order_once_newest_first(store: Arc<dyn OutboxStore>) {
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            written(store.apply(create(&format!("S{i}"))).await.unwrap())
                .0
                .id,
        );
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.orders(3, cursor).await.unwrap();
        seen.extend(page.orders.iter().map(|o| o.id));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ids);
}

pub async fn the_write_probe_succeeds(store: Arc<dyn OutboxStore>) {
    store.check_writable().await.unwrap();
}

fn delivery(topic: &str) -> DeliveryRecord {
    DeliveryRecord {
        topic: topic.into(),
        partition: Some(2),
        offset: Some(41),
        published_at: Utc::now().trunc_subsecs(6),
    }
}

fn letter(event: StoredEvent, error: &str) -> NewDeadLetter {
    let now = Utc::now().trunc_subsecs(6);
    NewDeadLetter {
        event,
        kind: DeadLetterKind::Permanent,
        error: error.into(),
        failures: 1,
        first_failed_at: now,
        last_failed_at: now,
    }
}

pub async fn committed_events_are_read_after_a_position_in_order(store: Arc<dyn OutboxStore>) {
    let (a, _) = written(store.apply(create("A")).await.unwrap());
    let (b, _) = written(store.apply(create("B")).await.unwrap());
    let cancel = Command::Cancel {
        id: a.id,
        reason: CancelReason::parse("r").unwrap(),
        expected_version: 1,
    };
    store.apply(cancel).await.unwrap();
    // A store may hold events back until writes in flight have settled.
    eventually("three events are readable", || {
        let store = Arc::clone(&store);
        async move { store.events_after(0, 100).await.unwrap().len() == 3 }
    })
    .await;
    let events = store.events_after(0, 100).await.unwrap();
    assert!(events.windows(2).all(|w| w[0].position < w[1].position));
    let of_a: Vec<_> = events
        .iter()
        .filter(|e| e.envelope.aggregate_id == a.id)
        .map(|e| e.envelope.aggregate_version)
        .collect();
    assert_eq!(of_a, [1, 2]);
    assert!(events.iter().any(|e| e.envelope.aggregate_id == b.id));
    assert_eq!(store.events_after(0, 2).await.unwrap(), events[..2]);
    assert_eq!(
        store.events_after(events[0].position, 100).await.unwrap(),
        events[1..]
    );
    assert_eq!(store.backlog(0).await.unwrap().pending, 3);
    assert_eq!(store.backlog(events[2].position).await.unwrap().pending, 0);
}

pub async fn checkpoints_and_deliveries_are_recorded(store: Arc<dyn OutboxStore>) {
    assert_eq!(store.checkpoint("contract").await.unwrap(), 0);
    let (_, event) = written(store.apply(create("A")).await.unwrap());
    let record = delivery("t1");
    store
        .record_progress(
            "contract",
            event.position,
            vec![(event.position, record.clone())],
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(store.checkpoint("contract").await.unwrap(), event.position);
    assert_eq!(store.checkpoint("other").await.unwrap(), 0);
    let found = store
        .deliveries(vec![event.position, event.position + 1])
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[&event.position], record);
}

pub async fn dead_letters_are_replayed_or_discarded_once(store: Arc<dyn OutboxStore>) {
    let (_, first) = written(store.apply(create("A")).await.unwrap());
    let (_, second) = written(store.apply(create("B")).await.unwrap());
    let letters = vec![
        letter(first.clone(), "message too large"),
        letter(second.clone(), "invalid topic"),
    ];
    store
        .record_progress("contract", second.position, vec![], letters.clone())
        .await
        .unwrap();
    // Storing the same events again leaves the records as they are.
    store
        .record_progress("contract", second.position, vec![], letters)
        .await
        .unwrap();
    let all = |status| DeadLetterFilter {
        status,
        limit: 10,
        ..Default::default()
    };
    let listed = store.dead_letters(all(None)).await.unwrap();
    let events: Vec<_> = listed.iter().map(|l| l.failure.event.clone()).collect();
    assert_eq!(events, [second.clone(), first.clone()], "newest first");
    let counts = store.dead_letter_counts().await.unwrap();
    assert_eq!((counts.pending, counts.replayed), (2, 0));
    assert_eq!(counts.pending_by_event_type["OrderCreated"], 2);
    let large = DeadLetterFilter {
        text: Some("TOO LARGE".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.dead_letters(large).await.unwrap().len(), 1);

    let (replay, discard) = (listed[1].id, listed[0].id);
    let failed = ReplayOutcome::Failed("still down".into());
    let letter = store.record_replay(replay, failed).await.unwrap();
    assert_eq!(letter.status, DeadLetterStatus::Pending);
    let delivered = ReplayOutcome::Delivered(delivery("t2"));
    let letter = store
        .record_replay(replay, delivered.clone())
        .await
        .unwrap();
    assert_eq!(letter.status, DeadLetterStatus::Replayed);
    let outcomes: Vec<_> = letter.attempts.iter().map(|a| a.delivered).collect();
    assert_eq!(outcomes, [false, true]);
    assert!(matches!(
        store.record_replay(replay, delivered).await,
        Err(StoreError::NotPending(DeadLetterStatus::Replayed))
    ));
    let replayed = store.deliveries(vec![first.position]).await.unwrap();
    assert_eq!(replayed[&first.position].topic, "t2");

    let letter = store
        .discard_dead_letter(discard, "poison".into())
        .await
        .unwrap();
    assert_eq!(letter.status, DeadLetterStatus::Discarded);
    assert_eq!(letter.discard_reason.as_deref(), Some("poison"));
    assert!(matches!(
        store.discard_dead_letter(discard, "again".into()).await,
        Err(StoreError::NotPending(DeadLetterStatus::Discarded))
    ));
    let missing = listed.iter().map(|l| l.id).max().unwrap() + 1;
    assert!(store.dead_letter(missing).await.unwrap().is_none());
    assert!(matches!(
        store.discard_dead_letter(missing, "x".into()).await,
        Err(StoreError::NotFound("dead letter"))
    ));
    let counts = store.dead_letter_counts().await.unwrap();
    assert_eq!(
        (counts.pending, counts.replayed, counts.discarded),
        (0, 1, 1)
    );
    let pending = store
        .dead_letters(all(Some(DeadLetterStatus::Pending)))
        .await
        .unwrap();
    assert!(pending.is_empty());
}

/// Retention never deletes an event the relay has not published, nor more than asked at a
/// time; keys younger than the cutoff stay. (The embedded store deletes in batches; ScyllaDB
/// expires rows by TTL and deletes nothing here.)
pub async fn retention_keeps_unpublished_events_and_young_keys(store: Arc<dyn OutboxStore>) {
    let relay = outbox::store::RELAY_NAME;
    let (_, published) = written(store.apply(create("A")).await.unwrap());
    let (_, pending) = written(store.apply(create("B")).await.unwrap());
    let key = IdempotencyKey::parse("contract-retention").unwrap();
    let keyed = Command::Create {
        order: new_order("C"),
        idempotency_key: Some(key.clone()),
    };
    written(store.apply(keyed.clone()).await.unwrap());
    store
        .record_progress(
            relay,
            published.position,
            vec![(published.position, delivery("t"))],
            vec![],
        )
        .await
        .unwrap();
    let future = Utc::now() + chrono::Duration::hours(1);
    let past = Utc::now() - chrono::Duration::hours(1);
    assert!(store.delete_published(relay, future, 1).await.unwrap() <= 1);
    while store.delete_published(relay, future, 1).await.unwrap() > 0 {}
    let left = store.events_after(published.position, 10).await.unwrap();
    assert_eq!(left.first(), Some(&pending), "the unpublished event stays");
    assert_eq!(store.delete_idempotency_keys(past, 10).await.unwrap(), 0);
    assert!(
        matches!(store.apply(keyed).await.unwrap(), Applied::Replayed { .. }),
        "a young key still replays"
    );
}

/// Instantiates every contract check for one backend. `$make` is an async function of the
/// test's name giving `(Arc<dyn OutboxStore>, guard)`; the guard keeps the backend's
/// resources alive. Attributes given after it (`#[ignore = …]` for a backend this machine
/// cannot run) go on every test.
macro_rules! contract_tests {
    ($backend:ident, $make:expr $(, #[$attr:meta])*) => {
        mod $backend {
            use super::*;
            contract_tests!(@each $make, { $(#[$attr])* };
                change_and_event_are_stored_together,
                versions_advance_with_one_event_each,
                events_are_read_a_page_at_a_time,
                refused_commands_write_nothing,
                idempotency_keys_replay_or_refuse,
                concurrent_writes_get_distinct_positions,
                pages_walk_every_order_once_newest_first,
                the_write_probe_succeeds,
                committed_events_are_read_after_a_position_in_order,
                checkpoints_and_deliveries_are_recorded,
                dead_letters_are_replayed_or_discarded_once,
                retention_keeps_unpublished_events_and_young_keys);
        }
    };
    (@each $make:expr, $attrs:tt; $($check:ident),*) => {
        $(contract_tests!(@one $make, $attrs, $check);)*
    };
    (@one $make:expr, { $(#[$attr:meta])* }, $check:ident) => {
        #[tokio::test]
        $(#[$attr])*
        async fn $check() {
            let (store, _guard) = $make(stringify!($check)).await;
            super::$check(store).await;
        }
    };
}

async fn sqlite_store(_test: &str) -> (Arc<dyn OutboxStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::helpers::test_config(dir.path(), &[]);
    let store = outbox::store::sqlite::SqliteStore::open(&config.sqlite()).unwrap();
    (Arc::new(store), dir)
}

async fn scylla_store(_test: &str) -> (Arc<dyn OutboxStore>, tempfile::TempDir) {
    let config = crate::scylla::scylla_config(&[]);
    let store = outbox::store::scylla::ScyllaStore::open(&config.scylla_options())
        .await
        .expect("the ScyllaDB store opens");
    (Arc::new(store), tempfile::tempdir().unwrap())
}

contract_tests!(sqlite, sqlite_store);
contract_tests!(
    scylla,
    scylla_store,
    #[ignore = "needs a ScyllaDB node: SCYLLA_URI=host:port make test-scylla"]
);

/// Beyond the contract: the embedded store's single writer numbers events without gaps.
#[tokio::test]
async fn sqlite_positions_are_gap_free() {
    let (store, _dir) = sqlite_store("").await;
    let positions = concurrent_positions(&store).await;
    assert_eq!(positions, (1..=500).collect::<Vec<u64>>());
}
