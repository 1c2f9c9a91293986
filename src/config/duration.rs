//! The one way durations are written in the configuration: a whole number and a unit, `ms`,
//! `s`, `m`, `h` or `d` (`250ms`, `30s`, `15m`, `12h`, `7d`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration from the configuration; shown (in `--help` defaults) in its largest exact unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval(pub Duration);

/// The units, largest first, with their length in milliseconds.
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

impl FromStr for Interval {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("{text:?}: add a unit (ms, s, m, h or d)"))?;
        let (number, unit) = text.split_at(split);
        let n: u64 = number
            .parse()
            .map_err(|_| format!("{text:?}: expected a whole number before the unit"))?;
        let (_, millis) = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .ok_or_else(|| format!("{text:?}: the unit must be ms, s, m, h or d"))?;
        n.checked_mul(*millis)
            .map(|ms| Interval(Duration::from_millis(ms)))
            .ok_or_else(|| format!("{text:?} is too long"))
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX);
        let (unit, size) = UNITS
            .iter()
            .find(|(_, size)| ms % size == 0 && ms >= *size)
            .unwrap_or(&("ms", 1));
        write!(f, "{}{unit}", ms / size)
    }
}

impl From<Duration> for Interval {
    fn from(d: Duration) -> Self {
        Interval(d)
    }
}

impl From<Interval> for Duration {
    fn from(i: Interval) -> Self {
        i.0
    }
}

/// A parser for clap that accepts durations from `min` to `max`.
pub fn between(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Interval, String> + Clone + Send + Sync + 'static {
    move |text| {
        let value: Interval = text.parse()?;
        if (min..=max).contains(&value.0) {
            Ok(value)
        } else {
            Err(format!(
                "must be between {} and {}",
                Interval(min),
                Interval(max)
            ))
        }
    }
}

/// Any duration that can be written.
pub fn any(text: &str) -> Result<Interval, String> {
    text.parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Duration, String> {
        text.parse::<Interval>().map(Duration::from)
    }

    #[test]
    fn durations_with_units() {
        assert_eq!(parse("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        for bad in [
            "",
            "7",
            "d",
            "7w",
            "-1d",
            "1.5h",
            "99999999999999999999d",
            "5 s",
            "1e3ms",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn durations_print_in_their_largest_exact_unit() {
        let shown = |ms: u64| Interval(Duration::from_millis(ms)).to_string();
        assert_eq!(shown(500), "500ms");
        assert_eq!(shown(30_000), "30s");
        assert_eq!(shown(90_000), "90s");
        assert_eq!(shown(300_000), "5m");
        assert_eq!(shown(86_400_000), "1d");
        assert_eq!(shown(0), "0ms");
        for text in ["500ms", "30s", "5m", "8h", "7d"] {
            assert_eq!(text.parse::<Interval>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn ranges_are_enforced() {
        let check = between(Duration::from_millis(1), Duration::from_secs(60));
        assert_eq!(check("60s"), Ok(Interval(Duration::from_secs(60))));
        assert_eq!(check("1ms"), Ok(Interval(Duration::from_millis(1))));
        assert!(check("61s").unwrap_err().contains("between 1ms and 1m"));
        assert!(check("0ms").is_err());
    }
}
