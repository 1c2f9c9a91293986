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
