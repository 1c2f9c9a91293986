//! How a supervisor waits before restarting what failed: doubling from a shortest to a
//! longest wait, and back to the shortest once a run did some good (so a relay that fails
//! now and then restarts quickly, and one that cannot start backs off).

use std::time::Duration;

/// The wait before the next restart.
#[derive(Debug, Clone)]
pub struct RestartBackoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl RestartBackoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }

    /// The wait after a failed run; `did_well` (it made progress, or ran long enough) starts
    /// over from the shortest.
    pub fn after_failure(&mut self, did_well: bool) -> Duration {
        if did_well {
            self.next = self.min;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_longest_and_start_over_after_a_good_run() {
        let ms = Duration::from_millis;
        let mut backoff = RestartBackoff::new(ms(100), ms(1000));
        let waits: Vec<Duration> = (0..6).map(|_| backoff.after_failure(false)).collect();
        assert_eq!(
            waits,
            [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        assert_eq!(backoff.after_failure(true), ms(100));
        assert_eq!(backoff.after_failure(false), ms(200));
    }
}
