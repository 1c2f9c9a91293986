//! Dead letters as the store keeps them: what a record holds, where it stands, how operators
//! filter them, and what a replay attempt did.
//!
//! The relay dead-letters an event only for a permanent error, or when it keeps failing while
//! the sink accepts other messages (see `resilience::policy`), in the same store write that
//! moves its checkpoint past it.

use crate::domain::{DeliveryRecord, OrderId, Payload, StoredEvent};
use crate::publish::{FailureKind, PublishError};
use crate::store::{DeadLetterStore, StoreError};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

pub use app::dto::{DeadLetterKind, DeadLetterStatus};

/// The kind of a dead letter whose last failure was `failure`.
pub fn kind_after(failure: FailureKind) -> DeadLetterKind {
    match failure {
        FailureKind::Permanent => DeadLetterKind::Permanent,
        FailureKind::Transient | FailureKind::Unanswered => DeadLetterKind::RetriesExhausted,
    }
}

/// What the relay hands the store when it gives up on an event.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDeadLetter {
    pub event: StoredEvent,
    pub kind: DeadLetterKind,
    /// The last error, as the sink reported it.
    pub error: String,
    pub failures: u32,
    pub first_failed_at: DateTime<Utc>,
    pub last_failed_at: DateTime<Utc>,
}

impl NewDeadLetter {
    /// The record for `event`, given up on after `failures` failures, the last being `error`.
    pub fn new(
        event: StoredEvent,
        error: PublishError,
        failures: u32,
        first_failed_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            event,
            kind: kind_after(error.kind),
            error: error.message,
            failures,
            first_failed_at,
            last_failed_at: now,
        }
    }
}

/// One replay attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayAttempt {
    pub at: DateTime<Utc>,
    pub delivered: bool,
    /// Where it went, or why it failed.
    pub detail: String,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub id: i64,
    /// The event (exactly what replay publishes) and how it failed.
    pub failure: NewDeadLetter,
    pub status: DeadLetterStatus,
    pub discard_reason: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// Oldest first; only filled when one record is read.
    pub attempts: Vec<ReplayAttempt>,
    /// An operator's corrected payload, which a replay publishes instead of the original
    /// (kept unchanged in `failure`).
    pub edit: Option<PayloadEdit>,
}

/// A payload an operator corrected before replaying the record.
#[derive(Debug, Clone, PartialEq)]
pub struct PayloadEdit {
    pub payload: Payload,
    pub at: DateTime<Utc>,
}

impl DeadLetter {
    /// The key of the failure group this record belongs to (see [`group_key`]).
    pub fn group_key(&self) -> String {
        let f = &self.failure;
        group_key(
            f.event.envelope.event_type.as_str(),
            f.kind,
            &normalise_message(&f.error),
        )
    }
}

/// Which records to list (all conditions must hold), newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterFilter {
    pub event_type: Option<String>,
    pub aggregate_id: Option<OrderId>,
    /// Substring of the event id, payload or error message.
    pub text: Option<String>,
    pub status: Option<DeadLetterStatus>,
    /// Only records of this failure group (its [`group_key`]).
    pub group: Option<String>,
    /// Only records with an id below this (the cursor of the previous page).
    pub before_id: Option<i64>,
    pub limit: u32,
}

/// Records per status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterCounts {
    pub pending: u64,
    pub replayed: u64,
    pub discarded: u64,
    /// Pending records per event type.
    pub pending_by_event_type: std::collections::BTreeMap<String, u64>,
}

/// What a replay attempt did, for the store to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayOutcome {
    Delivered(DeliveryRecord),
    Failed(String),
}

/// An error message with what differs between occurrences of one failure replaced by
/// placeholders: UUIDs by `<id>`, runs of hex digits (`0x…`, or six or more mixing digits and
/// letters) by `<hex>`, and other digit runs by `<n>`. Messages that differ only in ids, sizes
/// or offsets normalise to the same text, so their records fall into one failure group.
pub fn normalise_message(message: &str) -> String {
    let chars: Vec<char> = message.chars().collect();
    let mut out = String::with_capacity(message.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_alphanumeric() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        if is_uuid(&chars[i..]) {
            out.push_str("<id>");
            i += 36;
            continue;
        }
        let end = chars[i..]
            .iter()
            .position(|c| !c.is_ascii_alphanumeric())
            .map_or(chars.len(), |n| i + n);
        out.push_str(&normalise_word(&chars[i..end]));
        i = end;
    }
    out
}

/// Whether `chars` starts with a hyphenated UUID that is not part of a longer word.
fn is_uuid(chars: &[char]) -> bool {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    if chars.len() < 36 || chars.get(36).is_some_and(char::is_ascii_alphanumeric) {
        return false;
    }
    let mut at = 0;
    for (n, len) in GROUPS.iter().enumerate() {
        if n > 0 {
            if chars[at] != '-' {
                return false;
            }
            at += 1;
        }
        if !chars[at..at + len].iter().all(char::is_ascii_hexdigit) {
            return false;
        }
        at += len;
    }
    true
}

/// One word (a run of ASCII letters and digits) of [`normalise_message`].
fn normalise_word(word: &[char]) -> String {
    let hex = |w: &[char]| !w.is_empty() && w.iter().all(char::is_ascii_hexdigit);
    let prefixed = word.len() > 2 && word[0] == '0' && matches!(word[1], 'x' | 'X');
    let mixed = word.len() >= 6
        && word.iter().any(char::is_ascii_digit)
        && word.iter().any(char::is_ascii_alphabetic);
    if (prefixed && hex(&word[2..])) || (mixed && hex(word)) {
        return "<hex>".into();
    }
    let mut out = String::new();
    let mut in_number = false;
    for c in word {
        if c.is_ascii_digit() {
            if !in_number {
                out.push_str("<n>");
            }
            in_number = true;
        } else {
            out.push(*c);
            in_number = false;
        }
    }
    out
}

/// Length of a failure group's key in hex digits (64 bits of SHA-256).
pub const GROUP_KEY_LEN: usize = 16;

/// The stable key of a failure group: hex of the SHA-256 of the event type, the error's kind
/// and its normalised message. The same failure gets the same key on every instance and
/// across restarts, so it can travel in URLs.
pub fn group_key(event_type: &str, kind: DeadLetterKind, normalised: &str) -> String {
    let mut hash = Sha256::new();
    for part in [event_type, kind.as_str(), normalised] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.finalize()[..GROUP_KEY_LEN / 2]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `text` has the shape of a group key (16 lowercase hex digits).
pub fn is_group_key(text: &str) -> bool {
    text.len() == GROUP_KEY_LEN && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Pending dead letters that failed the same way: one event type, one kind of error, one
/// normalised message.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterGroup {
    /// [`group_key`] of the three below.
    pub key: String,
    pub event_type: String,
    pub kind: DeadLetterKind,
    /// The error message, normalised ([`normalise_message`]).
    pub message: String,
    pub count: u64,
    /// The earliest first failure among the records.
    pub first_seen: DateTime<Utc>,
    /// The latest last failure among the records.
    pub last_seen: DateTime<Utc>,
    /// The newest record, so an operator sees one real message behind the pattern.
    pub example: DeadLetter,
}

impl DeadLetterGroup {
    /// A group of one record.
    fn of(key: String, letter: &DeadLetter) -> Self {
        let f = &letter.failure;
        Self {
            key,
            event_type: f.event.envelope.event_type.as_str().to_string(),
            kind: f.kind,
            message: normalise_message(&f.error),
            count: 1,
            first_seen: f.first_failed_at,
            last_seen: f.last_failed_at,
            example: letter.clone(),
        }
    }

    /// Counts one more record of this group in.
    fn add(&mut self, letter: &DeadLetter) {
        let f = &letter.failure;
        self.count += 1;
        self.first_seen = self.first_seen.min(f.first_failed_at);
        self.last_seen = self.last_seen.max(f.last_failed_at);
        if letter.id > self.example.id {
            self.example = letter.clone();
        }
    }
}

/// Records read per page while grouping: one page of the store's listing at a time.
const SCAN_PAGE: u32 = 500;

/// Visits every pending record (of `group`, if given), newest first, a page at a time.
async fn scan_pending(
    store: &dyn DeadLetterStore,
    group: Option<&str>,
    mut visit: impl FnMut(&DeadLetter),
) -> Result<(), StoreError> {
    let mut filter = DeadLetterFilter {
        status: Some(DeadLetterStatus::Pending),
        group: group.map(str::to_string),
        limit: SCAN_PAGE,
        ..DeadLetterFilter::default()
    };
    loop {
        let page = store.dead_letters(filter.clone()).await?;
        page.iter().for_each(&mut visit);
        match page.last() {
            Some(last) if page.len() == SCAN_PAGE as usize => filter.before_id = Some(last.id),
            _ => return Ok(()),
        }
    }
}

/// The pending dead letters in failure groups, largest first (then most recent first). The
/// keys are computed in the program (from the normalised message), so this reads every
/// pending record once, in pages; the queue holds only what a healthy sink refused.
pub async fn failure_groups(
    store: &dyn DeadLetterStore,
) -> Result<Vec<DeadLetterGroup>, StoreError> {
    let mut groups: HashMap<String, DeadLetterGroup> = HashMap::new();
    scan_pending(store, None, |letter| {
        let key = letter.group_key();
        match groups.get_mut(&key) {
            Some(group) => group.add(letter),
            None => {
                groups.insert(key.clone(), DeadLetterGroup::of(key, letter));
            }
        }
    })
    .await?;
    let mut groups: Vec<DeadLetterGroup> = groups.into_values().collect();
    groups.sort_by(|a, b| (b.count, b.last_seen, &a.key).cmp(&(a.count, a.last_seen, &b.key)));
    Ok(groups)
}

/// The ids of group `key`'s pending records, oldest first (empty for an unknown group).
pub async fn group_ids(store: &dyn DeadLetterStore, key: &str) -> Result<Vec<i64>, StoreError> {
    let mut ids = Vec::new();
    scan_pending(store, Some(key), |letter| ids.push(letter.id)).await?;
    ids.reverse();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_numbers_and_hex_runs_are_normalised() {
        let cases = [
            (
                "event 0193a5e0-0000-7000-8000-00000000e1e1 of order 0193A5E0-0000-7000-8000-0000000000AA refused",
                "event <id> of order <id> refused",
            ),
            (
                "Message size 1048576 exceeds max 1000000 (offset 42)",
                "Message size <n> exceeds max <n> (offset <n>)",
            ),
            (
                "trace 4bf92f3577b34da6 at 0xDEADbeef",
                "trace <hex> at <hex>",
            ),
            (
                "broker 3 on http2, partition 12",
                "broker <n> on http<n>, partition <n>",
            ),
            ("decade of cafe faces", "decade of cafe faces"),
            ("a1b2c, 1.5s", "a<n>b<n>c, <n>.<n>s"),
            ("", ""),
            (
                "simulated poison message (fault injection)",
                "simulated poison message (fault injection)",
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(normalise_message(message), expected, "{message:?}");
        }
    }

    #[test]
    fn a_uuid_inside_a_longer_word_is_not_an_id() {
        let text = "0193a5e0-0000-7000-8000-00000000e1e1x";
        assert_eq!(normalise_message(text), "<hex>-<n>-<n>-<n>-<n>e<n>e<n>x");
        assert_eq!(normalise_message("caf\u{e9} 12"), "caf\u{e9} <n>");
    }

    #[test]
    fn group_keys_are_stable_hex_and_tell_every_part_apart() {
        let key = group_key("OrderCreated", DeadLetterKind::Permanent, "too large: <n>");
        assert!(is_group_key(&key), "{key}");
        assert_eq!(
            key,
            group_key("OrderCreated", DeadLetterKind::Permanent, "too large: <n>")
        );
        let others = [
            group_key(
                "OrderCancelled",
                DeadLetterKind::Permanent,
                "too large: <n>",
            ),
            group_key(
                "OrderCreated",
                DeadLetterKind::RetriesExhausted,
                "too large: <n>",
            ),
            group_key("OrderCreated", DeadLetterKind::Permanent, "too large"),
            // The separator keeps parts from sliding into each other.
            group_key("OrderCreatedp", DeadLetterKind::Permanent, "too large: <n>"),
        ];
        assert!(others.iter().all(|other| *other != key));
        assert!(!is_group_key("ABCDEF0123456789"));
        assert!(!is_group_key("abc"));
        assert!(!is_group_key("0123456789abcdeg"));
    }
}
