//! Commit positions on ScyllaDB.
//!
//! There is no single writer to number events 1, 2, 3, … A position here is the microseconds
//! since 2020-01-01 (UTC) at which the writer took it, shifted left by [`NODE_BITS`], plus the
//! process's node tag, which it holds exclusively while it writes (see `tags`):
//!
//! - unique: one process never hands out the same position twice (it moves on by one
//!   microsecond when the clock stands still or goes back), and no two live processes hold
//!   the same tag;
//! - per aggregate increasing: a new event's position is above the order's previous one;
//! - roughly in commit order, not exactly: a write may commit after a later-numbered one. The
//!   polling relay therefore only reads positions older than a settle interval (the way
//!   scylla-cdc's safety interval works), see [`Clock::horizon`].
//!
//! They fit in 61 bits until the year 2091, so they are positive CQL `bigint`s.

use chrono::{DateTime, TimeZone, Utc};
use std::sync::atomic::{AtomicU64, Ordering};

/// How far apart the clocks of the app instances and the ScyllaDB nodes may be (NTP keeps
/// them within milliseconds; a second leaves room). Positions come from the writers' clocks.
pub const CLOCK_SKEW_MARGIN: std::time::Duration = std::time::Duration::from_secs(1);

/// Low bits of a position that hold the node tag.
pub const NODE_BITS: u32 = 10;
/// 2020-01-01T00:00:00Z in microseconds since the Unix epoch.
const EPOCH_MICROS: i64 = 1_577_836_800_000_000;
/// Width of one bucket of the pending index: five minutes.
pub const BUCKET_MICROS: u64 = 5 * 60 * 1_000_000;

/// Microseconds since our epoch at `t` (0 before it).
fn micros(t: DateTime<Utc>) -> u64 {
    (t.timestamp_micros() - EPOCH_MICROS).max(0) as u64
}

/// The smallest position taken at `t`.
pub fn first_at(t: DateTime<Utc>) -> u64 {
    micros(t) << NODE_BITS
}

/// The largest position taken at `t`.
pub fn last_at(t: DateTime<Utc>) -> u64 {
    first_at(t) | ((1 << NODE_BITS) - 1)
}

/// When `position` was taken.
pub fn time_of(position: u64) -> DateTime<Utc> {
    let micros = (position >> NODE_BITS) as i64 + EPOCH_MICROS;
    Utc.timestamp_micros(micros)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The pending-index bucket of `position`.
pub fn bucket_of(position: u64) -> i64 {
    ((position >> NODE_BITS) / BUCKET_MICROS) as i64
}

/// When pending-index bucket `bucket` begins.
pub fn bucket_start(bucket: i64) -> DateTime<Utc> {
    time_of((bucket.max(0) as u64 * BUCKET_MICROS) << NODE_BITS)
}

/// Hands out this process's positions.
#[derive(Debug, Default)]
pub struct Clock {
    /// The last position handed out.
    last: AtomicU64,
}

impl Clock {
    /// A fresh position taken at `now` with node tag `node`, above `floor` (the aggregate's
    /// previous position) and above every position this clock handed out before.
    pub fn next(&self, now: DateTime<Utc>, floor: u64, node: u64) -> u64 {
        let node = node & ((1 << NODE_BITS) - 1);
        // The first position of the microsecond after `p`'s, with this node's tag.
        let after = |p: u64| ((p >> NODE_BITS) + 1) << NODE_BITS | node;
        let wanted = first_at(now) | node;
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let mut candidate = wanted.max(after(last));
            if candidate <= floor {
                candidate = after(floor);
            }
            match self
                .last
                .compare_exchange(last, candidate, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return candidate,
                Err(seen) => last = seen,
            }
        }
    }

    /// The newest position the polling relay may read at `now`: writes taken before
    /// `now - settle` have committed or failed by then.
    pub fn horizon(now: DateTime<Utc>, settle: std::time::Duration) -> u64 {
        let settle = chrono::Duration::from_std(settle).unwrap_or(chrono::Duration::MAX);
        now.checked_sub_signed(settle).map_or(0, last_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn positions_round_trip_to_their_microsecond() {
        let t = at("2026-11-27T10:52:47.123456Z");
        let clock = Clock::default();
        let p = clock.next(t, 0, 5);
        assert_eq!(time_of(p), t);
        assert_eq!(p & 1023, 5);
        assert!(first_at(t) <= p && p <= last_at(t));
        assert!(p < i64::MAX as u64);
    }

    #[test]
    fn one_clock_never_repeats_even_when_time_stands_still_or_goes_back() {
        let clock = Clock::default();
        let t = at("2026-01-01T00:00:00Z");
        let a = clock.next(t, 0, 7);
        let b = clock.next(t, 0, 7);
        let c = clock.next(t - chrono::Duration::seconds(5), 0, 7);
        assert!(a < b && b < c, "{a} {b} {c}");
        assert!([a, b, c].iter().all(|p| p & 1023 == 7));
        // A new tag (after the old one was lost) keeps the order.
        let d = clock.next(t, 0, 2);
        assert!(d > c && d & 1023 == 2, "{c} {d}");
    }

    #[test]
    fn a_position_is_above_the_aggregates_previous_one() {
        let behind = Clock::default();
        let t = at("2026-01-01T00:00:00Z");
        let previous = Clock::default().next(t + chrono::Duration::seconds(3), 0, 900);
        let p = behind.next(t, previous, 1);
        assert!(p > previous);
        assert_eq!(p & 1023, 1);
    }

    #[test]
    fn concurrent_takers_get_distinct_positions() {
        let clock = std::sync::Arc::new(Clock::default());
        let t = at("2026-01-01T00:00:00Z");
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let clock = clock.clone();
                std::thread::spawn(move || {
                    (0..1000).map(|_| clock.next(t, 0, 3)).collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 4000);
    }

    #[test]
    fn the_horizon_lags_by_the_settle_interval() {
        let now = at("2026-01-01T00:00:10Z");
        let h = Clock::horizon(now, Duration::from_secs(2));
        assert_eq!(time_of(h), at("2026-01-01T00:00:08Z"));
        assert!(Clock::default().next(now, 0, 0) > h);
    }

    #[test]
    fn buckets_are_five_minutes_wide() {
        let a = first_at(at("2026-01-01T00:00:00Z"));
        let b = last_at(at("2026-01-01T00:04:59.999999Z"));
        let c = first_at(at("2026-01-01T00:05:00Z"));
        assert_eq!(bucket_of(a), bucket_of(b));
        assert_eq!(bucket_of(c), bucket_of(a) + 1);
        assert_eq!(bucket_start(bucket_of(b)), at("2026-01-01T00:00:00Z"));
    }
}
