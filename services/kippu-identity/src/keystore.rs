use std::fmt;
use std::str::FromStr;

use alloy::primitives::{keccak256, Address};
use alloy::signers::local::PrivateKeySigner;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::{IdentityError, Result};

/// Version tag of the text form, so the format can evolve without guessing.
const TEXT_PREFIX: &str = "ks1.";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;
const SEALED_LEN: usize = KEY_LEN + TAG_LEN;
const ADDRESS_LEN: usize = 20;
const BLOB_LEN: usize = ADDRESS_LEN + 2 * (NONCE_LEN + SEALED_LEN);
// Distinct labels so a wrapped data key can never be accepted as a sealed
// private key or vice versa, even though both are 48-byte ciphertexts.
const AAD_WRAP: &[u8] = b"kippu-keystore/v1/data-key/";
const AAD_KEY: &[u8] = b"kippu-keystore/v1/private-key/";

/// Server-side store for custodial travelers' secp256k1 keys.
///
/// Envelope encryption: each private key is encrypted under its own random
/// data key, and only the data key is encrypted under the master key. The
/// master key thus only ever touches 32 random bytes per account, and rotating
/// it means re-wrapping data keys rather than re-encrypting every key.
pub struct Keystore {
    master: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for Keystore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material, even in debug logs.
        f.debug_struct("Keystore").finish_non_exhaustive()
    }
}

impl Keystore {
    /// A keystore using `master_key` to wrap data keys.
    pub fn new(master_key: [u8; KEY_LEN]) -> Self {
        Self { master: Zeroizing::new(master_key) }
    }

    /// A keystore from a 64-hex-digit master key (optionally `0x`-prefixed),
    /// the form it takes in configuration or a secrets manager.
    pub fn from_hex(master_key_hex: &str) -> Result<Self> {
        let trimmed = master_key_hex.trim();
        let hex_part = trimmed.strip_prefix("0x").unwrap_or(trimmed);
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        hex::decode_to_slice(hex_part, key.as_mut())
            .map_err(|e| IdentityError::InvalidMasterKey(format!("expected 64 hex digits: {e}")))?;
        Ok(Self::new(*key))
    }

    /// Generates a new custodial key and returns its address and sealed form.
    pub fn create(&self) -> Result<(Address, SealedKey)> {
        let signer = PrivateKeySigner::random();
        let sealed = self.seal(&signer)?;
        Ok((signer.address(), sealed))
    }

    /// Encrypts `signer`'s private key for storage.
    pub fn seal(&self, signer: &PrivateKeySigner) -> Result<SealedKey> {
        let address = signer.address();
        let secret = Zeroizing::new(signer.to_bytes().0);
        let mut data_key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(data_key.as_mut());

        let (key_nonce, sealed_key) = encrypt(&data_key, AAD_KEY, address, secret.as_ref())?;
        let (wrap_nonce, wrapped_key) = encrypt(&self.master, AAD_WRAP, address, data_key.as_ref())?;
        Ok(SealedKey { address, wrap_nonce, wrapped_key, key_nonce, sealed_key })
    }

    /// Decrypts a sealed key.
    ///
    /// Fails with [`IdentityError::KeyUnsealFailed`] on a wrong master key, any
    /// modified byte, or an address that is not the one the key was sealed for.
    pub fn open(&self, sealed: &SealedKey) -> Result<PrivateKeySigner> {
        let address = sealed.address;
        let data_key = decrypt(&self.master, AAD_WRAP, address, &sealed.wrap_nonce, &sealed.wrapped_key)?;
        let data_key: Zeroizing<[u8; KEY_LEN]> =
            Zeroizing::new(data_key.as_slice().try_into().map_err(|_| IdentityError::KeyUnsealFailed)?);
        let secret = decrypt(&data_key, AAD_KEY, address, &sealed.key_nonce, &sealed.sealed_key)?;
        let signer = PrivateKeySigner::from_slice(&secret).map_err(|_| IdentityError::KeyUnsealFailed)?;
        // Redundant with the AAD unless the master key leaked, in which case
        // it still stops a forged blob from posing as another account.
        if signer.address() != address {
            return Err(IdentityError::KeyUnsealFailed);
        }
        Ok(signer)
    }

    /// Like [`Keystore::open`], but first checks the blob belongs to
    /// `expected` — pass the account address of the database row the blob was
    /// read from, so blobs swapped between rows are refused.
    pub fn open_for(&self, expected: Address, sealed: &SealedKey) -> Result<PrivateKeySigner> {
        if sealed.address != expected {
            return Err(IdentityError::KeyUnsealFailed);
        }
        self.open(sealed)
    }
}

impl Keystore {
    /// Seals a 32-byte secret that is not an EVM account key (an issuer's
    /// Ed25519 seed), bound to `owner` so a blob cannot be moved to another owner.
    pub fn seal_seed(&self, owner: &str, seed: &[u8; KEY_LEN]) -> Result<String> {
        let id = seed_owner(owner);
        let mut data_key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(data_key.as_mut());
        let (key_nonce, sealed) = encrypt(&data_key, AAD_SEED, id, seed)?;
        let (wrap_nonce, wrapped) = encrypt(&self.master, AAD_WRAP, id, data_key.as_ref())?;
        let blob = [&wrap_nonce[..], &wrapped, &key_nonce, &sealed].concat();
        Ok(format!("{SEED_PREFIX}{}", URL_SAFE_NO_PAD.encode(blob)))
    }

    /// Opens a seed sealed by [`Keystore::seal_seed`] for the same `owner`.
    pub fn open_seed(&self, owner: &str, text: &str) -> Result<Zeroizing<[u8; KEY_LEN]>> {
        let id = seed_owner(owner);
        let body = text
            .strip_prefix(SEED_PREFIX)
            .ok_or_else(|| IdentityError::MalformedSealedKey("missing ks1s. prefix".into()))?;
        let blob = URL_SAFE_NO_PAD.decode(body).map_err(|e| IdentityError::MalformedSealedKey(e.to_string()))?;
        if blob.len() != SEED_BLOB_LEN {
            return Err(IdentityError::MalformedSealedKey(format!(
                "expected {SEED_BLOB_LEN} bytes, got {}",
                blob.len()
            )));
        }
        let (wrap_nonce, rest) = blob.split_at(NONCE_LEN);
        let (wrapped, rest) = rest.split_at(SEALED_LEN);
        let (key_nonce, sealed) = rest.split_at(NONCE_LEN);
        let wrap_nonce: [u8; NONCE_LEN] = wrap_nonce.try_into().expect("split at NONCE_LEN");
        let key_nonce: [u8; NONCE_LEN] = key_nonce.try_into().expect("split at NONCE_LEN");
        let data_key = decrypt(&self.master, AAD_WRAP, id, &wrap_nonce, wrapped)?;
        let data_key: Zeroizing<[u8; KEY_LEN]> =
            Zeroizing::new(data_key.as_slice().try_into().map_err(|_| IdentityError::KeyUnsealFailed)?);
        let seed = decrypt(&data_key, AAD_SEED, id, &key_nonce, sealed)?;
        Ok(Zeroizing::new(seed.as_slice().try_into().map_err(|_| IdentityError::KeyUnsealFailed)?))
    }

    /// A secret derived from the master key for `label` (simulated devices'
    /// keys): reproducible across restarts without storing it, and useless
    /// without the master key.
    pub fn derive_seed(&self, label: &str) -> Zeroizing<[u8; KEY_LEN]> {
        Zeroizing::new(keccak256([self.master.as_slice(), b"kippu-derive:", label.as_bytes()].concat()).0)
    }
}

const SEED_PREFIX: &str = "ks1s.";
const AAD_SEED: &[u8] = b"kippu-ks1-seed";
const SEED_BLOB_LEN: usize = NONCE_LEN + SEALED_LEN + NONCE_LEN + SEALED_LEN;

fn seed_owner(owner: &str) -> Address {
    Address::from_slice(&keccak256(owner.as_bytes())[12..])
}

fn aad(label: &[u8], address: Address) -> Vec<u8> {
    [label, address.as_slice()].concat()
}

fn encrypt(
    key: &[u8; KEY_LEN],
    label: &[u8],
    address: Address,
    plaintext: &[u8],
) -> Result<([u8; NONCE_LEN], Vec<u8>)> {
    // XChaCha's 192-bit nonce makes random nonces safe without a counter.
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let aad = aad(label, address);
    let ciphertext = XChaCha20Poly1305::new(key.into())
        .encrypt(&XNonce::from(nonce), Payload { msg: plaintext, aad: &aad })
        .map_err(|e| IdentityError::KeySealFailed(e.to_string()))?;
    Ok((nonce, ciphertext))
}

fn decrypt(
    key: &[u8; KEY_LEN],
    label: &[u8],
    address: Address,
    nonce: &[u8; NONCE_LEN],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let aad = aad(label, address);
    XChaCha20Poly1305::new(key.into())
        .decrypt(&XNonce::from(*nonce), Payload { msg: ciphertext, aad: &aad })
        .map(Zeroizing::new)
        .map_err(|_| IdentityError::KeyUnsealFailed)
}

/// A private key encrypted by a [`Keystore`], safe to store in a database.
///
/// Its text form (via `Display` / [`SealedKey::parse`]) is `ks1.` followed by
/// base64url (no padding) of
/// `address ‖ wrap nonce ‖ wrapped data key ‖ key nonce ‖ encrypted key`.
/// The address is authenticated as associated data in both layers.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedKey {
    address: Address,
    wrap_nonce: [u8; NONCE_LEN],
    wrapped_key: Vec<u8>,
    key_nonce: [u8; NONCE_LEN],
    sealed_key: Vec<u8>,
}

impl fmt::Debug for SealedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedKey").field("address", &self.address).finish_non_exhaustive()
    }
}

impl SealedKey {
    /// The account this key was sealed for.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Parses the text form produced by `Display`.
    pub fn parse(text: &str) -> Result<Self> {
        let malformed = |why: &str| IdentityError::MalformedSealedKey(why.to_owned());
        let body = text.trim().strip_prefix(TEXT_PREFIX).ok_or_else(|| malformed("missing ks1. prefix"))?;
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|e| IdentityError::MalformedSealedKey(e.to_string()))?;
        if bytes.len() != BLOB_LEN {
            return Err(IdentityError::MalformedSealedKey(format!("expected {BLOB_LEN} bytes, got {}", bytes.len())));
        }
        let (address, rest) = bytes.split_at(ADDRESS_LEN);
        let (wrap_nonce, rest) = rest.split_at(NONCE_LEN);
        let (wrapped_key, rest) = rest.split_at(SEALED_LEN);
        let (key_nonce, sealed_key) = rest.split_at(NONCE_LEN);
        Ok(Self {
            address: Address::from_slice(address),
            wrap_nonce: wrap_nonce.try_into().expect("split at NONCE_LEN"),
            wrapped_key: wrapped_key.to_vec(),
            key_nonce: key_nonce.try_into().expect("split at NONCE_LEN"),
            sealed_key: sealed_key.to_vec(),
        })
    }
}

impl fmt::Display for SealedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes =
            [self.address.as_slice(), &self.wrap_nonce, &self.wrapped_key, &self.key_nonce, &self.sealed_key].concat();
        write!(f, "{TEXT_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }
}

impl FromStr for SealedKey {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl serde::Serialize for SealedKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for SealedKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A reproducible key for seeding demo travelers: the secret is
/// `keccak256("kippu-demo:" + label)`.
///
/// Anyone can recompute these keys from the label, so they must only ever
/// hold demo (worthless) assets.
pub fn deterministic_demo_key(label: &str) -> PrivateKeySigner {
    let mut secret = keccak256(format!("kippu-demo:{label}"));
    loop {
        // A hash is a valid secp256k1 scalar except with ~2^-128 probability;
        // re-hashing keeps the function total and still deterministic.
        match PrivateKeySigner::from_bytes(&secret) {
            Ok(signer) => return signer,
            Err(_) => secret = keccak256(secret),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: [u8; 32] = [7u8; 32];

    #[test]
    fn sealed_seeds_open_only_for_their_owner_and_master() {
        let ks = Keystore::new(MASTER);
        let seed = [42u8; 32];
        let text = ks.seal_seed("did:web:kippu.example:issuers:usf", &seed).unwrap();
        assert!(text.starts_with("ks1s."));
        assert_eq!(*ks.open_seed("did:web:kippu.example:issuers:usf", &text).unwrap(), seed);
        assert!(ks.open_seed("did:web:kippu.example:issuers:other", &text).is_err(), "moved to another owner");
        assert!(Keystore::new([8u8; 32]).open_seed("did:web:kippu.example:issuers:usf", &text).is_err());
        let mut bad = text.clone().into_bytes();
        let last = bad.len() - 1;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        assert!(ks.open_seed("did:web:kippu.example:issuers:usf", std::str::from_utf8(&bad).unwrap()).is_err());
        assert!(ks.open_seed("x", "ks1.abc").is_err());
        assert_eq!(*ks.derive_seed("gate:a"), *ks.derive_seed("gate:a"));
        assert_ne!(*ks.derive_seed("gate:a"), *ks.derive_seed("gate:b"));
        assert_ne!(*ks.derive_seed("gate:a"), *Keystore::new([8u8; 32]).derive_seed("gate:a"));
    }

    #[test]
    fn seal_open_round_trip_through_text() {
        let ks = Keystore::new(MASTER);
        let (address, sealed) = ks.create().unwrap();
        assert_eq!(sealed.address(), address);
        let text = sealed.to_string();
        assert!(text.starts_with("ks1."));
        assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
        let parsed: SealedKey = text.parse().unwrap();
        assert_eq!(parsed, sealed);
        let signer = ks.open(&parsed).unwrap();
        assert_eq!(signer.address(), address);
        assert_eq!(ks.open_for(address, &parsed).unwrap().address(), address);

        let json = serde_json::to_string(&sealed).unwrap();
        assert_eq!(serde_json::from_str::<SealedKey>(&json).unwrap(), sealed);
    }

    #[test]
    fn sealing_twice_differs_but_both_open() {
        let ks = Keystore::new(MASTER);
        let signer = deterministic_demo_key("alice");
        let a = ks.seal(&signer).unwrap();
        let b = ks.seal(&signer).unwrap();
        assert_ne!(a.to_string(), b.to_string(), "fresh data key and nonces");
        assert_eq!(ks.open(&a).unwrap().to_bytes(), signer.to_bytes());
        assert_eq!(ks.open(&b).unwrap().to_bytes(), signer.to_bytes());
    }

    #[test]
    fn wrong_master_key_fails() {
        let (_, sealed) = Keystore::new(MASTER).create().unwrap();
        let other = Keystore::new([8u8; 32]);
        assert_eq!(other.open(&sealed), Err(IdentityError::KeyUnsealFailed));
    }

    #[test]
    fn every_tampered_byte_fails() {
        let ks = Keystore::new(MASTER);
        let (_, sealed) = ks.create().unwrap();
        let text = sealed.to_string();
        let bytes = URL_SAFE_NO_PAD.decode(&text[TEXT_PREFIX.len()..]).unwrap();
        for i in 0..bytes.len() {
            let mut tampered = bytes.clone();
            tampered[i] ^= 0x01;
            let blob = format!("{TEXT_PREFIX}{}", URL_SAFE_NO_PAD.encode(&tampered));
            let parsed = SealedKey::parse(&blob).unwrap();
            assert_eq!(ks.open(&parsed).map(|s| s.address()), Err(IdentityError::KeyUnsealFailed), "byte {i} flipped");
        }
    }

    #[test]
    fn swapped_address_fails() {
        let ks = Keystore::new(MASTER);
        let (alice, alice_sealed) = ks.create().unwrap();
        let (bob, bob_sealed) = ks.create().unwrap();

        // A blob moved to another account's row is refused by open_for.
        assert_eq!(ks.open_for(bob, &alice_sealed).map(|s| s.address()), Err(IdentityError::KeyUnsealFailed));
        // Relabelling a blob with another address breaks both AADs.
        let relabelled = SealedKey { address: bob, ..alice_sealed.clone() };
        assert_eq!(ks.open(&relabelled).map(|s| s.address()), Err(IdentityError::KeyUnsealFailed));
        // Mixing layers of two accounts (Bob's wrapped data key, Alice's key).
        let mixed = SealedKey {
            wrap_nonce: bob_sealed.wrap_nonce,
            wrapped_key: bob_sealed.wrapped_key.clone(),
            ..alice_sealed.clone()
        };
        assert_eq!(ks.open(&mixed).map(|s| s.address()), Err(IdentityError::KeyUnsealFailed));
        assert_eq!(ks.open(&alice_sealed).unwrap().address(), alice);
    }

    #[test]
    fn malformed_text_is_rejected() {
        for bad in ["", "ks1.", "ks2.AAAA", "ks1.!!!!", "ks1.AAAA"] {
            assert!(matches!(SealedKey::parse(bad), Err(IdentityError::MalformedSealedKey(_))), "{bad:?}");
        }
    }

    #[test]
    fn master_key_from_hex() {
        let hex_key = hex::encode(MASTER);
        let ks = Keystore::from_hex(&format!("0x{hex_key}")).unwrap();
        let (_, sealed) = ks.create().unwrap();
        assert!(Keystore::new(MASTER).open(&sealed).is_ok());
        for bad in ["", "00", &hex_key[..62], &format!("{hex_key}00"), &"zz".repeat(32)] {
            assert!(matches!(Keystore::from_hex(bad), Err(IdentityError::InvalidMasterKey(_))), "{bad:?}");
        }
        assert_eq!(format!("{ks:?}"), "Keystore { .. }");
    }

    #[test]
    fn demo_keys_are_reproducible_and_distinct() {
        let a1 = deterministic_demo_key("alice");
        let a2 = deterministic_demo_key("alice");
        let b = deterministic_demo_key("bob");
        assert_eq!(a1.address(), a2.address());
        assert_ne!(a1.address(), b.address());
        assert_eq!(a1.to_bytes(), keccak256("kippu-demo:alice"));
    }
}
