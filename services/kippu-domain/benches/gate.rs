//! Gate-decision throughput on one core: decode + signature recovery + all
//! checks, the validator's whole hot path minus MQTT.
//! Run: `cargo bench -p kippu-domain --bench gate`

use std::time::Instant;

use alloy::signers::{local::PrivateKeySigner, SignerSync};
use kippu_domain::pass::{window_at, Pass};
use kippu_domain::{GateInfo, ScanRequest, TicketState, Validator, ValidatorConfig};

fn main() {
    const N: usize = 20_000;
    let now = 1_800_000_000u64;
    let key = PrivateKeySigner::random();
    let mut v = Validator::new(ValidatorConfig { passback_secs: 0, ..Default::default() });
    v.add_gate("metro/central/g1", GateInfo { operator_id: 1 });
    let scans: Vec<ScanRequest> = (0..N as u64)
        .map(|i| {
            v.upsert_ticket(TicketState {
                id: i,
                holder: key.address(),
                operator_id: 1,
                product_id: 1,
                valid_from: now - 10,
                valid_until: now + 10_000,
                rides_left: None,
            });
            let nonce = (i).to_be_bytes();
            let window = window_at(now);
            let sig = key.sign_hash_sync(&Pass::digest(i, window, &nonce)).unwrap();
            let pass = Pass { ticket_id: i, window, nonce, signature: sig.as_bytes() }.encode();
            ScanRequest { v: 1, id: format!("s{i}"), pass, ts: now * 1000, trip: None }
        })
        .collect();

    let t = Instant::now();
    let mut signers = 0;
    for s in &scans {
        if Pass::decode(&s.pass).unwrap().signer().is_ok() {
            signers += 1;
        }
    }
    let verify = t.elapsed();
    assert_eq!(signers, N);

    let t = Instant::now();
    let opened = scans.iter().filter(|s| v.check("metro/central/g1", s, now).verdict.open).count();
    let decide = t.elapsed();
    assert_eq!(opened, N);

    println!(
        "pass verification (decode + ecrecover): {N} in {verify:?} = {:.0}/s per core",
        N as f64 / verify.as_secs_f64()
    );
    println!(
        "full gate decision (verify + checks + state): {N} in {decide:?} = {:.0}/s per core, {:.1} µs each",
        N as f64 / decide.as_secs_f64(),
        decide.as_secs_f64() * 1e6 / N as f64
    );
}
