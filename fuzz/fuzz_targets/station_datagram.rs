//! Any datagram on the station LAN: the neighbour-entry parser and signature check.
//! Must never panic; an entry a neighbour signed comes back as it was sent, and one signed
//! by any other key, or under another gate's name, is dropped.
#![no_main]

use ed25519_dalek::SigningKey;
use gate_firmware_sim::station::{decode, encode, Dropped};
use kippu_domain::PeerEntry;
use libfuzzer_sys::fuzz_target;

const NEIGHBOUR: &str = "metro/central/g2";

fuzz_target!(|data: &[u8]| {
    let key = SigningKey::from_bytes(&[2; 32]);
    let neighbours = [(NEIGHBOUR.to_owned(), key.verifying_key(), "127.0.0.1:1".parse().unwrap())];
    // The bytes as a datagram: nothing a stranger can send passes without the neighbour's key.
    if let Ok((gate, _)) = decode(data, &neighbours) {
        assert_eq!(gate, NEIGHBOUR);
    }
    // The bytes as an entry a neighbour sends: it round-trips, and only from that neighbour.
    if let Ok(entry) = serde_json::from_slice::<PeerEntry>(data) {
        let Some(bytes) = encode(NEIGHBOUR, &key, &entry) else { return };
        assert_eq!(decode(&bytes, &neighbours), Ok((NEIGHBOUR.to_owned(), entry.clone())));
        let stranger = SigningKey::from_bytes(&[3; 32]);
        let forged = encode(NEIGHBOUR, &stranger, &entry).unwrap();
        assert_eq!(decode(&forged, &neighbours), Err(Dropped::BadSignature));
        let elsewhere = encode("metro/central/g9", &key, &entry).unwrap();
        assert_eq!(decode(&elsewhere, &neighbours), Err(Dropped::UnknownGate));
    }
});
