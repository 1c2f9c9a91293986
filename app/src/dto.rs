//! Serde DTOs shared by the server (JSON API, server functions) and the browser.
//!
//! Ids and timestamps travel as strings (UUIDs, RFC 3339) so the browser bundle needs no uuid
//! or time crate.

use serde::{Deserialize, Serialize};

/// How the relay learns of new events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum RelayMode {
    /// Query for new events every poll interval.
    Polling,
    /// Wake up on every commit of the store and publish at once.
    Streaming,
}

impl RelayMode {
    /// Both modes, for metrics that list them up front.
    pub const ALL: [RelayMode; 2] = [RelayMode::Polling, RelayMode::Streaming];

    /// The mode's name, as in the configuration and the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RelayMode::Polling => "polling",
            RelayMode::Streaming => "streaming",
        }
    }
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItemDto {
    pub sku: String,
    pub quantity: u32,
    pub unit_price_cents: u64,
}

/// An order as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderDto {
    pub id: String,
    pub customer_id: String,
    /// `created` or `cancelled`.
    pub status: String,
    /// Send this back as `expected_version` when changing the order.
    pub version: u32,
    pub items: Vec<OrderItemDto>,
    pub total_cents: u64,
    pub cancel_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// An outbox event in its envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventDto {
    /// Store-assigned commit position: gap-free, in commit order.
    pub position: u64,
    pub event_id: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub aggregate_version: u32,
    pub event_type: String,
    pub payload: serde_json::Value,
    pub occurred_at: String,
    pub schema_version: u32,
    /// Present once the relay published the event.
    pub delivery: Option<DeliveryDto>,
}

/// `GET /api/orders/{id}`: the order and its events in version order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderDetailDto {
    pub order: OrderDto,
    pub events: Vec<EventDto>,
}

/// `GET /api/orders`: one page, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPageDto {
    pub orders: Vec<OrderDto>,
    /// Pass as `cursor` to get the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A problem with one input field; `field` is a path such as `items[0].sku`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldErrorDto {
    pub field: String,
    pub message: String,
}

/// The JSON body of every API error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `validation_failed`.
    pub error: String,
    /// Human-readable explanation.
    pub message: String,
    /// Per-field problems, when there are any.
    #[serde(default)]
    pub details: Vec<FieldErrorDto>,
}

/// One item row of the create-order form, as typed (validated on the server).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemInput {
    pub sku: String,
    pub quantity: String,
    /// Price in the major unit, e.g. `12.50`.
    pub unit_price: String,
}

/// Where an event was published, and how long after its commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryDto {
    pub topic: String,
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    pub published_at: String,
    /// Commit → sink acknowledgement, in milliseconds.
    pub latency_ms: i64,
}

/// One partition of a Kafka topic, as the broker reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOffsetsDto {
    pub topic: String,
    pub partition: i32,
    /// The oldest offset still on the broker.
    pub low: i64,
    /// The offset the next message will get (the latest offset + 1).
    pub high: i64,
}

/// A topic of the embedded log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicDto {
    pub topic: String,
    pub messages: u64,
    /// The offset the next message will get.
    pub next_offset: i64,
}

/// One message of the embedded log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicMessageDto {
    pub offset: i64,
    /// The aggregate id.
    pub key: String,
    pub value: serde_json::Value,
    pub headers: serde_json::Value,
    pub appended_at: String,
}

/// `GET /api/topics/{topic}/messages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicMessagesDto {
    pub topic: String,
    pub messages: Vec<TopicMessageDto>,
    /// Pass as `from_offset` to continue reading.
    pub next_offset: i64,
    /// The offset the next appended message will get.
    pub end_offset: i64,
}

/// One replay attempt of a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayAttemptDto {
    pub at: String,
    /// `delivered` or `failed`.
    pub outcome: String,
    /// Where it went, or why it failed.
    pub detail: String,
}

/// A dead letter: an event the relay could not publish while the sink was healthy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterDto {
    pub id: i64,
    /// The original event, exactly as replay publishes it (same `event_id`).
    pub event: EventDto,
    /// `permanent` or `retries_exhausted`.
    pub error_kind: String,
    pub error_message: String,
    pub failure_count: u32,
    pub first_failed_at: String,
    pub last_failed_at: String,
    /// `pending`, `replayed` or `discarded`.
    pub status: String,
    pub discard_reason: Option<String>,
    /// The aggregate whose per-key order this record broke: its later events were published
    /// without this one.
    pub order_broken_for: String,
    pub updated_at: String,
    /// Oldest first (only in `GET /api/admin/dlq/{id}` and replay answers).
    pub attempts: Vec<ReplayAttemptDto>,
}

/// `GET /api/admin/dlq`: one page, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterPageDto {
    pub items: Vec<DeadLetterDto>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<i64>,
}

/// What happened to one record of a bulk replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayResultDto {
    pub id: i64,
    /// `replayed`, `failed` or `skipped` (not pending, or not found).
    pub outcome: String,
    pub error: Option<String>,
}

/// `POST /api/admin/dlq/replay`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkReplayDto {
    pub replayed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub results: Vec<ReplayResultDto>,
}

/// A change of the circuit breaker's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionDto {
    pub at: String,
    pub from: String,
    pub to: String,
    pub reason: String,
}

/// The circuit breaker around the publisher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerDto {
    /// `closed`, `open` or `half_open`.
    pub state: String,
    pub consecutive_failures: u32,
    /// Oldest first, the most recent ones only.
    pub transitions: Vec<TransitionDto>,
}

/// Dead letters per status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterCountsDto {
    pub pending: u64,
    pub replayed: u64,
    pub discarded: u64,
}

/// The `snapshot` event of `GET /api/live`, twice a second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveSnapshotDto {
    pub at: String,
    pub mode: String,
    pub state: String,
    /// Events published since the server started.
    pub published_total: u64,
    pub events_per_second_1s: f64,
    pub events_per_second_10s: f64,
    /// Commit → publish over the last minute; absent without samples.
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub pending: u64,
    pub oldest_pending_age_ms: Option<i64>,
    pub breaker: String,
    pub dlq_pending: u64,
    /// The simulated fault's mode, if one is active.
    pub fault: Option<String>,
}

/// `GET /api/admin/relay`: what the relay is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayStatusDto {
    /// `polling` or `streaming`.
    pub mode: String,
    /// `starting`, `running`, `retrying`, `paused` or `stopped`.
    pub state: String,
    pub state_since: String,
    /// The most recent publish failure, until the next success.
    pub last_error: Option<String>,
    /// `kafka` or `embedded-log`.
    pub sink: String,
    /// The last commit position handled (published or dead-lettered).
    pub checkpoint: u64,
    /// Events committed after the checkpoint.
    pub pending: u64,
    /// Age of the oldest pending event; absent when nothing is pending.
    pub oldest_pending_age_ms: Option<i64>,
    pub breaker: BreakerDto,
    pub dead_letters: DeadLetterCountsDto,
    /// The simulated fault, if one is active (`POST /api/admin/faults`).
    pub fault: Option<serde_json::Value>,
}
