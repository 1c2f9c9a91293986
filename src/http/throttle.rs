//! Guessing the admin token: wrong tokens are counted per client address, and an address
//! with `limit` of them inside the window is refused every token check, right or wrong, until
//! its oldest counted failure leaves the window (429 `too_many_attempts` with `Retry-After`,
//! or the sign-in page saying so). Refusing the right token too is the point: otherwise a
//! locked-out guesser could still tell when a guess was right.
//!
//! The address is the TCP peer's: behind a reverse proxy every client shares the proxy's, so
//! there the proxy should limit by the real address itself. IPv6 clients are counted per /64
//! (one host usually holds a whole /64), and the table is bounded whatever the traffic.

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most addresses tracked at once. Past it, addresses with no failure left in the window are
/// forgotten first, then those whose last failure is oldest: a flood of addresses can push
/// out old entries, never grow the table.
pub const MAX_TRACKED: usize = 10_000;

/// What failures are counted under: an IPv4 address (also when written as IPv4-mapped IPv6),
/// or the /64 network of an IPv6 address.
fn counted_as(client: IpAddr) -> IpAddr {
    match client.to_canonical() {
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(network.into())
        }
        v4 => v4,
    }
}

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
        let Some(times) = failures.get_mut(&counted_as(client)) else {
            return Ok(());
        };
        self.forget_old(times, now);
        match times.front() {
            Some(oldest) if times.len() >= self.limit => Err(*oldest + self.window - now),
            _ => Ok(()),
        }
    }

    fn failed_at(&self, client: IpAddr, now: Instant) {
        let client = counted_as(client);
        let mut failures = self.lock();
        if failures.len() >= MAX_TRACKED && !failures.contains_key(&client) {
            failures.retain(|_, times| times.back().is_some_and(|t| now - *t < self.window));
            while failures.len() >= MAX_TRACKED {
                let stalest = failures
                    .iter()
                    .min_by_key(|(_, times)| times.back().copied())
                    .map(|(address, _)| *address);
                match stalest {
                    Some(address) => failures.remove(&address),
                    None => break,
                };
            }
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

    #[test]
    fn a_flood_inside_the_window_pushes_out_the_stalest_and_never_grows_the_table() {
        let throttle = AuthThrottle::new(5, MINUTE);
        let start = Instant::now();
        let flooder = |i: usize| {
            let [_, a, b, c] = u32::try_from(i).unwrap().to_be_bytes();
            IpAddr::from([10, a, b, c])
        };
        for i in 0..MAX_TRACKED + 500 {
            let at = start + Duration::from_millis(u64::try_from(i).unwrap());
            throttle.failed_at(flooder(i), at);
            assert!(throttle.lock().len() <= MAX_TRACKED);
        }
        let failures = throttle.lock();
        assert_eq!(failures.len(), MAX_TRACKED);
        assert!(
            !failures.contains_key(&flooder(0)),
            "the stalest went first"
        );
        assert!(failures.contains_key(&flooder(MAX_TRACKED + 499)));
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let throttle = AuthThrottle::new(2, MINUTE);
        let start = Instant::now();
        let host = |last: u16| IpAddr::from([0x2001, 0xdb8, 0, 7, 0, 0, 0, last]);
        throttle.failed_at(host(1), start);
        throttle.failed_at(host(2), start);
        assert!(throttle.check_at(host(3), start).is_err(), "same /64");
        let other = IpAddr::from([0x2001, 0xdb8, 0, 8, 0, 0, 0, 1]);
        assert_eq!(throttle.check_at(other, start), Ok(()), "another /64");
        let mapped: IpAddr = "::ffff:10.0.0.9".parse().unwrap();
        throttle.failed_at(mapped, start);
        throttle.failed_at(address(9), start);
        assert!(throttle.check_at(address(9), start).is_err());
    }
}
