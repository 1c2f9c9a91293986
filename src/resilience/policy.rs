//! The failure policy: what the outcome of one publish attempt means for the message (publish
//! it, dead-letter it, retry it after a delay, or pause while the sink recovers) and for the
//! sink's health (what the circuit breaker is told). The relay, the CDC outlet and the dead
//! letter replayer all decide through [`decide`] and report through [`health`], so they cannot
//! disagree.
//!
//! The rule that matters most: **an outage is never a reason to dead-letter**. A message is
//! dead-lettered only when the sink refuses it for good (a permanent error), or when it keeps
//! failing while the sink demonstrably takes other messages — messages handed to it *after*
//! this one were acknowledged ([`SendOrder`]). A failure while nothing later gets through says
//! the sink is down, not that the message is bad: it is retried with backoff and counts
//! against the circuit breaker, which pauses publishing once it opens. Only the failures that
//! happened while the sink took later messages ("strikes") count against
//! [`RetryConfig::max_attempts`], so no choice of retry attempts and breaker threshold can turn
//! an outage into dead letters.

use super::breaker::{BreakerState, PROBE_WAIT};
use super::retry::RetryConfig;
use crate::publish::FailureKind;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What one attempt to publish a message came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The sink acknowledged it.
    Acknowledged,
    /// The sink refused it or did not answer in time.
    Failed(FailureKind),
}

/// The failed attempts of one message so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    /// Every failed attempt (the backoff grows with it).
    pub failures: u32,
    /// Transient failures while the sink took messages handed to it after this one: the
    /// failures that say something about the message itself.
    pub strikes: u32,
}

/// What to do with the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// It is on the sink: record where.
    Acknowledge,
    /// Give up on it: store it as a dead letter and go on with the messages after it.
    DeadLetter,
    /// Try it again after this delay (backoff with jitter).
    Retry { after: Duration },
    /// The circuit breaker is not closed: send nothing for this long, then try again.
    Pause { wait: Duration },
}

/// What the circuit breaker is told about one call to the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The sink works (it acknowledged, refused a message for good, or took later messages).
    Up,
    /// The sink failed and took nothing handed to it later: it may be down.
    Down,
}

/// The breaker as the decision sees it, after the attempt's [`Health`] was reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerView {
    pub state: BreakerState,
    /// How much longer an open breaker refuses calls.
    pub retry_in: Option<Duration>,
}

/// How a call to the sink went for the breaker: `attempt` is the call's outcome (its first
/// failure, if any), `sink_took_later` whether a message handed over after the failed one was
/// acknowledged.
pub fn health(attempt: Attempt, sink_took_later: bool) -> Health {
    match attempt {
        Attempt::Acknowledged | Attempt::Failed(FailureKind::Permanent) => Health::Up,
        Attempt::Failed(_) if sink_took_later => Health::Up,
        Attempt::Failed(_) => Health::Down,
    }
}

/// Decides what to do with a message after `attempt`, given its earlier failures (`before`),
/// whether the sink took a message handed over after it, and the breaker; `jitter` is a
/// number in `[0, 1)` for the retry delay. Returns the decision and the message's new tally.
pub fn decide(
    attempt: Attempt,
    sink_took_later: bool,
    before: Tally,
    breaker: BreakerView,
    retry: &RetryConfig,
    jitter: f64,
) -> (Decision, Tally) {
    let kind = match attempt {
        Attempt::Acknowledged => return (Decision::Acknowledge, Tally::default()),
        Attempt::Failed(kind) => kind,
    };
    let strike = kind == FailureKind::Transient && sink_took_later;
    let tally = Tally {
        failures: before.failures.saturating_add(1),
        strikes: before.strikes.saturating_add(u32::from(strike)),
    };
    let decision = if kind == FailureKind::Permanent {
        Decision::DeadLetter
    } else if breaker.state != BreakerState::Closed {
        Decision::Pause {
            wait: breaker.retry_in.unwrap_or(PROBE_WAIT),
        }
    } else if strike && !retry.may_retry(tally.strikes) {
        Decision::DeadLetter
    } else {
        Decision::Retry {
            after: retry.delay_with(tally.failures, jitter),
        }
    };
    (decision, tally)
}

/// The order in which messages were handed to the sink, and the newest one it acknowledged:
/// the evidence [`decide`] needs to tell a refused message from a sink that is down. One is
/// shared by everything that publishes through the same sink (relay, CDC streams, replays).
#[derive(Debug, Default)]
pub struct SendOrder {
    /// The last ticket handed out; tickets start at 1.
    issued: AtomicU64,
    /// The highest ticket whose message was acknowledged.
    taken: AtomicU64,
}

impl SendOrder {
    /// Tickets for `count` messages about to be handed to the sink, in that order: returns
    /// the first one (the others follow it).
    pub fn issue(&self, count: usize) -> u64 {
        let count = u64::try_from(count).unwrap_or(u64::MAX);
        self.issued.fetch_add(count, Ordering::SeqCst) + 1
    }

    /// The message with `ticket` was acknowledged.
    pub fn taken(&self, ticket: u64) {
        self.taken.fetch_max(ticket, Ordering::SeqCst);
    }

    /// Whether a message handed over after the one with `ticket` was acknowledged.
    pub fn took_later_than(&self, ticket: u64) -> bool {
        self.taken.load(Ordering::SeqCst) > ticket
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resilience::retry::Jitter;
    use Attempt::{Acknowledged, Failed};
    use FailureKind::{Permanent, Transient, Unanswered};

    fn retry(max_attempts: u32) -> RetryConfig {
        RetryConfig {
            max_attempts,
            jitter: Jitter::None,
            ..RetryConfig::default()
        }
    }

    const CLOSED: BreakerView = BreakerView {
        state: BreakerState::Closed,
        retry_in: None,
    };
    const OPEN: BreakerView = BreakerView {
        state: BreakerState::Open,
        retry_in: Some(Duration::from_secs(7)),
    };
    const HALF_OPEN: BreakerView = BreakerView {
        state: BreakerState::HalfOpen,
        retry_in: None,
    };

    fn tally(failures: u32, strikes: u32) -> Tally {
        Tally { failures, strikes }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn every_case_of_the_decision() {
        use Decision::{Acknowledge, DeadLetter, Pause, Retry};
        // (attempt, sink took later, before, breaker, max attempts) → (decision, tally after)
        #[rustfmt::skip]
        let cases = [
            // Acknowledged: always published, the tally starts over.
            (Acknowledged, false, tally(3, 2), CLOSED, 5, Acknowledge, tally(0, 0)),
            (Acknowledged, true, tally(0, 0), OPEN, 5, Acknowledge, tally(0, 0)),
            // Refused for good: dead-lettered at once, whatever else holds.
            (Failed(Permanent), false, tally(0, 0), CLOSED, 5, DeadLetter, tally(1, 0)),
            (Failed(Permanent), true, tally(2, 1), OPEN, 5, DeadLetter, tally(3, 1)),
            // Transient while nothing later got through (the sink looks down): retried with
            // growing backoff, never dead-lettered, however many failures.
            (Failed(Transient), false, tally(0, 0), CLOSED, 5, Retry { after: ms(100) }, tally(1, 0)),
            (Failed(Transient), false, tally(4, 0), CLOSED, 5, Retry { after: ms(500) }, tally(5, 0)),
            (Failed(Transient), false, tally(999, 4), CLOSED, 5, Retry { after: ms(500) }, tally(1000, 4)),
            (Failed(Transient), false, tally(0, 0), CLOSED, 1, Retry { after: ms(100) }, tally(1, 0)),
            // Transient while later messages got through: a strike; dead-lettered once the
            // strikes reach the attempts.
            (Failed(Transient), true, tally(0, 0), CLOSED, 5, Retry { after: ms(100) }, tally(1, 1)),
            (Failed(Transient), true, tally(3, 3), CLOSED, 5, Retry { after: ms(500) }, tally(4, 4)),
            (Failed(Transient), true, tally(4, 4), CLOSED, 5, DeadLetter, tally(5, 5)),
            (Failed(Transient), true, tally(9, 4), CLOSED, 5, DeadLetter, tally(10, 5)),
            (Failed(Transient), true, tally(0, 0), CLOSED, 1, DeadLetter, tally(1, 1)),
            // No answer in time: the message may still arrive; never a strike.
            (Failed(Unanswered), true, tally(4, 4), CLOSED, 5, Retry { after: ms(500) }, tally(5, 4)),
            (Failed(Unanswered), false, tally(0, 0), CLOSED, 1, Retry { after: ms(100) }, tally(1, 0)),
            // The breaker is open or probing: pause, never dead-letter.
            (Failed(Transient), false, tally(4, 0), OPEN, 5, Pause { wait: ms(7000) }, tally(5, 0)),
            (Failed(Transient), true, tally(4, 4), OPEN, 5, Pause { wait: ms(7000) }, tally(5, 5)),
            (Failed(Unanswered), false, tally(0, 0), HALF_OPEN, 5, Pause { wait: PROBE_WAIT }, tally(1, 0)),
        ];
        for (i, (attempt, later, before, breaker, attempts, decision, after)) in
            cases.into_iter().enumerate()
        {
            assert_eq!(
                decide(attempt, later, before, breaker, &retry(attempts), 0.0),
                (decision, after),
                "case {i}: {attempt:?}, took later: {later}, {before:?}, {breaker:?}"
            );
        }
    }

    #[test]
    fn no_thresholds_make_an_outage_dead_letter() {
        // An outage: every attempt fails and nothing handed over later is acknowledged, for
        // as long as it lasts, with any number of attempts and any breaker state.
        for attempts in [1, 2, 5, 1000] {
            for breaker in [CLOSED, OPEN, HALF_OPEN] {
                for kind in [Transient, Unanswered] {
                    let mut t = Tally::default();
                    for _ in 0..10_000 {
                        let (d, next) =
                            decide(Failed(kind), false, t, breaker, &retry(attempts), 0.5);
                        assert_ne!(d, Decision::DeadLetter, "{attempts} attempts, {breaker:?}");
                        t = next;
                    }
                    assert_eq!(t.strikes, 0);
                }
            }
        }
    }

    #[test]
    fn the_retry_delay_takes_the_jitter() {
        let full = RetryConfig::default();
        let (d, _) = decide(
            Failed(Transient),
            false,
            Tally::default(),
            CLOSED,
            &full,
            0.5,
        );
        assert_eq!(d, Decision::Retry { after: ms(50) });
    }

    #[test]
    fn health_blames_the_sink_only_when_nothing_later_got_through() {
        assert_eq!(health(Acknowledged, false), Health::Up);
        assert_eq!(health(Failed(Permanent), false), Health::Up);
        assert_eq!(health(Failed(Transient), true), Health::Up);
        assert_eq!(health(Failed(Unanswered), true), Health::Up);
        assert_eq!(health(Failed(Transient), false), Health::Down);
        assert_eq!(health(Failed(Unanswered), false), Health::Down);
    }

    #[test]
    fn the_send_order_tells_whether_a_later_message_was_taken() {
        let order = SendOrder::default();
        let batch = order.issue(3); // tickets 1, 2, 3
        assert_eq!(batch, 1);
        let replay = order.issue(1); // ticket 4
        assert_eq!(replay, 4);
        assert!(!order.took_later_than(batch));
        order.taken(batch); // the first of the batch
        assert!(!order.took_later_than(batch));
        assert!(order.took_later_than(0));
        order.taken(replay);
        assert!(order.took_later_than(batch + 1));
        assert!(!order.took_later_than(replay));
        // Acknowledgements that arrive out of order never lower the mark.
        order.taken(2);
        assert!(order.took_later_than(3));
    }
}
