//! The device-signed pass (`KP2.`): what a phone shows with no signal.
//!
//! At sign-in the phone makes an Ed25519 device key (WebCrypto, non-extractable) and
//! the traveler's account key certifies it once with an EIP-712 signature
//! ([`DeviceCert`]: the device key and an expiry; the holder is whoever signed). Each
//! pass is then the device key's signature over (ticket, window, nonce), plus that
//! certificate, so a gate or an inspector's handheld can check it alone, and the
//! validator recovers the holder from a certificate once and then only verifies a
//! fast Ed25519 signature per scan (see [`CertCache`]).
//!
//! Wire: `KP2.` + unpadded base64url of
//! `version(2) | ticket_id(u64 BE) | window(u32 BE) | nonce(8) | device_sig(64) |
//! device_key(32) | cert_expiry(u64 BE) | cert_sig(65)`, 190 bytes.

use std::collections::HashMap;

use alloy_primitives::{Address, Signature, B256};
use alloy_sol_types::{eip712_domain, sol, SolStruct};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use ed25519_dalek::{Signature as EdSignature, VerifyingKey};

use crate::pass::PassError;

/// Text prefix of a device-signed pass.
pub const DEVICE_PASS_PREFIX: &str = "KP2.";
const VERSION: u8 = 2;
const WIRE_LEN: usize = 1 + 8 + 4 + 8 + 64 + 32 + 8 + 65;

sol! {
    /// What the account key signs at sign-in: this device key may sign passes until `expiry`.
    #[derive(Debug)]
    struct DeviceCert {
        bytes32 deviceKey;
        uint64 expiry;
    }
}

/// The EIP-712 digest of a device certificate on chain `chain_id`.
pub fn cert_digest(chain_id: u64, device_key: &[u8; 32], expiry: u64) -> B256 {
    let domain = eip712_domain! { name: "Kippu", version: "1", chain_id: chain_id, };
    DeviceCert { deviceKey: B256::from(*device_key), expiry }.eip712_signing_hash(&domain)
}

/// The bytes the device key signs for one pass.
pub fn device_message(ticket_id: u64, window: u32, nonce: &[u8; 8]) -> [u8; 33] {
    let mut m = [0u8; 33];
    m[..13].copy_from_slice(b"kippu-pass-v2");
    m[13..21].copy_from_slice(&ticket_id.to_be_bytes());
    m[21..25].copy_from_slice(&window.to_be_bytes());
    m[25..].copy_from_slice(nonce);
    m
}

/// A decoded device-signed pass (format only; nothing verified yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePass {
    /// The ERC721 ticket id presented.
    pub ticket_id: u64,
    /// `unix_time / PASS_WINDOW_SECS` at signing.
    pub window: u32,
    /// Random per pass.
    pub nonce: [u8; 8],
    /// Ed25519 signature by the device key over [`device_message`].
    pub device_sig: [u8; 64],
    /// The device's Ed25519 public key.
    pub device_key: [u8; 32],
    /// When the certificate stops vouching for the device key (unix seconds).
    pub cert_expiry: u64,
    /// The account key's EIP-712 signature over [`cert_digest`] (`r | s | v`).
    pub cert_sig: [u8; 65],
}

impl DevicePass {
    /// Encodes the pass as QR text.
    pub fn encode(&self) -> String {
        let mut w = Vec::with_capacity(WIRE_LEN);
        w.push(VERSION);
        w.extend_from_slice(&self.ticket_id.to_be_bytes());
        w.extend_from_slice(&self.window.to_be_bytes());
        w.extend_from_slice(&self.nonce);
        w.extend_from_slice(&self.device_sig);
        w.extend_from_slice(&self.device_key);
        w.extend_from_slice(&self.cert_expiry.to_be_bytes());
        w.extend_from_slice(&self.cert_sig);
        format!("{DEVICE_PASS_PREFIX}{}", URL_SAFE_NO_PAD.encode(w))
    }

    /// Decodes QR text, checking only the format.
    pub fn decode(text: &str) -> Result<Self, PassError> {
        if text.len() > crate::pass::MAX_PASS_TEXT {
            return Err(PassError::Oversized(text.len()));
        }
        let body = text.strip_prefix(DEVICE_PASS_PREFIX).ok_or(PassError::NotAPass)?;
        let w = URL_SAFE_NO_PAD.decode(body).map_err(|_| PassError::Malformed)?;
        if w.first().is_some_and(|v| *v != VERSION) {
            return Err(PassError::UnsupportedVersion(w[0]));
        }
        if w.len() != WIRE_LEN {
            return Err(PassError::Malformed);
        }
        let arr = |from: usize, to: usize| w[from..to].to_vec();
        Ok(Self {
            ticket_id: u64::from_be_bytes(arr(1, 9).try_into().expect("8 bytes")),
            window: u32::from_be_bytes(arr(9, 13).try_into().expect("4 bytes")),
            nonce: arr(13, 21).try_into().expect("8 bytes"),
            device_sig: arr(21, 85).try_into().expect("64 bytes"),
            device_key: arr(85, 117).try_into().expect("32 bytes"),
            cert_expiry: u64::from_be_bytes(arr(117, 125).try_into().expect("8 bytes")),
            cert_sig: arr(125, 190).try_into().expect("65 bytes"),
        })
    }

    /// The account that certified the device key (EIP-712 recovery; slow, so callers cache it).
    pub fn certifier(&self, chain_id: u64) -> Result<Address, PassError> {
        let sig = Signature::from_raw(&self.cert_sig).map_err(|_| PassError::BadCertificate)?;
        sig.recover_address_from_prehash(&cert_digest(chain_id, &self.device_key, self.cert_expiry))
            .map_err(|_| PassError::BadCertificate)
    }

    /// Checks the device key's signature on this pass.
    pub fn verify_device_sig(&self) -> Result<(), PassError> {
        let key = VerifyingKey::from_bytes(&self.device_key).map_err(|_| PassError::BadSignature)?;
        key.verify_strict(
            &device_message(self.ticket_id, self.window, &self.nonce),
            &EdSignature::from_bytes(&self.device_sig),
        )
        .map_err(|_| PassError::BadSignature)
    }
}

/// Certificates already recovered: device key → (expiry, certificate signature, holder).
/// A certificate changes once per sign-in, so each is recovered once; a pass whose
/// certificate bytes differ from the cached ones for its key is recovered afresh.
#[derive(Debug)]
pub struct CertCache {
    known: HashMap<[u8; 32], ([u8; 65], u64, Address)>,
    limit: usize,
}

impl Default for CertCache {
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl CertCache {
    /// A cache holding at most `limit` certificates (cleared when full: a re-recovery is cheap
    /// next to the memory of an unbounded map fed by strangers' passes).
    pub fn new(limit: usize) -> Self {
        Self { known: HashMap::new(), limit: limit.max(1) }
    }

    /// The holder that certified `pass`'s device key.
    pub fn holder(&mut self, pass: &DevicePass, chain_id: u64) -> Result<Address, PassError> {
        if let Some((sig, expiry, holder)) = self.known.get(&pass.device_key) {
            if *sig == pass.cert_sig && *expiry == pass.cert_expiry {
                return Ok(*holder);
            }
        }
        let holder = pass.certifier(chain_id)?;
        if self.known.len() >= self.limit {
            self.known.clear();
        }
        self.known.insert(pass.device_key, (pass.cert_sig, pass.cert_expiry, holder));
        Ok(holder)
    }

    /// Certificates held.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }
}

/// Signing side, for tests, benches and simulated phones: a device key and its certificate.
#[derive(Debug, Clone)]
pub struct Device {
    key: ed25519_dalek::SigningKey,
    /// Certificate expiry (unix seconds).
    pub cert_expiry: u64,
    /// The account key's certificate signature.
    pub cert_sig: [u8; 65],
}

impl Device {
    /// A device from a 32-byte seed, certified with `cert_sig` until `cert_expiry`.
    pub fn new(seed: [u8; 32], cert_expiry: u64, cert_sig: [u8; 65]) -> Self {
        Self { key: ed25519_dalek::SigningKey::from_bytes(&seed), cert_expiry, cert_sig }
    }

    /// The device's public key (what the account key certifies).
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// A pass for `ticket_id` in `window`.
    pub fn pass(&self, ticket_id: u64, window: u32, nonce: [u8; 8]) -> DevicePass {
        use ed25519_dalek::Signer;
        let sig = self.key.sign(&device_message(ticket_id, window, &nonce));
        DevicePass {
            ticket_id,
            window,
            nonce,
            device_sig: sig.to_bytes(),
            device_key: self.public_key(),
            cert_expiry: self.cert_expiry,
            cert_sig: self.cert_sig,
        }
    }
}

/// The ticket a pass of either kind presents, without checking anything else; `None`
/// when the text is not a readable pass.
pub fn ticket_of(text: &str) -> Option<u64> {
    if text.starts_with(DEVICE_PASS_PREFIX) {
        DevicePass::decode(text).ok().map(|p| p.ticket_id)
    } else {
        crate::pass::Pass::decode(text).ok().map(|p| p.ticket_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::{local::PrivateKeySigner, SignerSync};

    pub(crate) fn device(account: &PrivateKeySigner, chain_id: u64, expiry: u64) -> Device {
        let seed: [u8; 32] = rand::random();
        let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        let sig = account.sign_hash_sync(&cert_digest(chain_id, &public, expiry)).unwrap();
        Device::new(seed, expiry, sig.as_bytes())
    }

    #[test]
    fn round_trip_verify_and_recover_the_holder_once() {
        let account = PrivateKeySigner::random();
        let d = device(&account, 31337, 2_000_000_000);
        let pass = d.pass(42, 180_000_000, [1; 8]);
        let text = pass.encode();
        assert!(text.len() <= crate::pass::MAX_PASS_TEXT, "{}", text.len());
        let back = DevicePass::decode(&text).unwrap();
        assert_eq!(back, pass);
        back.verify_device_sig().unwrap();
        let mut cache = CertCache::new(10);
        assert_eq!(cache.holder(&back, 31337).unwrap(), account.address());
        assert_eq!(cache.holder(&back, 31337).unwrap(), account.address());
        assert_eq!(cache.len(), 1);
        // Another chain's domain recovers someone else.
        assert_ne!(back.certifier(1).unwrap(), account.address());
    }

    #[test]
    fn forgeries_are_caught() {
        let account = PrivateKeySigner::random();
        let d = device(&account, 31337, 2_000_000_000);
        let mut pass = d.pass(42, 180_000_000, [1; 8]);
        pass.ticket_id = 43;
        assert_eq!(pass.verify_device_sig(), Err(PassError::BadSignature));
        // A certificate lifted onto another device key does not vouch for it.
        let thief = device(&PrivateKeySigner::random(), 31337, 2_000_000_000);
        let mut stolen = thief.pass(42, 180_000_000, [1; 8]);
        stolen.cert_sig = d.cert_sig;
        stolen.verify_device_sig().unwrap();
        let mut cache = CertCache::new(10);
        assert_ne!(cache.holder(&stolen, 31337).ok(), Some(account.address()));
        // A longer expiry than was signed recovers a stranger, cached or not.
        let good = d.pass(42, 180_000_000, [2; 8]);
        assert_eq!(cache.holder(&good, 31337).unwrap(), account.address());
        let mut extended = good.clone();
        extended.cert_expiry += 1;
        assert_ne!(cache.holder(&extended, 31337).ok(), Some(account.address()));
        let mut zero = good;
        zero.cert_sig = [0; 65];
        assert_eq!(zero.certifier(31337), Err(PassError::BadCertificate));
    }

    #[test]
    fn bad_texts_get_specific_errors() {
        assert_eq!(DevicePass::decode("KP2.***"), Err(PassError::Malformed));
        assert_eq!(DevicePass::decode("KP2.AgID"), Err(PassError::Malformed));
        assert_eq!(DevicePass::decode("KP2.AwID"), Err(PassError::UnsupportedVersion(3)));
        assert_eq!(DevicePass::decode("KP1.AwID"), Err(PassError::NotAPass));
        let d = device(&PrivateKeySigner::random(), 1, 1);
        let text = d.pass(1, 1, [0; 8]).encode();
        assert_eq!(DevicePass::decode(&text[..text.len() - 3]), Err(PassError::Malformed));
        assert!(matches!(DevicePass::decode(&format!("{text}{}", "A".repeat(200))), Err(PassError::Oversized(_))));
    }
}
