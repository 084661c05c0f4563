//! rumqttd embedded in the process, for development and tests.
//!
//! rumqttd 0.20 cannot be stopped and does not report the port it bound, so
//! this wrapper picks the port itself, probes the address before handing it
//! over (a clear "address in use" beats a silent log line), and waits until the
//! listener accepts TCP before returning.
//!
//! # Secured mode
//!
//! [`EmbeddedBroker::start_secured`] enforces [`crate::acl`]. rumqttd 0.20 can
//! only *authenticate*: `ConnectionSettings::external_auth` (a
//! `(client_id, username, password) -> bool` hook) or a static `auth` map,
//! checked once per CONNECT. It has no per-client authorisation of topics: the
//! router acknowledges every syntactically valid SUBSCRIBE with the requested
//! QoS and routes every PUBLISH, and its only topic restriction
//! (`validate-tenant-prefix`, off by default) needs TLS client certificates and
//! forces all topics under `/tenants/{org}/`. Nor does the hook tell the router
//! who logged in, or let a login be withdrawn later.
//!
//! So the secured broker is two layers:
//!
//! * rumqttd on a loopback port, whose `external_auth` admits only CONNECTs
//!   carrying a random token made at start and known only to the front (a local
//!   process bypassing the front gets nowhere, whatever logins it knows);
//! * an MQTT 3.1.1-aware front on the public address (plain TCP, or TLS with
//!   [`ServerTls`]), which reads every packet the client sends with rumqttc's
//!   codec and
//!   - checks the login with the [`CredentialStore`] and refuses a CONNECT with
//!     no or wrong credentials, a protocol other than 3.1.1, or a last will on a
//!     topic the login may not publish (CONNACK 5, "not authorised"; 1 for the
//!     protocol; 3, "server unavailable", when the store cannot answer), without
//!     opening the upstream;
//!   - re-checks the login every [`SecuredOptions::recheck_every`] and closes the
//!     connection once the store no longer accepts it (revoked or rotated);
//!   - namespaces the client id by login (`g.{op}.{st}.{gate}.{id}` /
//!     `v.{id}`), so a gate cannot take over a validator's session by reusing
//!     its client id;
//!   - drops a PUBLISH the login may not make, still acknowledging it
//!     (PUBACK, or PUBREC then PUBCOMP) as Mosquitto does for MQTT 3.1.1;
//!   - answers a SUBSCRIBE's forbidden filters with return code 0x80 and
//!     forwards only the allowed ones, merging rumqttd's SUBACK back in order.
//!
//!   Everything the broker sends passes through unchanged (bar merged SUBACKs):
//!   once a subscription is allowed, everything it can match is readable.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::acl::{self, Identity};
use crate::credentials::CredentialStore;
use crate::error::{MqttError, Result};
use crate::mqtt_url::MqttUrl;
use crate::tls::ServerTls;
use crate::MAX_PACKET_BYTES as MAX_PACKET;

/// Where the dev broker listens: off 1883 so it never collides with a system broker.
pub const DEFAULT_EMBEDDED_ADDR: &str = "127.0.0.1:18830";

/// How long `start` waits for the listener to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts for a port-0 start; another process may grab the free port we picked
/// between probing and rumqttd binding it.
const PORT_ATTEMPTS: usize = 5;
/// How often the secured broker re-checks each live connection's login by default.
pub const DEFAULT_RECHECK: Duration = Duration::from_secs(10);

/// How [`EmbeddedBroker::start_secured_with`] runs its front.
#[derive(Debug, Clone)]
pub struct SecuredOptions {
    /// Serve TLS with this certificate and key; `None` is plain TCP (the loopback demo).
    pub tls: Option<ServerTls>,
    /// How often each live connection's login is checked again, so a revoked or rotated
    /// credential also ends the sessions opened with it. Each connection re-checks on its
    /// own schedule, offset at random, so the store sees an even trickle rather than bursts.
    pub recheck_every: Duration,
}

impl Default for SecuredOptions {
    fn default() -> Self {
        Self { tls: None, recheck_every: DEFAULT_RECHECK }
    }
}

/// A running rumqttd broker (MQTT 3.1.1, optionally also MQTT 5 on a second port).
///
/// The broker runs on background threads for the rest of the process:
/// rumqttd 0.20 has no shutdown, so dropping this value does not stop it.
#[derive(Debug)]
pub struct EmbeddedBroker {
    addr: SocketAddr,
    v5_addr: Option<SocketAddr>,
    tls: bool,
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
            let targets: Vec<SocketAddr> = std::iter::once(addr).chain(v5_addr).collect();
            match launch(config(addr, v5_addr)?, &targets) {
                Ok(()) => {
                    tracing::info!(%addr, ?v5_addr, "embedded MQTT broker listening");
                    return Ok(Self { addr, v5_addr, tls: false });
                }
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "embedded broker did not start");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| MqttError::Broker("did not start".into())))
    }

    /// Starts an MQTT 3.1.1 broker on `bind` that authenticates every client against
    /// `store` and enforces the topic ACL of [`crate::acl`] (see the module docs for how):
    /// gates log in as `{operator}/{station}/{gate}`, validators and other platform
    /// services as `validator`, each with its current password; anyone else is refused.
    /// With `tls` it serves MQTT over TLS only.
    ///
    /// Like [`Self::start`] it blocks until the listener accepts, and runs for the rest of
    /// the process (on its own runtime threads, which is also where `store` is called).
    /// No MQTT 5 listener: the front speaks 3.1.1 only.
    pub fn start_secured(bind: SocketAddr, store: Arc<dyn CredentialStore>, tls: Option<ServerTls>) -> Result<Self> {
        Self::start_secured_with(bind, store, SecuredOptions { tls, ..Default::default() })
    }

    /// [`Self::start_secured`] with every option.
    pub fn start_secured_with(bind: SocketAddr, store: Arc<dyn CredentialStore>, opts: SecuredOptions) -> Result<Self> {
        if opts.recheck_every.is_zero() {
            return Err(MqttError::InvalidOptions("recheck_every must be above zero".into()));
        }
        // Bound here, before anything else starts, so a taken address fails at once
        // and port 0 resolves without a probe-then-bind race.
        let listener =
            TcpListener::bind(bind).map_err(|e| MqttError::Broker(format!("cannot listen on {bind}: {e}")))?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;

        // What the front presents upstream instead of the client's password. Never leaves
        // this process, so rumqttd's own port admits nobody but the front.
        let token: Arc<str> = crate::random_password().into();
        let mut inner = None;
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            let upstream = concrete((Ipv4Addr::LOCALHOST, 0).into())?;
            match launch(secured_config(upstream, token.clone())?, &[upstream]) {
                Ok(()) => {
                    inner = Some(upstream);
                    break;
                }
                Err(e) => {
                    tracing::warn!(addr = %upstream, error = %e, "embedded broker did not start");
                    last = Some(e);
                }
            }
        }
        let inner = inner.ok_or_else(|| last.unwrap_or_else(|| MqttError::Broker("did not start".into())))?;

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kippu-mqtt-acl")
            .enable_all()
            .build()?;
        let tls = opts.tls.is_some();
        let front = Arc::new(front::Front {
            upstream: inner,
            token,
            store,
            recheck_every: opts.recheck_every,
            tls: opts.tls.as_ref().map(ServerTls::acceptor),
        });
        std::thread::Builder::new().name("kippu-mqtt-acl-accept".into()).spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => front::accept_loop(listener, front).await,
                    Err(e) => tracing::error!(error = %e, "secured broker front cannot listen"),
                }
            })
        })?;
        tracing::info!(%addr, upstream = %inner, tls, "secured embedded MQTT broker listening");
        Ok(Self { addr, v5_addr: None, tls })
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

    /// `mqtt://host:port` of the 3.1.1 listener (`mqtts://` when it serves TLS),
    /// connectable from this host (an unspecified bind address becomes loopback).
    pub fn url(&self) -> String {
        let a = connectable(self.addr);
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if a.is_ipv6() {
            format!("{scheme}://[{}]:{}", a.ip(), a.port())
        } else {
            format!("{scheme}://{a}")
        }
    }

    /// [`Self::url`] parsed. For a TLS broker it trusts the webpki roots; give it the
    /// broker's CA with [`MqttUrl::with_tls`].
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

/// Runs rumqttd with `config` and waits until every one of `listeners` accepts TCP.
fn launch(config: rumqttd::Config, listeners: &[SocketAddr]) -> Result<()> {
    let thread: JoinHandle<()> = std::thread::Builder::new().name("kippu-mqttd".into()).spawn(move || {
        let mut broker = rumqttd::Broker::new(config);
        // `start` blocks while the listeners run and returns when they all died
        // (e.g. bind failed); the waiter below notices the thread ending.
        if let Err(e) = broker.start() {
            tracing::error!(error = %e, "embedded broker stopped");
        }
    })?;
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut pending: Vec<SocketAddr> = listeners.iter().copied().map(connectable).collect();
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
                "max_payload_size": MAX_PACKET,
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

/// [`config`] for the upstream of the secured broker: every CONNECT must carry the
/// front's `token` as its password.
fn secured_config(addr: SocketAddr, token: Arc<str>) -> Result<rumqttd::Config> {
    let mut config = config(addr, None)?;
    for server in config.v4.iter_mut().flat_map(|servers| servers.values_mut()) {
        let token = token.clone();
        server.set_auth_handler(move |_client_id: String, _username: String, password: String| {
            std::future::ready(front::same_token(&token, &password))
        });
    }
    Ok(config)
}

/// The MQTT-aware TCP front of the secured broker (see the module docs).
mod front {
    use bytes::{Bytes, BytesMut};
    use rumqttc::mqttbytes::v4::{
        ConnAck, ConnectReturnCode, Login, Packet, PubAck, PubComp, PubRec, SubAck, Subscribe, SubscribeReasonCode,
    };
    use rumqttc::mqttbytes::{self, Protocol, QoS};
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;

    use super::*;

    /// How long a new connection may take to finish TLS and send its CONNECT.
    const CONNECT_WAIT: Duration = Duration::from_secs(10);
    /// How long a refused client gets to read its CONNACK before the socket closes.
    const REFUSE_LINGER: Duration = Duration::from_secs(1);

    // MQTT control packet types (high nibble of the first byte).
    const CONNECT: u8 = 1;
    const PUBLISH: u8 = 3;
    const PUBREL: u8 = 6;
    const SUBSCRIBE: u8 = 8;
    const SUBACK: u8 = 9;

    type Io<T> = std::io::Result<T>;

    /// What every connection of the front shares.
    pub(super) struct Front {
        /// rumqttd's loopback listener.
        pub(super) upstream: SocketAddr,
        /// The password the front presents upstream (see [`secured_config`]).
        pub(super) token: Arc<str>,
        pub(super) store: Arc<dyn CredentialStore>,
        pub(super) recheck_every: Duration,
        pub(super) tls: Option<tokio_rustls::TlsAcceptor>,
    }

    pub(super) async fn accept_loop(listener: TcpListener, front: Arc<Front>) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    // Scans and verdicts are single small packets: no Nagle delay on either hop.
                    let _ = stream.set_nodelay(true);
                    let front = front.clone();
                    tokio::spawn(async move {
                        let served = match &front.tls {
                            None => front.serve(stream).await,
                            Some(acceptor) => match tokio::time::timeout(CONNECT_WAIT, acceptor.accept(stream)).await {
                                Ok(Ok(tls)) => front.serve(tls).await,
                                Ok(Err(e)) => Err(e),
                                Err(_) => Err(invalid("no TLS handshake in time")),
                            },
                        };
                        if let Err(e) = served {
                            tracing::debug!(%peer, error = %e, "MQTT connection closed");
                        }
                    });
                }
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "secured broker front cannot accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Whether `password` is the front's upstream token (constant time: the length is public).
    pub(super) fn same_token(token: &str, password: &str) -> bool {
        token.len() == password.len() && token.bytes().zip(password.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    /// A login the store accepted, kept (in memory only) for the periodic re-check.
    struct Session {
        identity: Identity,
        username: String,
        password: String,
    }

    impl Front {
        async fn serve<S: AsyncRead + AsyncWrite + Send + Unpin + 'static>(&self, mut client: S) -> Io<()> {
            let mut buf = BytesMut::with_capacity(4 * 1024);
            let first = match tokio::time::timeout(CONNECT_WAIT, read_frame(&mut client, &mut buf)).await {
                Ok(first) => first?,
                Err(_) => return Err(invalid("no CONNECT in time")),
            };
            let Some(first) = first else { return Ok(()) };
            if packet_type(&first) != CONNECT {
                return Err(invalid("first packet is not CONNECT"));
            }
            // Checked on the raw bytes: the 3.1.1 codec would misread a v5 CONNECT.
            if protocol_level(&first) != Some(4) {
                return refuse(client, ConnectReturnCode::RefusedProtocolVersion).await;
            }
            let mut connect = match parse(&first) {
                Ok(Packet::Connect(c)) if c.protocol == Protocol::V4 => c,
                Ok(_) => return Err(invalid("first packet is not a 3.1.1 CONNECT")),
                Err(e) => return Err(invalid(e)),
            };
            let Some(Login { username, password }) = connect.login.take() else {
                tracing::info!(client_id = %connect.client_id, "MQTT login refused: no credentials");
                return refuse(client, ConnectReturnCode::NotAuthorized).await;
            };
            let identity = match self.check(&username, &password).await {
                Ok(Some(identity)) => identity,
                Ok(None) => {
                    tracing::info!(client_id = %connect.client_id, %username, "MQTT login refused");
                    return refuse(client, ConnectReturnCode::NotAuthorized).await;
                }
                Err(e) => {
                    tracing::error!(%username, error = %e, "MQTT login not checked");
                    return refuse(client, ConnectReturnCode::ServiceUnavailable).await;
                }
            };
            if let Some(will) = &connect.last_will {
                if !acl::may_publish(&identity, &will.topic) {
                    tracing::warn!(%identity, topic = %will.topic, "MQTT login refused: last will on a forbidden topic");
                    return refuse(client, ConnectReturnCode::NotAuthorized).await;
                }
            }
            if !connect.client_id.is_empty() {
                connect.client_id = namespaced_client_id(&identity, &connect.client_id);
            }
            connect.login = Some(Login::new(username.clone(), &*self.token));
            let mut broker = match TcpStream::connect(self.upstream).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(upstream = %self.upstream, error = %e, "embedded broker unreachable");
                    let _ = refuse(client, ConnectReturnCode::ServiceUnavailable).await;
                    return Err(e);
                }
            };
            let _ = broker.set_nodelay(true);
            broker.write_all(&encode(&Packet::Connect(connect))?).await?;
            tracing::debug!(%identity, "MQTT login accepted");
            let session = Session { identity, username, password };
            tokio::select! {
                r = relay(client, buf, broker, &session.identity) => r,
                () = self.watch(&session) => {
                    // Dropping both sockets without DISCONNECT: rumqttd fires the last will,
                    // so the fleet page shows the gate offline.
                    tracing::warn!(identity = %session.identity, "MQTT login no longer valid; connection closed");
                    Ok(())
                }
            }
        }

        /// The store's answer, held to the identity the username names: the ACL (here and in
        /// Mosquitto's `%u` patterns) is keyed by username, so a store must not map one
        /// username to another's rights.
        async fn check(&self, username: &str, password: &str) -> Result<Option<Identity>, crate::StoreUnavailable> {
            let identity = self.store.authenticate(username, password).await?;
            Ok(identity.filter(|id| {
                let consistent = id.username().as_deref() == Some(username);
                if !consistent {
                    tracing::error!(%username, identity = %id, "credential store named another identity; refused");
                }
                consistent
            }))
        }

        /// Returns once the session's login stops checking out (revoked, rotated, or now
        /// another identity). While the store cannot answer, the session stays: it was
        /// valid, and cutting every gate off whenever the database blinks helps nobody.
        async fn watch(&self, session: &Session) {
            // A random first delay spreads the re-checks of connections made together.
            let offset = self.recheck_every.mul_f64(rand::random::<f64>());
            let mut every = tokio::time::interval_at(tokio::time::Instant::now() + offset, self.recheck_every);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                match self.check(&session.username, &session.password).await {
                    Ok(Some(identity)) if identity == session.identity => {}
                    Ok(_) => return,
                    Err(e) => tracing::warn!(identity = %session.identity, error = %e, "MQTT login not re-checked"),
                }
            }
        }
    }

    /// What the client-facing writer sends next.
    enum Out {
        Bytes(Bytes),
        /// The broker closed: flush and close the client side.
        Close,
    }

    /// Shuttles packets until either side closes, checking what the client sends.
    async fn relay<S: AsyncRead + AsyncWrite + Send + Unpin>(
        client: S,
        mut client_buf: BytesMut,
        broker: TcpStream,
        identity: &Identity,
    ) -> Io<()> {
        let (mut client_rd, client_wr) = tokio::io::split(client);
        let (mut broker_rd, broker_wr) = broker.into_split();
        let (tx, mut rx) = mpsc::channel::<Out>(64);
        // SUBSCRIBEs forwarded with some filters removed: packet id → allowed mask.
        let trimmed: std::sync::Mutex<HashMap<u16, Vec<bool>>> = Default::default();

        let from_client = async {
            let tx = tx.clone();
            let mut broker_wr = BufWriter::new(broker_wr);
            // QoS 2 publishes dropped (and PUBREC'd) here, whose PUBREL we answer.
            let mut dropped_qos2 = HashSet::new();
            loop {
                while let Some(frame) = next_frame(&mut client_buf)? {
                    match packet_type(&frame) {
                        PUBLISH => {
                            let Ok(Packet::Publish(p)) = parse(&frame) else { return Err(invalid("bad PUBLISH")) };
                            if acl::may_publish(identity, &p.topic) {
                                broker_wr.write_all(&frame).await?;
                                continue;
                            }
                            tracing::warn!(%identity, topic = %p.topic, "denied PUBLISH dropped");
                            let ack = match p.qos {
                                QoS::AtMostOnce => continue,
                                QoS::AtLeastOnce => Packet::PubAck(PubAck::new(p.pkid)),
                                QoS::ExactlyOnce => {
                                    dropped_qos2.insert(p.pkid);
                                    Packet::PubRec(PubRec::new(p.pkid))
                                }
                            };
                            send(&tx, &ack).await?;
                        }
                        PUBREL => {
                            let Ok(Packet::PubRel(rel)) = parse(&frame) else { return Err(invalid("bad PUBREL")) };
                            if dropped_qos2.remove(&rel.pkid) {
                                send(&tx, &Packet::PubComp(PubComp::new(rel.pkid))).await?;
                            } else {
                                broker_wr.write_all(&frame).await?;
                            }
                        }
                        SUBSCRIBE => {
                            let Ok(Packet::Subscribe(sub)) = parse(&frame) else {
                                return Err(invalid("bad SUBSCRIBE"));
                            };
                            let allowed: Vec<bool> =
                                sub.filters.iter().map(|f| acl::may_subscribe(identity, &f.path)).collect();
                            for (f, _) in sub.filters.iter().zip(&allowed).filter(|(_, ok)| !**ok) {
                                tracing::warn!(%identity, filter = %f.path, "denied SUBSCRIBE");
                            }
                            if allowed.iter().all(|ok| *ok) {
                                broker_wr.write_all(&frame).await?;
                            } else if !allowed.iter().any(|ok| *ok) {
                                let codes = vec![SubscribeReasonCode::Failure; allowed.len()];
                                send(&tx, &Packet::SubAck(SubAck::new(sub.pkid, codes))).await?;
                            } else {
                                let kept = Subscribe {
                                    pkid: sub.pkid,
                                    filters: sub
                                        .filters
                                        .iter()
                                        .zip(&allowed)
                                        .filter(|(_, ok)| **ok)
                                        .map(|(f, _)| f.clone())
                                        .collect(),
                                };
                                // Recorded before forwarding, so the SUBACK cannot overtake it.
                                trimmed.lock().unwrap_or_else(|e| e.into_inner()).insert(sub.pkid, allowed);
                                broker_wr.write_all(&encode(&Packet::Subscribe(kept))?).await?;
                            }
                        }
                        CONNECT => return Err(invalid("second CONNECT")),
                        _ => broker_wr.write_all(&frame).await?,
                    }
                }
                broker_wr.flush().await?;
                if client_rd.read_buf(&mut client_buf).await? == 0 {
                    // Closed without DISCONNECT: dropping the upstream fires the last will.
                    return Ok(());
                }
            }
        };

        let from_broker = async {
            let mut buf = BytesMut::with_capacity(4 * 1024);
            loop {
                while let Some(frame) = next_frame(&mut buf)? {
                    let out = match packet_type(&frame) {
                        SUBACK => merge_suback(&trimmed, frame)?,
                        _ => frame.freeze(),
                    };
                    tx.send(Out::Bytes(out)).await.map_err(|_| closed())?;
                }
                if broker_rd.read_buf(&mut buf).await? == 0 {
                    tx.send(Out::Close).await.map_err(|_| closed())?;
                    return Ok(());
                }
            }
        };

        let to_client = async {
            let mut client_wr = BufWriter::new(client_wr);
            while let Some(out) = rx.recv().await {
                let mut next = Some(out);
                // Write whatever is queued, then flush once.
                while let Some(out) = next {
                    match out {
                        Out::Bytes(b) => client_wr.write_all(&b).await?,
                        Out::Close => {
                            client_wr.flush().await?;
                            return client_wr.shutdown().await;
                        }
                    }
                    next = rx.try_recv().ok();
                }
                client_wr.flush().await?;
            }
            Ok(())
        };

        tokio::select! {
            r = from_client => r,
            r = async { tokio::try_join!(from_broker, to_client).map(|_| ()) } => r,
        }
    }

    /// Puts the filters removed from a SUBSCRIBE back into its SUBACK, as failures.
    fn merge_suback(trimmed: &std::sync::Mutex<HashMap<u16, Vec<bool>>>, frame: BytesMut) -> Io<Bytes> {
        let Ok(Packet::SubAck(ack)) = parse(&frame) else { return Err(invalid("bad SUBACK from broker")) };
        let Some(allowed) = trimmed.lock().unwrap_or_else(|e| e.into_inner()).remove(&ack.pkid) else {
            return Ok(frame.freeze());
        };
        let mut granted = ack.return_codes.into_iter();
        let codes = allowed
            .iter()
            .map(|ok| {
                if *ok {
                    granted.next().unwrap_or(SubscribeReasonCode::Failure)
                } else {
                    SubscribeReasonCode::Failure
                }
            })
            .collect();
        encode(&Packet::SubAck(SubAck::new(ack.pkid, codes)))
    }

    /// Sends a CONNACK refusal and closes, after giving the client a moment to read it.
    async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(mut client: S, code: ConnectReturnCode) -> Io<()> {
        client.write_all(&encode(&Packet::ConnAck(ConnAck::new(code, false)))?).await?;
        client.shutdown().await?;
        // Closing with unread input would reset the connection and could discard
        // the CONNACK; drain until the client hangs up (or a short while passes).
        let mut sink = [0u8; 512];
        let _ = tokio::time::timeout(REFUSE_LINGER, async {
            while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
        Ok(())
    }

    /// Client ids are per login, so a session can only be taken over by the same login.
    pub(super) fn namespaced_client_id(identity: &Identity, client_id: &str) -> String {
        match identity {
            // Slugs contain no '.', so the first three dots delimit the gate path.
            Identity::Gate(g) => format!("g.{}.{}.{}.{client_id}", g.operator, g.station, g.gate),
            Identity::Validator => format!("v.{client_id}"),
            Identity::Anonymous => format!("a.{client_id}"),
        }
    }

    /// Splits the next complete packet off `buf`, if there is one.
    fn next_frame(buf: &mut BytesMut) -> Io<Option<BytesMut>> {
        match mqttbytes::check(buf.iter(), MAX_PACKET) {
            Ok(header) => Ok(Some(buf.split_to(header.frame_length()))),
            Err(mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(e) => Err(invalid(e)),
        }
    }

    /// Reads until a complete packet is buffered; `None` on a clean close.
    async fn read_frame<R: AsyncRead + Unpin>(rd: &mut R, buf: &mut BytesMut) -> Io<Option<BytesMut>> {
        loop {
            if let Some(frame) = next_frame(buf)? {
                return Ok(Some(frame));
            }
            if rd.read_buf(buf).await? == 0 {
                return if buf.is_empty() { Ok(None) } else { Err(invalid("connection closed mid-packet")) };
            }
        }
    }

    fn packet_type(frame: &[u8]) -> u8 {
        frame[0] >> 4
    }

    /// The protocol level of a CONNECT frame (4 for MQTT 3.1.1, 5 for MQTT 5,
    /// 3 for 3.1), if it carries a known protocol name.
    pub(super) fn protocol_level(frame: &[u8]) -> Option<u8> {
        // Fixed header: type byte, then a 1..4 byte remaining length.
        let length_bytes = frame.iter().skip(1).take(4).position(|b| b & 0x80 == 0)? + 1;
        let rest = frame.get(1 + length_bytes..)?;
        let name_len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
        let name = rest.get(2..2 + name_len)?;
        matches!(name, b"MQTT" | b"MQIsdp").then(|| rest.get(2 + name_len).copied()).flatten()
    }

    fn parse(frame: &BytesMut) -> std::result::Result<Packet, mqttbytes::Error> {
        Packet::read(&mut frame.clone(), MAX_PACKET)
    }

    fn encode(packet: &Packet) -> Io<Bytes> {
        let mut out = BytesMut::with_capacity(packet.size());
        packet.write(&mut out, usize::MAX).map_err(invalid)?;
        Ok(out.freeze())
    }

    async fn send(tx: &mpsc::Sender<Out>, packet: &Packet) -> Io<()> {
        tx.send(Out::Bytes(encode(packet)?)).await.map_err(|_| closed())
    }

    fn invalid(e: impl std::fmt::Display) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
    }

    fn closed() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client side closed")
    }
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
    fn secured_start_checks_options_and_address() {
        let store: Arc<dyn CredentialStore> = Arc::new(crate::MemoryCredentials::new());
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let zero = SecuredOptions { recheck_every: Duration::ZERO, ..Default::default() };
        let e = EmbeddedBroker::start_secured_with(any, store.clone(), zero).unwrap_err();
        assert!(matches!(e, MqttError::InvalidOptions(_)), "{e}");
        let b = EmbeddedBroker::start_secured(any, store.clone(), None).unwrap();
        assert_ne!(b.addr().port(), 0);
        assert!(b.v5_addr().is_none());
        assert!(b.url().starts_with("mqtt://127.0.0.1:"));
        let e = EmbeddedBroker::start_secured(b.addr(), store, None).unwrap_err().to_string();
        assert!(e.contains("cannot listen"), "{e}");
    }

    #[tokio::test]
    async fn upstream_admits_only_the_fronts_token() {
        let c = secured_config("127.0.0.1:1".parse().unwrap(), Arc::from("the-token")).unwrap();
        let servers = c.v4.unwrap();
        let server = servers.values().next().unwrap();
        let auth = server.connections.external_auth.clone().expect("auth hook");
        assert!(auth("c".into(), "validator".into(), "the-token".into()).await);
        assert!(!auth("c".into(), "validator".into(), "the-tokeN".into()).await);
        assert!(!auth("c".into(), "validator".into(), "".into()).await);
        assert!(front::same_token("abc", "abc") && !front::same_token("abc", "abcd"));
    }

    #[test]
    fn connect_protocol_level_is_read_from_the_raw_frame() {
        use bytes::BytesMut;
        use rumqttc::mqttbytes::v4::{Connect, Packet};
        let mut frame = BytesMut::new();
        Packet::Connect(Connect::new("c")).write(&mut frame, usize::MAX).unwrap();
        assert_eq!(front::protocol_level(&frame), Some(4));
        let mut v5 = frame.to_vec();
        v5[8] = 5;
        assert_eq!(front::protocol_level(&v5), Some(5));
        // MQTT 3.1: "MQIsdp", level 3.
        let v3 = [0x10, 12, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 2, 0, 5];
        assert_eq!(front::protocol_level(&v3), Some(3));
        assert_eq!(front::protocol_level(&[0x10, 4, 0, 4, b'X', b'Y']), None);
        assert_eq!(front::protocol_level(&[0x10]), None);
    }

    #[test]
    fn client_ids_are_namespaced_per_login() {
        let g = kippu_domain::topics::GatePath::new("metro", "central", "g1").unwrap();
        assert_eq!(front::namespaced_client_id(&Identity::Gate(g), "x"), "g.metro.central.g1.x");
        assert_eq!(front::namespaced_client_id(&Identity::Validator, "x"), "v.x");
    }

    #[test]
    fn config_literal_matches_rumqttd() {
        let c = config("127.0.0.1:1".parse().unwrap(), Some("127.0.0.1:2".parse().unwrap())).unwrap();
        assert!(c.v4.is_some() && c.v5.is_some());
        assert!(config("127.0.0.1:1".parse().unwrap(), None).unwrap().v5.is_none());
    }
}
