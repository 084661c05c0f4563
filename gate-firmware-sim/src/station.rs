//! Anti-passback between neighbouring gates when the validator is out of reach.
//!
//! Gates of one station share a LAN even when their uplink to the broker is gone. Each
//! entry a gate lets through (offline, or online as the validator confirmed it) is sent to
//! its neighbours as one UDP datagram, signed with the gate's own Ed25519 key; a neighbour
//! that knows the sender's key applies it to its offline state
//! ([`kippu_domain::Validator::apply_peer_entry`]), so a ticket that just entered at one gate
//! is refused as `PASSBACK` at the next one, and the same pass as `REPLAY`. Datagrams from
//! unknown keys, with bad signatures or for other operators are dropped: a device on the
//! LAN can neither invent entries (which would shut travelers out) nor read anything
//! secret (an entry names a ticket id and a pass nonce, both already on the QR).
//!
//! A datagram has no sequence number, so a signed one captured on the LAN stays valid. The
//! receiver therefore also drops an entry whose `at` is further from its own clock than
//! passback and replay look (a copy sent later, or a neighbour's clock far off), and one
//! whose `(gate, scan id)` it already took within that time, however many snapshots it
//! installed since. An entry carries the ticket's rides left after it, which the receiver
//! takes if lower than its own count, so even a copy that got through would not take a
//! second ride.
//!
//! Wire: JSON `{"gate":"op/station/gate","entry":{…PeerEntry…},"sig":"<base64url>"}`, the
//! signature over `kippu-neighbour-v1\n{gate}\n{entry as compact JSON}`.

use std::net::SocketAddr;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use kippu_domain::PeerEntry;
use serde::{Deserialize, Serialize};

/// A gate's place on its station's LAN.
#[derive(Debug, Clone)]
pub struct StationLink {
    /// Where this gate listens for its neighbours' entries.
    pub bind: SocketAddr,
    /// This gate's key (its device identity), which signs what it sends.
    pub key: SigningKey,
    /// The neighbours: gate key, their public key, where they listen.
    pub neighbours: Vec<(String, VerifyingKey, SocketAddr)>,
}

#[derive(Serialize, Deserialize)]
struct Datagram {
    gate: String,
    entry: PeerEntry,
    sig: String,
}

fn signed_bytes(gate: &str, entry: &PeerEntry) -> Option<Vec<u8>> {
    let json = serde_json::to_string(entry).ok()?;
    Some(format!("kippu-neighbour-v1\n{gate}\n{json}").into_bytes())
}

/// The datagram announcing `entry` from `gate`.
pub fn encode(gate: &str, key: &SigningKey, entry: &PeerEntry) -> Option<Vec<u8>> {
    let sig = key.sign(&signed_bytes(gate, entry)?);
    serde_json::to_vec(&Datagram {
        gate: gate.to_owned(),
        entry: entry.clone(),
        sig: URL_SAFE_NO_PAD.encode(sig.to_bytes()),
    })
    .ok()
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Not a datagram of this format.
    Malformed,
    /// From a gate that is not a neighbour.
    UnknownGate,
    /// Not signed by the neighbour's key.
    BadSignature,
    /// Its entry's time is out of the horizon of this gate's clock.
    Stale,
    /// An entry at another operator's gate.
    OtherOperator,
    /// The same neighbour's same scan, taken already.
    Replayed,
}

/// The sending gate and the entry a datagram carries, if a known neighbour signed it.
pub fn decode(bytes: &[u8], neighbours: &[(String, VerifyingKey, SocketAddr)]) -> Result<(String, PeerEntry), Dropped> {
    let d: Datagram = serde_json::from_slice(bytes).map_err(|_| Dropped::Malformed)?;
    let (_, key, _) = neighbours.iter().find(|(g, _, _)| *g == d.gate).ok_or(Dropped::UnknownGate)?;
    let sig: [u8; 64] =
        URL_SAFE_NO_PAD.decode(&d.sig).ok().and_then(|s| s.try_into().ok()).ok_or(Dropped::BadSignature)?;
    let msg = signed_bytes(&d.gate, &d.entry).ok_or(Dropped::Malformed)?;
    key.verify_strict(&msg, &Signature::from_bytes(&sig)).map_err(|_| Dropped::BadSignature)?;
    Ok((d.gate, d.entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> PeerEntry {
        PeerEntry {
            scan_id: "s1".into(),
            ticket_id: 7,
            window: 1,
            nonce: [1; 8],
            operator_id: 1,
            on_board: false,
            at: 10,
            rides_left_after: None,
        }
    }

    #[test]
    fn only_known_neighbours_signatures_count() {
        let g1 = SigningKey::from_bytes(&[1; 32]);
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let known = vec![("m/s/g1".to_owned(), g1.verifying_key(), addr)];
        let bytes = encode("m/s/g1", &g1, &entry()).unwrap();
        assert_eq!(decode(&bytes, &known), Ok(("m/s/g1".to_owned(), entry())));
        let stranger = SigningKey::from_bytes(&[2; 32]);
        assert_eq!(decode(&encode("m/s/g1", &stranger, &entry()).unwrap(), &known), Err(Dropped::BadSignature));
        assert_eq!(decode(&encode("m/s/g9", &g1, &entry()).unwrap(), &known), Err(Dropped::UnknownGate));
        let mut tampered: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        tampered["entry"]["ticket_id"] = 8.into();
        assert_eq!(decode(&serde_json::to_vec(&tampered).unwrap(), &known), Err(Dropped::BadSignature));
        assert_eq!(decode(b"not json", &known), Err(Dropped::Malformed));
    }
}
