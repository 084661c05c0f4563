//! Faults under load, with real processes: two `kippu validator` processes split the scans of
//! four gates through a Mosquitto child. While the gates keep presenting passes, one validator is
//! killed with SIGKILL and started again, then the broker is killed and started again on its
//! port. Gates that get no verdict decide offline from their signed snapshot, journal the tap and
//! forward it later. Afterwards the database's `taps` table holds every pass that opened a gate,
//! online or offline, exactly once and nothing else, and every gate is connected again.
//!
//! Run on SQLite (a file both validators share) and, when `KIPPU_TEST_POSTGRES` is set (as
//! `make test` does), on a scratch PostgreSQL database.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256};
use alloy::signers::{local::PrivateKeySigner, SignerSync};
use gate_firmware_sim::{GateSetup, OfflineOptions, SimGate};
use kippu_domain::device_pass::{cert_digest, Device};
use kippu_domain::events::{ChainEvent, EventMeta};
use kippu_domain::pass::window_at;
use kippu_domain::snapshot::{GateSnapshot, SnapshotTicket, SNAPSHOT_VERSION};
use kippu_domain::TicketState;
use kippu_identity::Keystore;
use kippu_mqtt::now_unix;
use kippu_store::{GateRow, Operator, Store};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const CHAIN: u64 = 31_337;
const OPERATOR: u32 = 1;
const GATES: usize = 8;
const SCANS_PER_GATE: u64 = 100;
const WAIT: Duration = Duration::from_secs(30);
/// The two variants take turns: each runs a broker, two validators and eight gates flat out,
/// and on two cores side by side they would mostly measure each other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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

    async fn start(bin: PathBuf, dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n"),
        )
        .unwrap();
        let mut m = Self { bin, conf, port, child: None };
        m.restart().await;
        m
    }

    async fn restart(&mut self) {
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.conf)
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("mosquitto starts");
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

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

/// A `kippu validator` process.
struct ValidatorProcess(Child);

impl ValidatorProcess {
    async fn start(database_url: &str, mqtt_url: &str, master_key: &str, secrets: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kippu"))
            .arg("validator")
            .env("KIPPU_DATABASE_URL", database_url)
            .env("KIPPU_MQTT_URL", mqtt_url)
            .env("KIPPU_MASTER_KEY", master_key)
            .env("KIPPU_SECRETS_FILE", secrets)
            .env("KIPPU_CHAIN_ID", CHAIN.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("kippu validator starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.starts_with("validator ready") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(ready.ok(), Some(true), "kippu validator came up");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self(child)
    }

    /// SIGKILL: no chance to flush or say goodbye.
    async fn kill(mut self) {
        self.0.kill().await.unwrap();
    }
}

/// The database as the platform would have it: an operator, its gates, and tickets booked from
/// `TicketIssued` events by the same ingest the ledger follower uses.
async fn seed(store: &Store, op: &str, gates: &[String], tickets: &[TicketState]) {
    store
        .upsert_operator(&Operator {
            id: OPERATOR,
            slug: op.to_owned(),
            name: "Fault Line".into(),
            kind: "rail".into(),
            payee: Address::repeat_byte(1),
        })
        .await
        .unwrap();
    for g in gates {
        let row = GateRow {
            gate_key: g.clone(),
            operator_id: OPERATOR,
            station: "st".into(),
            stop_id: None,
            on_board: false,
        };
        store.upsert_gate(&row).await.unwrap();
    }
    let block = B256::repeat_byte(7);
    let events: Vec<_> = tickets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let meta = EventMeta { block_number: 1, block_hash: block, log_index: i as u64, tx_hash: B256::ZERO };
            let ev = ChainEvent::TicketIssued {
                ticket_id: t.id,
                holder: t.holder,
                plan_id: 1,
                operator_id: OPERATOR,
                product_id: 1,
                valid_from: t.valid_from,
                valid_until: t.valid_until,
                rides: u32::MAX,
            };
            (meta, ev)
        })
        .collect();
    store.apply_events("faults", 2, &events, &[(1, block, now_unix() as i64)]).await.unwrap();
}

async fn recorded_taps(store: &Store) -> HashMap<String, i64> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT scan_id, CAST(COUNT(*) AS BIGINT) FROM taps GROUP BY scan_id")
            .fetch_all(store.pool())
            .await
            .unwrap();
    rows.into_iter().collect()
}

async fn run(database_url: &str, dir: &Path) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(bin) = Mosquitto::find() else {
        panic!("mosquitto is needed (Debian package mosquitto); the CI machine has it");
    };
    let mut broker = Mosquitto::start(bin, dir).await;
    let mqtt = broker.url();

    let now = now_unix();
    let op = format!("op{:08x}", rand::random::<u32>());
    let account = PrivateKeySigner::random();
    let seed_bytes: [u8; 32] = rand::random();
    let public = Device::new(seed_bytes, 0, [0; 65]).public_key();
    let cert = account.sign_hash_sync(&cert_digest(CHAIN, &public, now + 3_600)).unwrap();
    let phone = Device::new(seed_bytes, now + 3_600, cert.as_bytes());
    let gate_keys: Vec<String> = (0..GATES).map(|g| format!("{op}/st/g{g}")).collect();
    // One ticket per scan (and one per gate for the probes at the end), so passback never
    // interferes; `rides: u32::MAX` is unlimited.
    let tickets: Vec<TicketState> = (1..=GATES as u64 * (SCANS_PER_GATE + 1))
        .map(|id| TicketState {
            id,
            holder: account.address(),
            operator_id: OPERATOR,
            product_id: 1,
            valid_from: now - 60,
            valid_until: now + 3_600,
            rides_left: None,
        })
        .collect();
    let store = Store::connect(database_url).await.unwrap();
    seed(&store, &op, &gate_keys, &tickets).await;

    // The deployment's sealed secrets, as `kippu init` writes them: both validators sign with
    // the one verdict key the gates trust.
    let master_key = hex::encode(rand::random::<[u8; 32]>());
    let secrets_file = dir.join("secrets.json");
    let secrets = kippu::secrets::Secrets::generate();
    secrets.store(&secrets_file, &Keystore::from_hex(&master_key).unwrap()).unwrap();
    let verdict_key = secrets.verdict_key();
    let mut validator_a = Some(ValidatorProcess::start(database_url, &mqtt, &master_key, &secrets_file).await);
    let validator_b = ValidatorProcess::start(database_url, &mqtt, &master_key, &secrets_file).await;

    // The signed snapshot the platform publishes, retained for every gate.
    let snapshot = GateSnapshot {
        version: SNAPSHOT_VERSION,
        issued_at: now,
        valid_until: now + 600,
        operator_id: OPERATOR,
        gates: gate_keys.clone(),
        chain_id: CHAIN,
        validators: vec![B256::from(verdict_key.verifying_key().to_bytes())],
        revoked_holders: vec![],
        revoked_devices: vec![],
        tickets: tickets.iter().map(SnapshotTicket::from).collect(),
        cards: vec![],
    }
    .sign(&verdict_key)
    .to_bytes();
    let config_url = kippu_mqtt::MqttUrl::parse(&mqtt).unwrap();
    let mut gates = Vec::new();
    for (g, k) in gate_keys.iter().enumerate() {
        let path = gate_firmware_sim::gate_path(k).unwrap();
        gate_firmware_sim::publish_config(&config_url, &path, &snapshot).await.unwrap();
        let mut offline = OfflineOptions::in_dir(dir.join(format!("g{g}")));
        offline.rules.chain_id = CHAIN;
        offline.probe_timeout = Duration::from_millis(200);
        offline.forward_interval = Duration::from_millis(300);
        let setup = GateSetup {
            mqtt_url: mqtt.clone(),
            gate_key: k.clone(),
            trusted_validators: vec![verdict_key.verifying_key()],
            timeout: Duration::from_millis(800),
            offline: Some(offline),
        };
        let gate = Arc::new(SimGate::connect_with(setup).await.expect("gate connects"));
        assert_eq!(gate.wait_snapshot(now, WAIT).await, Some(now), "gate {k} has the snapshot");
        gates.push(gate);
    }

    // Load: every gate presents a fresh pass 5 ms after its last verdict (several hundred scans
    // a second in all), so a validator killed at any moment has taps in flight.
    let outcomes: Arc<StdMutex<Vec<(String, bool, bool)>>> = Arc::default();
    let denials: Arc<StdMutex<Vec<String>>> = Arc::default();
    let mut load = Vec::new();
    for (g, gate) in gates.iter().enumerate() {
        let (gate, phone, outcomes, denials) = (gate.clone(), phone.clone(), outcomes.clone(), denials.clone());
        load.push(tokio::spawn(async move {
            for i in 0..SCANS_PER_GATE {
                let ticket = 1 + g as u64 * SCANS_PER_GATE + i;
                let pass = phone.pass(ticket, window_at(now_unix()), rand::random()).encode();
                let o = gate.present_text_outcome(&pass).await.expect("a verdict, online or offline");
                if !o.verdict.open {
                    denials.lock().unwrap().push(format!("{:?} (offline: {})", o.verdict, o.offline));
                }
                outcomes.lock().unwrap().push((o.verdict.id.clone(), o.verdict.open, o.offline));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }

    // Faults while the load runs: a validator process killed outright and started again (a
    // fresh process: what it knows comes from the database), then the broker.
    let mut kills = 0;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        validator_a.take().unwrap().kill().await;
        kills += 1;
        tokio::time::sleep(Duration::from_millis(150)).await;
        validator_a = Some(ValidatorProcess::start(database_url, &mqtt, &master_key, &secrets_file).await);
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    broker.kill().await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    broker.restart().await;

    for l in load {
        l.await.unwrap();
    }
    // The gates reconnect and forward what they journaled.
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
    // The validators answer again after the broker restart.
    let mut probes = HashSet::new();
    for (g, gate) in gates.iter().enumerate() {
        let ticket = GATES as u64 * SCANS_PER_GATE + 1 + g as u64;
        let pass = phone.pass(ticket, window_at(now_unix()), rand::random()).encode();
        let o = gate.present_text_outcome(&pass).await.unwrap();
        assert!(o.verdict.open && !o.offline, "gate {} is answered online again: {:?}", gate.path().key(), o.verdict);
        probes.insert(o.verdict.id);
    }

    let outcomes = outcomes.lock().unwrap().clone();
    assert_eq!(outcomes.len(), GATES * SCANS_PER_GATE as usize);
    let offline = outcomes.iter().filter(|(_, _, off)| *off).count();
    assert!(offline > 0 && offline < outcomes.len(), "the faults made gates decide offline sometimes: {offline}");
    let denials = denials.lock().unwrap().clone();
    assert!(denials.is_empty(), "every valid pass opened, online or offline: {denials:#?}");
    let recorded = recorded_taps(&store).await;
    for (id, _, off) in &outcomes {
        assert_eq!(recorded.get(id), Some(&1), "scan {id} (offline: {off}) recorded exactly once");
    }
    let opened: HashSet<&String> = outcomes.iter().map(|(id, _, _)| id).chain(&probes).collect();
    let extra: Vec<_> = recorded.keys().filter(|id| !opened.contains(id)).collect();
    assert!(extra.is_empty(), "taps recorded that no gate opened for: {extra:?}");
    assert_eq!(recorded.len(), outcomes.len() + probes.len());
    eprintln!(
        "{} scans, {offline} decided offline, a validator killed {kills} times, each recorded once in the database",
        outcomes.len()
    );
    drop(validator_a);
    validator_b.kill().await;
    broker.kill().await;
}

fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kippu-validator-faults-{tag}-{:08x}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn validator_process_killed_and_broker_restarted_lose_and_double_no_tap_sqlite() {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").with_test_writer().try_init();
    let dir = scratch_dir("sqlite");
    run(&format!("sqlite://{}", dir.join("kippu.db").display()), &dir).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn validator_process_killed_and_broker_restarted_lose_and_double_no_tap_postgres() {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").with_test_writer().try_init();
    let Some(pg) = std::env::var("KIPPU_TEST_POSTGRES").ok().filter(|v| !v.is_empty()) else {
        eprintln!("SKIPPED: set KIPPU_TEST_POSTGRES (make test does) to run on PostgreSQL");
        return;
    };
    let db = kippu_store::scratch::ScratchDatabase::create(&pg, "kippu_faults").await.expect("postgres reachable");
    let dir = scratch_dir("postgres");
    run(&db.url, &dir).await;
    db.drop_now().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
