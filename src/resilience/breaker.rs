//! The circuit breaker around the publisher.
//!
//! Closed → Open after `failure_threshold` consecutive failures; Open refuses every call for
//! `open_timeout`; then Half-open lets up to `half_open_max_calls` probes through at a time and
//! closes after `success_threshold` successes, while any failed probe opens it again. Every
//! transition is kept (newest last, up to [`TRANSITIONS_KEPT`]) for the status page, and
//! handed to an observer (metrics and the live feed, wired up at start-up).

use super::policy::{BreakerView, Health};
pub use app::dto::BreakerState;
use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How many transitions are kept for display.
pub const TRANSITIONS_KEPT: usize = 50;

/// When the breaker trips and how it recovers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed breaker.
    pub failure_threshold: u32,
    /// How long an open breaker refuses calls before it lets probes through.
    pub open_timeout: Duration,
    /// Probes allowed at the same time while half-open.
    pub half_open_max_calls: u32,
    /// Successful probes that close a half-open breaker.
    pub success_threshold: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_timeout: Duration::from_secs(30),
            half_open_max_calls: 1,
            success_threshold: 3,
        }
    }
}

/// One change of state, for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub at: DateTime<Utc>,
    pub from: BreakerState,
    pub to: BreakerState,
    pub reason: String,
}

/// How long to wait when the half-open breaker's probe slots are taken (or a probe failed
/// and the breaker has no timeout to report).
pub const PROBE_WAIT: Duration = Duration::from_millis(50);

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Open: no calls until `retry_in` has passed.
    Open { retry_in: Duration },
    /// Half-open and the probe slots are taken.
    ProbesBusy,
}

impl Refusal {
    /// How long the refused caller should wait before asking again.
    pub fn wait(self) -> Duration {
        match self {
            Refusal::Open { retry_in } => retry_in,
            Refusal::ProbesBusy => PROBE_WAIT,
        }
    }
}

/// What the status page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerSnapshot {
    pub state: BreakerState,
    pub consecutive_failures: u32,
    pub transitions: Vec<Transition>,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    consecutive_failures: u32,
    /// When the breaker last opened.
    opened_at: Instant,
    /// Probes let through and not yet reported (half-open).
    probes_in_flight: u32,
    /// Successful probes since the breaker became half-open.
    probe_successes: u32,
    transitions: VecDeque<Transition>,
}

/// Told of every transition as it happens.
pub type Observer = Box<dyn Fn(&Transition) + Send + Sync>;

/// A circuit breaker; share it behind an `Arc`. Callers ask [`CircuitBreaker::try_acquire`]
/// before a call and report its outcome with `on_success` / `on_failure`.
pub struct CircuitBreaker {
    config: BreakerConfig,
    inner: Mutex<Inner>,
    /// Where transitions are counted and announced, if anywhere.
    observer: Option<Observer>,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("config", &self.config)
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive_failures: 0,
                opened_at: Instant::now(),
                probes_in_flight: 0,
                probe_successes: 0,
                transitions: VecDeque::new(),
            }),
            observer: None,
        }
    }

    /// The same breaker, telling `observer` of every transition.
    pub fn with_observer(mut self, observer: impl Fn(&Transition) + Send + Sync + 'static) -> Self {
        self.observer = Some(Box::new(observer));
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// May a call go ahead now? An open breaker whose timeout passed becomes half-open here.
    pub fn try_acquire(&self) -> Result<(), Refusal> {
        let mut inner = self.lock();
        if inner.state == BreakerState::Open {
            let open_for = inner.opened_at.elapsed();
            if open_for < self.config.open_timeout {
                return Err(Refusal::Open {
                    retry_in: self.config.open_timeout - open_for,
                });
            }
            inner.probe_successes = 0;
            inner.probes_in_flight = 0;
            let reason = format!(
                "open for {} ms; probing",
                self.config.open_timeout.as_millis()
            );
            self.transition(&mut inner, BreakerState::HalfOpen, reason);
        }
        if inner.state == BreakerState::HalfOpen {
            if inner.probes_in_flight >= self.config.half_open_max_calls {
                return Err(Refusal::ProbesBusy);
            }
            inner.probes_in_flight += 1;
        }
        Ok(())
    }

    /// The call that was let through succeeded.
    pub fn on_success(&self) {
        let mut inner = self.lock();
        inner.consecutive_failures = 0;
        if inner.state == BreakerState::HalfOpen {
            inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
            inner.probe_successes += 1;
            if inner.probe_successes >= self.config.success_threshold {
                let reason = format!("{} successful probes", inner.probe_successes);
                self.transition(&mut inner, BreakerState::Closed, reason);
            }
        }
    }

    /// The call that was let through failed with `error`.
    pub fn on_failure(&self, error: &str) {
        let mut inner = self.lock();
        inner.consecutive_failures += 1;
        match inner.state {
            BreakerState::Closed if inner.consecutive_failures >= self.config.failure_threshold => {
                let reason = format!(
                    "{} consecutive failures; last: {error}",
                    inner.consecutive_failures
                );
                self.open(&mut inner, reason);
            }
            BreakerState::HalfOpen => {
                inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
                self.open(&mut inner, format!("probe failed: {error}"));
            }
            _ => {}
        }
    }

    /// How much longer an open breaker refuses calls; `None` when a call may be tried
    /// (closed, half-open, or open with its timeout over). Changes nothing.
    pub fn refusing(&self) -> Option<Duration> {
        self.view().retry_in
    }

    fn open(&self, inner: &mut Inner, reason: String) {
        inner.opened_at = Instant::now();
        self.transition(inner, BreakerState::Open, reason);
    }

    fn transition(&self, inner: &mut Inner, to: BreakerState, reason: String) {
        tracing::warn!(from = inner.state.as_str(), to = to.as_str(), %reason, "circuit breaker");
        let transition = Transition {
            at: Utc::now(),
            from: inner.state,
            to,
            reason,
        };
        if let Some(observe) = &self.observer {
            observe(&transition);
        }
        if inner.transitions.len() == TRANSITIONS_KEPT {
            inner.transitions.pop_front();
        }
        inner.transitions.push_back(transition);
        inner.state = to;
    }

    pub fn state(&self) -> BreakerState {
        self.lock().state
    }

    /// Tells the breaker how the call it let through went.
    pub fn report(&self, health: Health, error: &str) {
        match health {
            Health::Up => self.on_success(),
            Health::Down => self.on_failure(error),
        }
    }

    /// The state and the remaining open time, as the failure policy reads them.
    pub fn view(&self) -> BreakerView {
        let inner = self.lock();
        let open_for = inner.opened_at.elapsed();
        BreakerView {
            state: inner.state,
            retry_in: (inner.state == BreakerState::Open && open_for < self.config.open_timeout)
                .then(|| self.config.open_timeout - open_for),
        }
    }

    pub fn snapshot(&self) -> BreakerSnapshot {
        let inner = self.lock();
        BreakerSnapshot {
            state: inner.state,
            consecutive_failures: inner.consecutive_failures,
            transitions: inner.transitions.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BreakerState::{Closed, HalfOpen, Open};

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig::default())
    }

    fn fail(b: &CircuitBreaker, times: u32) {
        for _ in 0..times {
            b.try_acquire().expect("let through");
            b.on_failure("boom");
        }
    }

    fn path(b: &CircuitBreaker) -> Vec<(BreakerState, BreakerState)> {
        b.snapshot()
            .transitions
            .iter()
            .map(|t| (t.from, t.to))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn closed_opens_after_the_threshold_of_consecutive_failures() {
        let b = breaker();
        fail(&b, 4);
        assert_eq!(b.state(), Closed);
        // A success in between resets the count.
        b.try_acquire().unwrap();
        b.on_success();
        fail(&b, 4);
        assert_eq!(b.state(), Closed);
        fail(&b, 1);
        assert_eq!(b.state(), Open);
        let t = &b.snapshot().transitions[0];
        assert_eq!((t.from, t.to), (Closed, Open));
        assert!(t.reason.contains("5 consecutive failures") && t.reason.contains("boom"));
    }

    #[tokio::test(start_paused = true)]
    async fn open_refuses_until_the_timeout_then_lets_one_probe_through() {
        let b = breaker();
        fail(&b, 5);
        assert_eq!(
            b.try_acquire(),
            Err(Refusal::Open {
                retry_in: Duration::from_secs(30)
            })
        );
        tokio::time::advance(Duration::from_secs(29)).await;
        assert_eq!(
            b.try_acquire(),
            Err(Refusal::Open {
                retry_in: Duration::from_secs(1)
            })
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(b.try_acquire(), Ok(()));
        assert_eq!(b.state(), HalfOpen);
        // One probe at a time.
        assert_eq!(b.try_acquire(), Err(Refusal::ProbesBusy));
        assert_eq!(path(&b), [(Closed, Open), (Open, HalfOpen)]);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_closes_after_enough_successful_probes() {
        let b = breaker();
        fail(&b, 5);
        tokio::time::advance(Duration::from_secs(30)).await;
        for _ in 0..2 {
            b.try_acquire().unwrap();
            b.on_success();
            assert_eq!(b.state(), HalfOpen);
        }
        b.try_acquire().unwrap();
        b.on_success();
        assert_eq!(b.state(), Closed);
        assert_eq!(
            path(&b),
            [(Closed, Open), (Open, HalfOpen), (HalfOpen, Closed)]
        );
        assert_eq!(b.try_acquire(), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_again_for_a_full_timeout() {
        let b = breaker();
        fail(&b, 5);
        tokio::time::advance(Duration::from_secs(30)).await;
        b.try_acquire().unwrap();
        b.on_success();
        b.try_acquire().unwrap();
        b.on_failure("still down");
        assert_eq!(b.state(), Open);
        assert_eq!(
            b.try_acquire(),
            Err(Refusal::Open {
                retry_in: Duration::from_secs(30)
            })
        );
        assert_eq!(
            path(&b),
            [(Closed, Open), (Open, HalfOpen), (HalfOpen, Open)]
        );
        assert!(b.snapshot().transitions[2].reason.contains("still down"));
        // Recovery afterwards needs the full number of successes again.
        tokio::time::advance(Duration::from_secs(30)).await;
        for _ in 0..3 {
            b.try_acquire().unwrap();
            b.on_success();
        }
        assert_eq!(b.state(), Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_newest_transitions_are_kept() {
        let b = CircuitBreaker::new(BreakerConfig {
            failure_threshold: 1,
            open_timeout: Duration::from_millis(1),
            ..BreakerConfig::default()
        });
        for _ in 0..40 {
            fail(&b, 1);
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        let transitions = b.snapshot().transitions;
        assert_eq!(transitions.len(), TRANSITIONS_KEPT);
        assert_eq!(transitions.last().unwrap().to, Open);
    }
}
