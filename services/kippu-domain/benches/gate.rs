//! Gate-decision throughput on one core, the validator's whole hot path minus MQTT.
//! Run: `cargo bench -p kippu-domain --bench gate`
//!
//! Two pass kinds: the account-signed pass (`KP1`, a secp256k1 recovery per scan) and
//! the device-signed pass (`KP2`, an Ed25519 check per scan; the account's EIP-712
//! certificate of the device key is recovered once per device and cached). The traffic
//! is 20,000 scans by 2,000 travelers (10 scans per phone), so 10 % of the device
//! scans pay a certificate recovery, as on a morning when everyone signed in that day.

use std::time::Instant;

use alloy::signers::{local::PrivateKeySigner, SignerSync};
use kippu_domain::device_pass::{cert_digest, Device, DevicePass};
use kippu_domain::pass::{window_at, Pass};
use kippu_domain::{GateInfo, ScanRequest, TicketState, Validator, ValidatorConfig};

const N: usize = 20_000;
const PHONES: usize = 2_000;
const NOW: u64 = 1_800_000_000;

fn validator(holders: &[PrivateKeySigner]) -> Validator {
    let mut v = Validator::new(ValidatorConfig { passback_secs: 0, ..Default::default() });
    v.add_gate("metro/central/g1", GateInfo { operator_id: 1 });
    for i in 0..N as u64 {
        v.upsert_ticket(TicketState {
            id: i,
            holder: holders[i as usize % PHONES].address(),
            operator_id: 1,
            product_id: 1,
            valid_from: NOW - 10,
            valid_until: NOW + 10_000,
            rides_left: None,
        });
    }
    v
}

fn rate(label: &str, n: usize, took: std::time::Duration) {
    println!(
        "{label}: {n} in {took:.2?} = {:.0}/s per core, {:.1} µs each",
        n as f64 / took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / n as f64
    );
}

fn main() {
    let holders: Vec<PrivateKeySigner> = (0..PHONES).map(|_| PrivateKeySigner::random()).collect();
    let window = window_at(NOW);
    let phones: Vec<Device> = holders
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let public = Device::new(seed, 0, [0; 65]).public_key();
            let sig = h.sign_hash_sync(&cert_digest(31_337, &public, NOW + 86_400)).unwrap();
            Device::new(seed, NOW + 86_400, sig.as_bytes())
        })
        .collect();
    let account_scans: Vec<ScanRequest> = (0..N as u64)
        .map(|i| {
            let nonce = i.to_be_bytes();
            let sig = holders[i as usize % PHONES].sign_hash_sync(&Pass::digest(i, window, &nonce)).unwrap();
            let pass = Pass { ticket_id: i, window, nonce, signature: sig.as_bytes() }.encode();
            ScanRequest { v: 1, id: format!("a{i}"), pass, ts: NOW * 1000, trip: None }
        })
        .collect();
    let device_scans: Vec<ScanRequest> = (0..N as u64)
        .map(|i| {
            let pass = phones[i as usize % PHONES].pass(i, window, i.to_be_bytes()).encode();
            ScanRequest { v: 1, id: format!("d{i}"), pass, ts: NOW * 1000, trip: None }
        })
        .collect();

    let t = Instant::now();
    let ok = account_scans.iter().filter(|s| Pass::decode(&s.pass).unwrap().signer().is_ok()).count();
    assert_eq!(ok, N);
    rate("account pass verification (decode + secp256k1 recovery)", N, t.elapsed());

    let t = Instant::now();
    let ok = device_scans.iter().filter(|s| DevicePass::decode(&s.pass).unwrap().verify_device_sig().is_ok()).count();
    assert_eq!(ok, N);
    rate("device pass verification (decode + Ed25519), certificate cached", N, t.elapsed());

    let mut v = validator(&holders);
    let t = Instant::now();
    let opened = account_scans.iter().filter(|s| v.check("metro/central/g1", s, NOW).verdict.open).count();
    assert_eq!(opened, N);
    rate("full gate decision, account passes", N, t.elapsed());

    let mut v = validator(&holders);
    let t = Instant::now();
    let opened = device_scans.iter().filter(|s| v.check("metro/central/g1", s, NOW).verdict.open).count();
    assert_eq!(opened, N);
    rate(&format!("full gate decision, device passes ({PHONES} certificates recovered once each)"), N, t.elapsed());
}
