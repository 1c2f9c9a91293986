//! The store contract: behaviour every `OutboxStore` implementation must show. Each check is a
//! function over `Arc<dyn OutboxStore>`; `contract_tests!` instantiates them for a backend.

use futures::future::join_all;
use outbox::domain::{CancelReason, DomainError, NewOrder, OrderItems, OrderStatus, RawItem};
use outbox::store::{Applied, Command, IdempotencyKey, OutboxStore, StoreError};
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

fn written(applied: Applied) -> (outbox::domain::Order, outbox::store::StoredEvent) {
    match applied {
        Applied::Written { order, event } => (order, event),
        Applied::Replayed { .. } => panic!("expected a write"),
    }
}

pub async fn change_and_event_are_stored_together(store: Arc<dyn OutboxStore>) {
    let (order, event) = written(store.apply(create("A")).await.unwrap());
    assert_eq!(event.envelope.aggregate_id, order.id);
    let (stored, events) = store.order(order.id).await.unwrap().unwrap();
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
    let (_, events) = store.order(order.id).await.unwrap().unwrap();
    let versions: Vec<_> = events
        .iter()
        .map(|e| e.envelope.aggregate_version)
        .collect();
    assert_eq!(versions, [1, 2, 3]);
    let positions: Vec<_> = events.iter().map(|e| e.position).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "positions follow commit order"
    );
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
        Err(StoreError::NotFound)
    ));
    let (stored, events) = store.order(order.id).await.unwrap().unwrap();
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

pub async fn concurrent_writes_get_gap_free_positions(store: Arc<dyn OutboxStore>) {
    let writes = (0..500).map(|i| {
        let store = Arc::clone(&store);
        async move {
            written(store.apply(create(&format!("P{i}"))).await.unwrap())
                .1
                .position
        }
    });
    let mut positions = join_all(writes).await;
    positions.sort_unstable();
    assert_eq!(positions, (1..=500).collect::<Vec<u64>>());
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

/// Instantiates every contract check for one backend. `$make` is an async expression giving
/// `(Arc<dyn OutboxStore>, guard)`; the guard keeps the backend's resources alive.
macro_rules! contract_tests {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;
            contract_tests!(@each $make;
                change_and_event_are_stored_together,
                versions_advance_with_one_event_each,
                refused_commands_write_nothing,
                idempotency_keys_replay_or_refuse,
                concurrent_writes_get_gap_free_positions,
                pages_walk_every_order_once_newest_first,
                the_write_probe_succeeds);
        }
    };
    (@each $make:expr; $($check:ident),*) => {
        $(
            #[tokio::test]
            async fn $check() {
                let (store, _guard) = $make.await;
                super::$check(store).await;
            }
        )*
    };
}

async fn sqlite_store() -> (Arc<dyn OutboxStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::helpers::test_config(dir.path(), &[]);
    let store = outbox::store::sqlite::SqliteStore::open(&config.sqlite()).unwrap();
    (Arc::new(store), dir)
}

contract_tests!(sqlite, sqlite_store());
