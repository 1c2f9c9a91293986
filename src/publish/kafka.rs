//! Kafka or Redpanda through rdkafka: an idempotent producer (`enable.idempotence=true`,
//! `acks=all`), key = aggregate id, the envelope as headers. A batch is enqueued without
//! waiting for each send; the deliveries are then awaited together, in order.

use super::{Delivery, Message, PublishError, Publisher};
use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

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
}

/// Why the sink could not be set up (the client configuration was refused).
#[derive(Debug, thiserror::Error)]
#[error("cannot create the Kafka client: {0}")]
pub struct KafkaSetupError(#[from] KafkaError);

impl KafkaPublisher {
    /// Creates the clients. Nothing here waits for the cluster, so the application starts
    /// (and takes orders) while Kafka is down; `topics` are created before the first publish.
    pub fn new(settings: &KafkaSettings, topics: Vec<String>) -> Result<Self, KafkaSetupError> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &settings.brokers);
        let admin = config.create()?;
        let producer = config
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
            .set("linger.ms", "5")
            .create()?;
        Ok(Self {
            producer,
            admin,
            topics,
            partitions: settings.partitions,
            replication: settings.replication,
            topics_ready: tokio::sync::OnceCell::new(),
        })
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
            .map_err(|e| PublishError(format!("cannot create topics: {e}")))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(PublishError(format!("cannot create topic {topic}: {code}")));
                }
            }
        }
        tracing::info!(topics = ?self.topics, "Kafka topics ready");
        Ok(())
    }
}

#[async_trait]
impl Publisher for KafkaPublisher {
    async fn publish(&self, batch: &[Message]) -> Vec<Result<Delivery, PublishError>> {
        if let Err(e) = self
            .topics_ready
            .get_or_try_init(|| self.create_topics())
            .await
        {
            return batch.iter().map(|_| Err(e.clone())).collect();
        }
        // Enqueue everything first. After a message that could not be enqueued (buffer full),
        // nothing more is sent: a later event of the same key must not overtake it.
        let mut pending = Vec::with_capacity(batch.len());
        for m in batch {
            let headers = m
                .headers
                .iter()
                .fold(OwnedHeaders::new(), |h, (key, value)| {
                    h.insert(Header {
                        key,
                        value: Some(value.as_bytes()),
                    })
                });
            let record = FutureRecord::to(&m.topic)
                .key(m.key.as_bytes())
                .payload(m.value.as_bytes())
                .headers(headers);
            match self.producer.send_result(record) {
                Ok(delivery) => pending.push(delivery),
                Err((e, _)) => {
                    return self
                        .settle(batch, pending, Some(PublishError(e.to_string())))
                        .await;
                }
            }
        }
        self.settle(batch, pending, None).await
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
    /// Awaits the enqueued deliveries in order; messages after them failed with `unsent`.
    async fn settle(
        &self,
        batch: &[Message],
        pending: Vec<rdkafka::producer::DeliveryFuture>,
        unsent: Option<PublishError>,
    ) -> Vec<Result<Delivery, PublishError>> {
        let mut results = Vec::with_capacity(batch.len());
        for (m, delivery) in batch.iter().zip(pending) {
            results.push(match delivery.await {
                Ok(Ok(d)) => Ok(Delivery {
                    topic: m.topic.clone(),
                    partition: Some(d.partition),
                    offset: Some(d.offset),
                }),
                Ok(Err((e, _))) => Err(PublishError(e.to_string())),
                Err(_) => Err(PublishError("the producer dropped the delivery".into())),
            });
        }
        if let Some(e) = unsent {
            results.extend(std::iter::repeat_n(Err(e), batch.len() - results.len()));
        }
        results
    }
}
