//! Conversions from domain and store types to the DTOs shared with the UI crate, and from
//! store errors to what a client is told ([`problem`]), for the JSON API and the pages alike.

use crate::domain::OrderId;
use crate::domain::timestamp as time;
use crate::domain::{DeliveryRecord, StoredEvent};
use crate::domain::{DomainError, EventEnvelope, Order, OrderStatus};
use crate::publish::{ConsumerGroups, Publisher};
use crate::resilience::breaker::BreakerSnapshot;
use crate::store::dead_letters::{DeadLetter, DeadLetterCounts, DeadLetterFilter};

use crate::store::{DeadLetterStore, EventPage, OrderStore, OutboxLog, StoreError};
use app::dto::{
    BreakerDto, DeadLetterCountsDto, DeadLetterDto, DeadLetterRefDto, DeadLetterStatus,
    DeliveryDto, EventDto, EventPathDto, EventState, GroupProgressDto, OrderDetailDto, OrderDto,
    OrderItemDto, OrderStatusDto, ReplayAttemptDto, ReplayAttemptOutcome, TransitionDto,
};
use axum::http::StatusCode;
use std::collections::HashMap;
use std::sync::Arc;

/// Most dead letters of one order looked at to find its events' records (the newest ones:
/// those of the newest events).
const DEAD_LETTERS_PER_ORDER: u32 = 200;

/// What a client is told about a failed store call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub status: StatusCode,
    /// The stable error code of the API's error body, e.g. `version_conflict`.
    pub code: &'static str,
    /// What the client reads; never internal details.
    pub message: String,
    /// For the server's log only: what went wrong inside (set for 500s).
    pub cause: Option<String>,
}

/// The one mapping from store (and domain) errors to status, code and message, shared by
/// `AppError` (the JSON API) and the pages' server functions.
pub fn problem(e: StoreError) -> Problem {
    let refused = |status, code, e: &StoreError| Problem {
        status,
        code,
        message: e.to_string(),
        cause: None,
    };
    match e {
        StoreError::NotFound(_) => refused(StatusCode::NOT_FOUND, "not_found", &e),
        StoreError::NotPending(_) => refused(StatusCode::CONFLICT, "not_pending", &e),
        StoreError::Domain(DomainError::VersionConflict { .. }) => {
            refused(StatusCode::CONFLICT, "version_conflict", &e)
        }
        StoreError::Domain(DomainError::AlreadyCancelled) => {
            refused(StatusCode::CONFLICT, "order_cancelled", &e)
        }
        StoreError::IdempotencyKeyReused => refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            &e,
        ),
        StoreError::Overloaded | StoreError::WriterStopped | StoreError::Unavailable(_) => {
            Problem {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "unavailable",
                message: "the service is temporarily overloaded, retry shortly".into(),
                cause: None,
            }
        }
        StoreError::Corrupt(_) | StoreError::Backend(_) => Problem {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "internal error".into(),
            cause: Some(e.to_string()),
        },
    }
}

pub fn order(o: &Order) -> OrderDto {
    OrderDto {
        id: o.id.to_string(),
        customer_id: o.customer_id.to_string(),
        status: match o.status {
            OrderStatus::Created => OrderStatusDto::Created,
            OrderStatus::Cancelled => OrderStatusDto::Cancelled,
        },
        version: o.version,
        items: o
            .items
            .as_slice()
            .iter()
            .map(|i| OrderItemDto {
                sku: i.sku.as_str().to_string(),
                quantity: i.quantity.get(),
                unit_price_cents: i.unit_price_cents.get(),
            })
            .collect(),
        total_cents: o.total_cents(),
        cancel_reason: o.cancel_reason.as_ref().map(|r| r.as_str().to_string()),
        created_at: time(&o.created_at),
        updated_at: time(&o.updated_at),
    }
}

/// The JSON of [`order`]`(o)`, byte for byte what serde_json writes for that DTO
/// (`tests::order_json_is_the_dtos_json`), written straight into one buffer. It answers every
/// order change, the API's hottest response: building the DTO and serialising it (serde_json
/// escapes every key and every value byte by byte) took ~7,700 instructions per create,
/// this ~1,800 (callgrind, issue 19). Ids and timestamps are written as they are (hex digits,
/// `-`, `:`, `.`, `T`, `Z`), the SKUs and the cancel reason through serde_json's escaping.
pub fn order_json(o: &Order) -> Vec<u8> {
    fn text(out: &mut Vec<u8>, value: &str) {
        serde_json::to_writer(&mut *out, value).expect("writing to a Vec cannot fail");
    }
    fn number(out: &mut Vec<u8>, value: u64) {
        serde_json::to_writer(&mut *out, &value).expect("writing to a Vec cannot fail");
    }
    let mut out = Vec::with_capacity(256 + 80 * o.items.as_slice().len());
    let mut uuid = uuid::Uuid::encode_buffer();
    out.extend_from_slice(b"{\"id\":\"");
    out.extend_from_slice(o.id.0.hyphenated().encode_lower(&mut uuid).as_bytes());
    out.extend_from_slice(b"\",\"customer_id\":\"");
    let customer = o.customer_id.as_uuid();
    out.extend_from_slice(customer.hyphenated().encode_lower(&mut uuid).as_bytes());
    out.extend_from_slice(match o.status {
        OrderStatus::Created => b"\",\"status\":\"created\",\"version\":".as_slice(),
        OrderStatus::Cancelled => b"\",\"status\":\"cancelled\",\"version\":",
    });
    number(&mut out, u64::from(o.version));
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in o.items.as_slice().iter().enumerate() {
        out.extend_from_slice(if i == 0 { b"{\"sku\":" } else { b",{\"sku\":" });
        text(&mut out, item.sku.as_str());
        out.extend_from_slice(b",\"quantity\":");
        number(&mut out, u64::from(item.quantity.get()));
        out.extend_from_slice(b",\"unit_price_cents\":");
        number(&mut out, item.unit_price_cents.get());
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"total_cents\":");
    number(&mut out, o.total_cents());
    out.extend_from_slice(b",\"cancel_reason\":");
    match &o.cancel_reason {
        Some(reason) => text(&mut out, reason.as_str()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"created_at\":\"");
    out.extend_from_slice(time(&o.created_at).as_bytes());
    out.extend_from_slice(b"\",\"updated_at\":\"");
    out.extend_from_slice(time(&o.updated_at).as_bytes());
    out.extend_from_slice(b"\"}");
    out
}

/// Loads an order with one page of its events (newest first) and their delivery state, as the
/// API and the pages show it.
pub async fn order_detail(
    orders: &dyn OrderStore,
    log: &dyn OutboxLog,
    id: OrderId,
    page: EventPage,
) -> Result<Option<OrderDetailDto>, StoreError> {
    let Some((order, events)) = orders.order(id, page).await? else {
        return Ok(None);
    };
    let deliveries = log
        .deliveries(events.iter().map(|e| e.position).collect())
        .await?;
    Ok(Some(OrderDetailDto {
        order: self::order(&order),
        events: events
            .iter()
            .map(|e| event(e, deliveries.get(&e.position)))
            .collect(),
        next_cursor: EventPage::next_cursor(&events).map(|v| v.to_string()),
    }))
}

/// Where an order's events went, as admins see it: read from the dead letter queue and, with
/// Kafka, from the consumer groups on the sink.
#[derive(Clone)]
pub struct EventPaths {
    pub dead_letters: Arc<dyn DeadLetterStore>,
    /// The sink as the relay uses it (its consumer groups, where it has them).
    pub sink: Arc<dyn Publisher>,
}

impl EventPaths {
    /// Sets the `path` of each event of `detail` (order `id`): pending, published,
    /// dead-lettered or replayed, with its dead letter record, and with Kafka, whether each
    /// consumer group on its topic has read it. A broker that does not answer leaves the
    /// consumers out, not the rest.
    pub async fn add_to(&self, detail: &mut OrderDetailDto, id: OrderId) -> Result<(), StoreError> {
        let filter = DeadLetterFilter {
            aggregate_id: Some(id),
            limit: DEAD_LETTERS_PER_ORDER,
            ..DeadLetterFilter::default()
        };
        let mut records = HashMap::new();
        // Newest first: the newest record of a position wins.
        for d in self.dead_letters.dead_letters(filter).await? {
            records
                .entry(d.failure.event.position)
                .or_insert(DeadLetterRefDto {
                    id: d.id,
                    status: d.status,
                });
        }
        let on_partition = detail
            .events
            .iter()
            .any(|e| e.delivery.as_ref().is_some_and(|d| d.offset.is_some()));
        let groups = match on_partition.then(|| self.sink.consumer_groups()) {
            Some(asked) => match asked.await {
                Some(Ok(groups)) => Some(groups),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "consumer groups not read for the order page");
                    None
                }
                None => None,
            },
            None => None,
        };
        for e in &mut detail.events {
            let dead_letter = records.remove(&e.position);
            let state = match (&dead_letter, &e.delivery) {
                (Some(d), _) if d.status == DeadLetterStatus::Replayed => EventState::Replayed,
                (Some(_), _) => EventState::DeadLettered,
                (None, Some(_)) => EventState::Published,
                (None, None) => EventState::Pending,
            };
            let consumers = groups.as_ref().and_then(|g| consumed_by(g, e));
            e.path = Some(EventPathDto {
                state,
                dead_letter,
                consumers,
            });
        }
        Ok(())
    }
}

/// Each group with committed offsets on `e`'s topic (it has a row for every partition), and
/// whether it is past `e`'s offset; `None` when `e` is not on a Kafka partition.
fn consumed_by(groups: &ConsumerGroups, e: &EventDto) -> Option<Vec<GroupProgressDto>> {
    let d = e.delivery.as_ref()?;
    let (partition, offset) = (d.partition?, d.offset?);
    let on_partition = groups
        .partitions
        .iter()
        .filter(|p| p.topic == d.topic && p.partition == partition);
    Some(
        on_partition
            .map(|p| GroupProgressDto {
                group: p.group.clone(),
                committed: p.committed,
                consumed: p.committed.is_some_and(|c| c > offset),
            })
            .collect(),
    )
}

pub fn event(e: &StoredEvent, delivery: Option<&DeliveryRecord>) -> EventDto {
    let EventEnvelope {
        event_id,
        aggregate_type,
        aggregate_id,
        aggregate_version,
        event_type,
        payload,
        occurred_at,
        schema_version,
        trace,
    } = &e.envelope;
    EventDto {
        position: e.position,
        event_id: event_id.to_string(),
        aggregate_type: aggregate_type.to_string(),
        aggregate_id: aggregate_id.to_string(),
        aggregate_version: *aggregate_version,
        event_type: event_type.as_str().to_string(),
        payload: payload.to_value(),
        occurred_at: time(occurred_at),
        schema_version: *schema_version,
        trace_id: trace.as_ref().map(|t| t.trace_id().to_owned()),
        delivery: delivery.map(|d| DeliveryDto {
            topic: d.topic.clone(),
            partition: d.partition,
            offset: d.offset,
            published_at: time(&d.published_at),
            latency_ms: (d.published_at - *occurred_at).num_milliseconds(),
        }),
        path: None,
    }
}

pub fn dead_letter(d: &DeadLetter) -> DeadLetterDto {
    let f = &d.failure;
    DeadLetterDto {
        id: d.id,
        event: event(&f.event, None),
        error_kind: f.kind,
        error_message: f.error.clone(),
        failure_count: f.failures,
        first_failed_at: time(&f.first_failed_at),
        last_failed_at: time(&f.last_failed_at),
        status: d.status,
        discard_reason: d.discard_reason.clone(),
        order_broken_for: f.event.envelope.aggregate_id.to_string(),
        updated_at: time(&d.updated_at),
        attempts: d
            .attempts
            .iter()
            .map(|a| ReplayAttemptDto {
                at: time(&a.at),
                outcome: if a.delivered {
                    ReplayAttemptOutcome::Delivered
                } else {
                    ReplayAttemptOutcome::Failed
                },
                detail: a.detail.clone(),
            })
            .collect(),
        edited_payload: d.edit.as_ref().map(|e| e.payload.to_value()),
        edited_at: d.edit.as_ref().map(|e| time(&e.at)),
    }
}

pub fn breaker(b: &BreakerSnapshot) -> BreakerDto {
    BreakerDto {
        state: b.state,
        consecutive_failures: b.consecutive_failures,
        transitions: b
            .transitions
            .iter()
            .map(|t| TransitionDto {
                at: time(&t.at),
                from: t.from,
                to: t.to,
                reason: t.reason.clone(),
            })
            .collect(),
    }
}

pub fn dead_letter_counts(c: &DeadLetterCounts) -> DeadLetterCountsDto {
    DeadLetterCountsDto {
        pending: c.pending,
        replayed: c.replayed,
        discarded: c.discarded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CancelReason, NewOrder, RawItem};

    fn item(sku: &str, quantity: i64, unit_price_cents: i64) -> RawItem {
        RawItem {
            sku: sku.into(),
            quantity,
            unit_price_cents,
        }
    }

    /// The direct writer and serde agree byte for byte: with one item and with several, with
    /// the biggest numbers, before and after a cancel whose reason needs escaping.
    #[test]
    fn order_json_is_the_dtos_json() {
        let customer = "0b7c7b9e-3f1a-4c55-9d8e-2a1f6c3d4e5f";
        let now = chrono::Utc::now();
        let one = NewOrder::parse(customer, &[item("A-1", 1, 0)]).unwrap();
        let many = NewOrder::parse(
            customer,
            &[
                item("SKU-9", 1000, 100_000_000),
                item("B", 3, 999),
                item("ZZ-0", 7, 1),
            ],
        )
        .unwrap();
        let mut orders = Vec::new();
        for new in [one, many] {
            let (created, _) = Order::create(OrderId::generate(), new, now);
            let reason = CancelReason::parse("\"quoted\" \\ é 😀 </script>").unwrap();
            let later = now + chrono::Duration::microseconds(1_234_567);
            let (cancelled, _) = created.cancel(reason, created.version, later).unwrap();
            orders.extend([created, cancelled]);
        }
        for o in &orders {
            let written = order_json(o);
            let serde = serde_json::to_vec(&order(o)).unwrap();
            assert_eq!(
                String::from_utf8(written).unwrap(),
                String::from_utf8(serde).unwrap()
            );
        }
    }
}
