//! How the CDC reader paces itself. It reads each stream in windows of `window`, only up to
//! `now - safety` (so writes still in flight are not missed), and sleeps `sleep` between
//! rounds once caught up: an event is published `safety` to `safety + sleep` after its write.
//!
//! A write's CDC row carries the time its lightweight transaction started, but may land up to
//! the store's write timeout later, and the nodes' clocks differ from the reader's: a safety
//! interval shorter than both would let a late row fall behind the reader, which never looks
//! back. So the safety interval is never below [`CdcTiming::safety_floor`].

use crate::store::scylla::position::CLOCK_SKEW_MARGIN;
use std::time::Duration;

/// Named timing presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CdcPreset {
    /// scylla-cdc's own defaults: window 60 s, safety 30 s, sleep 10 s → 30–40 s latency, one
    /// query per stream reader every 10 s.
    Default,
    /// Window 15 s, safety 3 s (the floor with the default settle interval), sleep 250 ms →
    /// about 3–3.25 s latency, 40 times the queries of `default`.
    LowLatency,
}

/// The reader's intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CdcTiming {
    /// Most log time one query reads (while catching up).
    pub window: Duration,
    /// How far behind now the reader stays.
    pub safety: Duration,
    /// Wait between rounds once caught up.
    pub sleep: Duration,
}

impl CdcPreset {
    /// The preset's intervals.
    pub fn timing(self) -> CdcTiming {
        match self {
            Self::Default => CdcTiming {
                window: Duration::from_secs(60),
                safety: Duration::from_secs(30),
                sleep: Duration::from_secs(10),
            },
            Self::LowLatency => CdcTiming {
                window: Duration::from_secs(15),
                safety: Duration::from_secs(3),
                sleep: Duration::from_millis(250),
            },
        }
    }
}

impl CdcTiming {
    /// The preset's timing with any interval given explicitly replaced.
    pub fn with_overrides(
        self,
        window: Option<Duration>,
        safety: Option<Duration>,
        sleep: Option<Duration>,
    ) -> Self {
        Self {
            window: window.unwrap_or(self.window),
            safety: safety.unwrap_or(self.safety),
            sleep: sleep.unwrap_or(self.sleep),
        }
    }

    /// The shortest safe safety interval when writes may take `write_timeout`: that plus
    /// [`CLOCK_SKEW_MARGIN`].
    pub fn safety_floor(write_timeout: Duration) -> Duration {
        write_timeout + CLOCK_SKEW_MARGIN
    }

    /// This timing with its safety interval raised to `floor` if it is below it.
    pub fn with_safety_floor(self, floor: Duration) -> Self {
        Self {
            safety: self.safety.max(floor),
            ..self
        }
    }

    /// Shortest and longest write-to-read latency once the reader has caught up.
    pub fn latency(&self) -> (Duration, Duration) {
        (self.safety, self.safety + self.sleep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_preset_is_the_library_default() {
        let t = CdcPreset::Default.timing();
        assert_eq!(
            (t.window, t.safety, t.sleep),
            (
                Duration::from_secs(60),
                Duration::from_secs(30),
                Duration::from_secs(10)
            )
        );
        assert_eq!(
            t.latency(),
            (Duration::from_secs(30), Duration::from_secs(40))
        );
    }

    #[test]
    fn low_latency_publishes_within_a_few_seconds() {
        let t = CdcPreset::LowLatency.timing();
        assert_eq!(
            t.latency(),
            (Duration::from_secs(3), Duration::from_millis(3250))
        );
        let default = CdcPreset::Default.timing();
        assert_eq!(default.sleep.as_millis() / t.sleep.as_millis(), 40);
    }

    #[test]
    fn the_safety_interval_never_drops_below_a_late_write() {
        // The default settle interval (4 s) gives writes 2 s.
        let floor = CdcTiming::safety_floor(Duration::from_secs(2));
        assert_eq!(floor, Duration::from_secs(3));
        let asked = CdcPreset::Default.timing().with_overrides(
            None,
            Some(Duration::from_millis(500)),
            None,
        );
        assert_eq!(asked.with_safety_floor(floor).safety, floor);
        assert_eq!(
            CdcPreset::LowLatency.timing().with_safety_floor(floor),
            CdcPreset::LowLatency.timing(),
            "the preset is already safe with the default settle interval"
        );
        let default = CdcPreset::Default.timing();
        assert_eq!(default.with_safety_floor(floor), default);
    }

    #[test]
    fn explicit_intervals_replace_the_presets() {
        let t = CdcPreset::Default.timing().with_overrides(
            None,
            Some(Duration::from_millis(500)),
            Some(Duration::from_millis(100)),
        );
        assert_eq!(t.window, Duration::from_secs(60));
        assert_eq!(t.safety, Duration::from_millis(500));
        assert_eq!(t.sleep, Duration::from_millis(100));
    }
}
