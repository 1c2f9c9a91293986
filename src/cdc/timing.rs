//! How the CDC reader paces itself. It reads each stream in windows of `window`, only up to
//! `now - safety` (so writes still in flight are not missed), and sleeps `sleep` between
//! rounds once caught up: an event is published `safety` to `safety + sleep` after its write.

use std::time::Duration;

/// Named timing presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CdcPreset {
    /// scylla-cdc's own defaults: window 60 s, safety 30 s, sleep 10 s → 30–40 s latency, one
    /// query per stream reader every 10 s.
    Default,
    /// Window 15 s, safety 1 s, sleep 250 ms → about 1–1.25 s latency, 40 times the queries
    /// of `default`.
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
                safety: Duration::from_secs(1),
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
    fn low_latency_publishes_within_about_a_second() {
        let t = CdcPreset::LowLatency.timing();
        assert_eq!(
            t.latency(),
            (Duration::from_secs(1), Duration::from_millis(1250))
        );
        let default = CdcPreset::Default.timing();
        assert_eq!(default.sleep.as_millis() / t.sleep.as_millis(), 40);
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
