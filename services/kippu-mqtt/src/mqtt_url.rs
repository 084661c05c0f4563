//! Broker addresses as `mqtt://` / `mqtts://` URLs, so every Kippu binary
//! configures MQTT with one string (env var or flag).

use std::time::Duration;

use rumqttc::{MqttOptions, TlsConfiguration, Transport};

use crate::error::{MqttError, Result};
use crate::tls::ClientTls;

/// MQTT keep-alive: short, so a dead gate's last will fires within seconds
/// (brokers act after 1.5 × keep-alive) and the status page stays honest.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Default number of unacknowledged QoS 1 publishes per connection.
pub const DEFAULT_INFLIGHT: u16 = 100;
const DEFAULT_PORT: u16 = 1883;
const DEFAULT_TLS_PORT: u16 = 8883;

/// A parsed `mqtt[s]://[user[:password]@]host[:port][?client_prefix=..&inflight=..&ca_file=..]`.
///
/// `mqtts://` connects over TLS (port 8883 unless given), trusting the CA certificate
/// in the PEM file `ca_file` when given, else the Mozilla roots of `webpki-roots`; the
/// server certificate must name `host` (a DNS name or an IP address SAN). `ca_file` is
/// read when the URL is parsed, so a missing file fails at startup. Websockets and the
/// `ssl://`/`tls://` spellings are refused rather than guessed at.
#[derive(Clone, PartialEq, Eq)]
pub struct MqttUrl {
    /// Broker host name or IP (IPv6 without brackets).
    pub host: String,
    /// Broker port, 1883 when the URL has none.
    pub port: u16,
    /// Prepended to every client id, so several deployments can share a broker
    /// without kicking each other's sessions (brokers allow one session per id).
    pub client_prefix: String,
    /// Username, when the URL carries credentials.
    pub username: Option<String>,
    /// Password, when the URL carries one.
    pub password: Option<String>,
    /// Max unacknowledged outgoing QoS 1 publishes.
    pub inflight: u16,
    /// TLS settings when the URL is `mqtts://`; `None` is plain TCP.
    pub tls: Option<ClientTls>,
}

impl MqttUrl {
    /// Parses an `mqtt://` or `mqtts://` URL.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |reason: &str| MqttError::InvalidUrl { url: redact(text), reason: reason.into() };
        let url = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        let (tls, default_port) = match url.scheme() {
            "mqtt" => (None, DEFAULT_PORT),
            "mqtts" => (Some(ClientTls::webpki_roots()), DEFAULT_TLS_PORT),
            "ssl" | "tls" => return Err(bad("write TLS brokers as mqtts://")),
            "ws" | "wss" => return Err(bad("websocket brokers are not supported, use mqtt:// or mqtts://")),
            other => return Err(bad(&format!("scheme {other:?} is not mqtt:// or mqtts://"))),
        };
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(bad("no host")),
        };
        if !matches!(url.path(), "" | "/") {
            return Err(bad("a path is not allowed"));
        }
        let mut out = Self {
            host,
            port: url.port().unwrap_or(default_port),
            client_prefix: String::new(),
            username: (!url.username().is_empty()).then(|| decode(url.username())),
            password: url.password().map(decode),
            inflight: DEFAULT_INFLIGHT,
            tls,
        };
        for (key, value) in url.query_pairs() {
            match &*key {
                "client_prefix" => {
                    // Client ids with these characters are rejected by brokers (rumqttd) or
                    // break topic-like ACL patterns; refuse early with a clear message.
                    if value.chars().any(|c| "+#/ ".contains(c)) {
                        return Err(bad("client_prefix must not contain '+', '#', '/' or spaces"));
                    }
                    out.client_prefix = value.into_owned();
                }
                "inflight" => {
                    out.inflight = value
                        .parse::<u16>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| bad("inflight must be 1..=65535"))?;
                }
                "ca_file" => {
                    if out.tls.is_none() {
                        return Err(bad("ca_file needs an mqtts:// URL"));
                    }
                    let ca = ClientTls::from_ca_file(std::path::Path::new(&*value)).map_err(|e| bad(&e.to_string()))?;
                    out.tls = Some(ca);
                }
                other => return Err(bad(&format!("unknown query parameter {other:?}"))),
            }
        }
        Ok(out)
    }

    /// Same broker over TLS with `tls` (an `mqtt://` URL becomes `mqtts://`, same port).
    pub fn with_tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Same broker, logging in as `username` with `password`.
    pub fn with_login(mut self, username: &str, password: &str) -> Self {
        self.username = Some(username.to_owned());
        self.password = Some(password.to_owned());
        self
    }

    /// Whether connections go over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Same broker with a different inflight window.
    pub fn with_inflight(mut self, inflight: u16) -> Self {
        self.inflight = inflight.max(1);
        self
    }

    /// Client options for `client_id` (prefixed with [`Self::client_prefix`]):
    /// keep-alive [`KEEP_ALIVE`], clean session, this URL's inflight, credentials and TLS.
    pub fn options(&self, client_id: &str) -> MqttOptions {
        let mut o = MqttOptions::new(format!("{}{client_id}", self.client_prefix), &self.host, self.port);
        o.set_keep_alive(KEEP_ALIVE)
            .set_clean_session(true)
            .set_inflight(self.inflight.max(1))
            // Incoming: scans and verdicts are capped at MAX_SCAN_BYTES; the headroom covers topic
            // and headers, and the cap stops a misbehaving peer from making us buffer megabytes.
            // Outgoing: the platform publishes gate snapshots of up to MAX_SNAPSHOT_BYTES.
            .set_max_packet_size(64 * 1024, kippu_domain::snapshot::MAX_SNAPSHOT_BYTES + 64 * 1024);
        if let Some(user) = &self.username {
            o.set_credentials(user, self.password.clone().unwrap_or_default());
        }
        if let Some(tls) = &self.tls {
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls.config())));
        }
        o
    }
}

/// TCP options for every Kippu MQTT connection: Nagle's algorithm off. A scan or a verdict is
/// one small packet; with Nagle on, delayed ACKs held them up to 40 ms (measured with
/// `kippu-gate-bench`: p50 48.7 ms → 0.44 ms at 1,000 scans/s once every side sends at once).
pub fn network_options() -> rumqttc::NetworkOptions {
    let mut n = rumqttc::NetworkOptions::new();
    n.set_tcp_nodelay(true);
    n
}

impl std::fmt::Display for MqttUrl {
    /// The URL without credentials or options, safe for logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls.is_some() { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Debug for MqttUrl {
    // Hand-written so a password never lands in logs via `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_prefix", &self.client_prefix)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("inflight", &self.inflight)
            .field("tls", &self.tls)
            .finish()
    }
}

impl std::str::FromStr for MqttUrl {
    type Err = MqttError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_owned())
}

/// The URL text with any password masked, for error messages.
fn redact(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_and_defaults() {
        let u = MqttUrl::parse("mqtt://127.0.0.1:1883").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.inflight), ("127.0.0.1", 1883, DEFAULT_INFLIGHT));
        assert_eq!(u.to_string(), "mqtt://127.0.0.1:1883");
        assert_eq!(MqttUrl::parse("mqtt://broker.local").unwrap().port, 1883);
        let v6 = MqttUrl::parse("mqtt://[::1]:18830").unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.to_string(), "mqtt://[::1]:18830");
    }

    #[test]
    fn options_carry_prefix_credentials_and_inflight() {
        let u = MqttUrl::parse("mqtt://gate%40x:p%2Fw@h:1?client_prefix=stg-&inflight=7").unwrap();
        assert_eq!(u.username.as_deref(), Some("gate@x"));
        assert_eq!(u.password.as_deref(), Some("p/w"));
        let o = u.options("validator-1");
        assert_eq!(o.client_id(), "stg-validator-1");
        assert_eq!(o.keep_alive(), KEEP_ALIVE);
        assert!(o.clean_session());
        assert_eq!(o.inflight(), 7);
        let login = o.credentials().unwrap();
        assert_eq!((login.username.as_str(), login.password.as_str()), ("gate@x", "p/w"));
        assert!(!format!("{u:?}").contains("p/w"));
        assert_eq!(u.clone().with_inflight(0).inflight, 1);
    }

    #[test]
    fn mqtts_uses_tls_with_webpki_roots_or_the_ca_file() {
        let u = MqttUrl::parse("mqtts://broker.example").unwrap();
        assert_eq!((u.port, u.tls.clone()), (8883, Some(ClientTls::webpki_roots())));
        assert_eq!(u.to_string(), "mqtts://broker.example:8883");
        assert!(matches!(u.options("x").transport(), Transport::Tls(TlsConfiguration::Rustls(_))));
        assert!(matches!(MqttUrl::parse("mqtt://h").unwrap().options("x").transport(), Transport::Tcp));

        let e = MqttUrl::parse("mqtts://u:secret@h?ca_file=/nonexistent/ca.pem").unwrap_err().to_string();
        assert!(e.contains("/nonexistent/ca.pem") && !e.contains("secret"), "{e}");
        let e = MqttUrl::parse("mqtt://h?ca_file=/etc/hostname").unwrap_err().to_string();
        assert!(e.contains("mqtts"), "{e}");
        let plain = MqttUrl::parse("mqtt://h:1884").unwrap().with_tls(ClientTls::webpki_roots());
        assert_eq!(plain.to_string(), "mqtts://h:1884");
    }

    #[test]
    fn rejects_other_schemes_and_junk() {
        for bad in [
            "ssl://h:8883",
            "http://h",
            "ws://h",
            "tcp://h:1883",
            "h:1883",
            "mqtt://h/path",
            "mqtt://h?x=1",
            "mqtt://h?inflight=0",
            "mqtt://h?client_prefix=a/b",
        ] {
            let e = MqttUrl::parse(bad).unwrap_err();
            assert!(matches!(e, MqttError::InvalidUrl { .. }), "{bad}: {e}");
        }
        let e = MqttUrl::parse("tls://u:secret@h").unwrap_err().to_string();
        assert!(e.contains("mqtts://") && !e.contains("secret"), "{e}");
    }
}
