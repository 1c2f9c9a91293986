//! Display helpers.

/// `1234` cents → `12.34`.
pub fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// RFC 3339 → `2026-11-27 04:43:12 UTC` (seconds precision, for people).
pub fn timestamp(rfc3339: &str) -> String {
    let (date, rest) = rfc3339.split_once('T').unwrap_or((rfc3339, ""));
    let time: String = rest.chars().take(8).collect();
    format!("{date} {time} UTC")
}

/// The first block of a UUID, enough to tell orders apart in a list.
pub fn short_id(id: &str) -> &str {
    id.split('-').next().unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_money_and_time() {
        assert_eq!(money(0), "0.00");
        assert_eq!(money(1234), "12.34");
        assert_eq!(money(100_000_000), "1000000.00");
        assert_eq!(
            timestamp("2026-11-27T04:43:12.123456Z"),
            "2026-11-27 04:43:12 UTC"
        );
        assert_eq!(short_id("0193a5e0-0000-7000"), "0193a5e0");
    }
}
