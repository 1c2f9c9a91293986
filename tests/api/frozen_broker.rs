//! The outage that used to dead-letter an event: a backlog of 20,000 events draining into a
//! real broker (tansu), the broker frozen (SIGSTOP) in the middle of the drain for longer than
//! all of an event's retries take, then let go (SIGCONT). Nothing may be dead-lettered, every
//! event must reach the topic in per-key order, and only what the relay keeps in flight may
//! arrive twice — with the default thresholds, and with the circuit breaker's threshold above
//! and below the retry attempts.

use crate::broker::{Broker, consume, topic_size};
use crate::helpers::{TestApp, eventually, eventually_within, last_position, relay_checkpoint};
use crate::resilience::write_many;
use crate::topic_check::assert_topic_holds_outbox;
use app::dto::SuspensionDto;
use std::time::Duration;

/// How long the broker stays frozen: far longer than an event's five attempts take with the
/// defaults (the first waits out the 5 s acknowledgement timeout; the next ones find within
/// 1 s that no broker answers, and back off at most 500 ms).
const FREEZE: Duration = Duration::from_secs(60);

/// Orders written for the backlog; every fourth is changed once, so 20,000 events.
const ORDERS: usize = 16_000;

/// What the relay keeps sent but unrecorded: `RELAY_BATCH_SIZE` × `RELAY_PIPELINE_DEPTH`
/// with the defaults (500 × 2), the documented bound on duplicates.
const IN_FLIGHT: usize = 1_000;

/// One drain through a freeze, with `extra` flags for the application.
async fn drain_through_a_freeze(extra: &[&str]) {
    let broker = Broker::start().await;
    let app: TestApp = crate::kafka::app_on(&broker, "streaming", extra).await;
    let db = app.db_path();
    let case = format!("with {extra:?}");
    // The backlog: the relay is suspended while the events are committed.
    let held: SuspensionDto = app.admin_post("/api/admin/relay/suspend", None::<()>).await;
    assert!(held.suspended);
    let events = write_many(&app, ORDERS).await;
    assert!(events >= 20_000, "{case}: {events} events");
    let held: SuspensionDto = app.admin_post("/api/admin/relay/resume", None::<()>).await;
    assert!(!held.suspended);
    eventually("the drain has begun", || async {
        relay_checkpoint(&db) > 0
    })
    .await;

    broker.freeze();
    let at_freeze = relay_checkpoint(&db);
    assert!(
        at_freeze < last_position(&db),
        "{case}: the broker froze in the middle of the drain"
    );
    tokio::time::sleep(FREEZE).await;
    assert_eq!(
        app.count("dead_letters"),
        0,
        "{case}: nothing dead-lettered while frozen"
    );
    assert!(
        relay_checkpoint(&db) < last_position(&db),
        "{case}: nothing acknowledged the rest while frozen"
    );
    broker.thaw();

    eventually_within(
        Duration::from_secs(240),
        "the relay drained the backlog after the freeze",
        || async { relay_checkpoint(&db) == last_position(&db) },
    )
    .await;
    assert_eq!(
        app.count("dead_letters"),
        0,
        "{case}: nothing dead-lettered"
    );
    let size = topic_size(&broker.address).await;
    let messages = consume(&broker.address, size).await;
    assert_eq!(
        messages.len(),
        size,
        "{case}: the whole topic was read back"
    );
    // Every committed event is there, in per-key order of first copies.
    let duplicates = assert_topic_holds_outbox(&db, &messages);
    assert!(
        size - events <= IN_FLIGHT,
        "{case}: {} extra copies ({} events twice)",
        size - events,
        duplicates.len()
    );
}

/// The three cases run side by side: each spends most of its time waiting out the freeze.
#[tokio::test]
async fn a_broker_frozen_mid_drain_dead_letters_nothing_whatever_the_thresholds() {
    tokio::join!(
        // The defaults: five attempts, the breaker opens after five failures.
        drain_through_a_freeze(&[]),
        // The breaker opens long after the attempts ran out (it may not open at all).
        drain_through_a_freeze(&["--breaker-failure-threshold", "50"]),
        // The breaker opens before the attempts run out, and probes every 5 s.
        drain_through_a_freeze(&[
            "--breaker-failure-threshold",
            "2",
            "--breaker-open-timeout",
            "5000ms",
        ]),
    );
}
