//! The Kafka sink on its own against a real broker (tansu): what it does around outages and
//! at shutdown, seen from the topic.

use crate::broker::{Broker, PARTITIONS, consume, topic_size};
use crate::helpers::eventually_within;
use crate::topic_check::TOPIC;
use outbox::publish::kafka::{KafkaPublisher, KafkaSettings};
use outbox::publish::{Message, Publisher};
use std::time::Duration;

/// The sink for `broker`, waiting `ack_timeout` for acknowledgements.
fn sink(broker: &Broker, ack_timeout: Duration) -> KafkaPublisher {
    let settings = KafkaSettings {
        brokers: broker.address.clone(),
        partitions: PARTITIONS,
        replication: 1,
        queue_max_kbytes: 32_768,
        message_timeout: Duration::from_secs(120),
        ack_timeout,
    };
    KafkaPublisher::new(&settings, vec![TOPIC.to_string()]).expect("the client is created")
}

/// Message `n` of one key, with a JSON payload and the event id header the sink tracks.
fn message(n: usize) -> Message {
    Message {
        topic: TOPIC.to_string(),
        key: format!("key-{}", n % 7),
        value: format!("{{\"n\":{n}}}"),
        headers: vec![("event_id", format!("event-{n}"))],
        event_id: uuid::Uuid::from_u128(n as u128 + 1),
        event_type: "OrderCreated",
    }
}

/// After a publish that got no acknowledgement in time, the next one first asks whether a
/// broker answers and fails at once if none does, instead of sending and waiting out the
/// acknowledgement timeout again. The unacknowledged message stays queued: retried once the
/// broker is back, it is picked up, not sent a second time.
#[tokio::test]
async fn after_an_unanswered_publish_the_next_one_checks_for_a_broker_first() {
    let mut broker = Broker::start().await;
    let sink = sink(&broker, Duration::from_secs(2));
    let first = sink.publish(&[message(1)]).await;
    assert!(first[0].is_ok(), "{first:?}");
    broker.kill().await;

    let unanswered = sink.publish(&[message(2)]).await;
    let e = unanswered[0].as_ref().expect_err("no broker acknowledges");
    assert!(
        e.message.contains("not acknowledged within 2000 ms"),
        "{e:?}"
    );
    let probed = sink.publish(&[message(3)]).await;
    let e = probed[0].as_ref().expect_err("no broker answers");
    assert!(e.message.contains("no Kafka broker answers"), "{e:?}");

    broker.resume().await;
    eventually_within(
        Duration::from_secs(60),
        "the retried message is acknowledged",
        || async { sink.publish(&[message(2)]).await[0].is_ok() },
    )
    .await;
    let on_topic = consume(&broker.address, 2).await;
    let mut ids: Vec<&str> = on_topic.iter().map(|m| m.event_id()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["event-1", "event-2"], "each once; 3 was never sent");
    assert_eq!(topic_size(&broker.address).await, 2);
}

/// `close` (called when the relay stops) sends what librdkafka still holds before the
/// process goes on to exit; dropping the producer without it discards its queue. The broker
/// hangs while the batch is enqueued, so most of it is still queued, not in flight, when the
/// sink is closed; it comes back half a second into the close.
#[tokio::test]
async fn closing_the_sink_flushes_every_enqueued_message() {
    const MESSAGES: usize = 20_000;
    let broker = Broker::start().await;
    let sink = sink(&broker, Duration::from_secs(5));
    assert!(sink.publish(&[message(0)]).await[0].is_ok());
    broker.freeze();
    let padding = "x".repeat(1_000);
    let batch: Vec<Message> = (1..MESSAGES)
        .map(|n| Message {
            value: format!("{{\"n\":{n},\"padding\":\"{padding}\"}}"),
            ..message(n)
        })
        .collect();
    // Enqueued, not awaited: the acknowledgements are left to `close`.
    drop(sink.send(batch).await);
    let closing = tokio::task::spawn_blocking(move || {
        sink.close();
        drop(sink);
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    broker.thaw();
    closing.await.unwrap();
    assert_eq!(topic_size(&broker.address).await, MESSAGES);
}
