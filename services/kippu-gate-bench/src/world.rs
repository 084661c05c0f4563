//! The deterministic world: travelers, their phones, tickets, gates and the
//! validators' verdict key, all derived from one seed. The load generator and
//! every validator process derive the same world without talking to each other.
//!
//! * Traveler `i` has an account key `keccak("kippu-bench/traveler" | seed | i)`
//!   and a phone whose Ed25519 device key that account certified (EIP-712).
//! * Scan slot `k` (0, 1, 2, … over a whole configuration) presents ticket `k`,
//!   held by traveler `k % travelers`, with nonce `k`: no scan is a replay and
//!   none is a passback, so every scan should open.
//! * Gate `g` is `bench/s{g / 10}/g{g}`, operator id 1.

use std::ops::Range;

use alloy::primitives::{keccak256, Address, B256};
use alloy::signers::{local::PrivateKeySigner, SignerSync};
use kippu_domain::device_pass::{cert_digest, Device};
use kippu_domain::pass::window_at;
use kippu_domain::topics::GatePath;
use kippu_domain::{GateInfo, ScanRequest, TicketState, Validator, ValidatorConfig};

/// Operator slug of every bench gate.
pub(crate) const OPERATOR: &str = "bench";
/// Numeric id of that operator.
const OPERATOR_ID: u32 = 1;
/// Chain id of the device certificates (the validator's default).
const CHAIN_ID: u64 = 31_337;
/// Tickets are valid from the epoch until 2096: only the pass checks matter here.
const VALID_UNTIL: u64 = 4_000_000_000;

fn derive(seed: u64, label: &str, index: u64) -> B256 {
    let mut buf = Vec::with_capacity(label.len() + 16);
    buf.extend_from_slice(label.as_bytes());
    buf.extend_from_slice(&seed.to_be_bytes());
    buf.extend_from_slice(&index.to_be_bytes());
    keccak256(&buf)
}

/// Traveler `i`'s account key.
pub(crate) fn traveler_key(seed: u64, i: u64) -> PrivateKeySigner {
    let mut h = derive(seed, "kippu-bench/traveler", i);
    loop {
        // A hash outside the curve order is astronomically rare; rehash if it happens.
        match PrivateKeySigner::from_bytes(&h) {
            Ok(k) => return k,
            Err(_) => h = keccak256(h),
        }
    }
}

/// The Ed25519 key every bench validator signs verdicts with (one per deployment,
/// as `kippu`'s stack derives one `validator:verdicts` key for all its instances).
pub(crate) fn verdict_key(seed: u64) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&derive(seed, "kippu-bench/validator", 0).0)
}

/// Gate `g`'s topic path.
pub(crate) fn gate_path(g: usize) -> GatePath {
    GatePath::new(OPERATOR, &format!("s{:03}", g / 10), &format!("g{g}")).expect("bench slugs are valid")
}

/// Holder addresses of the travelers (what a validator needs; no signing keys kept).
pub(crate) fn holders(seed: u64, travelers: u64) -> Vec<Address> {
    par_map(0..travelers, |i| traveler_key(seed, i).address())
}

/// A validator that knows every bench gate and the tickets of slots `0..tickets`.
/// Passback is off: a traveler's next scan (another ticket or nonce) must open.
pub(crate) fn validator(seed: u64, travelers: u64, gates: usize, tickets: u64) -> Validator {
    let holders = holders(seed, travelers);
    let mut v = Validator::new(ValidatorConfig { passback_secs: 0, chain_id: CHAIN_ID, ..Default::default() });
    for g in 0..gates {
        v.add_gate(&gate_path(g).key(), GateInfo { operator_id: OPERATOR_ID });
    }
    for id in 0..tickets {
        v.upsert_ticket(TicketState {
            id,
            holder: holders[(id % travelers) as usize],
            operator_id: OPERATOR_ID,
            product_id: 1,
            valid_from: 0,
            valid_until: VALID_UNTIL,
            rides_left: None,
        });
    }
    v
}

/// Fills `v`'s certificate cache with every phone's certificate (as a validator
/// that has been up a while has), by presenting one pass per phone for a ticket
/// that does not exist: the pass is verified and its certificate recovered, then
/// denied as an unknown ticket, so no ride, replay or passback state changes.
pub(crate) fn prewarm(v: &mut Validator, seed: u64, travelers: u64, cert_expiry: u64) {
    let now = kippu_mqtt::now_unix();
    let gate = gate_path(0).key();
    for (i, phone) in phones(seed, travelers, cert_expiry).iter().enumerate() {
        let pass = phone.pass(u64::MAX - i as u64, window_at(now), [0xff; 8]).encode();
        let req = ScanRequest { v: 1, id: format!("prewarm-{i}"), pass, ts: now * 1000, trip: None };
        let d = v.check(&gate, &req, now);
        debug_assert_eq!(d.verdict.reason, Some(kippu_domain::DenyReason::UnknownTicket), "{d:?}");
    }
}

/// The travelers' phones, each certified by its traveler until `cert_expiry`.
pub(crate) fn phones(seed: u64, travelers: u64, cert_expiry: u64) -> Vec<Device> {
    par_map(0..travelers, |i| {
        let account = traveler_key(seed, i);
        let device_seed = derive(seed, "kippu-bench/device", i).0;
        let public = Device::new(device_seed, 0, [0; 65]).public_key();
        let sig = account.sign_hash_sync(&cert_digest(CHAIN_ID, &public, cert_expiry)).expect("local signing");
        Device::new(device_seed, cert_expiry, sig.as_bytes())
    })
}

/// Pass texts for `slots`; `unix_at(slot)` is when that slot's scan is planned,
/// whose window the pass is signed for (so long runs never present stale passes).
pub(crate) fn passes(phones: &[Device], slots: Range<u64>, unix_at: impl Fn(u64) -> u64 + Sync) -> Vec<String> {
    let n = phones.len() as u64;
    par_map(slots, |k| phones[(k % n) as usize].pass(k, window_at(unix_at(k)), k.to_be_bytes()).encode())
}

/// `f` over `range` on every core, in order.
fn par_map<T: Send>(range: Range<u64>, f: impl Fn(u64) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as u64;
    let len = range.end.saturating_sub(range.start);
    let chunk = len.div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let f = &f;
        let parts: Vec<_> = (0..threads)
            .map(|t| {
                let from = range.start + t * chunk;
                let to = (from + chunk).min(range.end);
                s.spawn(move || (from..to).map(f).collect::<Vec<T>>())
            })
            .collect();
        parts.into_iter().flat_map(|p| p.join().expect("worker panicked")).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_and_validator_agree() {
        let now = kippu_mqtt::now_unix();
        let phones = phones(9, 3, now + 3600);
        let texts = passes(&phones, 0..7, |_| now);
        let mut v = validator(9, 3, 2, 7);
        prewarm(&mut v, 9, 3, now + 3600);
        for (k, pass) in texts.into_iter().enumerate() {
            let req = ScanRequest { v: 1, id: format!("s{k}"), pass, ts: now * 1000, trip: None };
            let d = v.check(&gate_path(k % 2).key(), &req, now);
            assert!(d.verdict.open, "{d:?}");
        }
    }
}
