//! The order aggregate and its state machine: `create`, `replace_items`, `cancel`.
//!
//! Every accepted command returns the new state together with the one event that describes it,
//! so a store cannot persist one without the other.

use super::event::{EventEnvelope, OrderEvent};
use super::values::{CancelReason, CustomerId, NewOrder, OrderId, OrderItems, Version};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Lifecycle state of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Created,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "created" => Some(Self::Created),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

/// Why the state machine refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The client's view is stale: someone else changed the order first.
    #[error("expected version {expected}, but the order is at version {actual}")]
    VersionConflict { expected: Version, actual: Version },
    /// Cancelled orders are final.
    #[error("the order is cancelled and accepts no further change")]
    AlreadyCancelled,
}

/// The order aggregate as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub customer_id: CustomerId,
    pub items: OrderItems,
    pub status: OrderStatus,
    pub version: Version,
    /// Set once, by `cancel`.
    pub cancel_reason: Option<CancelReason>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Order {
    /// Creates an order at version 1 and its `OrderCreated` event.
    pub fn create(id: OrderId, new: NewOrder, now: DateTime<Utc>) -> (Order, EventEnvelope) {
        let order = Order {
            id,
            customer_id: new.customer_id,
            items: new.items,
            status: OrderStatus::Created,
            version: 1,
            cancel_reason: None,
            created_at: now,
            updated_at: now,
        };
        let event = EventEnvelope::for_order(&order, OrderEvent::Created, now);
        (order, event)
    }

    /// Replaces the item lines; the client must hold the current version.
    pub fn replace_items(
        &self,
        items: OrderItems,
        expected_version: Version,
        now: DateTime<Utc>,
    ) -> Result<(Order, EventEnvelope), DomainError> {
        self.check_changeable(expected_version)?;
        let order = Order {
            items,
            version: self.version + 1,
            updated_at: now,
            ..self.clone()
        };
        let event = EventEnvelope::for_order(&order, OrderEvent::ItemsUpdated, now);
        Ok((order, event))
    }

    /// Cancels the order; the client must hold the current version.
    pub fn cancel(
        &self,
        reason: CancelReason,
        expected_version: Version,
        now: DateTime<Utc>,
    ) -> Result<(Order, EventEnvelope), DomainError> {
        self.check_changeable(expected_version)?;
        let order = Order {
            status: OrderStatus::Cancelled,
            cancel_reason: Some(reason),
            version: self.version + 1,
            updated_at: now,
            ..self.clone()
        };
        let event = EventEnvelope::for_order(&order, OrderEvent::Cancelled, now);
        Ok((order, event))
    }

    /// A cancelled order refuses everything, whatever version the client sent.
    fn check_changeable(&self, expected: Version) -> Result<(), DomainError> {
        if self.status == OrderStatus::Cancelled {
            return Err(DomainError::AlreadyCancelled);
        }
        if expected != self.version {
            return Err(DomainError::VersionConflict {
                expected,
                actual: self.version,
            });
        }
        Ok(())
    }

    pub fn total_cents(&self) -> u64 {
        self.items.total_cents()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventType, RawItem};

    fn items(skus: &[&str]) -> OrderItems {
        let raw: Vec<_> = skus
            .iter()
            .map(|s| RawItem {
                sku: s.to_string(),
                quantity: 2,
                unit_price_cents: 100,
            })
            .collect();
        OrderItems::parse(&raw).unwrap()
    }

    fn created() -> Order {
        let new = NewOrder::parse(
            "0193a5e0-0000-7000-8000-000000000001",
            &[RawItem {
                sku: "A".into(),
                quantity: 1,
                unit_price_cents: 5,
            }],
        )
        .unwrap();
        Order::create(OrderId::generate(), new, Utc::now()).0
    }

    #[test]
    fn create_starts_at_version_one_with_an_order_created_event() {
        let new = NewOrder {
            customer_id: CustomerId::parse("0193a5e0-0000-7000-8000-000000000001").unwrap(),
            items: items(&["A", "B"]),
        };
        let id = OrderId::generate();
        let (order, event) = Order::create(id, new, Utc::now());
        assert_eq!(order.version, 1);
        assert_eq!(order.status, OrderStatus::Created);
        assert_eq!(event.event_type, EventType::OrderCreated);
        assert_eq!(event.aggregate_id, id);
        assert_eq!(event.aggregate_version, 1);
        assert_eq!(event.payload.to_value()["total_cents"], 400);
        assert_eq!(
            event.payload.to_value()["items"].as_array().unwrap().len(),
            2
        );
    }

    #[test]
    fn each_change_bumps_the_version_and_emits_one_event() {
        let order = created();
        let (order, e1) = order.replace_items(items(&["X"]), 1, Utc::now()).unwrap();
        assert_eq!((order.version, e1.aggregate_version), (2, 2));
        assert_eq!(e1.event_type, EventType::OrderItemsUpdated);
        let reason = CancelReason::parse("customer asked").unwrap();
        let (order, e2) = order.cancel(reason, 2, Utc::now()).unwrap();
        assert_eq!((order.version, e2.aggregate_version), (3, 3));
        assert_eq!(order.status, OrderStatus::Cancelled);
        assert_eq!(e2.event_type, EventType::OrderCancelled);
        assert_eq!(e2.payload.to_value()["reason"], "customer asked");
    }

    #[test]
    fn stale_version_is_a_conflict() {
        let order = created();
        let err = order
            .replace_items(items(&["X"]), 7, Utc::now())
            .unwrap_err();
        assert_eq!(
            err,
            DomainError::VersionConflict {
                expected: 7,
                actual: 1
            }
        );
    }

    #[test]
    fn cancelled_orders_accept_no_change() {
        let reason = CancelReason::parse("r").unwrap();
        let (order, _) = created().cancel(reason.clone(), 1, Utc::now()).unwrap();
        assert_eq!(
            order
                .replace_items(items(&["X"]), 2, Utc::now())
                .unwrap_err(),
            DomainError::AlreadyCancelled
        );
        assert_eq!(
            order.cancel(reason, 2, Utc::now()).unwrap_err(),
            DomainError::AlreadyCancelled
        );
    }
}
