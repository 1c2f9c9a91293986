//! Guessing the admin token: wrong tokens are counted per client address, and an address
//! with `limit` of them inside the window is refused every token check, right or wrong, until
//! its oldest counted failure leaves the window (429 `too_many_attempts` with `Retry-After`,
//! or the sign-in page saying so). Refusing the right token too is the point: otherwise a
//! locked-out guesser could still tell when a guess was right.
//!
//! The address is the TCP peer's: behind a reverse proxy every client shares the proxy's, so
//! there the proxy should limit by the real address itself.

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most addresses tracked at once. Past it, addresses with no failure left in the window are
/// forgotten; a flood of addresses can at worst push out those whose failures are old.
const MAX_TRACKED: usize = 10_000;

/// The address of the request's TCP peer; the unspecified address where the server runs
/// without connection info (a router driven directly, as in unit tests).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(Self(
            peer.map_or(Ipv4Addr::UNSPECIFIED.into(), |c| c.0.ip()),
        ))
    }
}

/// Failed admin-token checks per client address.
#[derive(Debug)]
pub struct AuthThrottle {
    /// Failures inside the window that lock an address out.
    limit: usize,
    window: Duration,
    /// Per address, the times of its failures inside the window, oldest first (at most
    /// `limit`: older ones no longer matter).
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl AuthThrottle {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit: usize::try_from(limit).unwrap_or(usize::MAX).max(1),
            window,
            failures: Mutex::default(),
        }
    }

    /// `Err(retry_after)` while `client` is locked out.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        self.check_at(client, Instant::now())
    }

    /// Counts a wrong token presented by `client`.
    pub fn failed(&self, client: IpAddr) {
        self.failed_at(client, Instant::now());
    }

    fn check_at(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut failures = self.lock();
        let Some(times) = failures.get_mut(&client) else {
            return Ok(());
        };
        self.forget_old(times, now);
        match times.front() {
            Some(oldest) if times.len() >= self.limit => Err(*oldest + self.window - now),
            _ => Ok(()),
        }
    }

    fn failed_at(&self, client: IpAddr, now: Instant) {
        let mut failures = self.lock();
        if failures.len() >= MAX_TRACKED && !failures.contains_key(&client) {
            failures.retain(|_, times| times.back().is_some_and(|t| now - *t < self.window));
        }
        let times = failures.entry(client).or_default();
        self.forget_old(times, now);
        if times.len() >= self.limit {
            times.pop_front();
        }
        times.push_back(now);
    }

    fn forget_old(&self, times: &mut VecDeque<Instant>, now: Instant) {
        while times.front().is_some_and(|t| now - *t >= self.window) {
            times.pop_front();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, VecDeque<Instant>>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn an_address_is_locked_out_at_the_limit_and_others_are_not() {
        let throttle = AuthThrottle::new(3, MINUTE);
        let start = Instant::now();
        for _ in 0..2 {
            throttle.failed_at(address(1), start);
        }
        assert_eq!(throttle.check_at(address(1), start), Ok(()));
        throttle.failed_at(address(1), start + Duration::from_secs(10));
        let later = start + Duration::from_secs(20);
        assert_eq!(
            throttle.check_at(address(1), later),
            Err(Duration::from_secs(40)),
            "until the oldest failure leaves the window"
        );
        assert_eq!(throttle.check_at(address(2), later), Ok(()), "per address");
    }

    #[test]
    fn failures_leave_the_window() {
        let throttle = AuthThrottle::new(2, MINUTE);
        let start = Instant::now();
        throttle.failed_at(address(1), start);
        throttle.failed_at(address(1), start + Duration::from_secs(30));
        assert!(
            throttle
                .check_at(address(1), start + Duration::from_secs(59))
                .is_err()
        );
        // The first failure has left the window; one inside is below the limit.
        assert_eq!(throttle.check_at(address(1), start + MINUTE), Ok(()));
        throttle.failed_at(address(1), start + MINUTE);
        assert!(throttle.check_at(address(1), start + MINUTE).is_err());
    }

    #[test]
    fn the_table_of_addresses_stays_bounded() {
        let throttle = AuthThrottle::new(5, MINUTE);
        let start = Instant::now();
        for i in 0..MAX_TRACKED {
            let [_, _, a, b] = u32::try_from(i).unwrap().to_be_bytes();
            throttle.failed_at(IpAddr::from([10, 1, a, b]), start);
        }
        // A new address once the old failures are out of the window: the old are forgotten.
        throttle.failed_at(address(1), start + MINUTE);
        assert_eq!(throttle.lock().len(), 1);
        assert_eq!(throttle.check_at(address(1), start + MINUTE), Ok(()));
    }
}
