//! Fetching documents a credential or DID names (did:web documents, status lists) from
//! the web, safely: the URL comes from whoever presents a credential, so without care a
//! presentation could make Kippu's server request its own admin ports, the cloud's metadata
//! service or anything else on the private network (server-side request forgery), or hold a
//! request open forever, or send an endless body.
//!
//! So every fetch:
//! - resolves the host once, refuses it if *any* address is not public (loopback, private,
//!   link-local, CGNAT, unique-local, multicast, documentation, IPv4 embedded in IPv6 …),
//!   and connects to exactly the addresses checked (the client's DNS is overridden for that
//!   host), so a DNS answer that changes between check and connect (rebinding) gains nothing;
//! - follows no redirect (a public host could otherwise send us on to a private one);
//! - ignores proxy settings from the environment (a proxy would resolve the host itself);
//! - has one deadline for everything (DNS, connect, TLS, headers and body);
//! - counts the body while it streams and stops at the size limit, whatever
//!   `Content-Length` says.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use url::{Host, Url};

/// What may be fetched, how long it may take and how large it may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPolicy {
    /// Hosts, as `host` or `host:port`, exempt from the public-address rule and fetched
    /// over plain HTTP: for tests that serve documents from a loopback listener. Must be
    /// empty in production (`kippu serve` refuses to start otherwise).
    pub allow_hosts: Vec<String>,
    /// One deadline for a whole fetch: DNS, connect, TLS, request and the full body.
    pub timeout: Duration,
    /// The largest body accepted, counted while it streams in.
    pub max_bytes: usize,
}

impl FetchPolicy {
    /// A few seconds: a DID document is a small static file, and a verifier waiting on a
    /// slow host holds a traveler's purchase (and a server task) for that long.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
    /// DID documents are a few kilobytes; 64 KiB leaves room for many keys and services.
    pub const DEFAULT_MAX_BYTES: usize = 64 * 1024;

    /// The same policy with `host` (or `host:port`) allowed to be non-public, over HTTP.
    pub fn allowing(mut self, host: impl Into<String>) -> Self {
        self.allow_hosts.push(host.into());
        self
    }

    /// The same policy with another size limit (status lists are larger than DID documents).
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    fn allows(&self, host: &str, port: u16) -> bool {
        let with_port = format!("{host}:{port}");
        self.allow_hosts.iter().any(|a| a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(&with_port))
    }

    /// The URL of a did:web document (`did:web:<method_specific_id>`): HTTPS, except for
    /// allow-listed (test) hosts, which are served over plain HTTP.
    pub fn did_web_url(&self, method_specific_id: &str) -> Result<String, FetchError> {
        let bad =
            |reason: &str| FetchError::BadUrl { url: format!("did:web:{method_specific_id}"), reason: reason.into() };
        let mut parts = method_specific_id.split(':');
        let encoded = parts.next().unwrap_or_default();
        let authority = match encoded.rsplit_once("%3A").or_else(|| encoded.rsplit_once("%3a")) {
            Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
                format!("{host}:{port}")
            }
            Some(_) => return Err(bad("the port after %3A is not a number")),
            None => encoded.to_owned(),
        };
        // A host name or IPv4 address and a port, nothing else: no user info, no path tricks.
        let host = authority.split(':').next().unwrap_or_default();
        if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
            return Err(bad("the host must be a domain name or an IPv4 address"));
        }
        let path: Vec<&str> = parts.collect();
        if path.iter().any(|p| p.is_empty() || p.contains(['/', '?', '#', '\\'])) {
            return Err(bad("empty or unsafe path segment"));
        }
        let path = if path.is_empty() { ".well-known".to_owned() } else { path.join("/") };
        let https = Url::parse(&format!("https://{authority}/{path}/did.json")).map_err(|e| bad(&e.to_string()))?;
        let port = https.port_or_known_default().unwrap_or(443);
        let allowed = https.host_str().is_some_and(|h| self.allows(h, port));
        let scheme = if allowed { "http" } else { "https" };
        Ok(format!("{scheme}://{authority}/{path}/did.json"))
    }

    /// GETs `url` under this policy and returns the body.
    pub async fn get(&self, url: &str, accept: &str) -> Result<Vec<u8>, FetchError> {
        match tokio::time::timeout(self.timeout, self.get_within(url, accept)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout { url: url.to_owned(), after: self.timeout }),
        }
    }

    async fn get_within(&self, url: &str, accept: &str) -> Result<Vec<u8>, FetchError> {
        let bad = |reason: String| FetchError::BadUrl { url: url.to_owned(), reason };
        let parsed = Url::parse(url).map_err(|e| bad(e.to_string()))?;
        let port = parsed.port_or_known_default().ok_or_else(|| bad("no port for this scheme".into()))?;
        let host = parsed.host().ok_or_else(|| bad("no host".into()))?;
        let host_text = parsed.host_str().unwrap_or_default().to_owned();
        let allowed = self.allows(&host_text, port);
        match parsed.scheme() {
            "https" => {}
            "http" if allowed => {}
            other => return Err(bad(format!("{other}: only https is fetched"))),
        }
        let addrs: Vec<SocketAddr> = match &host {
            Host::Ipv4(ip) => vec![SocketAddr::new(IpAddr::V4(*ip), port)],
            Host::Ipv6(ip) => vec![SocketAddr::new(IpAddr::V6(*ip), port)],
            Host::Domain(name) => tokio::net::lookup_host((*name, port))
                .await
                .map_err(|e| FetchError::Dns { host: host_text.clone(), reason: e.to_string() })?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(FetchError::Dns { host: host_text, reason: "no address".into() });
        }
        if !allowed {
            // Every address, not just the first: the client may try any of them.
            if let Some((addr, range)) = addrs.iter().find_map(|a| non_public_range(a.ip()).map(|r| (a.ip(), r))) {
                return Err(FetchError::NotPublic { host: host_text, addr, range });
            }
        }
        let mut client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(self.timeout)
            .user_agent(concat!("kippu/", env!("CARGO_PKG_VERSION")));
        if let Host::Domain(name) = &host {
            // Connect to the very addresses checked above: no second DNS lookup to rebind.
            client = client.resolve_to_addrs(name, &addrs);
        }
        let transport = |e: reqwest::Error| FetchError::Transport { url: url.to_owned(), reason: e.to_string() };
        let client = client.build().map_err(transport)?;
        let mut response =
            client.get(parsed.clone()).header(reqwest::header::ACCEPT, accept).send().await.map_err(transport)?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?")
                .to_owned();
            return Err(FetchError::Redirect { url: url.to_owned(), location });
        }
        if !status.is_success() {
            return Err(FetchError::Status { url: url.to_owned(), status: status.as_u16() });
        }
        let too_large = || FetchError::TooLarge { url: url.to_owned(), limit: self.max_bytes };
        if response.content_length().is_some_and(|n| n > self.max_bytes as u64) {
            return Err(too_large());
        }
        // Counted as it arrives: a missing or lying Content-Length changes nothing.
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self { allow_hosts: Vec::new(), timeout: Self::DEFAULT_TIMEOUT, max_bytes: Self::DEFAULT_MAX_BYTES }
    }
}

/// Why a fetch was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Not a URL this policy fetches (scheme, host, path).
    #[error("{url}: not fetched ({reason})")]
    BadUrl {
        /// The URL (or DID) as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The host is, or resolves to, an address that is not on the public internet.
    #[error("{host} is {addr}, a {range} address: refused, only public addresses are fetched")]
    NotPublic {
        /// The host named in the URL.
        host: String,
        /// The address refused.
        addr: IpAddr,
        /// Which non-public range it is in.
        range: &'static str,
    },
    /// The host name could not be resolved.
    #[error("{host}: cannot resolve ({reason})")]
    Dns {
        /// The host named in the URL.
        host: String,
        /// The resolver's explanation.
        reason: String,
    },
    /// Nothing complete within the deadline.
    #[error("{url}: no complete answer within {after:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The deadline.
        after: Duration,
    },
    /// The body is larger than allowed.
    #[error("{url}: larger than {limit} bytes, refused")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The server redirected; redirects are not followed.
    #[error("{url}: redirected to {location}; redirects are not followed")]
    Redirect {
        /// The URL.
        url: String,
        /// Where the server pointed.
        location: String,
    },
    /// The server answered with an error status.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// Connection, TLS or protocol failure.
    #[error("{url}: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
}

/// The non-public range `ip` is in (by name), or `None` for a public unicast address.
///
/// Written out rather than `IpAddr::is_global` (unstable), after the IANA special-purpose
/// registries. IPv6 addresses that carry an IPv4 address (mapped, compatible, NAT64, 6to4)
/// are judged by that address, since that is where a packet would end up.
pub fn non_public_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "unspecified (\"this network\")",
        (127, _, _) => "loopback",
        (10, _, _) => "private",
        (172, 16..=31, _) => "private",
        (192, 168, _) => "private",
        (169, 254, _) => "link-local",
        (100, 64..=127, _) => "carrier-grade NAT (shared)",
        (192, 0, 0) => "IETF protocol assignment",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking",
        (192, 88, 99) => "6to4 relay anycast",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved or broadcast",
        _ => return None,
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    // ::ffff:a.b.c.d (IPv4-mapped): the IPv4 address decides.
    if s[..6] == [0, 0, 0, 0, 0, 0xffff] {
        return non_public_v4(embedded(s[6], s[7]));
    }
    // ::a.b.c.d (IPv4-compatible) is deprecated and routes nowhere public.
    if s[..6] == [0; 6] {
        return Some("IPv4-compatible (deprecated)");
    }
    // NAT64's well-known prefix 64:ff9b::/96 reaches the embedded IPv4 address.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return non_public_v4(embedded(s[6], s[7]));
    }
    // 6to4 2002:a.b.c.d::/48 tunnels to the embedded IPv4 address.
    if s[0] == 0x2002 {
        return non_public_v4(embedded(s[1], s[2]));
    }
    Some(match s[0] {
        0x0064 if s[1] == 0xff9b && s[2] == 1 => "local-use NAT64",
        0x0100 if s[1..4] == [0, 0, 0] => "discard-only",
        // 2001::/23: IETF protocol assignments (Teredo tunnels, benchmarking, ORCHID …).
        0x2001 if s[1] < 0x0200 => "IETF protocol assignment (Teredo, benchmarking, ORCHID)",
        0x2001 if s[1] == 0x0db8 => "documentation",
        0x3fff if s[1] < 0x1000 => "documentation",
        x if x & 0xfe00 == 0xfc00 => "unique-local",
        x if x & 0xffc0 == 0xfe80 => "link-local",
        x if x & 0xffc0 == 0xfec0 => "site-local (deprecated)",
        x if x & 0xff00 == 0xff00 => "multicast",
        // Only 2000::/3 is allocated for global unicast.
        x if x & 0xe000 != 0x2000 => "not global unicast",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_non_public_range_is_named_and_public_addresses_pass() {
        let refused = [
            ("0.0.0.0", "unspecified"),
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("100.127.255.254", "carrier-grade NAT"),
            ("192.0.2.7", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.7", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::ffff:100.64.0.1", "carrier-grade NAT"),
            ("::127.0.0.1", "IPv4-compatible"),
            ("::8.8.8.8", "IPv4-compatible"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("2002:7f00:1::", "loopback"),
            ("fc00::1", "unique-local"),
            ("fd12:3456::1", "unique-local"),
            ("fe80::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("3fff::1", "documentation"),
            ("2001::1", "Teredo"),
            ("100::1", "discard-only"),
        ];
        for (ip, range) in refused {
            let got = non_public_range(ip.parse().unwrap());
            assert!(got.is_some_and(|r| r.contains(range)), "{ip}: {got:?}, expected {range}");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
            "64:ff9b::808:808",
            "2002:808:808::",
        ] {
            assert_eq!(non_public_range(ip.parse().unwrap()), None, "{ip}");
        }
    }

    #[test]
    fn did_web_urls_are_https_with_the_port_decoded_and_nothing_smuggled() {
        let p = FetchPolicy::default();
        assert_eq!(p.did_web_url("example.com").unwrap(), "https://example.com/.well-known/did.json");
        assert_eq!(
            p.did_web_url("example.com%3A8443:issuers:usf").unwrap(),
            "https://example.com:8443/issuers/usf/did.json"
        );
        for bad in ["", "user@example.com", "example.com%3Ax", "example.com::a", "exa mple.com", "example.com%2F..%2F"]
        {
            assert!(matches!(p.did_web_url(bad), Err(FetchError::BadUrl { .. })), "{bad:?}");
        }
        let test = FetchPolicy::default().allowing("127.0.0.1:8080");
        assert_eq!(test.did_web_url("127.0.0.1%3A8080:x").unwrap(), "http://127.0.0.1:8080/x/did.json");
        assert_eq!(test.did_web_url("127.0.0.1%3A8081:x").unwrap(), "https://127.0.0.1:8081/x/did.json");
    }

    #[tokio::test]
    async fn only_https_is_fetched_unless_allow_listed() {
        let p = FetchPolicy::default();
        for url in ["http://example.com/did.json", "ftp://example.com/x", "file:///etc/passwd"] {
            assert!(matches!(p.get(url, "*/*").await, Err(FetchError::BadUrl { .. })), "{url}");
        }
        // Literal addresses are judged without any lookup.
        let e = p.get("https://[::ffff:169.254.169.254]/latest/meta-data", "*/*").await.unwrap_err();
        assert!(matches!(e, FetchError::NotPublic { range: "link-local", .. }), "{e}");
        let e = p.get("https://10.0.0.1/did.json", "*/*").await.unwrap_err();
        assert!(e.to_string().contains("10.0.0.1, a private address"), "{e}");
    }
}
