//! The order aggregate, its value types and its domain events.
//!
//! Everything here is pure: no I/O, no clocks read behind the caller's back (callers pass `now`),
//! so the state machine and the validation rules are tested without a database.

mod event;
mod order;
mod secret;
mod timestamp;
mod trace;
mod validation;
mod values;

pub use timestamp::{format as timestamp, parse as parse_timestamp};

pub use event::{
    AGGREGATE_TYPE_ORDER, DeliveryRecord, EVENT_SCHEMA_VERSION, EventEnvelope, EventType,
    OrderEvent, Payload, StoredEvent,
};
pub use order::{DomainError, Order, OrderStatus};
pub use secret::Secret;
pub use trace::TraceContext;
pub use validation::{FieldError, ValidationErrors};
pub use values::{
    CancelReason, CustomerId, NewOrder, OrderId, OrderItem, OrderItems, PriceCents, Quantity,
    RawItem, Sku, Version,
};
