//! Broker security (issue 7): logins and topic ACLs, on both brokers Kippu
//! supports. Every scenario runs as `<name>::embedded` against a fresh
//! [`EmbeddedBroker::start_secured`] with a [`MemoryCredentials`] store, and as
//! `<name>::mosquitto` against a Mosquitto child started with the shipped
//! `deploy/mosquitto/mosquitto.conf` (TLS; only ports and file paths rewritten), its
//! password file and ACL written by [`kippu_mqtt::write_mosquitto_files`] from the
//! same random logins. The Mosquitto run is skipped, with a note, when
//! `/usr/sbin/mosquitto` is absent.
//!
//! The brokers differ in one visible way: the embedded one refuses a forbidden
//! SUBSCRIBE (return code 0x80), Mosquitto 2 acknowledges it and then delivers
//! nothing the login may not read. The scenarios accept either, but always
//! check what actually arrives.
//!
//! Also here: issuing, rotating and revoking logins while clients are connected, on
//! both brokers (Mosquitto reloaded with SIGHUP).

// Shared with tests/it; this crate does not use every helper.
#[allow(dead_code)]
mod support;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use kippu_domain::topics::GatePath;
use kippu_mqtt::acl::{self, Credentials, Identity};
use kippu_mqtt::{
    mosquitto_password_line, CredentialStore, EmbeddedBroker, MemoryCredentials, MqttUrl, SecuredOptions,
    StoreUnavailable,
};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, LastWill, Packet, Publish, QoS, SubscribeFilter,
    SubscribeReasonCode,
};
use support::{Certs, Mosquitto};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long anything that should arrive may take.
const WAIT: Duration = Duration::from_secs(5);
/// How long we watch for something that must not arrive, after a later message
/// on the same path already did.
const QUIET: Duration = Duration::from_millis(700);

/// Runs a scenario on both brokers as `<name>::embedded` and `<name>::mosquitto`.
macro_rules! on_both_brokers {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$name(super::Broker::embedded().await).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mosquitto() {
                let Some(broker) = super::Broker::mosquitto() else { return };
                super::$name(broker).await
            }
        }
    )*};
}

on_both_brokers!(
    logins_are_issued_rotated_and_revoked_live,
    anonymous_and_wrong_passwords_are_refused,
    gate_cannot_publish_another_gates_scan,
    gate_receives_only_its_own_verdicts,
    validator_serves_scans_through_shared_subscription,
    last_will_on_another_gates_status_never_fires,
);

fn gate_a() -> GatePath {
    GatePath::new("metro", "central", "g1").unwrap()
}

fn gate_b() -> GatePath {
    GatePath::new("metro", "central", "g2").unwrap()
}

fn gate_c() -> GatePath {
    GatePath::new("metro", "central", "g3").unwrap()
}

/// The logins of every scenario: random passwords, issued once per test process.
struct Logins {
    a: Credentials,
    b: Credentials,
    validator: Credentials,
}

fn logins() -> &'static Logins {
    static LOGINS: OnceLock<Logins> = OnceLock::new();
    LOGINS.get_or_init(|| {
        // Issued by a store only to get the passwords; each broker gets them below.
        let issuer = MemoryCredentials::new();
        Logins {
            a: issuer.issue(&Identity::Gate(gate_a())).unwrap(),
            b: issuer.issue(&Identity::Gate(gate_b())).unwrap(),
            validator: issuer.issue(&Identity::Validator).unwrap(),
        }
    })
}

fn login_a() -> Credentials {
    logins().a.clone()
}

fn login_b() -> Credentials {
    logins().b.clone()
}

fn login_validator() -> Credentials {
    logins().validator.clone()
}

/// A store holding `logins`, as the platform's would.
fn store_of(logins: &[Credentials]) -> Arc<MemoryCredentials> {
    let store = Arc::new(MemoryCredentials::new());
    for l in logins {
        store.set_password(&l.username, &l.password).unwrap();
    }
    store
}

/// The Mosquitto password-file lines of `logins`, as Kippu writes them.
fn lines_of(logins: &[Credentials]) -> Vec<String> {
    logins.iter().map(|l| mosquitto_password_line(&l.username, &l.password)).collect()
}

// ---------------------------------------------------------------- scenarios

/// A new gate is issued a login, gate A's password is rotated and gate B's login revoked,
/// while A, B and a validator are connected: C gets in, A only with its new password, B
/// not at all; the sessions opened with A's old and B's revoked login are closed (the
/// embedded broker re-checks every live login, Mosquitto 2.0 re-checks connected clients
/// when SIGHUP reloads its password file); the validator, whose login did not change,
/// stays connected.
async fn logins_are_issued_rotated_and_revoked_live(broker: Broker) {
    let c = Credentials { username: gate_c().key(), password: kippu_mqtt::random_password() };
    match broker.connect("acl-c-early", Some(&c)).await {
        Err(ConnectionError::ConnectionRefused(_)) => {}
        other => panic!("{}: gate C got in before it was issued a login: {:?}", broker.name, other.err()),
    }
    let mut validator = broker.login("acl-validator", &login_validator()).await;
    let mut a_old = broker.login("acl-a-old", &login_a()).await;
    let mut b = broker.login("acl-b", &login_b()).await;

    let a_new = Credentials { username: login_a().username, password: kippu_mqtt::random_password() };
    let changed = Instant::now();
    broker.set_logins(&[a_new.clone(), login_validator(), c.clone()]);

    // The sessions of the old logins end, without the clients doing anything.
    let a_closed = a_old.closed_within(WAIT).await;
    let b_closed = b.closed_within(WAIT).await;
    assert!(
        a_closed && b_closed,
        "{}: live sessions of A's old (closed {a_closed}) and B's revoked (closed {b_closed}) login",
        broker.name
    );
    eprintln!("{}: old sessions closed {:?} after the change", broker.name, changed.elapsed());

    broker.connect("acl-c", Some(&c)).await.expect("the newly issued gate logs in");
    broker.connect("acl-a-new", Some(&a_new)).await.expect("A logs in with its new password");
    for (id, login, what) in
        [("acl-a-stale", login_a(), "A's old password"), ("acl-b-again", login_b(), "B's revoked login")]
    {
        match broker.connect(id, Some(&login)).await {
            Err(ConnectionError::ConnectionRefused(_)) => {}
            other => panic!("{}: {what} still let in: {:?}", broker.name, other.err()),
        }
    }
    // The validator's session was never interrupted.
    validator.subscribe(&[format!("{}/+/+/+/status", kippu_domain::topics::GATE_ROOT)]).await;
    validator.publish(&gate_c().topic("config"), "still-here", false).await;
}

/// (a) No login, a wrong password, or another identity's password: refused.
async fn anonymous_and_wrong_passwords_are_refused(broker: Broker) {
    let refused = |r: Result<Client, ConnectionError>, what: &str| match r {
        Err(ConnectionError::ConnectionRefused(
            ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword,
        )) => {}
        Err(other) => panic!("{}: {what}: refused, but not with a CONNACK: {other}", broker.name),
        Ok(_) => panic!("{}: {what}: was let in", broker.name),
    };
    let a = login_a();
    let wrong = |user: &str, password: &str| Credentials { username: user.into(), password: password.into() };

    refused(broker.connect("acl-anon", None).await, "anonymous");
    refused(
        broker.connect("acl-wrong", Some(&wrong(&a.username, "0123456789abcdef0123456789abcdef"))).await,
        "wrong password",
    );
    refused(broker.connect("acl-empty", Some(&wrong(&a.username, ""))).await, "empty password");
    refused(
        broker.connect("acl-b-pw", Some(&wrong(&a.username, &login_b().password))).await,
        "gate B's password for A",
    );
    refused(broker.connect("acl-v-pw", Some(&wrong("validator", &a.password))).await, "gate A's password as validator");
    let elsewhere = MemoryCredentials::new().issue(&Identity::Gate(gate_a())).unwrap();
    refused(broker.connect("acl-other", Some(&elsewhere)).await, "a login another platform issued");
    refused(broker.connect("acl-unknown", Some(&wrong("metro/central/g9", &a.password))).await, "a gate with no login");

    // The right logins get in, so the refusals above are about the credentials.
    broker.connect("acl-a", Some(&a)).await.expect("gate A logs in");
    broker.connect("acl-v", Some(&login_validator())).await.expect("validator logs in");
}

/// (b) A gate's publish on another gate's scan topic never reaches the
/// validators; its own scan does. A validator cannot forge scans either.
async fn gate_cannot_publish_another_gates_scan(broker: Broker) {
    let mut validator = broker.login("acl-validator", &login_validator()).await;
    let codes = validator.subscribe(&["kippu/v1/gates/+/+/+/scan".into()]).await;
    assert_eq!(codes, [SubscribeReasonCode::Success(QoS::AtLeastOnce)], "{}", broker.name);

    let mut a = broker.login("acl-gate-a", &login_a()).await;
    // Forged first: if either got through, it would arrive before the genuine scan.
    a.publish(&gate_b().topic("scan"), "forged-by-a", false).await;
    validator.publish(&gate_a().topic("scan"), "forged-by-validator", false).await;
    a.publish(&gate_a().topic("scan"), "own-scan", false).await;

    let mut got = validator.receive_until(&gate_a().topic("scan"), "own-scan").await;
    got.extend(validator.quiet(QUIET).await);
    let forged: Vec<_> = got.iter().filter(|p| &p.payload[..] != b"own-scan").map(describe).collect();
    assert!(forged.is_empty(), "{}: forged scans delivered: {forged:?}", broker.name);
}

/// (c) Gate A cannot read gate B's verdicts, not even through wildcards, but
/// gets its own.
async fn gate_receives_only_its_own_verdicts(broker: Broker) {
    let mut a = broker.login("acl-gate-a", &login_a()).await;
    let failure = SubscribeReasonCode::Failure;
    let granted = SubscribeReasonCode::Success(QoS::AtLeastOnce);

    let codes = a.subscribe(&[gate_b().topic("verdict")]).await;
    if broker.refuses_forbidden_subscribe {
        assert_eq!(codes, [failure], "{}: B's verdict", broker.name);
    }
    let mixed = [
        gate_b().topic("verdict"),
        gate_a().topic("verdict"),
        "kippu/v1/gates/#".into(),
        "$share/validators/kippu/v1/gates/+/+/+/scan".into(),
    ];
    let codes = a.subscribe(&mixed).await;
    assert_eq!(codes.len(), mixed.len(), "{}", broker.name);
    assert_eq!(codes[1], granted, "{}: own verdict", broker.name);
    if broker.refuses_forbidden_subscribe {
        assert_eq!(codes, [failure, granted, failure, failure], "{}", broker.name);
    }

    // B's verdict first: if it leaked, it would arrive before A's.
    let mut validator = broker.login("acl-validator", &login_validator()).await;
    let mut b = broker.login("acl-gate-b", &login_b()).await;
    b.subscribe(&[gate_b().topic("verdict")]).await;
    validator.publish(&gate_b().topic("verdict"), "for-b", false).await;
    validator.publish(&gate_a().topic("verdict"), "for-a", false).await;
    // A scan from B must not reach A through `kippu/v1/gates/#` or the share either.
    b.publish(&gate_b().topic("scan"), "scan-b", false).await;
    validator.publish(&gate_a().topic("verdict"), "for-a-2", false).await;

    let mut got = a.receive_until(&gate_a().topic("verdict"), "for-a-2").await;
    got.extend(a.quiet(QUIET).await);
    let leaked: Vec<_> = got.iter().filter(|p| p.topic != gate_a().topic("verdict")).map(describe).collect();
    assert!(leaked.is_empty(), "{}: gate A received {leaked:?}", broker.name);
    assert!(got.iter().any(|p| &p.payload[..] == b"for-a"), "{}: first verdict for A lost", broker.name);

    // And B did get its own (positive control for the publish above).
    b.receive_until(&gate_b().topic("verdict"), "for-b").await;
}

/// (d) A validator logged in with its credentials receives scans through
/// `$share/validators/...`, answers with verdicts, pushes retained config, and
/// reads retained gate status.
async fn validator_serves_scans_through_shared_subscription(broker: Broker) {
    let mut validator = broker.login("acl-validator", &login_validator()).await;
    let codes = validator.subscribe(&[kippu_domain::topics::scan_filter(true)]).await;
    assert_eq!(codes, [SubscribeReasonCode::Success(QoS::AtLeastOnce)], "{}", broker.name);

    let mut a = broker.login("acl-gate-a", &login_a()).await;
    a.subscribe(&[gate_a().topic("verdict")]).await;
    a.publish(&gate_a().topic("status"), "online", true).await;
    a.publish(&gate_a().topic("scan"), "scan-1", false).await;
    validator.receive_until(&gate_a().topic("scan"), "scan-1").await;
    validator.publish(&gate_a().topic("verdict"), "verdict-1", false).await;
    a.receive_until(&gate_a().topic("verdict"), "verdict-1").await;

    // Retained config reaches the gate when it subscribes later.
    validator.publish(&gate_a().topic("config"), "config-1", true).await;
    a.subscribe(&[gate_a().topic("config")]).await;
    a.receive_until(&gate_a().topic("config"), "config-1").await;

    // Retained status reaches a status watcher with validator credentials.
    let mut watcher = broker.login("acl-fleet", &login_validator()).await;
    let codes = watcher.subscribe(&["kippu/v1/gates/+/+/+/status".into()]).await;
    assert_eq!(codes, [SubscribeReasonCode::Success(QoS::AtLeastOnce)], "{}", broker.name);
    watcher.receive_until(&gate_a().topic("status"), "online").await;
}

/// A gate whose last will targets another gate's status is refused at CONNECT
/// (embedded) or its will is dropped when it fires (Mosquitto); either way the
/// status watcher never sees it. Its own will does arrive.
async fn last_will_on_another_gates_status_never_fires(broker: Broker) {
    let mut watcher = broker.login("acl-fleet", &login_validator()).await;
    watcher.subscribe(&["kippu/v1/gates/+/+/+/status".into()]).await;

    let forged = LastWill::new(gate_b().topic("status"), "forged-offline", QoS::AtLeastOnce, false);
    match broker.connect_with_will("acl-gate-a-forged", &login_a(), forged).await {
        Ok(client) => client.drop_connection(),
        Err(e) => assert!(
            matches!(e, ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized)),
            "{}: {e}",
            broker.name
        ),
    }
    let own = LastWill::new(gate_a().topic("status"), "own-offline", QoS::AtLeastOnce, false);
    let a = broker.connect_with_will("acl-gate-a", &login_a(), own).await.expect("own last will is fine");
    a.drop_connection();

    let mut got = watcher.receive_until(&gate_a().topic("status"), "own-offline").await;
    got.extend(watcher.quiet(QUIET).await);
    let forged: Vec<_> = got.iter().filter(|p| p.topic == gate_b().topic("status")).map(describe).collect();
    assert!(forged.is_empty(), "{}: forged will delivered: {forged:?}", broker.name);
}

/// The secured embedded broker speaks MQTT 3.1.1 only: an MQTT 5 client is
/// refused even with valid credentials, rather than let past the ACL front.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secured_embedded_broker_refuses_mqtt5() {
    let broker = Broker::embedded().await;
    let login = login_validator();
    let mut options = rumqttc::v5::MqttOptions::new("acl-v5", &broker.url.host, broker.url.port);
    options.set_credentials(&login.username, &login.password);
    let (_client, mut eventloop) = rumqttc::v5::AsyncClient::new(options, 8);
    let first = tokio::time::timeout(WAIT, eventloop.poll()).await.expect("an answer in time");
    assert!(
        !matches!(first, Ok(rumqttc::v5::Event::Incoming(rumqttc::v5::Incoming::ConnAck(ref ack)))
            if ack.code == rumqttc::v5::mqttbytes::v5::ConnectReturnCode::Success),
        "MQTT 5 client let in: {first:?}"
    );
}

/// A credential store that can be taken down, as a database can.
struct Flaky {
    inner: Arc<MemoryCredentials>,
    down: AtomicBool,
}

#[async_trait::async_trait]
impl CredentialStore for Flaky {
    async fn authenticate(&self, username: &str, password: &str) -> Result<Option<Identity>, StoreUnavailable> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreUnavailable("test outage".into()));
        }
        self.inner.authenticate(username, password).await
    }
}

/// While the store cannot answer, the embedded broker refuses new logins with "server
/// unavailable" (not "not authorised": nothing is known to be wrong) and keeps the
/// sessions that logged in before; once it answers again, re-checks resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_refuses_new_logins_but_keeps_live_ones() {
    let inner = store_of(&[login_a(), login_validator()]);
    let store = Arc::new(Flaky { inner: inner.clone(), down: AtomicBool::new(false) });
    let opts = SecuredOptions { recheck_every: RECHECK, ..Default::default() };
    let front_store = store.clone();
    let b = tokio::task::spawn_blocking(move || {
        EmbeddedBroker::start_secured_with("127.0.0.1:0".parse().unwrap(), front_store, opts)
    })
    .await
    .unwrap()
    .unwrap();
    let broker = Broker {
        name: "embedded",
        url: b.mqtt_url(),
        refuses_forbidden_subscribe: true,
        logins: LoginsAt::Store(inner),
    };
    let mut live = broker.login("acl-a", &login_a()).await;

    store.down.store(true, Ordering::SeqCst);
    match broker.connect("acl-v", Some(&login_validator())).await {
        Err(ConnectionError::ConnectionRefused(ConnectReturnCode::ServiceUnavailable)) => {}
        other => panic!("a login during the outage: {:?}", other.err()),
    }
    assert!(!live.closed_within(RECHECK * 5).await, "a live session was cut for the store's outage");
    live.publish(&gate_a().topic("status"), "online", false).await;

    store.down.store(false, Ordering::SeqCst);
    broker.set_logins(&[login_validator()]);
    assert!(live.closed_within(WAIT).await, "revoked once the store answers again");
}

/// The ACL file shipped for Mosquitto is the one the model generates.
#[test]
fn shipped_acl_file_matches_the_model() {
    let shipped = std::fs::read_to_string(support::deploy_dir().join("kippu.acl")).unwrap();
    assert_eq!(shipped, acl::mosquitto_acl(), "regenerate deploy/mosquitto/kippu.acl from acl::mosquitto_acl()");
    let conf = std::fs::read_to_string(support::deploy_dir().join("mosquitto.conf")).unwrap();
    let setting = |key: &str| conf.lines().find(|l| l.split_whitespace().next() == Some(key)).map(str::trim);
    assert_eq!(setting("allow_anonymous"), Some("allow_anonymous false"));
    assert!(setting("password_file").is_some() && setting("acl_file").is_some() && setting("pid_file").is_some());
    // Every listener serves TLS: passwords travel in CONNECT.
    let listeners = conf.lines().filter(|l| l.split_whitespace().next() == Some("listener")).count();
    assert_eq!(listeners, 1, "one listener, with the certificate after it");
    assert!(setting("certfile").is_some() && setting("keyfile").is_some());
    assert_eq!(setting("set_tcp_nodelay"), Some("set_tcp_nodelay true"));
}

fn describe(p: &Publish) -> String {
    format!("{} {:?}", p.topic, String::from_utf8_lossy(&p.payload))
}

// ---------------------------------------------------------------- brokers

struct Broker {
    name: &'static str,
    /// Where clients connect (with TLS settings for Mosquitto).
    url: MqttUrl,
    /// The embedded broker answers forbidden filters with 0x80; Mosquitto 2
    /// grants them and filters delivery.
    refuses_forbidden_subscribe: bool,
    logins: LoginsAt,
}

/// Where a broker's logins live, so a scenario can change them as the platform does.
enum LoginsAt {
    Store(Arc<MemoryCredentials>),
    Mosquitto(Mosquitto),
}

/// How often the embedded broker re-checks live logins in these tests (10 s in production).
const RECHECK: Duration = Duration::from_millis(200);

impl Broker {
    async fn embedded() -> Broker {
        let store = store_of(&[login_a(), login_b(), login_validator()]);
        let opts = SecuredOptions { recheck_every: RECHECK, ..Default::default() };
        let front_store = store.clone();
        let b = tokio::task::spawn_blocking(move || {
            EmbeddedBroker::start_secured_with("127.0.0.1:0".parse().unwrap(), front_store, opts)
        })
        .await
        .unwrap()
        .expect("secured embedded broker starts");
        Broker {
            name: "embedded",
            url: b.mqtt_url(),
            refuses_forbidden_subscribe: true,
            logins: LoginsAt::Store(store),
        }
    }

    fn mosquitto() -> Option<Broker> {
        let certs = Certs::new();
        let m = Mosquitto::start(&certs, lines_of(&[login_a(), login_b(), login_validator()]))?;
        let url = m.url(&certs);
        Some(Broker { name: "mosquitto", url, refuses_forbidden_subscribe: false, logins: LoginsAt::Mosquitto(m) })
    }

    /// Makes `logins` the only valid ones, as the platform does after issuing, rotating or
    /// revoking: the store changes in place, or Mosquitto's files are rewritten and reloaded.
    fn set_logins(&self, logins: &[Credentials]) {
        match &self.logins {
            LoginsAt::Store(store) => {
                // Only those not kept: a login revoked for a moment could close its sessions.
                for old in [login_a(), login_b(), login_validator()] {
                    if !logins.iter().any(|l| l.username == old.username) {
                        store.revoke(&old.username);
                    }
                }
                for l in logins {
                    store.set_password(&l.username, &l.password).unwrap();
                }
            }
            LoginsAt::Mosquitto(m) => {
                m.write_logins(lines_of(logins));
                kippu_mqtt::reload_mosquitto(&m.pid_file()).unwrap();
            }
        }
    }

    async fn connect(&self, id: &str, login: Option<&Credentials>) -> Result<Client, ConnectionError> {
        Client::connect(self, id, login, None).await
    }

    async fn connect_with_will(
        &self,
        id: &str,
        login: &Credentials,
        will: LastWill,
    ) -> Result<Client, ConnectionError> {
        Client::connect(self, id, Some(login), Some(will)).await
    }

    async fn login(&self, id: &str, login: &Credentials) -> Client {
        match self.connect(id, Some(login)).await {
            Ok(c) => c,
            Err(e) => panic!("{}: {} cannot log in: {e}", self.name, login.username),
        }
    }
}

// ---------------------------------------------------------------- client

/// A plain rumqttc client that records what arrives, without reconnecting.
struct Client {
    client: AsyncClient,
    incoming: mpsc::UnboundedReceiver<Packet>,
    /// Publishes that arrived while waiting for an ack.
    early: VecDeque<Publish>,
    task: JoinHandle<()>,
}

impl Client {
    async fn connect(
        broker: &Broker,
        id: &str,
        login: Option<&Credentials>,
        will: Option<LastWill>,
    ) -> Result<Client, ConnectionError> {
        // The URL's options bring the TLS settings; the rest is set here.
        let mut options = broker.url.options(id);
        options.set_keep_alive(Duration::from_secs(5)).set_clean_session(true);
        if let Some(login) = login {
            options.set_credentials(&login.username, &login.password);
        }
        if let Some(will) = will {
            options.set_last_will(will);
        }
        let (client, mut eventloop) = AsyncClient::new(options, 32);
        loop {
            let event = tokio::time::timeout(WAIT, eventloop.poll()).await.expect("CONNACK or an error in time");
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => break,
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        let (tx, incoming) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(packet)) => {
                        if tx.send(packet).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        Ok(Client { client, incoming, early: VecDeque::new(), task })
    }

    async fn next_packet(&mut self, within: Duration) -> Option<Packet> {
        tokio::time::timeout(within, self.incoming.recv()).await.ok().flatten()
    }

    /// Subscribes (QoS 1) and returns the SUBACK's return codes.
    async fn subscribe(&mut self, filters: &[String]) -> Vec<SubscribeReasonCode> {
        let filters = filters.iter().map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
        self.client.subscribe_many(filters).await.unwrap();
        loop {
            match self.next_packet(WAIT).await.expect("SUBACK in time") {
                Packet::SubAck(ack) => return ack.return_codes,
                Packet::Publish(p) => self.early.push_back(p),
                _ => {}
            }
        }
    }

    /// Publishes at QoS 1 and waits for the broker's PUBACK (which both brokers
    /// also send for a publish they drop).
    async fn publish(&mut self, topic: &str, payload: &str, retain: bool) {
        self.client.publish(topic, QoS::AtLeastOnce, retain, payload.as_bytes().to_vec()).await.unwrap();
        loop {
            match self.next_packet(WAIT).await.expect("PUBACK in time") {
                Packet::PubAck(_) => return,
                Packet::Publish(p) => self.early.push_back(p),
                _ => {}
            }
        }
    }

    async fn next_publish(&mut self, within: Duration) -> Option<Publish> {
        if let Some(p) = self.early.pop_front() {
            return Some(p);
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_packet(left).await? {
                Packet::Publish(p) => return Some(p),
                _ => continue,
            }
        }
    }

    /// Everything received up to and including `payload` on `topic`; panics if
    /// that does not arrive within [`WAIT`].
    async fn receive_until(&mut self, topic: &str, payload: &str) -> Vec<Publish> {
        let deadline = Instant::now() + WAIT;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(p) = self.next_publish(left).await else {
                let seen: Vec<_> = got.iter().map(describe).collect();
                panic!("{payload:?} on {topic} did not arrive within {WAIT:?}; got {seen:?}");
            };
            let done = p.topic == topic && &p.payload[..] == payload.as_bytes();
            got.push(p);
            if done {
                return got;
            }
        }
    }

    /// Everything received during `period`.
    async fn quiet(&mut self, period: Duration) -> Vec<Publish> {
        let deadline = Instant::now() + period;
        let mut got = Vec::new();
        while let Some(p) = self.next_publish(deadline.saturating_duration_since(Instant::now())).await {
            got.push(p);
        }
        got
    }

    /// Whether the broker closes this connection within `within` (nothing else is expected).
    async fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
                Ok(None) => return true,
                Ok(Some(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    /// Drops the TCP connection without DISCONNECT, so the broker fires the last will.
    fn drop_connection(self) {
        self.task.abort();
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}
