//! An operator's offline snapshot lists every ticket valid at its gates, so it grows with the
//! operator: 20,000 tickets make about 3 MB of signed snapshot. It must still reach the gates
//! through the brokers as deployed (the secured embedded broker of `kippu dev`, and Mosquitto),
//! and a gate with no validator must open for the last ticket in it.

use std::time::Duration;

use alloy::primitives::B256;
use alloy::signers::{local::PrivateKeySigner, SignerSync};
use ed25519_dalek::SigningKey;
use gate_firmware_sim::{GateSetup, OfflineOptions, SimGate};
use kippu_domain::device_pass::{cert_digest, Device};
use kippu_domain::pass::window_at;
use kippu_domain::snapshot::{GateSnapshot, SnapshotTicket, SNAPSHOT_VERSION};
use kippu_domain::TicketState;
use kippu_mqtt::{now_unix, EmbeddedBroker, MqttUrl};

const CHAIN: u64 = 31_337;
const TICKETS: u64 = 20_000;

/// Publishes a 20,000-ticket snapshot as `publisher` and checks a gate logged in as `gate_url`
/// takes it and decides offline from it.
async fn big_snapshot_reaches_the_gate(publisher: &MqttUrl, gate_url: &str, gate_key: &str) {
    let now = now_unix();
    let account = PrivateKeySigner::random();
    let seed: [u8; 32] = rand::random();
    let public = Device::new(seed, 0, [0; 65]).public_key();
    let cert = account.sign_hash_sync(&cert_digest(CHAIN, &public, now + 3_600)).unwrap();
    let phone = Device::new(seed, now + 3_600, cert.as_bytes());
    let key = SigningKey::from_bytes(&rand::random());
    let tickets: Vec<SnapshotTicket> = (1..=TICKETS)
        .map(|id| {
            SnapshotTicket::from(&TicketState {
                id,
                holder: if id == TICKETS { account.address() } else { alloy::primitives::Address::random() },
                operator_id: 1,
                product_id: 1,
                valid_from: now - 60,
                valid_until: now + 3_600,
                rides_left: Some(10),
            })
        })
        .collect();
    let snapshot = GateSnapshot {
        version: SNAPSHOT_VERSION,
        issued_at: now,
        valid_until: now + 600,
        operator_id: 1,
        gates: vec![gate_key.to_owned()],
        chain_id: CHAIN,
        validators: vec![B256::from(key.verifying_key().to_bytes())],
        revoked_holders: vec![],
        revoked_devices: vec![],
        tickets,
        cards: vec![],
    }
    .sign(&key)
    .to_bytes();
    assert!(snapshot.len() > 2_000_000, "the snapshot is realistically big: {} bytes", snapshot.len());
    let path = gate_firmware_sim::gate_path(gate_key).unwrap();
    gate_firmware_sim::publish_config(publisher, &path, &snapshot).await.expect("the broker takes the snapshot");

    let dir = std::env::temp_dir().join(format!("kippu-big-snapshot-{:08x}", rand::random::<u32>()));
    let mut offline = OfflineOptions::in_dir(&dir);
    offline.rules.chain_id = CHAIN;
    let setup = GateSetup {
        trusted_validators: vec![key.verifying_key()],
        timeout: Duration::from_millis(500),
        offline: Some(offline),
        ..GateSetup::new(gate_url, gate_key)
    };
    let gate = SimGate::connect_with(setup).await.expect("gate connects");
    assert_eq!(gate.wait_snapshot(now, Duration::from_secs(30)).await, Some(now), "the gate holds the snapshot");
    // No validator runs: the gate decides from the snapshot.
    let o = gate.present_text_outcome(&phone.pass(TICKETS, window_at(now_unix()), rand::random()).encode()).await;
    let o = o.expect("an offline verdict");
    assert!(o.offline && o.verdict.open, "{:?}", o.verdict);
    assert_eq!(o.verdict.rides_left, Some(9));
    // An empty retained message clears it, so a shared broker does not keep 3 MB per run.
    gate_firmware_sim::publish_config(publisher, &path, &[]).await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_snapshot_goes_through_the_secured_embedded_broker() {
    let logins = std::sync::Arc::new(kippu_mqtt::MemoryCredentials::new());
    let store: std::sync::Arc<dyn kippu_mqtt::CredentialStore> = logins.clone();
    let broker =
        tokio::task::spawn_blocking(move || EmbeddedBroker::start_secured("127.0.0.1:0".parse().unwrap(), store, None))
            .await
            .unwrap()
            .unwrap();
    let plain = MqttUrl::parse(&broker.url()).unwrap();
    let gate_key = "metro/central/g1";
    let gate_path = kippu_domain::topics::GatePath::parse_key(gate_key).unwrap();
    let gate = logins.issue(&kippu_mqtt::Identity::Gate(gate_path)).unwrap();
    let validator = logins.issue(&kippu_mqtt::Identity::Validator).unwrap();
    let gate_url =
        format!("mqtt://{}:{}@{}:{}", gate.username.replace('/', "%2F"), gate.password, plain.host, plain.port);
    big_snapshot_reaches_the_gate(&validator.apply_to(&plain), &gate_url, gate_key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_snapshot_goes_through_mosquitto() {
    let Some(url) = std::env::var("KIPPU_TEST_MOSQUITTO").ok().filter(|v| !v.is_empty()) else {
        eprintln!("SKIPPED: set KIPPU_TEST_MOSQUITTO (make test does) to run through Mosquitto");
        return;
    };
    let gate_key = format!("op{:08x}/central/g1", rand::random::<u32>());
    big_snapshot_reaches_the_gate(&MqttUrl::parse(&url).unwrap(), &url, &gate_key).await;
}
