//! The audit log's records: which operator did what to which target, from where, when, and
//! how it ended. Written by the HTTP edge for every state-changing admin request and console
//! sign-in or sign-out; never holds a secret (a session appears as a short digest).

use chrono::{DateTime, Utc};

/// Longest accepted action filter (`dlq.`, `relay.mode`, …).
pub const MAX_ACTION_FILTER: usize = 64;

pub use app::dto::AuditOutcome;

/// One operator action, as the edge saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    pub at: DateTime<Utc>,
    /// Who: the console session's marker (a short digest of its token), `bearer` for the
    /// admin token, `None` when no credential was accepted (a failed sign-in).
    pub session: Option<String>,
    /// The client's address (the TCP peer's).
    pub address: String,
    /// What: `dlq.replay`, `relay.mode`, `session.sign_in`, … (see `http::audit`).
    pub action: String,
    /// On what: a record id, a group key, a mode, a fault; `None` when the action has none.
    pub target: Option<String>,
    /// The HTTP status of the answer.
    pub status: u16,
    pub outcome: AuditOutcome,
}

/// A stored [`NewAuditEntry`] with its id, which orders entries (newest highest) and pages
/// through them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    pub entry: NewAuditEntry,
}

/// Which entries to read: newest first, below `before`, those whose action `action` selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only entries with a smaller id (a cursor from an earlier page).
    pub before: Option<i64>,
    pub action: Option<ActionFilter>,
    pub limit: u32,
}

/// An action name, or a prefix of names ending in `.` (`dlq.` selects every DLQ action).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionFilter(String);

impl ActionFilter {
    /// 1 to [`MAX_ACTION_FILTER`] characters of `a-z`, `0-9`, `.` and `_`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let valid = !text.is_empty()
            && text.len() <= MAX_ACTION_FILTER
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_');
        if valid {
            Ok(Self(text.to_string()))
        } else {
            Err(format!(
                "action must be 1 to {MAX_ACTION_FILTER} characters of a-z, 0-9, '.' and '_'"
            ))
        }
    }

    /// The prefix it selects by, if it is one (it ends with `.`).
    pub fn prefix(&self) -> Option<&str> {
        self.0.ends_with('.').then_some(self.0.as_str())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it selects `action`.
    pub fn matches(&self, action: &str) -> bool {
        match self.prefix() {
            Some(prefix) => action.starts_with(prefix),
            None => action == self.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_select_one_action_or_a_family() {
        let exact = ActionFilter::parse("dlq.replay").unwrap();
        assert!(exact.matches("dlq.replay"));
        assert!(!exact.matches("dlq.replay_bulk"));
        let family = ActionFilter::parse("dlq.").unwrap();
        assert_eq!(family.prefix(), Some("dlq."));
        assert!(family.matches("dlq.group.replay") && !family.matches("relay.mode"));
        for bad in ["", "DLQ", "dlq replay", "dlq%", &"a".repeat(65)] {
            assert!(ActionFilter::parse(bad).is_err(), "{bad:?}");
        }
    }
}
