//! Consumer lag against a real broker (tansu): consumer groups that read the relay's topic and
//! commit offsets, as `GET /api/admin/sink/consumer-groups`, `/metrics` and the order answer
//! for admins report them.

use crate::broker::{Broker, PARTITIONS};
use crate::helpers::{ADMIN_TOKEN, TestApp, eventually, expect_error, spawn_app};
use crate::kafka::{acknowledged, app_on};
use crate::topic_check::TOPIC;
use app::dto::{ConsumerGroupsDto, ConsumerLagDto, OrderDetailDto};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use reqwest::{Method, StatusCode};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const PATH: &str = "/api/admin/sink/consumer-groups";

/// A consumer group member that reads the relay's topic from the start, by hand: it reads
/// some messages, then commits how far it got (auto-commit is off).
struct GroupReader {
    consumer: BaseConsumer,
    /// The next offset to commit, per partition.
    next: BTreeMap<i32, i64>,
}

impl GroupReader {
    fn new(brokers: &str, group: &str) -> GroupReader {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut partitions = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            partitions
                .add_partition_offset(TOPIC, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&partitions).expect("assign");
        GroupReader {
            consumer,
            next: BTreeMap::new(),
        }
    }

    /// Reads `n` more messages (30 s at most), then commits.
    fn read_and_commit(&mut self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut read = 0;
        while read < n {
            assert!(Instant::now() < deadline, "read {read} of {n} messages");
            if let Some(Ok(m)) = self.consumer.poll(Duration::from_millis(100)) {
                self.next.insert(m.partition(), m.offset() + 1);
                read += 1;
            }
        }
        let mut offsets = TopicPartitionList::new();
        for (p, next) in &self.next {
            offsets
                .add_partition_offset(TOPIC, *p, Offset::Offset(*next))
                .unwrap();
        }
        self.consumer
            .commit(&offsets, CommitMode::Sync)
            .expect("commit");
    }
}

/// Runs `f` on `reader` off the async runtime (the consumer blocks).
async fn blocking(
    reader: GroupReader,
    f: impl FnOnce(&mut GroupReader) + Send + 'static,
) -> GroupReader {
    tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        f(&mut reader);
        reader
    })
    .await
    .unwrap()
}

/// The rows of `group` by partition.
fn rows_of(groups: &ConsumerGroupsDto, group: &str) -> BTreeMap<i32, ConsumerLagDto> {
    groups
        .partitions
        .iter()
        .filter(|p| p.group == group)
        .map(|p| (p.partition, p.clone()))
        .collect()
}

/// The value of `outbox_consumer_group_lag` for `group` on the topic, if exported.
async fn lag_metric(app: &TestApp, group: &str) -> Option<i64> {
    let text = app.get("/metrics").await.text().await.unwrap();
    let series = format!("outbox_consumer_group_lag{{group=\"{group}\",topic=\"{TOPIC}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .map(|v| v.parse().expect("an integer"))
}

/// A group reads part of the topic and commits: the endpoint shows each partition's
/// committed offset, end and lag, `/metrics` their sum, and the order answer (for admins)
/// which events the group has consumed; once it reads and commits the rest, all lag is 0.
#[tokio::test]
async fn a_consumer_groups_lag_is_reported_per_partition_until_it_catches_up() {
    let broker = Broker::start().await;
    let (app, events) = acknowledged(&broker, 12, &["--kafka-lag-groups", "billing"]).await;
    let partial = events / 2;
    let reader = GroupReader::new(&broker.address, "billing");
    let reader = blocking(reader, move |r| r.read_and_commit(partial)).await;

    let ends: BTreeMap<i32, i64> = app
        .admin_get::<Vec<app::dto::PartitionOffsetsDto>>("/api/admin/sink/offsets")
        .await
        .into_iter()
        .map(|p| (p.partition, p.high))
        .collect();
    let groups: ConsumerGroupsDto = app.admin_get(PATH).await;
    assert!(!groups.truncated);
    let rows = rows_of(&groups, "billing");
    assert_eq!(rows.len(), PARTITIONS as usize, "a row per partition");
    for (p, row) in &rows {
        let committed = reader.next.get(p).copied();
        assert_eq!(row.topic, TOPIC);
        assert_eq!(row.committed, committed, "partition {p}");
        assert_eq!(row.end, ends[p], "partition {p}");
        assert_eq!(row.lag, ends[p] - committed.unwrap_or(0), "partition {p}");
    }
    let lag: i64 = rows.values().map(|r| r.lag).sum();
    assert_eq!(lag, (events - partial) as i64);
    assert_eq!(lag_metric(&app, "billing").await, Some(lag));

    // The order answer says, per published event, whether the group is past it.
    let order = app.get_json("/api/orders?limit=100").await["orders"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/orders/{order}");
    let detail: OrderDetailDto = app.admin_get(&path).await;
    for e in &detail.events {
        let d = e.delivery.as_ref().expect("published");
        let (p, offset) = (d.partition.unwrap(), d.offset.unwrap());
        let consumers = e.path.as_ref().unwrap().consumers.clone().expect("Kafka");
        let billing = consumers.iter().find(|c| c.group == "billing").unwrap();
        let committed = reader.next.get(&p).copied();
        assert_eq!(billing.committed, committed);
        assert_eq!(billing.consumed, committed.is_some_and(|c| c > offset));
    }

    let _reader = blocking(reader, move |r| r.read_and_commit(events - partial)).await;
    eventually("the lag falls to 0", || async {
        let groups: ConsumerGroupsDto = app.admin_get(PATH).await;
        let rows = rows_of(&groups, "billing");
        rows.len() == PARTITIONS as usize && rows.values().all(|r| r.lag == 0)
    })
    .await;
    assert_eq!(lag_metric(&app, "billing").await, Some(0));
    let detail: OrderDetailDto = app.admin_get(&path).await;
    assert!(detail.events.iter().all(|e| {
        let consumers = e.path.as_ref().unwrap().consumers.as_ref().unwrap();
        consumers.iter().any(|c| c.group == "billing" && c.consumed)
    }));
}

/// Only groups with committed offsets on the topic count, `?group=` picks one, and only the
/// groups `KAFKA_LAG_GROUPS` names are reported, in the endpoint and the metric. (Without the
/// setting the groups come from the cluster's group list, which tansu 0.6 does not serve to
/// librdkafka: see the README.)
#[tokio::test]
async fn the_allow_list_and_the_group_filter_choose_the_groups_reported() {
    let broker = Broker::start().await;
    let lag_groups = ["--kafka-lag-groups", "audit,billing,nobody"];
    let (app, events) = acknowledged(&broker, 6, &lag_groups).await;
    for group in ["audit", "billing"] {
        let reader = GroupReader::new(&broker.address, group);
        blocking(reader, move |r| r.read_and_commit(events)).await;
    }

    // `nobody` has committed nothing: it is not reported.
    let groups: ConsumerGroupsDto = app.admin_get(PATH).await;
    let names: std::collections::BTreeSet<&str> =
        groups.partitions.iter().map(|p| p.group.as_str()).collect();
    assert_eq!(names, ["audit", "billing"].into());
    let one: ConsumerGroupsDto = app.admin_get(&format!("{PATH}?group=audit")).await;
    assert!(one.partitions.iter().all(|p| p.group == "audit"));
    assert_eq!(one.partitions.len(), PARTITIONS as usize);
    assert_eq!(lag_metric(&app, "nobody").await, None);

    let listed = app_on(&broker, "streaming", &["--kafka-lag-groups", "audit"]).await;
    let groups: ConsumerGroupsDto = listed.admin_get(PATH).await;
    assert_eq!(groups.partitions.len(), PARTITIONS as usize);
    assert!(groups.partitions.iter().all(|p| p.group == "audit"));
    assert_eq!(lag_metric(&listed, "audit").await, Some(0));
    assert_eq!(lag_metric(&listed, "billing").await, None);
}

/// Credentials first, then the query; with the embedded log there are no consumer groups.
#[tokio::test]
async fn the_consumer_groups_endpoint_refuses_bad_requests() {
    let app = spawn_app().await;
    let anonymous = app.get(PATH).await;
    expect_error(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let wrong = app
        .client
        .get(app.url(PATH))
        .bearer_auth(format!("{ADMIN_TOKEN}-not"))
        .send()
        .await
        .unwrap();
    expect_error(wrong, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let unauthorised_and_bad = app.get(&format!("{PATH}?group=")).await;
    expect_error(
        unauthorised_and_bad,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    for query in [
        "?group=",
        "?group=%07",
        "?limit=5",
        &format!("?group={}", "g".repeat(256)),
    ] {
        let response = app
            .admin(Method::GET, &format!("{PATH}{query}"), None)
            .await;
        expect_error(response, StatusCode::BAD_REQUEST, "invalid_query").await;
    }
    let embedded = app.admin(Method::GET, PATH, None).await;
    expect_error(embedded, StatusCode::NOT_FOUND, "not_found").await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(!metrics.contains("outbox_consumer_group_lag{"));
}
