//! rumqttd embedded in the process, for development and tests.
//!
//! rumqttd 0.20 cannot be stopped and does not report the port it bound, so
//! this wrapper picks the port itself, probes the address before handing it
//! over (a clear "address in use" beats a silent log line), and waits until the
//! listener accepts TCP before returning.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{MqttError, Result};
use crate::mqtt_url::MqttUrl;

/// Where the dev broker listens: off 1883 so it never collides with a system broker.
pub const DEFAULT_EMBEDDED_ADDR: &str = "127.0.0.1:18830";

/// How long `start` waits for the listener to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts for a port-0 start; another process may grab the free port we picked
/// between probing and rumqttd binding it.
const PORT_ATTEMPTS: usize = 5;

/// A running rumqttd broker (MQTT 3.1.1, optionally also MQTT 5 on a second port).
///
/// The broker runs on background threads for the rest of the process:
/// rumqttd 0.20 has no shutdown, so dropping this value does not stop it.
#[derive(Debug)]
pub struct EmbeddedBroker {
    addr: SocketAddr,
    v5_addr: Option<SocketAddr>,
}

impl EmbeddedBroker {
    /// Starts an MQTT 3.1.1 broker on `bind` (port 0 picks a free port) and
    /// returns once it accepts TCP connections. Blocks the calling thread for
    /// that wait (normally a few milliseconds).
    pub fn start(bind: SocketAddr) -> Result<Self> {
        Self::start_with_v5(bind, None)
    }

    /// Like [`Self::start`], additionally serving MQTT 5 on `v5_bind` when given.
    pub fn start_with_v5(bind: SocketAddr, v5_bind: Option<SocketAddr>) -> Result<Self> {
        let retry = bind.port() == 0 || v5_bind.is_some_and(|a| a.port() == 0);
        let attempts = if retry { PORT_ATTEMPTS } else { 1 };
        let mut last = None;
        for _ in 0..attempts {
            let addr = concrete(bind)?;
            let v5_addr = v5_bind.map(concrete).transpose()?;
            if v5_addr == Some(addr) {
                if retry {
                    // Two port-0 probes can, rarely, be handed the same port.
                    continue;
                }
                return Err(MqttError::Broker("v4 and v5 listeners need different ports".into()));
            }
            match launch(addr, v5_addr) {
                Ok(()) => {
                    tracing::info!(%addr, ?v5_addr, "embedded MQTT broker listening");
                    return Ok(Self { addr, v5_addr });
                }
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "embedded broker did not start");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| MqttError::Broker("did not start".into())))
    }

    /// Whether this broker honours `$share/{group}/{filter}` subscriptions.
    ///
    /// rumqttd 0.20 does, for MQTT 3.1.1 and 5 clients, round-robin by default.
    /// Caveat: it keys a share group by its name alone, not by (name, filter), so
    /// use one filter per group name.
    pub fn supports_shared_subscriptions() -> bool {
        true
    }

    /// The MQTT 3.1.1 listen address (with the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The MQTT 5 listen address, when one was started.
    pub fn v5_addr(&self) -> Option<SocketAddr> {
        self.v5_addr
    }

    /// `mqtt://host:port` of the 3.1.1 listener, connectable from this host
    /// (an unspecified bind address becomes loopback).
    pub fn url(&self) -> String {
        let a = connectable(self.addr);
        if a.is_ipv6() {
            format!("mqtt://[{}]:{}", a.ip(), a.port())
        } else {
            format!("mqtt://{a}")
        }
    }

    /// [`Self::url`] parsed.
    pub fn mqtt_url(&self) -> MqttUrl {
        MqttUrl::parse(&self.url()).expect("a socket address is a valid mqtt URL")
    }
}

/// Resolves port 0 to a free port, and fails early if a fixed address is taken.
fn concrete(bind: SocketAddr) -> Result<SocketAddr> {
    // The probe listener is dropped right away; rumqttd binds the port next.
    let probe = TcpListener::bind(bind).map_err(|e| MqttError::Broker(format!("cannot listen on {bind}: {e}")))?;
    Ok(probe.local_addr()?)
}

fn connectable(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => (Ipv4Addr::LOCALHOST, a.port()).into(),
        SocketAddr::V6(a) if a.ip().is_unspecified() => (Ipv6Addr::LOCALHOST, a.port()).into(),
        a => a,
    }
}

fn launch(addr: SocketAddr, v5_addr: Option<SocketAddr>) -> Result<()> {
    let config = config(addr, v5_addr)?;
    let thread: JoinHandle<()> = std::thread::Builder::new().name("kippu-mqttd".into()).spawn(move || {
        let mut broker = rumqttd::Broker::new(config);
        // `start` blocks while the listeners run and returns when they all died
        // (e.g. bind failed); the waiter below notices the thread ending.
        if let Err(e) = broker.start() {
            tracing::error!(error = %e, "embedded broker stopped");
        }
    })?;
    let deadline = Instant::now() + READY_TIMEOUT;
    let targets: Vec<SocketAddr> = std::iter::once(addr).chain(v5_addr).map(connectable).collect();
    let mut pending = targets.clone();
    loop {
        pending.retain(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_err());
        if pending.is_empty() {
            return Ok(());
        }
        if thread.is_finished() {
            return Err(MqttError::Broker(format!("listener on {pending:?} failed to bind (see log)")));
        }
        if Instant::now() > deadline {
            return Err(MqttError::Broker(format!("{pending:?} not accepting connections after {READY_TIMEOUT:?}")));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// rumqttd's `Config` derives `Deserialize`; a JSON literal keeps every field
/// visible in one place.
fn config(addr: SocketAddr, v5_addr: Option<SocketAddr>) -> Result<rumqttd::Config> {
    let server = |name: &str, listen: SocketAddr| {
        serde_json::json!({ "1": {
            "name": name,
            "listen": listen.to_string(),
            "next_connection_delay_ms": 1,
            "connections": {
                "connection_timeout_ms": 60000,
                // Scans are at most 2 KiB; leave room for bigger config pushes.
                "max_payload_size": 64 * 1024,
                "max_inflight_count": 100,
                // rumqttd keeps a commit log per filter and *drops* publishes no
                // subscription matches unless this is on; a gate's retained status
                // must land even before anyone watches it.
                "dynamic_filters": true
            }
        }})
    };
    let json = serde_json::json!({
        "id": 0,
        "router": {
            "max_connections": 10010,
            "max_outgoing_packet_count": 200,
            // Per-filter log: 10 × 1 MiB caps memory for a dev broker.
            "max_segment_size": 1024 * 1024,
            "max_segment_count": 10,
            "shared_subscriptions_strategy": "roundrobin"
        },
        "v4": server("kippu-v4", addr),
        "v5": v5_addr.map(|a| server("kippu-v5", a)),
    });
    serde_json::from_value(json).map_err(|e| MqttError::Broker(format!("config: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_gets_a_real_port_and_accepts() {
        let b = EmbeddedBroker::start("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_ne!(b.addr().port(), 0);
        assert!(b.url().starts_with("mqtt://127.0.0.1:"));
        assert_eq!(b.mqtt_url().port, b.addr().port());
        TcpStream::connect(b.addr()).unwrap();
    }

    #[test]
    fn taken_address_is_a_clear_error() {
        let b = EmbeddedBroker::start("127.0.0.1:0".parse().unwrap()).unwrap();
        let e = EmbeddedBroker::start(b.addr()).unwrap_err().to_string();
        assert!(e.contains("cannot listen"), "{e}");
    }

    #[test]
    fn config_literal_matches_rumqttd() {
        let c = config("127.0.0.1:1".parse().unwrap(), Some("127.0.0.1:2".parse().unwrap())).unwrap();
        assert!(c.v4.is_some() && c.v5.is_some());
        assert!(config("127.0.0.1:1".parse().unwrap(), None).unwrap().v5.is_none());
    }
}
