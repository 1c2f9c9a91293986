//! What the relay is doing right now, for the status endpoint: the runner reports after
//! every step; readers take a copy.

pub use app::dto::RelayState;
use chrono::{DateTime, Utc};
use std::sync::Mutex;

/// A copy of the relay's condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    pub state: RelayState,
    /// The last position handled, as saved.
    pub checkpoint: u64,
    /// The most recent failure, kept until the next success.
    pub last_error: Option<String>,
    /// When `state` was entered.
    pub since: DateTime<Utc>,
}

/// Shared between the runner (writer) and the status endpoint (readers).
#[derive(Debug)]
pub struct RelayActivity(Mutex<Activity>);

impl Default for RelayActivity {
    fn default() -> Self {
        Self(Mutex::new(Activity {
            state: RelayState::Starting,
            checkpoint: 0,
            last_error: None,
            since: Utc::now(),
        }))
    }
}

impl RelayActivity {
    pub fn get(&self) -> Activity {
        self.lock().clone()
    }

    /// Records the state after a step; `error` replaces the last error when given, and a
    /// `Running` state clears it.
    pub fn set(&self, state: RelayState, checkpoint: Option<u64>, error: Option<String>) {
        let mut a = self.lock();
        if a.state != state {
            a.state = state;
            a.since = Utc::now();
        }
        if let Some(c) = checkpoint {
            a.checkpoint = c;
        }
        if error.is_some() || state == RelayState::Running {
            a.last_error = error;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Activity> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
