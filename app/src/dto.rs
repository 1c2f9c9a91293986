//! Serde DTOs shared by the server (JSON API, server functions) and the browser.
//!
//! Ids and timestamps travel as strings (UUIDs, RFC 3339) so the browser bundle needs no uuid
//! or time crate.

use serde::{Deserialize, Serialize};

/// Defines a string-valued enum of the JSON contract: each variant's wire name, `as_str`,
/// `parse` (the inverse), `ALL`, `Display` (the wire name), and on the server its OpenAPI
/// schema (the wire names as an enum of strings).
///
/// The wire names are `tt`, not `literal`: a `literal` fragment reaches derive macros wrapped
/// in an invisible group, and utoipa's then misses the `serde(rename)`, documenting the
/// variants' Rust names instead of the wire names.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = $text:tt,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The name on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The value named `text` on the wire, if any.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum! {
    /// How the relay learns of new events.
    #[cfg_attr(feature = "ssr", derive(clap::ValueEnum))]
    pub enum RelayMode {
        /// Query for new events every poll interval.
        Polling = "polling",
        /// Wake up on every commit of the store and publish at once.
        Streaming = "streaming",
    }
}

wire_enum! {
    /// What the relay is doing.
    pub enum RelayState {
        /// Not started yet, or restarting after a store error.
        Starting = "starting",
        /// Publishing, or idle and waiting for new events.
        Running = "running",
        /// Backing off before retrying an event that failed transiently.
        Retrying = "retrying",
        /// The circuit breaker is open: nothing is sent and the checkpoint stays.
        Paused = "paused",
        /// An operator suspended the relay: nothing is read or sent until resumed.
        Suspended = "suspended",
        Stopped = "stopped",
    }
}

wire_enum! {
    /// The circuit breaker around the sink.
    pub enum BreakerState {
        Closed = "closed",
        Open = "open",
        /// Letting probes through to see whether the sink is back.
        HalfOpen = "half_open",
    }
}

wire_enum! {
    /// Where a dead letter stands.
    pub enum DeadLetterStatus {
        /// Waiting for an operator.
        Pending = "pending",
        /// Published again and acknowledged.
        Replayed = "replayed",
        /// Set aside on purpose, with a reason.
        Discarded = "discarded",
    }
}

wire_enum! {
    /// Why an event was dead-lettered.
    pub enum DeadLetterKind {
        /// The sink refused it for good (too large, invalid topic, not authorised, …).
        Permanent = "permanent",
        /// It kept failing transiently while the sink took other messages.
        RetriesExhausted = "retries_exhausted",
    }
}

wire_enum! {
    /// How one replay attempt of a dead letter went.
    pub enum ReplayAttemptOutcome {
        Delivered = "delivered",
        Failed = "failed",
    }
}

wire_enum! {
    /// What a bulk replay (or a group's replay or discard) did with one record.
    pub enum BulkReplayOutcome {
        Replayed = "replayed",
        /// Set aside by a group discard.
        Discarded = "discarded",
        Failed = "failed",
        /// Not pending (or not found): left alone.
        Skipped = "skipped",
    }
}

wire_enum! {
    /// Where an order stands.
    pub enum OrderStatusDto {
        Created = "created",
        Cancelled = "cancelled",
    }
}

wire_enum! {
    /// What happened to a dead letter, on the live feed.
    pub enum DlqAction {
        Added = "added",
        Replayed = "replayed",
        Discarded = "discarded",
    }
}

wire_enum! {
    /// How a component of the service is doing (`/healthz`, `/readyz`).
    pub enum ComponentStatus {
        Up = "up",
        /// Working around a problem (sink unavailable, fault injected, relay restarting).
        Degraded = "degraded",
        Down = "down",
    }
}

wire_enum! {
    /// The verdict of a health report.
    pub enum HealthVerdict {
        /// `/healthz`: the process answers.
        Ok = "ok",
        /// `/readyz`: every component is up.
        Ready = "ready",
        /// `/readyz`: serving, with a component degraded.
        Degraded = "degraded",
        /// `/readyz`: a component is down (status 503).
        NotReady = "not_ready",
    }
}

/// The name of the Kafka sink in [`RelayStatusDto::sink`].
pub const KAFKA_SINK: &str = "kafka";

/// Longest latency a `slow` fault may add, in milliseconds.
pub const MAX_FAULT_LATENCY_MS: u64 = 60_000;

/// The simulated fault (`GET`/`POST /api/admin/faults`). The modes without settings are
/// empty struct variants so that serde refuses settings sent with them, such as
/// `{"mode": "down", "latency_ms": 5}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Publishes go to the sink unchanged.
    None {},
    /// Every publish fails transiently, as if the broker were unreachable.
    Down {},
    /// Every publish waits `latency_ms` first.
    Slow {
        /// 1 to [`MAX_FAULT_LATENCY_MS`] (a literal for the schema; a test compares them).
        #[cfg_attr(feature = "ssr", schema(minimum = 1, maximum = 60_000))]
        latency_ms: u64,
    },
    /// Messages of `event_type`, and/or every `every_n`-th message, fail permanently.
    Poison {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ssr", schema(min_length = 1, max_length = 100))]
        event_type: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ssr", schema(minimum = 1))]
        every_n: Option<u64>,
    },
}

impl Default for Fault {
    fn default() -> Self {
        Fault::None {}
    }
}

impl Fault {
    /// Checks the settings a mode needs; the message says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Fault::Slow { latency_ms } if !(1..=MAX_FAULT_LATENCY_MS).contains(latency_ms) => Err(
                format!("latency_ms must be between 1 and {MAX_FAULT_LATENCY_MS}"),
            ),
            Fault::Poison {
                event_type: None,
                every_n: None,
            } => Err("poison needs event_type, every_n or both".into()),
            Fault::Poison {
                every_n: Some(0), ..
            } => Err("every_n must be at least 1".into()),
            Fault::Poison {
                event_type: Some(t),
                ..
            } if t.is_empty() || t.len() > 100 => {
                Err("event_type must be 1 to 100 characters".into())
            }
            _ => Ok(()),
        }
    }

    /// The mode's name, as in the JSON (`none`, `down`, `slow`, `poison`).
    pub fn mode(&self) -> &'static str {
        match self {
            Fault::None {} => "none",
            Fault::Down {} => "down",
            Fault::Slow { .. } => "slow",
            Fault::Poison { .. } => "poison",
        }
    }

    pub fn is_active(&self) -> bool {
        *self != Fault::None {}
    }
}

/// `GET`/`POST /api/admin/relay/mode`: the relay's mode, asked for or in effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RelayModeDto {
    pub mode: RelayMode,
}

/// `POST /api/admin/relay/suspend` and `/resume`: whether the relay is suspended now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SuspensionDto {
    pub suspended: bool,
}

/// `POST /api/admin/dlq/{id}/discard`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DiscardRequest {
    /// Why the record is set aside: 1 to 500 characters, no control characters.
    #[cfg_attr(feature = "ssr", schema(min_length = 1, max_length = 500))]
    pub reason: String,
}

/// Which dead letters a bulk replay takes (every condition must hold); pending ones only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeadLetterFilterDto {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate_id: Option<String>,
    /// Part of the event id, payload or error message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
}

/// `POST /api/admin/dlq/replay`: record ids, or a filter over pending records (not both).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BulkReplayRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<DeadLetterFilterDto>,
}

/// One component in `/healthz` and `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ComponentDto {
    /// `store` (readiness only), `relay`, `sink` or `faults`.
    pub name: String,
    pub status: ComponentStatus,
    pub detail: String,
}

/// `/healthz` and `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct HealthDto {
    pub status: HealthVerdict,
    pub components: Vec<ComponentDto>,
}

/// A discrete event of `GET /api/live` (the SSE event's name is its `kind`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LiveEvent {
    /// The circuit breaker changed state.
    Breaker {
        at: String,
        from: BreakerState,
        to: BreakerState,
        reason: String,
    },
    /// A dead letter was added, replayed or discarded (admin clients only).
    Dlq {
        action: DlqAction,
        /// The record id, once it has one (replayed, discarded).
        id: Option<i64>,
        event_id: String,
        event_type: String,
        aggregate_id: String,
    },
    /// One published event, sampled.
    Published {
        event_id: String,
        event_type: String,
        topic: String,
        latency_ms: i64,
    },
}

impl LiveEvent {
    /// The SSE event name: `breaker`, `dlq` or `published`.
    pub fn name(&self) -> &'static str {
        match self {
            LiveEvent::Breaker { .. } => "breaker",
            LiveEvent::Dlq { .. } => "dlq",
            LiveEvent::Published { .. } => "published",
        }
    }

    /// Only admin clients see dead letter details.
    pub fn admin_only(&self) -> bool {
        matches!(self, LiveEvent::Dlq { .. })
    }
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct OrderItemDto {
    /// Upper-case letters, digits and `-`, at most 32.
    #[cfg_attr(feature = "ssr", schema(pattern = "^[A-Z0-9-]{1,32}$"))]
    pub sku: String,
    #[cfg_attr(feature = "ssr", schema(minimum = 1, maximum = 1000))]
    pub quantity: u32,
    #[cfg_attr(feature = "ssr", schema(maximum = 100_000_000))]
    pub unit_price_cents: u64,
}

/// An order as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct OrderDto {
    #[cfg_attr(feature = "ssr", schema(format = Uuid))]
    pub id: String,
    #[cfg_attr(feature = "ssr", schema(format = Uuid))]
    pub customer_id: String,
    pub status: OrderStatusDto,
    /// Send this back as `expected_version` when changing the order.
    pub version: u32,
    pub items: Vec<OrderItemDto>,
    pub total_cents: u64,
    pub cancel_reason: Option<String>,
    #[cfg_attr(feature = "ssr", schema(format = DateTime))]
    pub created_at: String,
    #[cfg_attr(feature = "ssr", schema(format = DateTime))]
    pub updated_at: String,
}

/// An outbox event in its envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct EventDto {
    /// Store-assigned commit position: gap-free, in commit order.
    pub position: u64,
    #[cfg_attr(feature = "ssr", schema(format = Uuid))]
    pub event_id: String,
    pub aggregate_type: String,
    #[cfg_attr(feature = "ssr", schema(format = Uuid))]
    pub aggregate_id: String,
    pub aggregate_version: u32,
    pub event_type: String,
    pub payload: serde_json::Value,
    #[cfg_attr(feature = "ssr", schema(format = DateTime))]
    pub occurred_at: String,
    pub schema_version: u32,
    /// The W3C trace id of the request that caused the event (32 hex digits), which its
    /// published record carries in `traceparent`; absent for events stored before traces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Present once the relay published the event.
    pub delivery: Option<DeliveryDto>,
    /// Where the event went: only for requests with admin credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<EventPathDto>,
}

/// `GET /api/orders/{id}`: the order and its events in version order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct OrderDetailDto {
    pub order: OrderDto,
    /// One page of the order's events, newest first.
    pub events: Vec<EventDto>,
    /// Pass as `cursor` to get the next (older) events; absent when these reach the first.
    pub next_cursor: Option<String>,
}

/// `GET /api/orders`: one page, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct OrderPageDto {
    pub orders: Vec<OrderDto>,
    /// Pass as `cursor` to get the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A problem with one input field; `field` is a path such as `items[0].sku`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct FieldErrorDto {
    pub field: String,
    pub message: String,
}

/// The JSON body of every API error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `validation_failed`.
    pub error: String,
    /// Human-readable explanation.
    pub message: String,
    /// Per-field problems (empty when there are none; always present).
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
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TopicDto {
    pub topic: String,
    /// Messages still in the log.
    pub messages: u64,
    /// The oldest offset still in the log (retention deletes older ones).
    pub first_offset: i64,
    /// The offset the next message will get.
    pub next_offset: i64,
}

/// One message of the embedded log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TopicMessageDto {
    pub offset: i64,
    /// The aggregate id.
    pub key: String,
    pub value: serde_json::Value,
    /// The envelope headers by name (`event_id`, `event_type`, …).
    pub headers: std::collections::BTreeMap<String, String>,
    pub appended_at: String,
}

/// `GET /api/topics/{topic}/messages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ReplayAttemptDto {
    pub at: String,
    pub outcome: ReplayAttemptOutcome,
    /// Where it went, or why it failed.
    pub detail: String,
}

/// A dead letter: an event the relay could not publish while the sink was healthy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DeadLetterDto {
    pub id: i64,
    /// The original event, exactly as replay publishes it (same `event_id`).
    pub event: EventDto,
    pub error_kind: DeadLetterKind,
    pub error_message: String,
    pub failure_count: u32,
    pub first_failed_at: String,
    pub last_failed_at: String,
    pub status: DeadLetterStatus,
    pub discard_reason: Option<String>,
    /// The aggregate whose per-key order this record broke: its later events were published
    /// without this one.
    pub order_broken_for: String,
    pub updated_at: String,
    /// Oldest first (only in `GET /api/admin/dlq/{id}` and replay answers).
    pub attempts: Vec<ReplayAttemptDto>,
    /// The payload an operator corrected (`PUT /api/admin/dlq/{id}/payload`): replays publish
    /// it instead of `event.payload`, which stays the original.
    pub edited_payload: Option<serde_json::Value>,
    /// When the payload was last edited (RFC 3339, UTC).
    pub edited_at: Option<String>,
}

/// `GET /api/admin/dlq`: one page, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DeadLetterPageDto {
    pub items: Vec<DeadLetterDto>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<i64>,
}

/// What happened to one record of a bulk replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ReplayResultDto {
    pub id: i64,
    pub outcome: BulkReplayOutcome,
    pub error: Option<String>,
}

/// `POST /api/admin/dlq/replay`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct BulkReplayDto {
    pub replayed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub results: Vec<ReplayResultDto>,
}

/// A change of the circuit breaker's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TransitionDto {
    pub at: String,
    pub from: BreakerState,
    pub to: BreakerState,
    pub reason: String,
}

/// The circuit breaker around the publisher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct BreakerDto {
    pub state: BreakerState,
    pub consecutive_failures: u32,
    /// Oldest first, the most recent ones only.
    pub transitions: Vec<TransitionDto>,
}

/// Dead letters per status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DeadLetterCountsDto {
    pub pending: u64,
    pub replayed: u64,
    pub discarded: u64,
}

/// The `snapshot` event of `GET /api/live`, twice a second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveSnapshotDto {
    pub at: String,
    pub mode: RelayMode,
    pub state: RelayState,
    /// Events published since the server started.
    pub published_total: u64,
    pub events_per_second_1s: f64,
    pub events_per_second_10s: f64,
    /// Commit → publish over the last minute; absent without samples.
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub pending: u64,
    pub oldest_pending_age_ms: Option<i64>,
    pub breaker: BreakerState,
    pub dlq_pending: u64,
    /// The simulated fault, if one is active.
    pub fault: Option<Fault>,
}

/// `GET /api/admin/relay`: what the relay is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RelayStatusDto {
    pub mode: RelayMode,
    pub state: RelayState,
    pub state_since: String,
    /// The most recent publish failure, until the next success.
    pub last_error: Option<String>,
    /// The sink's name: [`KAFKA_SINK`] or `embedded-log`.
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
    pub fault: Option<Fault>,
    /// Whether fault injection is enabled in this deployment (`FAULT_INJECTION`).
    pub fault_injection: bool,
}

/// One partition of the sink's topics as a consumer group reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ConsumerLagDto {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    /// The group's committed offset (the next offset it will read); absent when it has
    /// committed none on this partition.
    pub committed: Option<i64>,
    /// The partition's end: the offset the next message will get.
    pub end: i64,
    /// Messages the group has still to read: `end − committed`, or everything still on the
    /// broker (`end − oldest offset`) when it has committed nothing here.
    pub lag: i64,
}

/// `GET /api/admin/sink/consumer-groups`: the consumer groups with committed offsets on the
/// Kafka sink's topics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ConsumerGroupsDto {
    /// One row per group and partition, by group, topic and partition.
    pub partitions: Vec<ConsumerLagDto>,
    /// The cluster has more consumer groups than are checked (the first 50 by name, without
    /// `KAFKA_LAG_GROUPS`): name the ones that matter in `KAFKA_LAG_GROUPS`.
    pub truncated: bool,
}

wire_enum! {
    /// Where an event stands on its way to the sink.
    pub enum EventState {
        /// Committed, not yet handled by the relay.
        Pending = "pending",
        /// Acknowledged by the sink.
        Published = "published",
        /// The relay gave up on it: it waits in the dead letter queue (or was discarded there).
        DeadLettered = "dead_lettered",
        /// Dead-lettered, then published by a replay.
        Replayed = "replayed",
    }
}

/// The dead letter record of an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DeadLetterRefDto {
    /// The record's id (`GET /api/admin/dlq/{id}`).
    pub id: i64,
    pub status: DeadLetterStatus,
}

/// Whether a consumer group has read an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct GroupProgressDto {
    pub group: String,
    /// The group's committed offset on the event's partition; absent when it has none there.
    pub committed: Option<i64>,
    /// The committed offset is past the event's offset.
    pub consumed: bool,
}

/// Where an event went, for admins: its state, its dead letter record, and with Kafka, which
/// consumer groups have read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct EventPathDto {
    pub state: EventState,
    /// Present when the event was dead-lettered (whatever became of the record since).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetterRefDto>,
    /// With Kafka, once the event is on a partition: each consumer group with committed
    /// offsets on its topic. Absent with the embedded log, before publishing, or when no
    /// broker answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumers: Option<Vec<GroupProgressDto>>,
}

wire_enum! {
    /// How an audited operator action ended.
    pub enum AuditOutcome {
        /// Done (a 2xx answer, or the sign-in/out redirect).
        Ok = "ok",
        /// Refused by authentication (401, 403, a wrong token at sign-in): nothing changed.
        Refused = "refused",
        /// Authenticated but not done (a bad request, a missing record, a failed replay, a
        /// timeout).
        Failed = "failed",
    }
}

/// One operator action of the audit log. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AuditEntryDto {
    pub id: i64,
    /// When it was answered (RFC 3339, UTC).
    pub at: String,
    /// Who: a console session's marker (12 hex digits of its token's digest), `bearer` for
    /// the admin token; absent when no credential was accepted (a failed sign-in).
    pub session: Option<String>,
    /// The client's address (the TCP peer's).
    pub address: String,
    /// `session.sign_in`, `dlq.replay`, `relay.mode`, … (`admin.…` for other admin routes).
    pub action: String,
    /// What it acted on: a record id, a group key, a mode, a fault.
    pub target: Option<String>,
    /// The HTTP status of the answer.
    pub status: u16,
    pub outcome: AuditOutcome,
}

/// `GET /api/admin/audit`: one page, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AuditPageDto {
    pub items: Vec<AuditEntryDto>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_cursor: Option<i64>,
}

/// One real record of a failure group, to show what the normalised message stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DeadLetterExampleDto {
    pub id: i64,
    pub event_id: String,
    /// The error message as the sink reported it.
    pub error_message: String,
}

/// Pending dead letters that failed the same way: one event type, one kind of error and one
/// message once ids and numbers are normalised (`<id>`, `<hex>`, `<n>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DeadLetterGroupDto {
    /// Stable key (16 hex digits) for `/api/admin/dlq/groups/{group}/…` and the list's
    /// `group` filter.
    pub group: String,
    pub event_type: String,
    pub error_kind: DeadLetterKind,
    /// The error message, normalised.
    pub message: String,
    pub count: u64,
    /// The earliest first failure among its records (RFC 3339).
    pub first_seen: String,
    /// The latest last failure among its records (RFC 3339).
    pub last_seen: String,
    /// The newest record of the group.
    pub example: DeadLetterExampleDto,
}

/// `GET /api/admin/dlq/groups`: largest group first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DeadLetterGroupsDto {
    pub groups: Vec<DeadLetterGroupDto>,
}

/// `POST /api/admin/dlq/groups/{group}/replay` and `/discard`: what one call did. A call takes
/// at most 1,000 records, oldest first; call again while `remaining` is above 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct GroupActionDto {
    pub group: String,
    /// Records this call took (each has an entry in `results`).
    pub done: usize,
    /// Pending records of the group this call did not take.
    pub remaining: usize,
    /// Replayed (or discarded) by this call.
    pub succeeded: usize,
    pub failed: usize,
    /// No longer pending, or busy with another request: left alone.
    pub skipped: usize,
    pub results: Vec<ReplayResultDto>,
}
