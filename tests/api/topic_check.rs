//! What every relay test checks of a topic, whichever sink wrote it: each outbox event is
//! there with its key, value and headers, and per key in version order.

use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// The topic of order events under the default template.
pub const TOPIC: &str = "outbox.event.order";

/// One consumed message, reduced to what the checks need.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub value: Value,
    pub headers: HashMap<String, String>,
}

impl Consumed {
    pub fn event_id(&self) -> &str {
        &self.headers["event_id"]
    }
}

/// One outbox row as the checks need it.
struct OutboxRow {
    event_type: String,
    aggregate_id: String,
    version: i64,
    payload: Value,
    /// The W3C trace context stored with the event: the record must carry it.
    traceparent: Option<String>,
    tracestate: Option<String>,
}

/// Every outbox event of the database at `db` is on the topic, with its key, value and
/// headers; per key, the first copies of the events come in `aggregate_version` order.
/// Returns the event ids that arrived more than once, for the caller to judge.
pub fn assert_topic_holds_outbox(db: &Path, messages: &[Consumed]) -> HashSet<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT event_id, event_type, aggregate_id, aggregate_version, payload, traceparent, \
             tracestate FROM outbox",
        )
        .unwrap();
    let outbox: HashMap<String, OutboxRow> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                OutboxRow {
                    event_type: r.get(1)?,
                    aggregate_id: r.get(2)?,
                    version: r.get(3)?,
                    payload: serde_json::from_str(&r.get::<_, String>(4)?).unwrap(),
                    traceparent: r.get(5)?,
                    tracestate: r.get(6)?,
                },
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();

    // Per partition in offset order, every key's versions must be 1, 2, 3, … once duplicates
    // (a resent event) are set aside.
    let mut by_partition: BTreeMap<i32, Vec<&Consumed>> = BTreeMap::new();
    for m in messages {
        by_partition.entry(m.partition).or_default().push(m);
    }
    let mut partition_of: HashMap<&str, i32> = HashMap::new();
    for m in messages {
        let first = *partition_of.entry(&m.key).or_insert(m.partition);
        assert_eq!(
            first, m.partition,
            "all events of {} share a partition",
            m.key
        );
    }
    let mut seen = HashSet::new();
    let mut duplicates = HashSet::new();
    let mut versions: HashMap<&str, i64> = HashMap::new();
    for partition in by_partition.values_mut() {
        partition.sort_by_key(|m| m.offset);
        for m in partition.iter() {
            let row = outbox
                .get(m.event_id())
                .unwrap_or_else(|| panic!("{} is not an outbox event", m.event_id()));
            assert_eq!(m.key, row.aggregate_id, "keyed by aggregate id");
            assert_eq!(m.value, row.payload);
            assert_eq!(m.headers["event_type"], row.event_type);
            assert_eq!(m.headers["aggregate_type"], "order");
            assert_eq!(m.headers["aggregate_id"], row.aggregate_id);
            assert_eq!(m.headers["aggregate_version"], row.version.to_string());
            assert_eq!(m.headers["schema_version"], "1");
            assert_eq!(m.headers["content-type"], "application/json");
            assert!(m.headers["occurred_at"].ends_with('Z'));
            assert_eq!(m.headers.get("traceparent"), row.traceparent.as_ref());
            assert_eq!(m.headers.get("tracestate"), row.tracestate.as_ref());
            if !seen.insert(m.event_id().to_string()) {
                duplicates.insert(m.event_id().to_string());
                continue;
            }
            let previous = versions.insert(&row.aggregate_id, row.version).unwrap_or(0);
            assert_eq!(
                row.version,
                previous + 1,
                "per-key order follows aggregate_version ({})",
                row.aggregate_id
            );
        }
    }
    assert_eq!(seen.len(), outbox.len(), "every committed event arrives");
    duplicates
}
