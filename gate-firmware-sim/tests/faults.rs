//! Faults under load: four gates keep presenting passes while the validator is killed and
//! restarted and then the broker (a real Mosquitto child) is killed and restarted on the same
//! port. Gates decide offline from their signed snapshot while they get no verdict, journal
//! those taps and forward them when they are back. Afterwards every pass that opened a gate is
//! recorded exactly once by the validator (no tap lost, none counted twice) and every gate is
//! connected again.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use alloy::signers::{local::PrivateKeySigner, SignerSync};
use alloy_primitives::B256;
use ed25519_dalek::SigningKey;
use gate_firmware_sim::{GateSetup, OfflineOptions, SimGate};
use kippu_domain::device_pass::{cert_digest, Device};
use kippu_domain::pass::window_at;
use kippu_domain::snapshot::{GateSnapshot, SnapshotTicket, SNAPSHOT_VERSION};
use kippu_domain::validation::Tap;
use kippu_domain::{GateInfo, TicketState, Validator, ValidatorConfig};
use kippu_mqtt::{now_unix, MqttUrl, TicketLookup, ValidatorHandle, ValidatorOptions, ValidatorService};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, Mutex};

const CHAIN: u64 = 31_337;
const GATES: usize = 4;
const SCANS_PER_GATE: u64 = 40;
const WAIT: Duration = Duration::from_secs(30);

struct NoLookup;

#[async_trait::async_trait]
impl TicketLookup for NoLookup {
    async fn ticket(&self, _id: u64) -> Option<TicketState> {
        None
    }
}

/// A Mosquitto child on a fixed port, so it can be killed and started again at the same address.
struct Mosquitto {
    bin: PathBuf,
    conf: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Mosquitto {
    fn find() -> Option<PathBuf> {
        ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"].iter().map(PathBuf::from).find(|p| p.exists())
    }

    async fn start(bin: PathBuf, dir: &std::path::Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")).unwrap();
        let mut m = Self { bin, conf, port, child: None };
        m.restart().await;
        m
    }

    async fn restart(&mut self) {
        let child =
            Command::new(&self.bin).arg("-c").arg(&self.conf).kill_on_drop(true).spawn().expect("mosquitto starts");
        self.child = Some(child);
        let start = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(start.elapsed() < WAIT, "mosquitto did not listen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().await.unwrap();
        }
    }

    fn url(&self) -> MqttUrl {
        MqttUrl::parse(&format!("mqtt://127.0.0.1:{}", self.port)).unwrap()
    }
}

async fn start_validator(
    url: &MqttUrl,
    op: &str,
    key: &Arc<SigningKey>,
    state: &Arc<Mutex<Validator>>,
    taps: mpsc::Sender<Tap>,
) -> ValidatorHandle {
    let opts = ValidatorOptions { operator: Some(op.to_owned()), signer: Some(key.clone()), ..Default::default() };
    ValidatorService::spawn_with(
        url,
        &format!("validator-{:08x}", rand::random::<u32>()),
        opts,
        state.clone(),
        Arc::new(NoLookup),
        taps,
    )
    .await
    .expect("validator connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn validator_and_broker_restarts_under_load_lose_and_double_no_tap() {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").with_test_writer().try_init();
    let Some(bin) = Mosquitto::find() else {
        eprintln!("skipped: no mosquitto binary on this machine");
        return;
    };
    let dir = std::env::temp_dir().join(format!("kippu-faults-{:08x}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut broker = Mosquitto::start(bin, &dir).await;
    let url = broker.url();

    // One operator, one ticket per scan (so passback never interferes), a traveler's phone.
    let now = now_unix();
    let op = format!("op-{:08x}", rand::random::<u32>());
    let account = PrivateKeySigner::random();
    let seed: [u8; 32] = rand::random();
    let public = Device::new(seed, 0, [0; 65]).public_key();
    let cert = account.sign_hash_sync(&cert_digest(CHAIN, &public, now + 3_600)).unwrap();
    let phone = Device::new(seed, now + 3_600, cert.as_bytes());
    let gate_keys: Vec<String> = (0..GATES).map(|g| format!("{op}/st/g{g}")).collect();
    let tickets: Vec<TicketState> = (0..GATES as u64 * SCANS_PER_GATE)
        .map(|id| TicketState {
            id,
            holder: account.address(),
            operator_id: 1,
            product_id: 1,
            valid_from: now - 60,
            valid_until: now + 3_600,
            rides_left: None,
        })
        .collect();
    let mut v = Validator::new(ValidatorConfig { chain_id: CHAIN, passback_secs: 0, ..Default::default() });
    for k in &gate_keys {
        v.add_gate(k, GateInfo { operator_id: 1 });
    }
    for t in &tickets {
        v.upsert_ticket(t.clone());
    }
    let state = Arc::new(Mutex::new(v));
    let key = Arc::new(SigningKey::from_bytes(&rand::random()));

    // Every tap the validator records, by scan id.
    let (tap_tx, mut tap_rx) = mpsc::channel::<Tap>(1024);
    let recorded: Arc<StdMutex<HashMap<String, usize>>> = Arc::default();
    let sink = recorded.clone();
    tokio::spawn(async move {
        while let Some(t) = tap_rx.recv().await {
            *sink.lock().unwrap().entry(t.scan_id).or_default() += 1;
        }
    });
    let mut validator = start_validator(&url, &op, &key, &state, tap_tx.clone()).await;

    // The signed snapshot, retained for every gate.
    let snapshot = GateSnapshot {
        version: SNAPSHOT_VERSION,
        issued_at: now,
        valid_until: now + 600,
        operator_id: 1,
        gates: gate_keys.clone(),
        chain_id: CHAIN,
        validators: vec![B256::from(key.verifying_key().to_bytes())],
        revoked_holders: vec![],
        revoked_devices: vec![],
        tickets: tickets.iter().map(SnapshotTicket::from).collect(),
        cards: vec![],
    }
    .sign(&key)
    .to_bytes();
    for k in &gate_keys {
        gate_firmware_sim::publish_config(&url, &gate_firmware_sim::gate_path(k).unwrap(), &snapshot).await.unwrap();
    }
    let mut gates = Vec::new();
    for (g, k) in gate_keys.iter().enumerate() {
        let mut offline = OfflineOptions::in_dir(dir.join(format!("g{g}")));
        offline.rules.passback_secs = 0;
        offline.rules.chain_id = CHAIN;
        offline.probe_timeout = Duration::from_millis(200);
        offline.forward_interval = Duration::from_millis(300);
        let setup = GateSetup {
            mqtt_url: format!("mqtt://127.0.0.1:{}", broker.port),
            gate_key: k.clone(),
            trusted_validators: vec![key.verifying_key()],
            timeout: Duration::from_millis(800),
            offline: Some(offline),
        };
        let gate = Arc::new(SimGate::connect_with(setup).await.expect("gate connects"));
        assert_eq!(gate.wait_snapshot(now, WAIT).await, Some(now), "gate {k} has the snapshot");
        gates.push(gate);
    }

    // Load: every gate presents a fresh pass every 40 ms; each outcome is kept by scan id.
    let outcomes: Arc<StdMutex<Vec<(String, bool, bool)>>> = Arc::default();
    let mut load = Vec::new();
    for (g, gate) in gates.iter().enumerate() {
        let (gate, phone, outcomes) = (gate.clone(), phone.clone(), outcomes.clone());
        load.push(tokio::spawn(async move {
            for i in 0..SCANS_PER_GATE {
                let ticket = g as u64 * SCANS_PER_GATE + i;
                let pass = phone.pass(ticket, window_at(now_unix()), rand::random()).encode();
                let o = gate.present_text_outcome(&pass).await.expect("a verdict, online or offline");
                outcomes.lock().unwrap().push((o.verdict.id.clone(), o.verdict.open, o.offline));
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        }));
    }

    // Faults while the load runs: the validator killed and restarted, then the broker.
    tokio::time::sleep(Duration::from_millis(500)).await;
    validator.abort();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    validator = start_validator(&url, &op, &key, &state, tap_tx.clone()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    broker.kill().await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    broker.restart().await;

    for l in load {
        l.await.unwrap();
    }
    // The gates reconnect and forward what they journaled; the validator re-subscribes.
    let start = Instant::now();
    loop {
        let pending: usize = gates.iter().map(|g| g.pending_taps().len()).sum();
        let connected = gates.iter().all(|g| g.broker_reachable());
        if pending == 0 && connected {
            break;
        }
        assert!(start.elapsed() < WAIT, "gates did not drain their journals: {pending} pending, connected {connected}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        validator.wait_subscriptions(2, WAIT).await,
        "the restarted validator reconnected after the broker restart"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    let outcomes = outcomes.lock().unwrap().clone();
    let recorded = recorded.lock().unwrap().clone();
    assert_eq!(outcomes.len(), GATES * SCANS_PER_GATE as usize);
    let offline = outcomes.iter().filter(|(_, _, off)| *off).count();
    assert!(offline > 0 && offline < outcomes.len(), "the faults made gates decide offline sometimes: {offline}");
    assert!(outcomes.iter().all(|(_, open, _)| *open), "every valid pass opened, online or offline");
    for (id, _, off) in &outcomes {
        assert_eq!(recorded.get(id), Some(&1), "scan {id} (offline: {off}) recorded exactly once");
    }
    assert_eq!(recorded.len(), outcomes.len(), "no tap recorded that no gate opened for");
    assert!(recorded.values().all(|n| *n == 1), "no tap counted twice");
    eprintln!("{} scans, {offline} decided offline, {} taps recorded once each", outcomes.len(), recorded.len());
    validator.abort();
    broker.kill().await;
    let _ = std::fs::remove_dir_all(dir);
}
