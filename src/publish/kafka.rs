//! Kafka or Redpanda through rdkafka: an idempotent producer (`enable.idempotence=true`,
//! `acks=all`), key = aggregate id, the envelope as headers. A batch is enqueued without
//! waiting for each send; the deliveries are then awaited together, in order. `send` returns
//! once the batch is enqueued, so the relay enqueues its next batch while librdkafka is
//! still waiting for this one's acknowledgements.
//!
//! A publish waits at most `ack_timeout` for acknowledgements. Messages still unacknowledged
//! then stay in librdkafka's queue (which keeps retrying them in order, up to
//! `message_timeout`) and are reported as transient failures; when the relay retries them, the
//! waiting deliveries are picked up again instead of sending the events a second time. After
//! such a timeout the next publish first checks that a broker answers, and fails at once if
//! none does, so the circuit breaker learns of an outage in seconds without anything being
//! sent twice.
//!
//! The sink also reports the consumer groups that read its topics, with each partition's lag
//! ([`KafkaPublisher::with_lag_groups`]): groups come from the cluster's group list (ListGroups),
//! their committed offsets from an OffsetFetch in each group's name, by a client that never
//! joins the group, so looking disturbs no consumer.

use super::{
    ConsumerGroups, ConsumerLag, Delivery, FailureKind, Message, Outcomes, PartitionOffsets,
    Pending, PublishError, Publisher,
};
use async_trait::async_trait;
use futures::FutureExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the check for a reachable broker may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Most consumer groups whose lag is reported: `KAFKA_LAG_GROUPS` names at most this many, and
/// without it the first this many of the cluster's consumer groups by name are checked.
pub const MAX_LAG_GROUPS: usize = 50;

/// How long one broker request about consumer groups may take.
const GROUP_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a look at the consumer groups is reused: the console, the order pages and the
/// scrapes of `/metrics` share it, so however often they ask, the broker is asked at most
/// once per interval.
const GROUPS_REUSE: Duration = Duration::from_secs(1);

/// How to reach and use the cluster.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `host:port,host:port` bootstrap list.
    pub brokers: String,
    /// Partitions of topics created before the first publish.
    pub partitions: i32,
    /// Replication factor of topics created before the first publish.
    pub replication: i32,
    /// Bound of the producer's send buffer (librdkafka's default is 1 GiB).
    pub queue_max_kbytes: u32,
    /// How long librdkafka keeps retrying one message before reporting it failed.
    pub message_timeout: Duration,
    /// How long one publish waits for acknowledgements before reporting the rest as
    /// transient failures (they stay queued and are picked up by the retry).
    pub ack_timeout: Duration,
}

/// The producer's settings: idempotent with `acks=all` (no duplicates or reordering from the
/// producer's own retries), a bounded send buffer, and a short linger to fill batches.
pub fn producer_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set(
            "queue.buffering.max.kbytes",
            settings.queue_max_kbytes.to_string(),
        )
        .set(
            "message.timeout.ms",
            settings.message_timeout.as_millis().to_string(),
        )
        .set("linger.ms", "1");
    config
}

/// The Kafka record for `m`: its topic, key, value and headers.
pub fn record(m: &Message) -> FutureRecord<'_, [u8], [u8]> {
    let headers = m.headers.iter().fold(
        OwnedHeaders::new_with_capacity(m.headers.len()),
        |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(value.as_bytes()),
            })
        },
    );
    FutureRecord::to(&m.topic)
        .key(m.key.as_bytes())
        .payload(m.value.as_bytes())
        .headers(headers)
}

/// The Kafka sink.
pub struct KafkaPublisher {
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    /// Topics to create before the first publish, with their layout.
    topics: Vec<String>,
    partitions: i32,
    replication: i32,
    /// Set once the topics exist; until then every publish tries to create them.
    topics_ready: tokio::sync::OnceCell<()>,
    /// Acknowledgements: the timeout, the stash of deliveries still awaited, the suspicion
    /// that no broker answers.
    acks: Acks,
    /// The bootstrap list, for the clients that read consumer groups' offsets.
    brokers: String,
    /// Consumer groups whose lag is reported; empty: any group with offsets on the topics.
    lag_groups: Vec<String>,
    /// The last look at the consumer groups and when it was taken; the lock is held while
    /// the broker is asked, so callers at the same moment share one answer.
    groups_seen: tokio::sync::Mutex<Option<(tokio::time::Instant, ConsumerGroups)>>,
    /// One client per consumer group looked at, in the group's name, kept from one look to
    /// the next: a new librdkafka client per group and look (its threads and connections)
    /// cost more than the offsets it asks for. Groups no longer looked at are dropped.
    group_clients: Arc<Mutex<HashMap<String, BaseConsumer>>>,
}

/// Why the sink could not be set up (the client configuration was refused).
#[derive(Debug, thiserror::Error)]
#[error("cannot create the Kafka client: {0}")]
pub struct KafkaSetupError(#[from] KafkaError);

impl KafkaPublisher {
    /// Creates the clients. Nothing here waits for the cluster, so the application starts
    /// (and takes orders) while Kafka is down; `topics` are created before the first publish.
    pub fn new(settings: &KafkaSettings, topics: Vec<String>) -> Result<Self, KafkaSetupError> {
        let admin = ClientConfig::new()
            .set("bootstrap.servers", &settings.brokers)
            .create()?;
        let producer = producer_config(settings).create()?;
        Ok(Self {
            producer,
            admin,
            topics,
            partitions: settings.partitions,
            replication: settings.replication,
            topics_ready: tokio::sync::OnceCell::new(),
            acks: Acks {
                stash: Arc::default(),
                suspect: Arc::default(),
                timeout: settings.ack_timeout,
            },
            brokers: settings.brokers.clone(),
            lag_groups: Vec::new(),
            groups_seen: tokio::sync::Mutex::new(None),
            group_clients: Arc::default(),
        })
    }

    /// Reports the lag of `groups` only (`KAFKA_LAG_GROUPS`, at most [`MAX_LAG_GROUPS`]);
    /// without this, of every consumer group with committed offsets on the topics.
    pub fn with_lag_groups(mut self, groups: Vec<String>) -> Self {
        self.lag_groups = groups;
        self
    }

    /// Creates the missing topics (an existing topic is fine).
    async fn create_topics(&self) -> Result<(), PublishError> {
        let new: Vec<NewTopic<'_>> = self
            .topics
            .iter()
            .map(|t| {
                NewTopic::new(
                    t,
                    self.partitions,
                    TopicReplication::Fixed(self.replication),
                )
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = self
            .admin
            .create_topics(&new, &options)
            .await
            .map_err(|e| failure(&e, "cannot create topics"))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(PublishError {
                        kind: classify(code),
                        message: format!("cannot create topic {topic}: {code}"),
                    });
                }
            }
        }
        // Let the producer learn the topics' partitions now: left to the first produce,
        // that lookup held back the first acknowledgement by about half a second.
        for topic in &self.topics {
            let (client, topic) = (self.producer.clone(), topic.clone());
            let known = tokio::task::spawn_blocking(move || {
                client
                    .client()
                    .fetch_metadata(Some(&topic), PROBE_TIMEOUT)
                    .map(|_| ())
            })
            .await;
            if let Ok(Err(e)) = known {
                tracing::debug!(error = %e, "topic metadata not fetched ahead");
            }
        }
        tracing::info!(topics = ?self.topics, "Kafka topics ready");
        Ok(())
    }
}

/// Whether an rdkafka error code can go away by itself. Everything not known to be about
/// the message or the client's rights is treated as transient.
pub fn classify(code: RDKafkaErrorCode) -> FailureKind {
    use RDKafkaErrorCode as C;
    match code {
        C::MessageSizeTooLarge
        | C::InvalidMessageSize
        | C::MessageBatchTooLarge
        | C::InvalidMessage
        | C::InvalidRecord
        | C::BadMessage
        | C::InvalidTopic
        | C::InvalidArgument
        | C::InvalidRequiredAcks
        | C::PolicyViolation
        | C::TopicAuthorizationFailed
        | C::ClusterAuthorizationFailed
        | C::TransactionalIdAuthorizationFailed
        | C::SaslAuthenticationFailed
        | C::Authentication => FailureKind::Permanent,
        _ => FailureKind::Transient,
    }
}

/// `e` as a publish error, classified by its code; `context` says what was being done.
fn failure(e: &KafkaError, context: &str) -> PublishError {
    PublishError {
        kind: e
            .rdkafka_error_code()
            .map_or(FailureKind::Transient, classify),
        message: format!("{context}: {e}"),
    }
}

#[async_trait]
impl Publisher for KafkaPublisher {
    async fn publish(&self, batch: &[Message]) -> Outcomes {
        self.send(batch.to_vec()).await.await
    }

    async fn send(&self, batch: Vec<Message>) -> Pending {
        if let Err(e) = self.ready().await {
            let failed = batch.iter().map(|_| Err(e.clone())).collect();
            return Box::pin(std::future::ready(failed));
        }
        let deadline = tokio::time::Instant::now() + self.acks.timeout;
        self.acks.forget_other_than(&batch);
        // Enqueue everything first (or pick up the delivery still awaited from an earlier
        // try). After a message that could not be enqueued, nothing more is sent: a later
        // event of the same key must not overtake it.
        let mut pending = Vec::with_capacity(batch.len());
        let mut unsent = None;
        for m in &batch {
            if let Some(delivery) = self.acks.take(m) {
                pending.push(delivery);
                continue;
            }
            match self.producer.send_result(record(m)) {
                Ok(delivery) => pending.push(delivery),
                Err((e, _)) => {
                    unsent = Some(failure(&e, "cannot enqueue"));
                    break;
                }
            }
        }
        Box::pin(self.acks.clone().wait(batch, pending, unsent, deadline))
    }

    async fn probe(&self) -> Result<(), PublishError> {
        self.broker_answers().await?;
        self.acks.suspect.store(false, Ordering::SeqCst);
        Ok(())
    }

    async fn offsets(&self) -> Option<Result<Vec<PartitionOffsets>, PublishError>> {
        Some(self.watermarks().await)
    }

    async fn consumer_groups(&self) -> Option<Result<ConsumerGroups, PublishError>> {
        let mut seen = self.groups_seen.lock().await;
        if let Some((at, groups)) = seen.as_ref()
            && at.elapsed() < GROUPS_REUSE
        {
            return Some(Ok(groups.clone()));
        }
        let (client, topics) = (self.producer.clone(), self.topics.clone());
        let (brokers, allowed) = (self.brokers.clone(), self.lag_groups.clone());
        let group_clients = Arc::clone(&self.group_clients);
        let asked = tokio::task::spawn_blocking(move || {
            let mut clients = group_clients
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            read_groups(client.client(), &mut clients, &brokers, &topics, &allowed)
        })
        .await
        .unwrap_or(Err(KafkaError::Canceled))
        .map_err(|e| failure(&e, "cannot read the consumer groups"));
        if let Ok(groups) = &asked {
            *seen = Some((tokio::time::Instant::now(), groups.clone()));
        }
        Some(asked)
    }

    fn name(&self) -> &'static str {
        "kafka"
    }

    fn close(&self) {
        if let Err(e) = self.producer.flush(Duration::from_secs(5)) {
            tracing::warn!(error = %e, "the Kafka producer did not flush");
        }
    }
}

impl KafkaPublisher {
    /// The topics exist and, if acknowledgements stopped coming earlier, a broker answers.
    async fn ready(&self) -> Result<(), PublishError> {
        self.topics_ready
            .get_or_try_init(|| self.create_topics())
            .await?;
        if self.acks.suspect.load(Ordering::SeqCst) {
            self.broker_answers().await?;
            self.acks.suspect.store(false, Ordering::SeqCst);
        }
        Ok(())
    }

    /// The low and high watermark of every partition of the relay's topics.
    async fn watermarks(&self) -> Result<Vec<PartitionOffsets>, PublishError> {
        let (client, topics) = (self.producer.clone(), self.topics.clone());
        let asked =
            tokio::task::spawn_blocking(move || partition_offsets(client.client(), &topics))
                .await
                .unwrap_or(Err(KafkaError::Canceled));
        asked.map_err(|e| failure(&e, "cannot read the topics' offsets"))
    }

    /// Asks a broker for metadata, waiting at most [`PROBE_TIMEOUT`].
    async fn broker_answers(&self) -> Result<(), PublishError> {
        let client = self.producer.clone();
        let probe = tokio::task::spawn_blocking(move || {
            client
                .client()
                .fetch_metadata(None, PROBE_TIMEOUT)
                .map(|_| ())
        })
        .await
        .unwrap_or_else(|_| Err(KafkaError::Canceled));
        probe.map_err(|e| PublishError::transient(format!("no Kafka broker answers: {e}")))
    }
}

/// The low and high watermark of every partition of `topics` (blocking).
fn partition_offsets<C: ClientContext>(
    client: &Client<C>,
    topics: &[String],
) -> Result<Vec<PartitionOffsets>, KafkaError> {
    let mut offsets = Vec::new();
    for topic in topics {
        let metadata = client.fetch_metadata(Some(topic), PROBE_TIMEOUT)?;
        for t in metadata.topics() {
            for p in t.partitions() {
                let (low, high) = client.fetch_watermarks(topic, p.id(), PROBE_TIMEOUT)?;
                offsets.push(PartitionOffsets {
                    topic: topic.clone(),
                    partition: p.id(),
                    low,
                    high,
                });
            }
        }
    }
    Ok(offsets)
}

/// The consumer groups with committed offsets on `topics`, each partition with its lag
/// (blocking): `allowed` groups, or (when it is empty) the first [`MAX_LAG_GROUPS`] consumer
/// groups of the cluster by name.
fn read_groups<C: ClientContext>(
    client: &Client<C>,
    clients: &mut HashMap<String, BaseConsumer>,
    brokers: &str,
    topics: &[String],
    allowed: &[String],
) -> Result<ConsumerGroups, KafkaError> {
    let (candidates, truncated) = if allowed.is_empty() {
        let list = client.fetch_group_list(None, GROUP_TIMEOUT)?;
        let mut names: Vec<String> = list
            .groups()
            .iter()
            // Groups of other protocols (Connect workers, …) commit no offsets.
            .filter(|g| matches!(g.protocol_type(), "consumer" | ""))
            .map(|g| g.name().to_owned())
            .collect();
        names.sort();
        names.dedup();
        let truncated = names.len() > MAX_LAG_GROUPS;
        names.truncate(MAX_LAG_GROUPS);
        (names, truncated)
    } else {
        (allowed.to_vec(), false)
    };
    let ends = partition_offsets(client, topics)?;
    clients.retain(|group, _| candidates.contains(group));
    let mut partitions = Vec::new();
    for group in candidates {
        let consumer = match clients.entry(group.clone()) {
            std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
            std::collections::hash_map::Entry::Vacant(new) => {
                new.insert(group_client(brokers, &group)?)
            }
        };
        let committed = committed_offsets(consumer, &ends)?;
        if committed.iter().all(Option::is_none) {
            continue;
        }
        partitions.extend(
            ends.iter()
                .zip(committed)
                .map(|(p, committed)| ConsumerLag {
                    group: group.clone(),
                    topic: p.topic.clone(),
                    partition: p.partition,
                    committed,
                    end: p.high,
                    lag: (p.high - committed.unwrap_or(p.low)).max(0),
                }),
        );
    }
    Ok(ConsumerGroups {
        partitions,
        truncated,
    })
}

/// A client in `group`'s name that never joins it: it only asks what the group committed.
fn group_client(brokers: &str, group: &str) -> Result<BaseConsumer, KafkaError> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
}

/// What `consumer`'s group has committed on each of `partitions`, in their order (`None`:
/// nothing) (blocking).
fn committed_offsets(
    consumer: &BaseConsumer,
    partitions: &[PartitionOffsets],
) -> Result<Vec<Option<i64>>, KafkaError> {
    let mut asked = TopicPartitionList::new();
    for p in partitions {
        asked.add_partition(&p.topic, p.partition);
    }
    let answer = consumer.committed_offsets(asked, GROUP_TIMEOUT)?;
    Ok(partitions
        .iter()
        .map(|p| {
            answer
                .find_partition(&p.topic, p.partition)
                .and_then(|e| match e.offset() {
                    Offset::Offset(n) => Some(n),
                    _ => None,
                })
        })
        .collect())
}

/// The acknowledgements side of the sink, shared with the waits that [`KafkaPublisher::send`]
/// hands out (they outlive the call).
#[derive(Clone)]
struct Acks {
    /// Deliveries still awaited after their publish gave up waiting, by event id.
    stash: Arc<Mutex<HashMap<uuid::Uuid, DeliveryFuture>>>,
    /// Set when acknowledgements stopped coming; the next publish probes a broker first.
    suspect: Arc<AtomicBool>,
    /// How long one publish waits for its acknowledgements.
    timeout: Duration,
}

impl Acks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<uuid::Uuid, DeliveryFuture>> {
        self.stash
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Deliveries kept from earlier tries are picked up by [`Acks::take`] if their event is
    /// in `batch` (even if they completed meanwhile: the event is on the broker then); others
    /// are dropped once complete (their events were handled some other way).
    fn forget_other_than(&self, batch: &[Message]) {
        let mut stash = self.lock();
        if stash.is_empty() {
            return;
        }
        let ids: HashSet<uuid::Uuid> = batch.iter().map(|m| m.event_id).collect();
        stash.retain(|id, delivery| ids.contains(id) || delivery.now_or_never().is_none());
    }

    /// The delivery still awaited for `m` from an earlier try, if any.
    fn take(&self, m: &Message) -> Option<DeliveryFuture> {
        let mut stash = self.lock();
        if stash.is_empty() {
            return None;
        }
        stash.remove(&m.event_id)
    }

    /// Waits until `deadline` for the deliveries of `batch` (the first `pending.len()`
    /// messages; `unsent` says why the rest was not enqueued). Deliveries still awaited at
    /// the deadline are stashed for the retry and reported as transient failures.
    async fn wait(
        self,
        batch: Vec<Message>,
        pending: Vec<DeliveryFuture>,
        unsent: Option<PublishError>,
        deadline: tokio::time::Instant,
    ) -> Outcomes {
        let mut results = Vec::with_capacity(batch.len());
        let mut expired = false;
        for (m, mut delivery) in batch.iter().zip(pending) {
            // Most deliveries are done by the time the one before them is: take those
            // without setting up a timer.
            let outcome = match (&mut delivery).now_or_never() {
                Some(done) => Some(done),
                // Past the deadline already: leave the rest waiting.
                None if expired => None,
                None => tokio::time::timeout_at(deadline, &mut delivery).await.ok(),
            };
            results.push(match outcome {
                Some(Ok(Ok(d))) => Ok(Delivery {
                    topic: m.topic.clone(),
                    partition: Some(d.partition),
                    offset: Some(d.offset),
                }),
                Some(Ok(Err((e, _)))) => Err(failure(&e, "delivery failed")),
                Some(Err(_)) => Err(PublishError::unanswered(
                    "the producer dropped the delivery",
                )),
                None => {
                    expired = true;
                    self.suspect.store(true, Ordering::SeqCst);
                    self.lock().insert(m.event_id, delivery);
                    Err(PublishError::unanswered(format!(
                        "not acknowledged within {} ms",
                        self.timeout.as_millis()
                    )))
                }
            });
        }
        if let Some(first) = unsent {
            let after =
                PublishError::unanswered("not sent: an earlier message of the batch failed");
            results.push(Err(first));
            results.resize(batch.len(), Err(after));
        }
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_producer_is_idempotent_waits_for_every_replica_and_has_a_bounded_buffer() {
        let settings = KafkaSettings {
            brokers: "one:9092,two:9092".into(),
            partitions: 3,
            replication: 1,
            queue_max_kbytes: 4_096,
            message_timeout: Duration::from_secs(90),
            ack_timeout: Duration::from_secs(5),
        };
        let config = producer_config(&settings);
        for (key, value) in [
            ("bootstrap.servers", "one:9092,two:9092"),
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("queue.buffering.max.kbytes", "4096"),
            ("message.timeout.ms", "90000"),
        ] {
            assert_eq!(config.get(key), Some(value), "{key}");
        }
    }

    #[test]
    fn errors_about_the_message_or_rights_are_permanent() {
        for code in [
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::InvalidTopic,
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::ClusterAuthorizationFailed,
            RDKafkaErrorCode::InvalidRecord,
            RDKafkaErrorCode::BadMessage,
            RDKafkaErrorCode::SaslAuthenticationFailed,
        ] {
            assert_eq!(classify(code), FailureKind::Permanent, "{code:?}");
        }
    }

    #[test]
    fn outages_timeouts_and_leader_changes_are_transient() {
        for code in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::NotLeaderForPartition,
            RDKafkaErrorCode::LeaderNotAvailable,
            RDKafkaErrorCode::RequestTimedOut,
            RDKafkaErrorCode::QueueFull,
            RDKafkaErrorCode::NotEnoughReplicas,
            RDKafkaErrorCode::UnknownTopicOrPartition,
        ] {
            assert_eq!(classify(code), FailureKind::Transient, "{code:?}");
        }
        let e = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert_eq!(failure(&e, "x").kind, FailureKind::Permanent);
        assert_eq!(
            failure(&KafkaError::Canceled, "x").kind,
            FailureKind::Transient
        );
    }
}
