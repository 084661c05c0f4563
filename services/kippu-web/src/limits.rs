//! Throttling and the client's address: sign-in attempts per e-mail and per client (with
//! the trusted proxies whose forwarded address counts), shared by every audience that signs
//! people in.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Sign-in attempts allowed per e-mail and per client, and sign-ups per client: a short
/// burst, then one a minute per e-mail (ten a minute per client), so guessing a password
/// online takes years and nobody mints accounts (each a key and an Argon2 hash) in bulk.
pub struct LoginLimits {
    per_email: DefaultKeyedRateLimiter<String>,
    per_client: DefaultKeyedRateLimiter<IpAddr>,
    signups: DefaultKeyedRateLimiter<IpAddr>,
    /// Reverse proxies whose `X-Forwarded-For` is believed; none unless configured.
    trusted_proxies: Vec<IpAddr>,
    prune_every: Duration,
    /// Unix seconds of the last sweep of idle entries.
    pruned_at: AtomicU64,
}

impl Default for LoginLimits {
    fn default() -> Self {
        let n = |v: u32| NonZeroU32::new(v).expect("non-zero");
        Self::new(
            Quota::per_minute(n(1)).allow_burst(n(5)),
            Quota::per_minute(n(10)).allow_burst(n(20)),
            Quota::per_minute(n(1)).allow_burst(n(5)),
        )
    }
}

impl LoginLimits {
    fn new(per_email: Quota, per_client: Quota, signups: Quota) -> Self {
        Self {
            per_email: RateLimiter::keyed(per_email),
            per_client: RateLimiter::keyed(per_client),
            signups: RateLimiter::keyed(signups),
            trusted_proxies: vec![],
            prune_every: Duration::from_secs(60),
            pruned_at: AtomicU64::new(0),
        }
    }

    /// Believes the client address that these reverse proxies append to `X-Forwarded-For`.
    pub fn with_trusted_proxies(mut self, proxies: Vec<IpAddr>) -> Self {
        self.trusted_proxies = proxies.into_iter().map(|p| p.to_canonical()).collect();
        self
    }

    /// Whether a sign-in attempt on `email` (as typed) from `client` may go ahead.
    pub(crate) fn allow(&self, email: &str, client: IpAddr) -> bool {
        self.prune();
        // Keyed as stored (so case and spaces make no new bucket, and a key is at most 254
        // bytes); what is no e-mail matches no account and counts against the client alone.
        let email = kippu_app::accounts::normalize_email(email).ok();
        // The client's bucket first: a spray over many e-mails is stopped without touching theirs.
        self.per_client.check_key(&client).is_ok() && email.is_none_or(|e| self.per_email.check_key(&e).is_ok())
    }

    pub(crate) fn allow_signup(&self, client: IpAddr) -> bool {
        self.prune();
        self.signups.check_key(&client).is_ok()
    }

    /// Drops entries whose bucket is full again, at most once per `prune_every`, so keys
    /// (every e-mail ever typed, every client) do not pile up for the life of the process.
    fn prune(&self) {
        let now = crate::session::now().max(0) as u64;
        let last = self.pruned_at.load(Ordering::Relaxed);
        if now.saturating_sub(last) < self.prune_every.as_secs()
            || self.pruned_at.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return;
        }
        self.per_email.retain_recent();
        self.per_email.shrink_to_fit();
        self.per_client.retain_recent();
        self.per_client.shrink_to_fit();
        self.signups.retain_recent();
        self.signups.shrink_to_fit();
    }

    /// Who is asking, for rate limiting: the socket's peer, unless the peer is a trusted
    /// proxy, in which case the rightmost `X-Forwarded-For` hop that is not one of ours (what
    /// our proxy saw connecting; anything left of it the client wrote itself).
    pub(crate) fn client(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> IpAddr {
        // Without the peer (the server was not started with connect info) everyone shares one
        // bucket, which throttles too much rather than not at all.
        self.client_address(peer, headers).map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), client_key)
    }

    /// The client's own address: the peer, or behind a trusted proxy the last address it
    /// forwarded that is not one of ours. `None` when the server has no connect info.
    pub(crate) fn client_address(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer.map(|p| p.ip().to_canonical())?;
        if !self.trusted_proxies.contains(&peer) {
            return Some(peer);
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) if self.trusted_proxies.contains(&ip.to_canonical()) => continue,
                Ok(ip) => return Some(ip.to_canonical()),
                // Garbage where our proxy writes: it is not ours to trust, so the proxy it came through is the client.
                Err(_) => break,
            }
        }
        Some(peer)
    }
}

/// An IPv6 client usually holds a whole /64, so that is its key; IPv4 keys by address.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            o[8..].fill(0);
            IpAddr::V6(Ipv6Addr::from(o))
        }
        v4 => v4,
    }
}

/// The TCP peer of the request, when the server was started with connect info.
pub(crate) struct Peer(pub(crate) Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_attempts_are_limited_per_email_and_client() {
        let l = LoginLimits::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..5 {
            assert!(l.allow("a@example.com", ip), "attempt {i}");
        }
        assert!(!l.allow("a@example.com", ip), "the sixth attempt on one e-mail waits");
        assert!(!l.allow(" A@Example.COM ", ip), "the same e-mail however typed");
        assert!(l.allow("b@example.com", ip), "another e-mail is its own bucket");
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(!l.allow("a@example.com", other), "a new client does not reset an e-mail");
        // A spray over many e-mails from one client stops at the client's burst.
        let sprayer: IpAddr = "192.0.2.3".parse().unwrap();
        let allowed = (0..40).filter(|i| l.allow(&format!("user{i}@example.com"), sprayer)).count();
        assert_eq!(allowed, 20);
        assert!(!l.allow(&format!("{}@example.com", "x".repeat(300)), sprayer), "no e-mail still counts");
        assert!(l.allow(&format!("{}@example.com", "x".repeat(300)), other));
    }

    fn headers(xff: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn clients_are_keyed_by_the_peer_unless_it_is_a_trusted_proxy() {
        let peer: SocketAddr = "198.51.100.7:50000".parse().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let l = LoginLimits::default();
        assert_eq!(l.client(Some(peer), &headers(&[])), ip("198.51.100.7"));
        assert_eq!(l.client(Some(peer), &headers(&["203.0.113.1"])), ip("198.51.100.7"), "a header the client wrote");
        assert_eq!(l.client(None, &headers(&["203.0.113.1"])), ip("::"), "no peer: one shared bucket");
        let v6: SocketAddr = "[2001:db8:1:2:3:4:5:6]:443".parse().unwrap();
        assert_eq!(l.client(Some(v6), &headers(&[])), ip("2001:db8:1:2::"), "an IPv6 client is its /64");
        let mapped: SocketAddr = "[::ffff:198.51.100.7]:1".parse().unwrap();
        assert_eq!(l.client(Some(mapped), &headers(&[])), ip("198.51.100.7"));

        let proxy: SocketAddr = "10.0.0.2:40000".parse().unwrap();
        let l = LoginLimits::default().with_trusted_proxies(vec![ip("10.0.0.2"), ip("10.0.0.3")]);
        assert_eq!(l.client(Some(peer), &headers(&["203.0.113.1"])), ip("198.51.100.7"), "not our proxy");
        assert_eq!(l.client(Some(proxy), &headers(&["203.0.113.1"])), ip("203.0.113.1"));
        assert_eq!(
            l.client(Some(proxy), &headers(&["1.2.3.4, 5.6.7.8", "203.0.113.1"])),
            ip("203.0.113.1"),
            "what the client wrote on the left is ignored"
        );
        assert_eq!(l.client(Some(proxy), &headers(&["1.2.3.4, 203.0.113.1, 10.0.0.3"])), ip("203.0.113.1"));
        assert_eq!(l.client(Some(proxy), &headers(&["1.2.3.4, nonsense"])), ip("10.0.0.2"));
        assert_eq!(l.client(Some(proxy), &headers(&[])), ip("10.0.0.2"));
    }

    #[test]
    fn sign_ups_are_limited_per_client() {
        let l = LoginLimits::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!((0..10).filter(|_| l.allow_signup(ip)).count(), 5);
        assert!(l.allow_signup("192.0.2.2".parse().unwrap()));
    }

    #[test]
    fn idle_limiter_entries_are_pruned() {
        let fast = Quota::per_second(NonZeroU32::new(1000).unwrap());
        let mut l = LoginLimits::new(fast, fast, fast);
        l.prune_every = Duration::ZERO;
        for i in 0..100 {
            let client = IpAddr::from([192, 0, 2, i]);
            assert!(l.allow(&format!("u{i}@example.com"), client));
            assert!(l.allow_signup(client));
        }
        std::thread::sleep(Duration::from_millis(20));
        l.prune();
        assert_eq!((l.per_email.len(), l.per_client.len(), l.signups.len()), (0, 0, 0));
    }
}
