//! NFC/RFID card taps (`KC1.`): a contactless card bound to a traveler's ticket.
//!
//! A card's number can be read and copied by anyone within a few centimetres, so a
//! card is never trusted by its number. Like a DESFire or NTAG 424 card, it holds a
//! key it cannot export and answers the gate's challenge: the gate sends a fresh random
//! challenge, the card signs (gate, challenge, window) with its Ed25519 key, and the gate
//! publishes the answer as the scan's pass text. A recorded answer is useless at another
//! gate (the gate key is signed), later (the window is) or again (the validator remembers
//! challenges it accepted).
//!
//! The traveler binds a card to one ticket with their account key: an EIP-712
//! [`CardBinding`] (card key, ticket id), so the validator learns the holder from a
//! signature, not from the database's word, and the same binding goes into the gates'
//! signed snapshot for offline taps.
//!
//! Wire: `KC1.` + unpadded base64url of
//! `version(1) | card_key(32) | challenge(8) | window(u32 BE) | sig(64)`, 109 bytes.

use alloy_primitives::{Address, Signature, B256};
use alloy_sol_types::{eip712_domain, sol, SolStruct};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use ed25519_dalek::{Signature as EdSignature, Signer, SigningKey, VerifyingKey};

use crate::pass::PassError;

/// Text prefix of a card's answer to a gate challenge.
pub const CARD_TAP_PREFIX: &str = "KC1.";
const VERSION: u8 = 1;
const WIRE_LEN: usize = 1 + 32 + 8 + 4 + 64;

sol! {
    /// What the account key signs to bind a card to a ticket.
    #[derive(Debug)]
    struct CardBinding {
        bytes32 cardKey;
        uint64 ticketId;
    }
}

/// The EIP-712 digest of a card binding on chain `chain_id`.
pub fn binding_digest(chain_id: u64, card_key: &[u8; 32], ticket_id: u64) -> B256 {
    let domain = eip712_domain! { name: "Kippu", version: "1", chain_id: chain_id, };
    CardBinding { cardKey: B256::from(*card_key), ticketId: ticket_id }.eip712_signing_hash(&domain)
}

/// The account that signed a binding of `card_key` to `ticket_id` (`sig` is `r | s | v`).
pub fn binding_signer(chain_id: u64, card_key: &[u8; 32], ticket_id: u64, sig: &[u8]) -> Result<Address, PassError> {
    let sig = Signature::try_from(sig).map_err(|_| PassError::BadCertificate)?;
    sig.recover_address_from_prehash(&binding_digest(chain_id, card_key, ticket_id))
        .map_err(|_| PassError::BadCertificate)
}

/// The bytes a card signs for one tap: the gate it is at, the gate's challenge, the window.
pub fn card_message(gate_key: &str, challenge: &[u8; 8], window: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(13 + 8 + 4 + gate_key.len());
    m.extend_from_slice(b"kippu-card-v1");
    m.extend_from_slice(challenge);
    m.extend_from_slice(&window.to_be_bytes());
    m.extend_from_slice(gate_key.as_bytes());
    m
}

/// A card's answer to a gate challenge, as the gate forwards it (format only; nothing verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardTap {
    /// The card's Ed25519 public key: what a binding names.
    pub card_key: [u8; 32],
    /// The gate's random challenge.
    pub challenge: [u8; 8],
    /// `unix_time / PASS_WINDOW_SECS` on the card's reader.
    pub window: u32,
    /// Ed25519 signature over [`card_message`].
    pub sig: [u8; 64],
}

impl CardTap {
    /// Encodes the answer as pass text.
    pub fn encode(&self) -> String {
        let mut w = Vec::with_capacity(WIRE_LEN);
        w.push(VERSION);
        w.extend_from_slice(&self.card_key);
        w.extend_from_slice(&self.challenge);
        w.extend_from_slice(&self.window.to_be_bytes());
        w.extend_from_slice(&self.sig);
        format!("{CARD_TAP_PREFIX}{}", URL_SAFE_NO_PAD.encode(w))
    }

    /// Decodes pass text, checking only the format.
    pub fn decode(text: &str) -> Result<Self, PassError> {
        if text.len() > crate::pass::MAX_PASS_TEXT {
            return Err(PassError::Oversized(text.len()));
        }
        let body = text.strip_prefix(CARD_TAP_PREFIX).ok_or(PassError::NotAPass)?;
        let w = URL_SAFE_NO_PAD.decode(body).map_err(|_| PassError::Malformed)?;
        if w.first().is_some_and(|v| *v != VERSION) {
            return Err(PassError::UnsupportedVersion(w[0]));
        }
        if w.len() != WIRE_LEN {
            return Err(PassError::Malformed);
        }
        let mut card_key = [0u8; 32];
        card_key.copy_from_slice(&w[1..33]);
        let mut challenge = [0u8; 8];
        challenge.copy_from_slice(&w[33..41]);
        let window = u32::from_be_bytes([w[41], w[42], w[43], w[44]]);
        let mut sig = [0u8; 64];
        sig.copy_from_slice(&w[45..109]);
        Ok(Self { card_key, challenge, window, sig })
    }

    /// Checks the card's signature for a tap at `gate_key`.
    pub fn verify(&self, gate_key: &str) -> Result<(), PassError> {
        let key = VerifyingKey::from_bytes(&self.card_key).map_err(|_| PassError::BadSignature)?;
        key.verify_strict(&card_message(gate_key, &self.challenge, self.window), &EdSignature::from_bytes(&self.sig))
            .map_err(|_| PassError::BadSignature)
    }
}

/// A simulated contactless card: the key it keeps to itself and answers challenges with.
#[derive(Debug, Clone)]
pub struct Card {
    key: SigningKey,
}

impl Card {
    /// A card from its 32-byte secret (personalised at the factory).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        Self { key: SigningKey::from_bytes(&secret) }
    }

    /// The secret, for saving a simulated card to a file.
    pub fn secret(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The card's public key: printed on it (hex) and named by a binding.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Answers a gate's challenge.
    pub fn answer(&self, gate_key: &str, challenge: [u8; 8], window: u32) -> CardTap {
        let sig = self.key.sign(&card_message(gate_key, &challenge, window)).to_bytes();
        CardTap { card_key: self.public_key(), challenge, window, sig }
    }
}

/// Parses a card number as printed: 64 hex digits, optionally `0x`-prefixed, spaces and dashes ignored.
pub fn parse_card_key(text: &str) -> Option<[u8; 32]> {
    let clean: String = text.trim().trim_start_matches("0x").chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let bytes = alloy_primitives::hex::decode(clean).ok()?;
    let key: [u8; 32] = bytes.try_into().ok()?;
    // Only a point on the curve can ever sign a tap; refusing others here gives the traveler
    // a typo error at binding time instead of a card that never opens a gate.
    VerifyingKey::from_bytes(&key).ok()?;
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::{local::PrivateKeySigner, SignerSync};

    #[test]
    fn round_trip_and_verify_at_the_right_gate_only() {
        let card = Card::from_secret([7; 32]);
        let tap = card.answer("metro/central/g1", [1; 8], 100);
        let text = tap.encode();
        assert!(text.len() <= crate::pass::MAX_PASS_TEXT);
        let back = CardTap::decode(&text).unwrap();
        assert_eq!(back, tap);
        back.verify("metro/central/g1").unwrap();
        assert_eq!(back.verify("metro/central/g2"), Err(PassError::BadSignature), "another gate's answer");
        let mut moved = back.clone();
        moved.window += 1;
        assert_eq!(moved.verify("metro/central/g1"), Err(PassError::BadSignature), "another window");
        let mut other = back;
        other.challenge = [2; 8];
        assert_eq!(other.verify("metro/central/g1"), Err(PassError::BadSignature), "another challenge");
    }

    #[test]
    fn binding_recovers_the_account_and_nothing_else() {
        let account = PrivateKeySigner::random();
        let card = Card::from_secret([9; 32]);
        let sig = account.sign_hash_sync(&binding_digest(31337, &card.public_key(), 5)).unwrap().as_bytes();
        assert_eq!(binding_signer(31337, &card.public_key(), 5, &sig).unwrap(), account.address());
        assert_ne!(binding_signer(31337, &card.public_key(), 6, &sig).ok(), Some(account.address()), "another ticket");
        assert_ne!(binding_signer(1, &card.public_key(), 5, &sig).ok(), Some(account.address()), "another chain");
        assert_eq!(binding_signer(31337, &card.public_key(), 5, &[0; 65]), Err(PassError::BadCertificate));
        assert_eq!(binding_signer(31337, &card.public_key(), 5, &[1; 10]), Err(PassError::BadCertificate));
    }

    #[test]
    fn bad_texts_and_card_numbers() {
        assert_eq!(CardTap::decode("KC1.***"), Err(PassError::Malformed));
        assert_eq!(CardTap::decode("KC1.AQID"), Err(PassError::Malformed));
        assert_eq!(CardTap::decode("KC1.AgID"), Err(PassError::UnsupportedVersion(2)));
        assert_eq!(CardTap::decode("KP2.AQID"), Err(PassError::NotAPass));
        let text = Card::from_secret([3; 32]).answer("a/b/c", [0; 8], 1).encode();
        assert_eq!(CardTap::decode(&text[..text.len() - 2]), Err(PassError::Malformed));
        let card = Card::from_secret([3; 32]);
        let printed = alloy_primitives::hex::encode(card.public_key());
        assert_eq!(parse_card_key(&printed), Some(card.public_key()));
        assert_eq!(parse_card_key(&format!("0x{}", printed.to_uppercase())), Some(card.public_key()));
        let grouped: Vec<String> = printed.as_bytes().chunks(8).map(|c| String::from_utf8_lossy(c).into()).collect();
        assert_eq!(parse_card_key(&grouped.join("-")), Some(card.public_key()));
        assert_eq!(parse_card_key("1234"), None);
        assert_eq!(parse_card_key(&"zz".repeat(32)), None);
    }
}
