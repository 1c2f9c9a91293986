//! Display helpers.

/// `1234` cents → `12.34`.
pub fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// RFC 3339 → `2026-11-27 04:43:12 UTC` (seconds precision, for people).
pub fn timestamp(rfc3339: &str) -> String {
    format!("{} UTC", timestamp_utc(rfc3339))
}

/// RFC 3339 → `2026-11-27 04:43:12`, for columns headed "(UTC)".
pub fn timestamp_utc(rfc3339: &str) -> String {
    let (date, rest) = rfc3339.split_once('T').unwrap_or((rfc3339, ""));
    let time: String = rest.chars().take(8).collect();
    format!("{date} {time}")
}

/// The last block of a UUID. UUIDv7 ids begin with their creation time, so orders created
/// close together share a prefix; the random tail tells them apart.
pub fn short_id(id: &str) -> &str {
    id.rsplit('-').next().unwrap_or(id)
}

/// `items[1].unit_price` → `Item 2 unit price`: error field paths as people read them.
pub fn field_label(path: &str) -> String {
    let human = |name: &str| match name {
        "customer_id" => "Customer id".to_string(),
        "sku" => "SKU".to_string(),
        "unit_price" => "unit price".to_string(),
        other => other.replace('_', " "),
    };
    let Some(rest) = path.strip_prefix("items[") else {
        return match path {
            "items" => "Items".to_string(),
            other => human(other),
        };
    };
    match rest.split_once("].") {
        Some((index, field)) => match index.parse::<usize>() {
            Ok(i) => format!("Item {} {}", i + 1, human(field)),
            Err(_) => path.to_string(),
        },
        None => path.to_string(),
    }
}

/// `text` percent-encoded for a URL query value.
pub fn query_value(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A duration in milliseconds for people: `850 ms`, `12.3 s`, `4 min`.
pub fn age_ms(ms: i64) -> String {
    match ms {
        ..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1e3),
        _ => format!("{} min", ms / 60_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_read_as_labels() {
        assert_eq!(field_label("customer_id"), "Customer id");
        assert_eq!(field_label("items"), "Items");
        assert_eq!(field_label("items[0].sku"), "Item 1 SKU");
        assert_eq!(field_label("items[9].unit_price"), "Item 10 unit price");
        assert_eq!(field_label("items[x].sku"), "items[x].sku");
    }

    #[test]
    fn formats_money_and_time() {
        assert_eq!(money(0), "0.00");
        assert_eq!(money(1234), "12.34");
        assert_eq!(money(100_000_000), "1000000.00");
        assert_eq!(
            timestamp("2026-11-27T04:43:12.123456Z"),
            "2026-11-27 04:43:12 UTC"
        );
        assert_eq!(
            short_id("01a21b7e-eaf8-761b-8aa9-f6d525e7187b"),
            "f6d525e7187b"
        );
        assert_eq!(timestamp_utc("2026-11-27T04:43:12Z"), "2026-11-27 04:43:12");
    }

    #[test]
    fn query_values_and_ages() {
        assert_eq!(query_value("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(age_ms(850), "850 ms");
        assert_eq!(age_ms(12_345), "12.3 s");
        assert_eq!(age_ms(240_000), "4 min");
    }
}
