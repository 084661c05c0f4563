//! The gate snapshot: everything a gate (or an inspector's handheld) needs to decide
//! a scan alone when the broker or the validator is unreachable.
//!
//! A validator key signs it, so a gate accepts it from any channel (its retained
//! `config` topic, a file) and ignores one a rogue publisher sent. It covers one
//! operator: the gate keys it is meant for, the chain id of device certificates,
//! the validator keys that sign verdicts for those gates, the deny-list (revoked
//! account keys and device keys) and the tickets valid with the operator.
//!
//! Wire form (compact JSON):
//!
//! ```text
//! {"body":{"version":1,"issued_at":…,"valid_until":…,"operator_id":…,"gates":[…],
//!          "chain_id":…,"validators":[…],"revoked_holders":[…],"revoked_devices":[…],
//!          "tickets":[{"id":…,"holder":"0x…","operator_id":…,"product_id":…,
//!                      "valid_from":…,"valid_until":…,"rides_left":…}],
//!          "cards":[{"card_key":"0x…","ticket_id":…,"holder":"0x…"}]},
//!  "sig":"<base64url Ed25519 signature>"}
//! ```
//!
//! The signature is over the canonical bytes of `body`: its compact `serde_json`
//! encoding with the fields in the order above (what [`GateSnapshot::canonical_bytes`]
//! returns). A verifier parses `body` and re-encodes it, so whitespace or key order on
//! the wire do not matter, and unknown fields are refused (they could not be signed
//! over). The signed bytes start with `{`, so they can never be mistaken for a signed
//! verdict (`kippu-verdict-v…`) when one key signs both.
//!
//! [`GateSnapshot::into_validator`] turns a verified snapshot into the same
//! [`Validator`] the validator service runs, so an offline decision is the online one.

use alloy_primitives::{Address, B256};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::validation::{BoundCard, GateInfo, TicketState, Validator, ValidatorConfig};

/// The snapshot format this code reads and writes.
pub const SNAPSHOT_VERSION: u32 = 1;
/// Largest signed snapshot accepted before parsing.
pub const MAX_SNAPSHOT_BYTES: usize = 4 * 1024 * 1024;
/// The gate key an inspector's handheld is registered under in [`GateSnapshot::into_inspector`].
pub const INSPECTOR_GATE: &str = "_inspector/_handheld/_local";

/// A ticket as a gate needs it offline (the domain [`TicketState`], serializable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotTicket {
    /// ERC721 token id.
    pub id: u64,
    /// Current holder.
    pub holder: Address,
    /// Operator the ticket is valid with.
    pub operator_id: u32,
    /// Product it was sold as.
    pub product_id: u32,
    /// Validity start, unix seconds.
    pub valid_from: u64,
    /// Validity end (exclusive), unix seconds.
    pub valid_until: u64,
    /// Rides left when the snapshot was issued; `None` for unlimited passes.
    pub rides_left: Option<u32>,
}

impl From<&TicketState> for SnapshotTicket {
    fn from(t: &TicketState) -> Self {
        Self {
            id: t.id,
            holder: t.holder,
            operator_id: t.operator_id,
            product_id: t.product_id,
            valid_from: t.valid_from,
            valid_until: t.valid_until,
            rides_left: t.rides_left,
        }
    }
}

impl From<&SnapshotTicket> for TicketState {
    fn from(t: &SnapshotTicket) -> Self {
        Self {
            id: t.id,
            holder: t.holder,
            operator_id: t.operator_id,
            product_id: t.product_id,
            valid_from: t.valid_from,
            valid_until: t.valid_until,
            rides_left: t.rides_left,
        }
    }
}

/// What a gate needs offline. Unsigned: [`GateSnapshot::sign`] makes the wire form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSnapshot {
    /// Format version, [`SNAPSHOT_VERSION`].
    pub version: u32,
    /// When the platform took the snapshot (unix seconds). A gate holding a snapshot
    /// never replaces it with an older one (an old snapshot lacks newer revocations).
    pub issued_at: u64,
    /// After this (unix seconds, exclusive) the snapshot must not be used.
    pub valid_until: u64,
    /// Numeric operator id the covered gates belong to.
    pub operator_id: u32,
    /// `operator/station/gate` keys of the gates this snapshot is for.
    pub gates: Vec<String>,
    /// Chain id in the EIP-712 domain of device certificates.
    pub chain_id: u64,
    /// Ed25519 public keys of the validators that sign verdicts for these gates.
    pub validators: Vec<B256>,
    /// Revoked account keys: they sign no passes, nor do devices they certified.
    pub revoked_holders: Vec<Address>,
    /// Revoked device keys (lost or replaced phones).
    pub revoked_devices: Vec<B256>,
    /// Tickets valid with the operator.
    pub tickets: Vec<SnapshotTicket>,
    /// Contactless cards bound to those tickets (absent from the wire when none, so
    /// snapshots without cards read and verify as before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cards: Vec<SnapshotCard>,
}

/// A card bound to a ticket, as a gate needs it offline. The platform verified the
/// account's binding signature; the snapshot's own signature vouches for it here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotCard {
    /// The card's Ed25519 public key.
    pub card_key: B256,
    /// The ticket its taps present.
    pub ticket_id: u64,
    /// The account that bound it.
    pub holder: Address,
}

/// Why a signed snapshot was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Not a signed snapshot: bad JSON, missing or unknown fields, a bad signature encoding, too big.
    #[error("malformed snapshot: {0}")]
    Malformed(String),
    /// A snapshot format this code does not know.
    #[error("unknown snapshot version {0}")]
    UnknownVersion(u64),
    /// No trusted key signed this body (tampered, or signed by a stranger).
    #[error("snapshot not signed by a trusted validator key")]
    BadSignature,
    /// Past its `valid_until`.
    #[error("snapshot expired at {valid_until} (now {now})")]
    Expired {
        /// The snapshot's end of validity.
        valid_until: u64,
        /// The time it was checked at.
        now: u64,
    },
}

/// A snapshot as carried on the wire: the body and a validator's signature over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedSnapshot {
    /// The snapshot.
    pub body: GateSnapshot,
    /// Base64url (unpadded) Ed25519 signature over [`GateSnapshot::canonical_bytes`].
    pub sig: String,
}

/// The envelope before the body is trusted to be of a known version.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvelope {
    body: serde_json::Value,
    sig: String,
}

impl GateSnapshot {
    /// The bytes the validator key signs: the compact JSON of the body.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a snapshot always serializes")
    }

    /// Signs the snapshot with a validator key.
    pub fn sign(&self, key: &SigningKey) -> SignedSnapshot {
        let sig = key.sign(&self.canonical_bytes());
        SignedSnapshot { body: self.clone(), sig: URL_SAFE_NO_PAD.encode(sig.to_bytes()) }
    }

    /// Whether the snapshot may still be used at `now` (unix seconds).
    pub fn usable_at(&self, now: u64) -> bool {
        now < self.valid_until
    }

    /// Whether the snapshot is meant for the gate `operator/station/gate`.
    pub fn covers(&self, gate_key: &str) -> bool {
        self.gates.iter().any(|g| g == gate_key)
    }

    /// The validator public keys listed in the snapshot that are well-formed Ed25519 keys.
    pub fn validator_keys(&self) -> Vec<VerifyingKey> {
        self.validators.iter().filter_map(|k| VerifyingKey::from_bytes(&k.0).ok()).collect()
    }

    /// The domain [`Validator`] for the gate `gate_key`, loaded with the snapshot's
    /// tickets and deny-list, so the gate decides offline with the online code. The
    /// gate is registered only when the snapshot [`covers`](Self::covers) it (otherwise
    /// every scan is `UNKNOWN_GATE`). `cfg.chain_id` is replaced by the snapshot's.
    pub fn into_validator(self, gate_key: &str, cfg: ValidatorConfig) -> Validator {
        let (covered, operator_id) = (self.covers(gate_key), self.operator_id);
        let mut v = self.load(cfg);
        if covered {
            v.add_gate(gate_key, GateInfo { operator_id });
        }
        v
    }

    /// A [`Validator`] for an inspector's handheld: the operator's rules with the
    /// handheld registered as [`INSPECTOR_GATE`], whatever gates the snapshot lists.
    pub fn into_inspector(self, cfg: ValidatorConfig) -> Validator {
        let operator_id = self.operator_id;
        let mut v = self.load(cfg);
        v.add_gate(INSPECTOR_GATE, GateInfo { operator_id });
        v
    }

    fn load(self, cfg: ValidatorConfig) -> Validator {
        let mut v = Validator::new(ValidatorConfig { chain_id: self.chain_id, ..cfg });
        for t in &self.tickets {
            v.upsert_ticket(t.into());
        }
        for h in self.revoked_holders {
            v.revoke_key(h);
        }
        for d in self.revoked_devices {
            v.revoke_device(d.0);
        }
        for c in self.cards {
            v.bind_card_verified(c.card_key.0, BoundCard { ticket_id: c.ticket_id, holder: c.holder });
        }
        v
    }
}

impl SignedSnapshot {
    /// Parses the wire form. Checks only the shape and the version, nothing signed.
    pub fn parse(bytes: &[u8]) -> Result<Self, SnapshotError> {
        if bytes.len() > MAX_SNAPSHOT_BYTES {
            return Err(SnapshotError::Malformed(format!("{} bytes, more than {MAX_SNAPSHOT_BYTES}", bytes.len())));
        }
        let raw: RawEnvelope = serde_json::from_slice(bytes).map_err(|e| SnapshotError::Malformed(e.to_string()))?;
        // The version first: a newer format is "unknown version", not "malformed".
        let version = raw
            .body
            .get("version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| SnapshotError::Malformed("body has no numeric version".into()))?;
        if version != u64::from(SNAPSHOT_VERSION) {
            return Err(SnapshotError::UnknownVersion(version));
        }
        let body: GateSnapshot =
            serde_json::from_value(raw.body).map_err(|e| SnapshotError::Malformed(e.to_string()))?;
        Ok(Self { body, sig: raw.sig })
    }

    /// The compact JSON wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a snapshot always serializes")
    }

    /// The body, if one of `trusted` signed it and it is still usable at `now` (unix seconds).
    pub fn verify(&self, trusted: &[VerifyingKey], now: u64) -> Result<GateSnapshot, SnapshotError> {
        if self.body.version != SNAPSHOT_VERSION {
            return Err(SnapshotError::UnknownVersion(self.body.version.into()));
        }
        let raw = URL_SAFE_NO_PAD
            .decode(&self.sig)
            .map_err(|_| SnapshotError::Malformed("signature is not base64url".into()))?;
        let raw = <[u8; 64]>::try_from(raw.as_slice())
            .map_err(|_| SnapshotError::Malformed(format!("signature is {} bytes, not 64", raw.len())))?;
        let sig = Signature::from_bytes(&raw);
        let msg = self.body.canonical_bytes();
        if !trusted.iter().any(|k| k.verify_strict(&msg, &sig).is_ok()) {
            return Err(SnapshotError::BadSignature);
        }
        if !self.body.usable_at(now) {
            return Err(SnapshotError::Expired { valid_until: self.body.valid_until, now });
        }
        Ok(self.body.clone())
    }

    /// [`Self::parse`] then [`Self::verify`].
    pub fn open(bytes: &[u8], trusted: &[VerifyingKey], now: u64) -> Result<GateSnapshot, SnapshotError> {
        Self::parse(bytes)?.verify(trusted, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device_pass::{cert_digest, Device};
    use crate::pass::window_at;
    use crate::verdict::{DenyReason, ScanRequest};
    use alloy::signers::{local::PrivateKeySigner, SignerSync};

    const NOW: u64 = 1_800_000_000;
    const GATE: &str = "metro/central/g1";

    fn validator_key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn device(account: &PrivateKeySigner, chain_id: u64) -> Device {
        let seed: [u8; 32] = rand::random();
        let public = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        let sig = account.sign_hash_sync(&cert_digest(chain_id, &public, NOW + 3_600)).unwrap();
        Device::new(seed, NOW + 3_600, sig.as_bytes())
    }

    fn snapshot(holder: Address) -> GateSnapshot {
        let ticket = |id, valid_until| SnapshotTicket {
            id,
            holder,
            operator_id: 1,
            product_id: 10,
            valid_from: NOW - 100,
            valid_until,
            rides_left: Some(3),
        };
        GateSnapshot {
            version: SNAPSHOT_VERSION,
            issued_at: NOW - 10,
            valid_until: NOW + 3_600,
            operator_id: 1,
            gates: vec![GATE.into(), "metro/central/g2".into()],
            chain_id: 4_242,
            validators: vec![B256::from(validator_key(1).verifying_key().to_bytes())],
            revoked_holders: vec![],
            revoked_devices: vec![],
            tickets: vec![ticket(7, NOW + 1_000), ticket(8, NOW - 1)],
            cards: vec![],
        }
    }

    fn scan(id: &str, pass: String) -> ScanRequest {
        ScanRequest { v: 1, id: id.into(), pass, ts: NOW * 1000, trip: None }
    }

    #[test]
    fn round_trip_and_canonical_form() {
        let key = validator_key(1);
        let snap = snapshot(Address::repeat_byte(3));
        let wire = snap.sign(&key).to_bytes();
        let back = SignedSnapshot::open(&wire, &[key.verifying_key()], NOW).unwrap();
        assert_eq!(back, snap);
        assert_eq!(back.validator_keys(), vec![key.verifying_key()]);
        // Another encoder's whitespace and key order verify the same.
        let value: serde_json::Value = serde_json::from_slice(&wire).unwrap();
        let pretty =
            serde_json::to_vec_pretty(&serde_json::json!({ "sig": value["sig"], "body": value["body"] })).unwrap();
        assert_ne!(pretty, wire);
        assert_eq!(SignedSnapshot::open(&pretty, &[key.verifying_key()], NOW).unwrap(), snap);
        // One of several trusted keys is enough.
        let keys = [validator_key(9).verifying_key(), key.verifying_key()];
        assert!(SignedSnapshot::open(&wire, &keys, NOW).is_ok());
    }

    #[test]
    fn tampered_body_wrong_key_and_expiry_are_refused() {
        let key = validator_key(1);
        let trusted = [key.verifying_key()];
        let signed = snapshot(Address::repeat_byte(3)).sign(&key);
        // A gate holding the body cannot be given one more ride.
        let mut tampered = signed.clone();
        tampered.body.tickets[0].rides_left = Some(30);
        assert_eq!(tampered.verify(&trusted, NOW), Err(SnapshotError::BadSignature));
        // Nor have a revocation removed, in the JSON itself.
        let mut revoking = snapshot(Address::repeat_byte(3));
        revoking.revoked_devices.push(B256::repeat_byte(5));
        let text = String::from_utf8(revoking.sign(&key).to_bytes()).unwrap();
        let stripped = text.replace(&format!("\"{}\"", B256::repeat_byte(5)), "");
        assert_ne!(stripped, text);
        assert_eq!(SignedSnapshot::open(stripped.as_bytes(), &trusted, NOW), Err(SnapshotError::BadSignature));
        // A stranger's key, or no trusted key at all.
        let rogue = snapshot(Address::repeat_byte(3)).sign(&validator_key(2));
        assert_eq!(rogue.verify(&trusted, NOW), Err(SnapshotError::BadSignature));
        assert_eq!(signed.verify(&[], NOW), Err(SnapshotError::BadSignature));
        // Expired: exclusive end.
        let end = signed.body.valid_until;
        assert!(signed.verify(&trusted, end - 1).is_ok());
        assert_eq!(signed.verify(&trusted, end), Err(SnapshotError::Expired { valid_until: end, now: end }));
        // A signature that is not one.
        let mut garbled = signed;
        garbled.sig = "!!".into();
        assert!(matches!(garbled.verify(&trusted, NOW), Err(SnapshotError::Malformed(_))));
    }

    #[test]
    fn unknown_versions_and_malformed_input_get_their_errors() {
        let key = validator_key(1);
        let trusted = [key.verifying_key()];
        let mut v2 = serde_json::to_value(snapshot(Address::ZERO).sign(&key)).unwrap();
        v2["body"]["version"] = 2.into();
        v2["body"]["something_new"] = true.into();
        let v2 = serde_json::to_vec(&v2).unwrap();
        assert_eq!(SignedSnapshot::open(&v2, &trusted, NOW), Err(SnapshotError::UnknownVersion(2)));
        let mut extra = serde_json::to_value(snapshot(Address::ZERO).sign(&key)).unwrap();
        extra["body"]["free_rides"] = true.into();
        let extra = serde_json::to_vec(&extra).unwrap();
        assert!(matches!(SignedSnapshot::open(&extra, &trusted, NOW), Err(SnapshotError::Malformed(_))));
        for junk in [&b"not json"[..], b"{}", br#"{"body":{},"sig":""}"#, br#"{"body":{"version":1},"sig":""}"#] {
            assert!(matches!(SignedSnapshot::open(junk, &trusted, NOW), Err(SnapshotError::Malformed(_))), "{junk:?}");
        }
        let huge = vec![b' '; MAX_SNAPSHOT_BYTES + 1];
        assert!(matches!(SignedSnapshot::parse(&huge), Err(SnapshotError::Malformed(_))));
    }

    #[test]
    fn offline_validator_decides_like_the_online_one() {
        let account = PrivateKeySigner::random();
        let phone = device(&account, 4_242);
        let lost = device(&account, 4_242);
        let mut snap = snapshot(account.address());
        snap.revoked_devices.push(B256::from(lost.public_key()));
        let snap =
            SignedSnapshot::open(&snap.sign(&validator_key(1)).to_bytes(), &[validator_key(1).verifying_key()], NOW)
                .unwrap();
        let mut v = snap.clone().into_validator(GATE, ValidatorConfig::default());
        let w = window_at(NOW);
        let text = |d: &Device, ticket| d.pass(ticket, w, rand::random()).encode();
        // The snapshot's chain id is the certificates' domain: the phone's pass opens.
        let d = v.check(GATE, &scan("a", text(&phone, 7)), NOW);
        assert!(d.verdict.open, "{d:?}");
        assert_eq!(d.verdict.rides_left, Some(2));
        assert!(d.tap.is_some());
        let reason =
            |v: &mut Validator, gate: &str, id: &str, pass: String| v.check(gate, &scan(id, pass), NOW).verdict.reason;
        assert_eq!(reason(&mut v, GATE, "b", text(&lost, 7)), Some(DenyReason::DeviceRevoked));
        assert_eq!(reason(&mut v, GATE, "c", text(&phone, 8)), Some(DenyReason::Expired));
        assert_eq!(reason(&mut v, GATE, "d", text(&phone, 99)), Some(DenyReason::UnknownTicket));
        assert_eq!(reason(&mut v, GATE, "e", text(&phone, 7)), Some(DenyReason::Passback));
        // A gate the snapshot is not for decides nothing with it.
        let mut other = snap.clone().into_validator("metro/elsewhere/g1", ValidatorConfig::default());
        assert_eq!(reason(&mut other, "metro/elsewhere/g1", "f", text(&phone, 7)), Some(DenyReason::UnknownGate));
        // A revoked account key stops its devices; the inspector uses the same rules.
        let mut revoked = snap.clone();
        revoked.revoked_holders.push(account.address());
        let mut inspector = revoked.into_inspector(ValidatorConfig::default());
        assert_eq!(reason(&mut inspector, INSPECTOR_GATE, "g", text(&phone, 7)), Some(DenyReason::KeyRevoked));
        let mut inspector = snap.into_inspector(ValidatorConfig::default());
        assert!(inspector.check(INSPECTOR_GATE, &scan("h", text(&phone, 7)), NOW).verdict.open);
    }
}
