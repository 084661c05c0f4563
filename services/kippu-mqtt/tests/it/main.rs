//! End-to-end tests on real brokers: every scenario runs against the embedded
//! rumqttd (fresh broker, free port) and against Mosquitto when
//! `KIPPU_TEST_MOSQUITTO` (e.g. `mqtt://127.0.0.1:1883`) is set. Each scenario
//! uses its own random operator slug and scopes its validator to it, so
//! parallel tests on the shared Mosquitto never see each other's scans.
//!
//! Beside them: TLS with per-gate logins (`tls`, embedded and a Mosquitto child),
//! the config publisher (`config`), and the property that every scan gets one signed
//! verdict (`scans`).

mod config;
mod proxy;
mod scans;
#[path = "../support/mod.rs"]
mod support;
mod tls;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alloy::signers::{local::PrivateKeySigner, SignerSync};
use kippu_domain::pass::window_at;
use kippu_domain::topics::GatePath;
use kippu_domain::validation::Tap;
use kippu_domain::verdict::{ScanRequest, VerdictMessage};
use kippu_domain::{DenyReason, GateInfo, Pass, TicketState, Validator, ValidatorConfig};
use kippu_mqtt::{
    now_unix, EmbeddedBroker, GateClient, GateStatus, MqttUrl, TicketLookup, ValidatorHandle, ValidatorOptions,
    ValidatorService,
};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::sync::{mpsc, Mutex};

const SCAN_TIMEOUT: Duration = Duration::from_secs(5);
const PRELOADED: u64 = 7;
const LOOKUP_ONLY: u64 = 8;

/// Runs a scenario on both brokers as `<name>::embedded` and `<name>::mosquitto`.
macro_rules! on_both_brokers {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$name(super::embedded().await).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mosquitto() {
                let Some(url) = super::mosquitto() else { return };
                super::$name(url).await
            }
        }
    )*};
}

on_both_brokers!(
    valid_pass_opens_and_taps_once,
    garbage_pass_is_not_a_pass,
    malformed_scan_json_gets_malformed_scan,
    unregistered_gate_gets_unknown_gate,
    ticket_known_only_to_lookup_opens,
    status_is_retained_online_then_offline,
    last_will_marks_a_dropped_gate_offline,
    shared_subscription_splits_the_load,
    replay_passback_and_resends_hold_across_validators,
    validator_reconnects_after_connection_loss,
    many_sequential_scans_on_one_client,
    device_pass_opens_with_a_signed_verdict_and_rogue_verdicts_are_ignored,
    a_flood_behind_a_slow_database_is_answered_in_full,
);

async fn embedded() -> MqttUrl {
    init_tracing();
    tokio::task::spawn_blocking(|| EmbeddedBroker::start("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap()
        .expect("embedded broker starts")
        .mqtt_url()
}

fn mosquitto() -> Option<MqttUrl> {
    init_tracing();
    match std::env::var("KIPPU_TEST_MOSQUITTO") {
        Ok(url) if !url.is_empty() => Some(MqttUrl::parse(&url).expect("KIPPU_TEST_MOSQUITTO is an mqtt:// URL")),
        _ => {
            eprintln!("note: KIPPU_TEST_MOSQUITTO unset, skipping the Mosquitto run of this test");
            None
        }
    }
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn rand_hex() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// A lookup backed by a map, counting how often it is asked.
#[derive(Default)]
struct MapLookup {
    tickets: HashMap<u64, TicketState>,
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl TicketLookup for MapLookup {
    async fn ticket(&self, id: u64) -> Option<TicketState> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.tickets.get(&id).cloned()
    }
}

/// One operator with gate `st/g1` (registered), ticket 7 preloaded and ticket 8
/// known only to the lookup, both held by `key`.
struct Fixture {
    url: MqttUrl,
    op: String,
    key: PrivateKeySigner,
    validator: Arc<Mutex<Validator>>,
    lookup: Arc<MapLookup>,
}

impl Fixture {
    fn new(url: MqttUrl) -> Self {
        let op = format!("op-{}", rand_hex());
        let key = PrivateKeySigner::random();
        let now = now_unix();
        let ticket = |id| TicketState {
            id,
            holder: key.address(),
            operator_id: 1,
            product_id: 10,
            valid_from: now - 100,
            valid_until: now + 3600,
            rides_left: None,
        };
        let mut v = Validator::new(ValidatorConfig::default());
        v.add_gate(&format!("{op}/st/g1"), GateInfo { operator_id: 1 });
        v.upsert_ticket(ticket(PRELOADED));
        let lookup = MapLookup { tickets: HashMap::from([(LOOKUP_ONLY, ticket(LOOKUP_ONLY))]), ..Default::default() };
        Self { url, op, key, validator: Arc::new(Mutex::new(v)), lookup: Arc::new(lookup) }
    }

    fn gate(&self, name: &str) -> GatePath {
        GatePath::new(&self.op, "st", name).unwrap()
    }

    fn options(&self, shared: bool, group: &str) -> ValidatorOptions {
        ValidatorOptions { shared, group: group.into(), operator: Some(self.op.clone()), signer: None }
    }

    /// Starts a validator scoped to this fixture's operator.
    async fn validator_on(&self, url: &MqttUrl, opts: ValidatorOptions) -> (ValidatorHandle, mpsc::Receiver<Tap>) {
        let (tx, rx) = mpsc::channel(16);
        let h = ValidatorService::spawn_with(
            url,
            &format!("validator-{}", rand_hex()),
            opts,
            self.validator.clone(),
            self.lookup.clone(),
            Arc::new(tx),
        )
        .await
        .expect("validator connects");
        (h, rx)
    }

    /// A second validator process's own state: the same gate and preloaded ticket, nothing shared.
    fn separate_state(&self) -> Arc<Mutex<Validator>> {
        let mine = self.validator.try_lock().expect("setup: state not in use");
        let mut v = Validator::new(ValidatorConfig::default());
        v.add_gate(&self.gate("g1").key(), GateInfo { operator_id: 1 });
        v.upsert_ticket(mine.ticket(PRELOADED).expect("preloaded").clone());
        Arc::new(Mutex::new(v))
    }

    async fn validator(&self) -> (ValidatorHandle, mpsc::Receiver<Tap>) {
        self.validator_on(&self.url, self.options(false, "validators")).await
    }

    async fn gate_client(&self, name: &str) -> GateClient {
        GateClient::connect(&self.url, self.gate(name)).await.expect("gate connects")
    }

    /// A fresh pass for `ticket`, signed now by the holder.
    fn pass(&self, ticket: u64) -> String {
        let nonce = rand::random::<[u8; 8]>();
        let window = window_at(now_unix());
        let sig = self.key.sign_hash_sync(&Pass::digest(ticket, window, &nonce)).unwrap();
        Pass { ticket_id: ticket, window, nonce, signature: sig.as_bytes() }.encode()
    }
}

async fn valid_pass_opens_and_taps_once(url: MqttUrl) {
    let fx = Fixture::new(url);
    let (h, mut taps) = fx.validator().await;
    let gate = fx.gate_client("g1").await;

    let v = gate.scan(&fx.pass(PRELOADED), SCAN_TIMEOUT).await.unwrap();
    assert!(v.open, "{v:?}");
    assert_eq!(v.ticket, Some(PRELOADED));
    assert_eq!(v.id.len(), 16);

    let tap = tokio::time::timeout(SCAN_TIMEOUT, taps.recv()).await.unwrap().unwrap();
    assert_eq!(
        (tap.ticket_id, tap.gate.as_str(), tap.scan_id.as_str()),
        (PRELOADED, &*format!("{}/st/g1", fx.op), &*v.id)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(taps.try_recv().is_err(), "exactly one tap");
    assert_eq!(h.verdicts(), 1);

    // Anti-passback: the validator state is shared through the service.
    let again = gate.scan(&fx.pass(PRELOADED), SCAN_TIMEOUT).await.unwrap();
    assert_eq!(again.reason, Some(DenyReason::Passback));
    assert!(taps.try_recv().is_err());
    gate.disconnect().await;
    h.abort();
}

/// A phone's device-signed pass through the broker; the validator signs its verdict, and a
/// gate that trusts only that key ignores a rogue publisher's "open" for the same scan id.
async fn device_pass_opens_with_a_signed_verdict_and_rogue_verdicts_are_ignored(url: MqttUrl) {
    use kippu_domain::device_pass::{cert_digest, Device};
    let fx = Fixture::new(url.clone());
    let signer = Arc::new(ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>()));
    let mut opts = fx.options(false, "validators");
    opts.signer = Some(signer.clone());
    let (h, mut taps) = fx.validator_on(&fx.url, opts).await;
    let gate = GateClient::connect_with(
        &fx.url,
        fx.gate("g1"),
        kippu_mqtt::GateOptions { trusted_validators: vec![signer.verifying_key()] },
    )
    .await
    .unwrap();
    let seed: [u8; 32] = rand::random();
    let public = Device::new(seed, 0, [0; 65]).public_key();
    let expiry = now_unix() + 3_600;
    let cert = fx.key.sign_hash_sync(&cert_digest(31_337, &public, expiry)).unwrap();
    let phone = Device::new(seed, expiry, cert.as_bytes());
    let pass = phone.pass(PRELOADED, window_at(now_unix()), rand::random()).encode();

    // A rogue client answers every scan on the gate's verdict topic with an unsigned "open".
    let (rogue, mut rogue_loop) = AsyncClient::new(url.options(&format!("rogue-{}", rand_hex())), 16);
    rogue.subscribe(fx.gate("g1").topic("scan"), QoS::AtLeastOnce).await.unwrap();
    let verdict_topic = fx.gate("g1").topic("verdict");
    let rogue_task = tokio::spawn(async move {
        while let Ok(ev) = rogue_loop.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = ev {
                if let Ok(req) = serde_json::from_slice::<kippu_domain::ScanRequest>(&p.payload) {
                    let fake = kippu_domain::VerdictMessage::open(&req.id, 999, Some(99));
                    let _ = rogue
                        .publish(&verdict_topic, QoS::AtLeastOnce, false, serde_json::to_vec(&fake).unwrap())
                        .await;
                }
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let v = gate.scan(&pass, SCAN_TIMEOUT).await.unwrap();
    assert!(v.open, "{v:?}");
    assert_eq!((v.ticket, v.rides_left), (Some(PRELOADED), None), "the real verdict, not the rogue one");
    assert!(v.verify(&[signer.verifying_key()], &fx.gate("g1").key()));
    let tap = tokio::time::timeout(SCAN_TIMEOUT, taps.recv()).await.unwrap().unwrap();
    assert_eq!(tap.ticket_id, PRELOADED);
    // The rogue's answer arrived and was ignored (it may be counted just before or after ours).
    for _ in 0..50 {
        if gate.rogue_verdicts() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gate.rogue_verdicts() >= 1, "the rogue verdict was seen and ignored");
    rogue_task.abort();
    gate.disconnect().await;
    h.abort();
}

async fn garbage_pass_is_not_a_pass(url: MqttUrl) {
    let fx = Fixture::new(url);
    let (h, mut taps) = fx.validator().await;
    let gate = fx.gate_client("g1").await;
    let v = gate.scan("https://example.com/definitely-not-a-pass", SCAN_TIMEOUT).await.unwrap();
    assert!(!v.open);
    assert_eq!(v.reason, Some(DenyReason::NotAPass));
    assert!(taps.try_recv().is_err());
    h.abort();
}

async fn malformed_scan_json_gets_malformed_scan(url: MqttUrl) {
    let fx = Fixture::new(url);
    let (h, _taps) = fx.validator().await;
    let gate = fx.gate_client("g1").await;
    let mut all = gate.subscribe_verdicts();
    for junk in [&b"{not json"[..], br#"{"v":9,"id":"x","pass":"p","ts":1}"#, &[0xff; 3000]] {
        gate.publish_raw_scan(junk.to_vec()).await.unwrap();
        let v = tokio::time::timeout(SCAN_TIMEOUT, all.recv()).await.expect("a verdict").unwrap();
        assert_eq!(v.id, "");
        assert!(!v.open);
        assert_eq!(v.reason, Some(DenyReason::MalformedScan));
    }
    // The loop survived the junk.
    let v = gate.scan(&fx.pass(PRELOADED), SCAN_TIMEOUT).await.unwrap();
    assert!(v.open, "{v:?}");
    h.abort();
}

async fn unregistered_gate_gets_unknown_gate(url: MqttUrl) {
    let fx = Fixture::new(url);
    let (h, mut taps) = fx.validator().await;
    let rogue = fx.gate_client("g9").await;
    let v = rogue.scan(&fx.pass(LOOKUP_ONLY), SCAN_TIMEOUT).await.unwrap();
    assert_eq!(v.reason, Some(DenyReason::UnknownGate));
    assert!(taps.try_recv().is_err());
    // An unregistered gate must not make the validator query the database.
    assert_eq!(fx.lookup.calls.load(Ordering::SeqCst), 0);
    h.abort();
}

async fn ticket_known_only_to_lookup_opens(url: MqttUrl) {
    let fx = Fixture::new(url);
    let (h, mut taps) = fx.validator().await;
    let gate = fx.gate_client("g1").await;
    assert!(fx.validator.lock().await.ticket(LOOKUP_ONLY).is_none());

    let v = gate.scan(&fx.pass(LOOKUP_ONLY), SCAN_TIMEOUT).await.unwrap();
    assert!(v.open, "{v:?}");
    assert_eq!(v.ticket, Some(LOOKUP_ONLY));
    assert_eq!(fx.lookup.calls.load(Ordering::SeqCst), 1);
    assert!(fx.validator.lock().await.ticket(LOOKUP_ONLY).is_some());
    let tap = tokio::time::timeout(SCAN_TIMEOUT, taps.recv()).await.unwrap().unwrap();
    assert_eq!(tap.ticket_id, LOOKUP_ONLY);

    // Unknown everywhere: asked once more, then denied.
    let v = gate.scan(&fx.pass(99), SCAN_TIMEOUT).await.unwrap();
    assert_eq!(v.reason, Some(DenyReason::UnknownTicket));
    assert_eq!(fx.lookup.calls.load(Ordering::SeqCst), 2);
    h.abort();
}

/// Subscribes a fresh raw client to `topic` and returns the first message's
/// payload and retain flag.
async fn first_message(url: &MqttUrl, topic: &str) -> (GateStatus, bool) {
    let (client, mut el) = AsyncClient::new(url.options(&format!("watch-{}", rand_hex())), 10);
    client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
    let msg = tokio::time::timeout(SCAN_TIMEOUT, async {
        loop {
            if let Event::Incoming(Packet::Publish(p)) = el.poll().await.expect("watcher connects") {
                return p;
            }
        }
    })
    .await
    .expect("a status message");
    let _ = client.disconnect().await;
    (serde_json::from_slice(&msg.payload).unwrap(), msg.retain)
}

async fn status_is_retained_online_then_offline(url: MqttUrl) {
    let fx = Fixture::new(url);
    let gate = fx.gate_client("g1").await;
    let topic = fx.gate("g1").topic("status");
    assert_eq!(first_message(&fx.url, &topic).await, (GateStatus::Online, true));
    gate.disconnect().await;
    assert_eq!(first_message(&fx.url, &topic).await, (GateStatus::Offline, true));
}

async fn last_will_marks_a_dropped_gate_offline(url: MqttUrl) {
    let fx = Fixture::new(url);
    let topic = fx.gate("g1").topic("status");
    // Watch live, then kill the gate's socket without DISCONNECT.
    let (client, mut el) = AsyncClient::new(fx.url.options(&format!("watch-{}", rand_hex())), 10);
    client.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    let gate = fx.gate_client("g1").await;
    let seen = tokio::time::timeout(Duration::from_secs(15), async {
        let mut seen = Vec::new();
        let mut gate = Some(gate);
        loop {
            if let Event::Incoming(Packet::Publish(p)) = el.poll().await.unwrap() {
                let s: GateStatus = serde_json::from_slice(&p.payload).unwrap();
                seen.push(s);
                match s {
                    // Dropping the client aborts its connection task: the socket closes
                    // without DISCONNECT, which is what fires a will.
                    GateStatus::Online => drop(gate.take()),
                    GateStatus::Offline => return seen,
                }
            }
        }
    })
    .await
    .expect("the will arrives");
    assert_eq!(seen, [GateStatus::Online, GateStatus::Offline]);
    assert_eq!(first_message(&fx.url, &topic).await, (GateStatus::Offline, true));
}

async fn shared_subscription_splits_the_load(url: MqttUrl) {
    assert!(EmbeddedBroker::supports_shared_subscriptions());
    let fx = Fixture::new(url);
    let group = format!("validators-{}", rand_hex());
    let (a, _ta) = fx.validator_on(&fx.url, fx.options(true, &group)).await;
    let (b, _tb) = fx.validator_on(&fx.url, fx.options(true, &group)).await;
    let gate = fx.gate_client("g1").await;
    let mut all = gate.subscribe_verdicts();
    const N: u64 = 12;
    for _ in 0..N {
        let v = gate.scan("garbage", SCAN_TIMEOUT).await.unwrap();
        assert_eq!(v.reason, Some(DenyReason::NotAPass));
    }
    // Every scan answered exactly once in total (no duplicate verdicts)...
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut received = 0;
    while all.try_recv().is_ok() {
        received += 1;
    }
    assert_eq!(received, N);
    assert_eq!(a.verdicts() + b.verdicts(), N);
    // ...and both validators took part.
    assert!(a.verdicts() > 0 && b.verdicts() > 0, "a={} b={}", a.verdicts(), b.verdicts());
    a.abort();
    b.abort();
}

/// Two validators, each with its own memory, split the scans: a pass replayed to the other
/// one, a ticket passed back through it, and a scan the gate re-sends to it are refused or
/// answered as the first validator would, because each tells the other what it accepted.
async fn replay_passback_and_resends_hold_across_validators(url: MqttUrl) {
    let fx = Fixture::new(url);
    let group = format!("validators-{}", rand_hex());
    let (a, mut taps_a) = fx.validator_on(&fx.url, fx.options(true, &group)).await;
    let (tx, mut taps_b) = mpsc::channel(16);
    let b = ValidatorService::spawn_with(
        &fx.url,
        &format!("validator-{}", rand_hex()),
        fx.options(true, &group),
        fx.separate_state(),
        fx.lookup.clone(),
        Arc::new(tx),
    )
    .await
    .expect("second validator connects");
    let gate = fx.gate_client("g1").await;

    let pass = fx.pass(PRELOADED);
    assert!(gate.scan(&pass, SCAN_TIMEOUT).await.unwrap().open);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = (a.verdicts(), b.verdicts());
    for i in 0..8 {
        let v = gate.scan(&pass, SCAN_TIMEOUT).await.unwrap();
        assert_eq!(v.reason, Some(DenyReason::Replay), "replay {i}: {v:?}");
    }
    assert!(a.verdicts() > before.0 && b.verdicts() > before.1, "both validators saw replays");
    for i in 0..4 {
        let v = gate.scan(&fx.pass(PRELOADED), SCAN_TIMEOUT).await.unwrap();
        assert_eq!(v.reason, Some(DenyReason::Passback), "fresh pass {i}: {v:?}");
    }

    // The gate missed the verdict and sends the same scan again, several times: whichever
    // validator gets a copy answers it open, and the entry is counted once.
    let mut verdicts = gate.subscribe_verdicts();
    let id = format!("resend-{}", rand_hex());
    let scan = serde_json::json!({"v": 1, "id": id, "pass": fx.pass(LOOKUP_ONLY), "ts": now_unix() * 1000});
    for _ in 0..4 {
        gate.publish_raw_scan(serde_json::to_vec(&scan).unwrap()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut answers = 0;
    while let Ok(v) = verdicts.try_recv() {
        if v.id == id {
            assert!(v.open, "{v:?}");
            answers += 1;
        }
    }
    assert_eq!(answers, 4);
    let mut taps = Vec::new();
    while let Ok(t) = taps_a.try_recv() {
        taps.push(t);
    }
    while let Ok(t) = taps_b.try_recv() {
        taps.push(t);
    }
    let mut tickets: Vec<u64> = taps.iter().map(|t| t.ticket_id).collect();
    tickets.sort_unstable();
    assert_eq!(tickets, vec![PRELOADED, LOOKUP_ONLY], "each entry recorded once: {taps:?}");
    a.abort();
    b.abort();
}

async fn validator_reconnects_after_connection_loss(url: MqttUrl) {
    let fx = Fixture::new(url);
    let proxy = proxy::Proxy::start(&fx.url).await;
    let (h, _taps) = fx.validator_on(&proxy.url(), fx.options(false, "validators")).await;
    let gate = fx.gate_client("g1").await;
    assert!(gate.scan("garbage", SCAN_TIMEOUT).await.unwrap().reason == Some(DenyReason::NotAPass));

    proxy.cut();
    assert!(h.wait_subscriptions(2, Duration::from_secs(15)).await, "validator re-subscribed");
    let v = gate.scan(&fx.pass(PRELOADED), SCAN_TIMEOUT).await.unwrap();
    assert!(v.open, "{v:?}");
    assert!(!h.is_finished());
    h.abort();
}

async fn many_sequential_scans_on_one_client(url: MqttUrl) {
    let fx = Fixture::new(url);
    let (h, _taps) = fx.validator().await;
    let gate = fx.gate_client("g1").await;
    for i in 0..30 {
        let v = gate.scan(&format!("junk-{i}"), SCAN_TIMEOUT).await.unwrap();
        assert_eq!(v.reason, Some(DenyReason::NotAPass), "scan {i}");
    }
    // Nobody answers on another operator's gate: the gate gets a Timeout verdict, not an error.
    let other = GateClient::connect(&fx.url, GatePath::new(&format!("nobody-{}", rand_hex()), "s", "g").unwrap())
        .await
        .unwrap();
    let v = other.scan("x", Duration::from_millis(300)).await.unwrap();
    assert_eq!(v.reason, Some(DenyReason::Timeout));
    assert_eq!(v.id.len(), 16);
    assert_eq!(h.verdicts(), 30);
    h.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_speaks_mqtt5_too() {
    use rumqttc::v5;
    init_tracing();
    let broker = tokio::task::spawn_blocking(|| {
        EmbeddedBroker::start_with_v5("127.0.0.1:0".parse().unwrap(), Some("127.0.0.1:0".parse().unwrap()))
    })
    .await
    .unwrap()
    .unwrap();
    let v5_addr = broker.v5_addr().unwrap();
    let opts = v5::MqttOptions::new("v5-client", v5_addr.ip().to_string(), v5_addr.port());
    let (client, mut el) = v5::AsyncClient::new(opts, 10);
    client.subscribe("kippu/v5/test", v5::mqttbytes::QoS::AtLeastOnce).await.unwrap();
    client.publish("kippu/v5/test", v5::mqttbytes::QoS::AtLeastOnce, false, "hi").await.unwrap();
    let got = tokio::time::timeout(SCAN_TIMEOUT, async {
        loop {
            if let v5::Event::Incoming(v5::mqttbytes::v5::Packet::Publish(p)) = el.poll().await.unwrap() {
                return p.payload;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(&got[..], b"hi");
}

#[tokio::test]
async fn unreachable_broker_is_a_connect_error() {
    // A port nothing listens on: bind, read the port, drop.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = MqttUrl::parse(&format!("mqtt://127.0.0.1:{port}")).unwrap();
    let fx = Fixture::new(url.clone());
    let (tx, _rx) = mpsc::channel(1);
    let started = tokio::time::Instant::now();
    let e = ValidatorService::spawn(&url, "v", false, fx.validator.clone(), fx.lookup.clone(), Arc::new(tx))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("could not connect"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(15));
}

/// A recorder as slow as a busy database: 20 ms per batch.
struct SlowTaps(std::sync::Mutex<Vec<Tap>>);

#[async_trait::async_trait]
impl kippu_mqtt::TapRecorder for SlowTaps {
    async fn record(&self, taps: &[Tap]) -> Result<(), String> {
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.0.lock().unwrap().extend_from_slice(taps);
        Ok(())
    }
}

/// Gates publish far faster than the validator decides and its database records: the backlog
/// must drain, every scan get its verdict and every entry its tap, and the validator still answer
/// afterwards. (A validator whose connection task waited on a full work queue, or that held its
/// acks for a whole batch, once stopped answering for good under such a flood.)
async fn a_flood_behind_a_slow_database_is_answered_in_full(url: MqttUrl) {
    // Below Mosquitto's default per-client queue (`max_queued_messages 1000`): beyond it Mosquitto
    // drops QoS 1 messages for a slow subscriber, and those gates would decide offline.
    const N: u64 = 900;
    let fx = Fixture::new(url);
    let now = now_unix();
    {
        let mut v = fx.validator.lock().await;
        for id in 1000..1000 + N {
            v.upsert_ticket(TicketState {
                id,
                holder: fx.key.address(),
                operator_id: 1,
                product_id: 10,
                valid_from: now - 100,
                valid_until: now + 3600,
                rides_left: None,
            });
        }
    }
    let recorder = Arc::new(SlowTaps(Default::default()));
    let h = ValidatorService::spawn_with(
        &fx.url,
        &format!("validator-{}", rand_hex()),
        fx.options(false, "validators"),
        fx.validator.clone(),
        fx.lookup.clone(),
        recorder.clone(),
    )
    .await
    .expect("validator connects");

    let gate = fx.gate("g1");
    let (client, mut events) = AsyncClient::new(fx.url.options(&format!("flood-{}", rand_hex())), 64);
    client.subscribe(gate.topic("verdict"), QoS::AtLeastOnce).await.unwrap();
    let (verdict_tx, mut verdict_rx) = mpsc::unbounded_channel::<VerdictMessage>();
    let poller = tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = verdict_tx.send(serde_json::from_slice(&p.payload).expect("a verdict"));
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let publisher = {
        let client = client.clone();
        let topic = gate.topic("scan");
        let key = fx.key.clone();
        tokio::spawn(async move {
            for ticket in 1000..1000 + N {
                // Signed as it is shown, so the pass is never stale however long the backlog.
                let (nonce, window) = (rand::random::<[u8; 8]>(), window_at(now_unix()));
                let sig = key.sign_hash_sync(&Pass::digest(ticket, window, &nonce)).unwrap();
                let pass = Pass { ticket_id: ticket, window, nonce, signature: sig.as_bytes() }.encode();
                let id = format!("flood-{ticket:012}");
                let scan = ScanRequest { v: 1, id, pass, ts: now_unix() * 1000, trip: None };
                client.publish(&topic, QoS::AtLeastOnce, false, serde_json::to_vec(&scan).unwrap()).await.unwrap();
            }
        })
    };

    let mut opened = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while (opened.len() as u64) < N {
        let v = tokio::time::timeout_at(deadline, verdict_rx.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {N} scans answered in 120 s", opened.len()))
            .unwrap();
        assert!(v.open, "{v:?}");
        assert!(opened.insert(v.id.clone()), "verdict {} twice", v.id);
    }
    publisher.await.unwrap();
    assert_eq!(recorder.0.lock().unwrap().len() as u64, N, "each entry recorded once");

    // Still answering after the flood.
    let probe = fx.gate_client("g1").await;
    let v = probe.scan("after-the-flood", SCAN_TIMEOUT).await.unwrap();
    assert_eq!(v.reason, Some(DenyReason::NotAPass));
    assert_eq!(h.verdicts(), N + 1);
    poller.abort();
    h.abort();
}
