//! W3C trace context (`traceparent`, `tracestate`): which distributed trace a change belongs
//! to. An order request's context is kept with its outbox event and sent with the published
//! record, so a consumer continues the trace the request started.

/// Longest `tracestate` kept: the W3C limit a vendor must propagate (32 members, 512 bytes).
const MAX_STATE: usize = 512;
/// Length of a version-00 `traceparent`: `00-<32 hex>-<16 hex>-<2 hex>`.
const TRACEPARENT_LEN: usize = 55;

/// A validated trace context: the trace, the span that caused the change (the request's
/// own span), the sampling flags, and the vendors' state, passed on unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// Always in the version-00 form, lowercase: relaying an event copies it as it is.
    traceparent: String,
    state: Option<String>,
}

impl TraceContext {
    /// The context of a request whose caller sent `caller` (see [`TraceContext::parse`]):
    /// the same trace, with a new span for this request as the child of the caller's; with
    /// no valid caller context, a new trace. (An invalid `traceparent` drops the caller's
    /// `tracestate` with it: the W3C rule, as state means nothing without its parent.)
    pub fn continue_or_start(caller: Option<&TraceContext>) -> Self {
        Self::for_span(caller, fastrand::u64(1..), fastrand::u128(1..))
    }

    /// The context of this server's span `span_id`, the parent its work names: in `caller`'s
    /// trace (same flags and state), or, without a caller, first of the new trace `new_trace`
    /// (sampled). A span exporter passes the ids its own span got.
    pub fn for_span(caller: Option<&TraceContext>, span_id: u64, new_trace: u128) -> Self {
        match caller {
            Some(caller) => {
                let mut text = caller.traceparent.clone().into_bytes();
                write_hex(&mut text[36..52], u128::from(span_id));
                Self {
                    traceparent: ascii(text),
                    state: caller.state.clone(),
                }
            }
            None => Self {
                traceparent: format(new_trace, span_id, SAMPLED),
                state: None,
            },
        }
    }

    /// A context as a caller sent it or as it was stored (its `traceparent`'s span as the
    /// parent); `None` if `traceparent` is not valid, so a damaged row loses its trace, not
    /// its event.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let parsed = parse_traceparent(traceparent)?;
        // A version-00 value (what this server stores) is kept as it is: the relay reads
        // one with every event.
        let traceparent = if traceparent.len() == TRACEPARENT_LEN && traceparent.starts_with("00") {
            traceparent.to_owned()
        } else {
            format(parsed.trace_id, parsed.parent_id, parsed.flags)
        };
        Some(Self {
            traceparent,
            state: tracestate.and_then(valid_state).map(str::to_owned),
        })
    }

    /// The `traceparent` header value, with the request's span as the parent.
    pub fn traceparent(&self) -> &str {
        &self.traceparent
    }

    /// The `tracestate` header value, if the caller sent one.
    pub fn tracestate(&self) -> Option<&str> {
        self.state.as_deref()
    }

    /// The trace id, 32 lowercase hex digits: what log lines carry.
    pub fn trace_id(&self) -> &str {
        &self.traceparent[3..35]
    }

    /// The request's span id, 16 lowercase hex digits.
    pub fn span_id(&self) -> &str {
        &self.traceparent[36..52]
    }

    /// The trace id, span id and flags as numbers, for span exporters.
    pub fn ids(&self) -> (u128, u64, u8) {
        let bytes = self.traceparent.as_bytes();
        let number = |range: std::ops::Range<usize>| hex(&bytes[range]).unwrap_or_default();
        (number(3..35), number(36..52) as u64, number(53..55) as u8)
    }
}

/// The `sampled` trace flag: a trace this server starts is recorded.
const SAMPLED: u8 = 1;

/// The parts of a `traceparent`.
struct Parsed {
    trace_id: u128,
    parent_id: u64,
    flags: u8,
}

/// Parses `traceparent` by the W3C rules: version `ff` is invalid; version `00` is exactly
/// 55 characters; a later version is read as `00` (its first 55 characters, then a `-` or
/// the end); ids are lowercase hex and not all zero.
fn parse_traceparent(text: &str) -> Option<Parsed> {
    let bytes = text.as_bytes();
    if bytes.len() < TRACEPARENT_LEN {
        return None;
    }
    let version = hex(&bytes[0..2])?;
    let length_fits = match version {
        0 => bytes.len() == TRACEPARENT_LEN,
        0xff => false,
        _ => bytes.len() == TRACEPARENT_LEN || bytes[TRACEPARENT_LEN] == b'-',
    };
    if !length_fits || bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
        return None;
    }
    let trace_id = hex(&bytes[3..35])?;
    let parent_id = hex(&bytes[36..52])? as u64;
    let flags = hex(&bytes[53..55])? as u8;
    if trace_id == 0 || parent_id == 0 {
        return None;
    }
    Some(Parsed {
        trace_id,
        parent_id,
        flags,
    })
}

/// Lowercase hex digits (at most 32) as a number.
fn hex(digits: &[u8]) -> Option<u128> {
    let mut n = 0u128;
    for &d in digits {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        n = n << 4 | u128::from(v);
    }
    Some(n)
}

/// `tracestate` if it can be passed on: printable ASCII, not blank, at most 512 bytes.
fn valid_state(state: &str) -> Option<&str> {
    let state = state.trim_matches([' ', '\t']);
    let printable = state.bytes().all(|b| (0x20..0x7f).contains(&b));
    (!state.is_empty() && state.len() <= MAX_STATE && printable).then_some(state)
}

/// A version-00 `traceparent`, written digit by digit (`format!` with padded hex took
/// several times as long, once per request).
fn format(trace_id: u128, span_id: u64, flags: u8) -> String {
    let mut text = *b"00-00000000000000000000000000000000-0000000000000000-00";
    write_hex(&mut text[3..35], trace_id);
    write_hex(&mut text[36..52], u128::from(span_id));
    write_hex(&mut text[53..55], u128::from(flags));
    ascii(text.to_vec())
}

/// `n`'s lowest hex digits, lowercase, filling `out`.
fn write_hex(out: &mut [u8], mut n: u128) {
    for digit in out.iter_mut().rev() {
        *digit = b"0123456789abcdef"[(n & 0xf) as usize];
        n >>= 4;
    }
}

/// Text made of ASCII bytes only.
fn ascii(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("hex digits and dashes are ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// The context of a request that sent these headers.
    fn for_request(traceparent: Option<&str>, tracestate: Option<&str>) -> TraceContext {
        let caller = traceparent.and_then(|t| TraceContext::parse(t, tracestate));
        TraceContext::continue_or_start(caller.as_ref())
    }

    #[test]
    fn a_valid_traceparent_is_continued_with_a_new_span() {
        let t = for_request(Some(PARENT), Some("rojo=00f067aa0ba902b7"));
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(t.span_id(), "00f067aa0ba902b7");
        assert_eq!(t.traceparent().len(), 55);
        assert!(
            t.traceparent()
                .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
        );
        assert!(t.traceparent().ends_with("-01"));
        assert_eq!(t.tracestate(), Some("rojo=00f067aa0ba902b7"));
        // Unsampled stays unsampled.
        let unsampled = PARENT.replace("-01", "-00");
        assert!(
            for_request(Some(&unsampled), None)
                .traceparent()
                .ends_with("-00")
        );
    }

    #[test]
    fn invalid_traceparents_start_a_new_trace_and_drop_the_state() {
        let bad = [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ];
        for text in bad {
            let t = for_request(Some(text), Some("a=b"));
            assert_ne!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736", "{text:?}");
            assert!(TraceContext::parse(t.traceparent(), None).is_some());
            assert_eq!(t.tracestate(), None, "{text:?}");
            assert!(t.traceparent().ends_with("-01"), "a new trace is sampled");
        }
        let fresh = for_request(None, None);
        assert_ne!(fresh.trace_id(), for_request(None, None).trace_id());
    }

    #[test]
    fn a_later_version_is_read_as_version_00() {
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
        let t = for_request(Some(later), None);
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(t.traceparent().starts_with("00-"));
    }

    #[test]
    fn tracestate_is_kept_only_when_it_can_be_passed_on() {
        let state = |s: &str| for_request(Some(PARENT), Some(s)).state;
        assert_eq!(state(" a=1,b=2 "), Some("a=1,b=2".into()));
        assert_eq!(state(""), None);
        assert_eq!(state(&"x".repeat(513)), None);
        assert_eq!(state("a=\u{e9}"), None);
        assert_eq!(state("a=1\nb=2"), None);
    }

    #[test]
    fn ids_are_written_as_fixed_width_lowercase_hex_and_read_back() {
        let root =
            TraceContext::for_span(None, 0x00f067aa0ba902b7, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(root.traceparent(), PARENT);
        assert_eq!(
            root.ids(),
            (0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, 1)
        );
        let first = TraceContext::for_span(None, 2, 1);
        let small = TraceContext::for_span(Some(&first), 0xab, 7);
        assert_eq!(
            small.traceparent(),
            "00-00000000000000000000000000000001-00000000000000ab-01"
        );
    }

    #[test]
    fn stored_contexts_round_trip_and_damaged_ones_are_dropped() {
        let t = for_request(Some(PARENT), Some("a=1"));
        let back = TraceContext::parse(t.traceparent(), t.tracestate()).unwrap();
        assert_eq!(back, t);
        assert_eq!(TraceContext::parse("garbage", None), None);
    }
}
