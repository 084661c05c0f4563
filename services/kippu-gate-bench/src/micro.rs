//! `micro`: the per-scan CPU cost of each step of the gate protocol, in this
//! process on one core, to explain the end-to-end figures. Not MQTT.

use std::time::Instant;

use kippu_domain::{ScanRequest, VerdictMessage};

use crate::world;

/// Prints µs per scan of each protocol step, and of the validator's decision as
/// the number of passes accepted in the current replay horizon grows.
pub(crate) fn run(scans: u64, travelers: u64, seed: u64) {
    let now = kippu_mqtt::now_unix();
    let phones = world::phones(seed, travelers, now + 86_400);
    let t = Instant::now();
    let texts = world::passes(&phones, 0..scans, |_| now);
    println!("generate {scans} device passes (all cores): {:.1} µs each", per(t, scans));
    let gate = world::gate_path(0);
    let key = gate.key();
    let reqs: Vec<ScanRequest> = texts
        .into_iter()
        .enumerate()
        .map(|(k, pass)| ScanRequest { v: 1, id: format!("{k:016x}"), pass, ts: now * 1000, trip: None })
        .collect();

    let t = Instant::now();
    let payloads: Vec<Vec<u8>> = reqs.iter().map(|r| serde_json::to_vec(r).expect("serializes")).collect();
    println!("gate: scan JSON encode: {:.2} µs", per(t, scans));
    let t = Instant::now();
    for p in &payloads {
        ScanRequest::parse(p).expect("valid scan");
    }
    println!("validator: scan JSON parse: {:.2} µs", per(t, scans));

    let mut v = world::validator(seed, travelers, 1, scans);
    let block = 10_000.min(scans).max(1);
    println!("validator: Validator::check per block of {block} scans (all in one pass window):");
    let mut verdicts = Vec::with_capacity(reqs.len());
    for (b, chunk) in reqs.chunks(block as usize).enumerate() {
        let t = Instant::now();
        for r in chunk {
            let d = v.check(&key, r, now);
            assert!(d.verdict.open, "{d:?}");
            verdicts.push(d.verdict);
        }
        let from = b as u64 * block;
        let note = if b == 0 { format!(" (includes {travelers} certificate recoveries)") } else { String::new() };
        println!(
            "  scans {from:>7}..{:<7} {:>8.1} µs/scan{note}",
            from + chunk.len() as u64,
            per(t, chunk.len() as u64)
        );
    }

    // Control: the same decisions while the replay set stays under the validator's
    // 10,000-entry prune threshold (a fresh validator, certificates recovered first).
    if scans >= 10_000 {
        let mut fresh = world::validator(seed, travelers, 1, scans);
        for r in &reqs[..travelers as usize] {
            fresh.check(&key, r, now);
        }
        let control = &reqs[travelers as usize..9_000];
        let t = Instant::now();
        for r in control {
            assert!(fresh.check(&key, r, now).verdict.open);
        }
        println!("  control, replay set below 10,000 entries:    {:>8.1} µs/scan", per(t, control.len() as u64));
    }

    let signer = world::verdict_key(seed);
    let t = Instant::now();
    let signed: Vec<VerdictMessage> = verdicts.into_iter().map(|v| v.signed(&signer, &key)).collect();
    println!("validator: sign verdict (Ed25519): {:.2} µs", per(t, scans));
    let t = Instant::now();
    let wire: Vec<Vec<u8>> = signed.iter().map(|v| serde_json::to_vec(v).expect("serializes")).collect();
    println!("validator: verdict JSON encode: {:.2} µs", per(t, scans));
    let trusted = [signer.verifying_key()];
    let t = Instant::now();
    for w in &wire {
        let v: VerdictMessage = serde_json::from_slice(w).expect("parses");
        assert!(v.verify(&trusted, &key));
    }
    println!("gate: verdict JSON parse + verify (Ed25519): {:.2} µs", per(t, scans));
}

fn per(t: Instant, n: u64) -> f64 {
    t.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64
}
