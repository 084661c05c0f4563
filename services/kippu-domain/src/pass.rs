//! The rotating QR pass.
//!
//! A pass proves "the holder of ticket T was present during time window W"
//! without a network round-trip to create it: it is signed where the traveler's
//! key lives, and anyone holding the ticket registry can check it, online or
//! offline. The wire form is `KP1.` followed by unpadded base64url of
//! `version(1) | ticket_id(u64 BE) | window(u32 BE) | nonce(8) | signature(65)`,
//! 86 bytes, small enough for a low-density QR code that scans fast.

use alloy_primitives::{eip191_hash_message, keccak256, Address, Signature, B256};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};

/// Length of one rotation window in seconds.
pub const PASS_WINDOW_SECS: u64 = 10;
/// Text prefix that also carries the format version.
pub const PASS_PREFIX: &str = "KP1.";
const VERSION: u8 = 1;
const BODY_LEN: usize = 1 + 8 + 4 + 8;
const WIRE_LEN: usize = BODY_LEN + 65;
/// Longest text a gate accepts before decoding; anything longer is refused
/// untouched so an oversized scan cannot cost the validator work.
pub const MAX_PASS_TEXT: usize = 320;

/// Why a pass could not be read. Each maps to its own deny reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PassError {
    /// Not a Kippu pass at all (wrong prefix), or empty.
    #[error("not a Kippu pass")]
    NotAPass,
    /// Longer than any pass can be.
    #[error("pass data too long ({0} bytes)")]
    Oversized(usize),
    /// Prefix right but the body is not valid base64url or has the wrong length.
    #[error("malformed pass body")]
    Malformed,
    /// A pass version this validator does not know.
    #[error("unsupported pass version {0}")]
    UnsupportedVersion(u8),
    /// The signature bytes are not a valid secp256k1 signature.
    #[error("signature is not valid")]
    BadSignature,
    /// A device pass's certificate is not a valid account signature.
    #[error("device certificate is not valid")]
    BadCertificate,
}

/// A decoded pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pass {
    /// The ERC721 ticket id the pass presents.
    pub ticket_id: u64,
    /// `unix_time / PASS_WINDOW_SECS` at signing.
    pub window: u32,
    /// Random per pass, so two passes of one window differ and replay is detectable.
    pub nonce: [u8; 8],
    /// 65-byte `r | s | v` signature over [`Pass::digest`].
    pub signature: [u8; 65],
}

/// Window number for a unix time.
pub fn window_at(unix_secs: u64) -> u32 {
    (unix_secs / PASS_WINDOW_SECS) as u32
}

impl Pass {
    /// The EIP-191 digest the holder signs. Using `personal_sign` semantics means
    /// any Ethereum wallet can sign a pass, not only Kippu's keystore.
    pub fn digest(ticket_id: u64, window: u32, nonce: &[u8; 8]) -> B256 {
        eip191_hash_message(Self::inner_hash(ticket_id, window, nonce))
    }

    fn inner_hash(ticket_id: u64, window: u32, nonce: &[u8; 8]) -> B256 {
        let mut buf = Vec::with_capacity(13 + 20);
        buf.extend_from_slice(b"kippu-pass-v1");
        buf.extend_from_slice(&ticket_id.to_be_bytes());
        buf.extend_from_slice(&window.to_be_bytes());
        buf.extend_from_slice(nonce);
        keccak256(buf)
    }

    /// The 32 bytes a wallet is asked to `personal_sign`.
    pub fn message(ticket_id: u64, window: u32, nonce: &[u8; 8]) -> B256 {
        Self::inner_hash(ticket_id, window, nonce)
    }

    /// Encodes the pass as QR text.
    pub fn encode(&self) -> String {
        let mut wire = Vec::with_capacity(WIRE_LEN);
        wire.push(VERSION);
        wire.extend_from_slice(&self.ticket_id.to_be_bytes());
        wire.extend_from_slice(&self.window.to_be_bytes());
        wire.extend_from_slice(&self.nonce);
        wire.extend_from_slice(&self.signature);
        format!("{PASS_PREFIX}{}", URL_SAFE_NO_PAD.encode(wire))
    }

    /// Decodes QR text, checking only the format (not the signature's signer).
    pub fn decode(text: &str) -> Result<Self, PassError> {
        if text.len() > MAX_PASS_TEXT {
            return Err(PassError::Oversized(text.len()));
        }
        let body = text.strip_prefix(PASS_PREFIX).ok_or(PassError::NotAPass)?;
        let wire = URL_SAFE_NO_PAD.decode(body).map_err(|_| PassError::Malformed)?;
        if wire.first().is_some_and(|v| *v != VERSION) {
            return Err(PassError::UnsupportedVersion(wire[0]));
        }
        if wire.len() != WIRE_LEN {
            return Err(PassError::Malformed);
        }
        let mut nonce = [0u8; 8];
        nonce.copy_from_slice(&wire[13..21]);
        let mut signature = [0u8; 65];
        signature.copy_from_slice(&wire[21..]);
        Ok(Self {
            ticket_id: u64::from_be_bytes(wire[1..9].try_into().expect("8 bytes")),
            window: u32::from_be_bytes(wire[9..13].try_into().expect("4 bytes")),
            nonce,
            signature,
        })
    }

    /// Recovers the address that signed this pass.
    pub fn signer(&self) -> Result<Address, PassError> {
        let sig = Signature::from_raw(&self.signature).map_err(|_| PassError::BadSignature)?;
        sig.recover_address_from_prehash(&Self::digest(self.ticket_id, self.window, &self.nonce))
            .map_err(|_| PassError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::{local::PrivateKeySigner, SignerSync};

    pub(crate) fn signed(key: &PrivateKeySigner, ticket_id: u64, window: u32) -> Pass {
        let nonce = rand::random::<[u8; 8]>();
        let sig = key.sign_hash_sync(&Pass::digest(ticket_id, window, &nonce)).unwrap();
        Pass { ticket_id, window, nonce, signature: sig.as_bytes() }
    }

    #[test]
    fn round_trip_and_recover() {
        let key = PrivateKeySigner::random();
        let pass = signed(&key, 42, 1_000);
        let text = pass.encode();
        assert!(text.len() < 128, "{}", text.len());
        let back = Pass::decode(&text).unwrap();
        assert_eq!(back, pass);
        assert_eq!(back.signer().unwrap(), key.address());
    }

    #[test]
    fn a_wallet_personal_sign_is_a_valid_pass_signature() {
        let key = PrivateKeySigner::random();
        let nonce = [7u8; 8];
        let sig = key.sign_message_sync(Pass::message(9, 5, &nonce).as_slice()).unwrap();
        let pass = Pass { ticket_id: 9, window: 5, nonce, signature: sig.as_bytes() };
        assert_eq!(pass.signer().unwrap(), key.address());
    }

    #[test]
    fn tampering_changes_the_signer() {
        let key = PrivateKeySigner::random();
        let mut pass = signed(&key, 42, 1_000);
        pass.ticket_id = 43;
        assert_ne!(pass.signer().ok(), Some(key.address()));
    }

    #[test]
    fn bad_texts_get_specific_errors() {
        assert_eq!(Pass::decode(""), Err(PassError::NotAPass));
        assert_eq!(Pass::decode("hello"), Err(PassError::NotAPass));
        assert_eq!(Pass::decode("KP1.***"), Err(PassError::Malformed));
        assert_eq!(Pass::decode("KP1.AQID"), Err(PassError::Malformed));
        assert_eq!(Pass::decode("KP1.AgID"), Err(PassError::UnsupportedVersion(2)));
        let long = format!("KP1.{}", "A".repeat(400));
        assert_eq!(Pass::decode(&long), Err(PassError::Oversized(404)));
        let key = PrivateKeySigner::random();
        let text = signed(&key, 1, 1).encode();
        assert_eq!(Pass::decode(&text[..text.len() - 4]), Err(PassError::Malformed));
        let mut zero = signed(&key, 1, 1);
        zero.signature = [0u8; 65];
        assert_eq!(zero.signer(), Err(PassError::BadSignature));
    }
}
