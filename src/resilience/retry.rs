//! Retry delays: exponential backoff with a cap and full jitter (AWS's "full jitter": a
//! uniformly random wait between zero and the capped exponential delay), so relays that fail
//! together do not retry together.

use std::time::Duration;

/// How failed publishes are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// Publish attempts per event (the first one included) before it is dead-lettered.
    pub max_attempts: u32,
    /// Wait after the first failure, before jitter.
    pub initial_delay: Duration,
    /// No wait is longer than this, before jitter.
    pub max_delay: Duration,
    /// Growth of the wait from one retry to the next.
    pub multiplier: f64,
    pub jitter: Jitter,
}

/// How much randomness goes into each wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Jitter {
    /// Exactly the capped exponential delay.
    None,
    /// Uniformly between zero and the capped exponential delay.
    Full,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
            multiplier: 2.0,
            jitter: Jitter::Full,
        }
    }
}

impl RetryConfig {
    /// The wait before retry `retry` (1 = the wait after the first failure), before jitter:
    /// `initial_delay × multiplier^(retry-1)`, at most `max_delay`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = self
            .multiplier
            .powi(i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX));
        let max = self.max_delay.as_secs_f64();
        Duration::from_secs_f64((self.initial_delay.as_secs_f64() * factor).min(max))
    }

    /// The wait before retry `retry`, with jitter drawn from `unit` (a number in `[0, 1)`).
    pub fn delay_with(&self, retry: u32, unit: f64) -> Duration {
        let ceiling = self.ceiling(retry);
        match self.jitter {
            Jitter::None => ceiling,
            Jitter::Full => ceiling.mul_f64(unit.clamp(0.0, 1.0)),
        }
    }

    /// The wait before retry `retry`, with fresh randomness.
    pub fn delay(&self, retry: u32) -> Duration {
        self.delay_with(retry, fastrand::f64())
    }

    /// Whether an event that failed `failures` times may be tried again.
    pub fn may_retry(&self, failures: u32) -> bool {
        failures < self.max_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact() -> RetryConfig {
        RetryConfig {
            jitter: Jitter::None,
            ..RetryConfig::default()
        }
    }

    #[test]
    fn delays_grow_by_the_multiplier_up_to_the_cap() {
        let c = exact();
        let ms: Vec<u128> = (1..=6).map(|r| c.delay(r).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 500, 500, 500]);
        let slow = RetryConfig {
            multiplier: 3.0,
            max_delay: Duration::from_secs(10),
            ..exact()
        };
        assert_eq!(slow.delay(3), Duration::from_millis(900));
        // Huge retry numbers stay at the cap instead of overflowing.
        assert_eq!(c.delay(u32::MAX), Duration::from_millis(500));
    }

    #[test]
    fn full_jitter_stays_between_zero_and_the_ceiling() {
        let c = RetryConfig::default();
        assert_eq!(c.delay_with(2, 0.0), Duration::ZERO);
        assert_eq!(c.delay_with(2, 0.5), Duration::from_millis(100));
        assert_eq!(
            c.delay_with(9, 0.999),
            Duration::from_millis(500).mul_f64(0.999)
        );
        for retry in 1..10 {
            let d = c.delay(retry);
            assert!(d <= c.ceiling(retry), "{d:?} above {:?}", c.ceiling(retry));
        }
        // Not every draw is the same: the jitter is real.
        let draws: std::collections::HashSet<Duration> = (0..50).map(|_| c.delay(3)).collect();
        assert!(draws.len() > 1);
    }

    #[test]
    fn attempts_are_counted_against_the_limit() {
        let c = exact();
        assert!(c.may_retry(1));
        assert!(c.may_retry(4));
        assert!(!c.may_retry(5));
        let once = RetryConfig {
            max_attempts: 1,
            ..exact()
        };
        assert!(!once.may_retry(1));
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_a_delay_takes_that_long_on_the_clock() {
        let c = exact();
        let start = tokio::time::Instant::now();
        for retry in 1..=4 {
            tokio::time::sleep(c.delay(retry)).await;
        }
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(100 + 200 + 400 + 500)
        );
    }
}
