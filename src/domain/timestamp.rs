//! The one text format of timestamps, on the wire and in storage: RFC 3339, UTC, microseconds
//! (`2026-11-29T09:22:23.123456Z`). The relay writes and reads several per event, so both
//! directions have a direct path for this exact shape (chrono's general ones cost about ten
//! times as much); anything else goes through chrono.

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};

/// Length of a formatted timestamp between the years 0 and 9999.
const LEN: usize = "2026-11-29T09:22:23.123456Z".len();
/// Where the fixed characters between the numbers stand.
const SEPARATORS: [(usize, u8); 6] = [
    (4, b'-'),
    (7, b'-'),
    (10, b'T'),
    (13, b':'),
    (16, b':'),
    (19, b'.'),
];

/// `t` as RFC 3339 in UTC with microseconds, as chrono's
/// `to_rfc3339_opts(SecondsFormat::Micros, true)` writes it.
pub fn format(t: &DateTime<Utc>) -> String {
    // Taken apart once: each of `DateTime`'s own getters converts it again.
    let naive = t.naive_utc();
    let (date, time) = (naive.date(), naive.time());
    let year = date.year();
    if !(0..=9999).contains(&year) {
        return t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    }
    // A leap second shows as second 60, like chrono writes it.
    let nanos = time.nanosecond();
    let (second, micros) = if nanos >= 1_000_000_000 {
        (time.second() + 1, (nanos - 1_000_000_000) / 1_000)
    } else {
        (time.second(), nanos / 1_000)
    };
    let mut out = [0u8; LEN];
    let mut put = |at: usize, value: u32, digits: usize| {
        let mut v = value;
        for i in (at..at + digits).rev() {
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year as u32, 4);
    put(5, date.month(), 2);
    put(8, date.day(), 2);
    put(11, time.hour(), 2);
    put(14, time.minute(), 2);
    put(17, second, 2);
    put(20, micros, 6);
    for (at, separator) in SEPARATORS {
        out[at] = separator;
    }
    out[LEN - 1] = b'Z';
    String::from_utf8(out.to_vec()).expect("ASCII digits and separators")
}

/// Reads a timestamp: the exact shape [`format`] writes directly, any other RFC 3339 text
/// through chrono. `None` if it is not RFC 3339.
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    exact(text.as_bytes()).or_else(|| {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    })
}

/// The direct path of [`parse`]: `YYYY-MM-DDTHH:MM:SS.ffffffZ` only.
fn exact(b: &[u8]) -> Option<DateTime<Utc>> {
    if b.len() != LEN || b[LEN - 1] != b'Z' {
        return None;
    }
    if SEPARATORS.iter().any(|&(at, s)| b[at] != s) {
        return None;
    }
    let number = |from: usize, digits: usize| -> Option<u32> {
        b[from..from + digits].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let (second, micros) = (number(17, 2)?, number(20, 6)?);
    // Second 60 is a leap second; chrono keeps it as second 59 with a nanosecond past 1 s.
    let (second, nanos) = if second == 60 {
        (59, 1_000_000_000 + micros * 1_000)
    } else {
        (second, micros * 1_000)
    };
    let date = NaiveDate::from_ymd_opt(number(0, 4)? as i32, number(5, 2)?, number(8, 2)?)?;
    let time = date.and_hms_nano_opt(number(11, 2)?, number(14, 2)?, second, nanos)?;
    Some(time.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chrono_format(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    }

    #[test]
    fn formats_and_reads_exactly_as_chrono_does() {
        let mut instants = vec![
            DateTime::<Utc>::from_timestamp(0, 0).unwrap(),
            DateTime::<Utc>::from_timestamp(-62_167_219_200, 0).unwrap(), // 0000-01-01
            DateTime::<Utc>::from_timestamp(253_402_300_799, 999_999_000).unwrap(), // 9999-12-31
            DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap(),
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..10_000 {
            let seconds = rng.i64(-62_167_219_200..253_402_300_800);
            let micros = rng.u32(0..1_000_000);
            instants.push(DateTime::from_timestamp(seconds, micros * 1_000).unwrap());
        }
        for t in &instants {
            let text = format(t);
            assert_eq!(text, chrono_format(t));
            assert_eq!(parse(&text), Some(*t), "{text}");
        }
    }

    #[test]
    fn leap_seconds_and_years_past_9999_go_as_chrono_has_them() {
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_micro_opt(23, 59, 59, 1_500_000)
            .unwrap()
            .and_utc();
        assert_eq!(format(&leap), chrono_format(&leap));
        assert_eq!(parse(&format(&leap)), Some(leap));
        let far = DateTime::<Utc>::from_timestamp(253_402_300_800, 0).unwrap();
        assert_eq!(format(&far), chrono_format(&far));
    }

    #[test]
    fn other_rfc3339_forms_are_read_and_garbage_is_not() {
        let t = parse("2026-11-29T10:22:23.5+01:00").unwrap();
        assert_eq!(format(&t), "2026-11-29T09:22:23.500000Z");
        assert_eq!(
            parse("2026-11-29T09:22:23Z").map(|t| format(&t)).as_deref(),
            Some("2026-11-29T09:22:23.000000Z")
        );
        for bad in [
            "",
            "2026-13-29T09:22:23.123456Z",
            "2026-02-30T09:22:23.123456Z",
            "2026-11-29T24:22:23.123456Z",
            "2026-11-29T09:22:23.12345xZ",
            "yesterday",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
