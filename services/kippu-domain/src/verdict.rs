//! Gate protocol payloads: what a gate sends (`scan`) and what it gets back
//! (`verdict`). JSON with a version field: compact enough at ~150 bytes, and a
//! gate vendor can read it without our code.

use serde::{Deserialize, Serialize};

/// Version of the scan and verdict payloads.
pub const PROTOCOL_VERSION: u8 = 1;
/// Largest scan payload accepted; bigger ones are refused before parsing.
pub const MAX_SCAN_BYTES: usize = 2048;

/// Why a gate stays shut. The wire code (SCREAMING_SNAKE) is stable API for
/// gate firmware; the message is for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DenyReason {
    /// The scan payload itself could not be parsed.
    MalformedScan,
    /// The gate's reader found no QR code in the image (set by the gate).
    UnreadableQr,
    /// The QR text is not a Kippu pass.
    NotAPass,
    /// The pass body is corrupt or truncated.
    MalformedPass,
    /// The pass text is longer than any pass.
    OversizedPass,
    /// A pass format this validator does not know.
    UnsupportedPass,
    /// The signature is not a valid signature at all.
    BadSignature,
    /// The pass was signed by someone other than the ticket's holder.
    NotHolder,
    /// The pass's time window is too old (a screenshot) or in the future.
    StalePass,
    /// This exact pass was already used.
    Replay,
    /// No such ticket.
    UnknownTicket,
    /// The scanning gate is not registered.
    UnknownGate,
    /// The ticket belongs to another operator.
    WrongOperator,
    /// The ticket's validity has not started.
    NotYetValid,
    /// The ticket's validity has ended.
    Expired,
    /// A rides-based ticket with no rides left.
    NoRidesLeft,
    /// The same ticket just entered at this operator (anti-passback).
    Passback,
    /// The holder's account key was revoked (lost phone, erased account): it signs no passes.
    KeyRevoked,
    /// The device certificate is not a valid signature by any account.
    BadCertificate,
    /// The account's certificate of the device key has expired: sign in again.
    CertificateExpired,
    /// This device key was revoked (a lost or replaced phone).
    DeviceRevoked,
    /// The card tapped is not bound to any ticket (or its binding was removed).
    UnknownCard,
    /// No verdict arrived in time (set by the gate, never by a validator).
    Timeout,
}

impl DenyReason {
    /// Short human text shown on the gate display.
    pub fn message(self) -> &'static str {
        match self {
            Self::MalformedScan => "scan could not be read",
            Self::UnreadableQr => "no QR code found, try again",
            Self::NotAPass => "not a Kippu pass",
            Self::MalformedPass => "pass is damaged",
            Self::OversizedPass => "pass data too long",
            Self::UnsupportedPass => "pass version not supported",
            Self::BadSignature => "pass signature invalid",
            Self::NotHolder => "pass not signed by the ticket holder",
            Self::StalePass => "pass has expired, refresh it",
            Self::Replay => "pass already used",
            Self::UnknownTicket => "unknown ticket",
            Self::UnknownGate => "gate not registered",
            Self::WrongOperator => "ticket not valid with this operator",
            Self::NotYetValid => "ticket not valid yet",
            Self::Expired => "ticket expired",
            Self::NoRidesLeft => "no rides left",
            Self::Passback => "ticket just used here",
            Self::KeyRevoked => "account key revoked",
            Self::BadCertificate => "device certificate invalid",
            Self::CertificateExpired => "device certificate expired, sign in again",
            Self::DeviceRevoked => "this phone's key was revoked",
            Self::UnknownCard => "card not linked to a ticket",
            Self::Timeout => "no answer from validator",
        }
    }

    /// The wire code, e.g. `EXPIRED`.
    pub fn code(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }
}

impl std::fmt::Display for DenyReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.code(), self.message())
    }
}

/// Gate → validator, published on `.../scan`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanRequest {
    /// Payload version.
    pub v: u8,
    /// Unique per tap; the verdict echoes it and re-sent taps are recognised by it.
    pub id: String,
    /// The QR text as read.
    pub pass: String,
    /// Gate clock, unix milliseconds.
    pub ts: u64,
    /// The run an on-board validator's vehicle is working (from its AVL unit); absent at stop gates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trip: Option<TripRef>,
}

/// A GTFS run: what delay insurance matches a tap against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TripRef {
    /// GTFS `trip_id`.
    pub id: String,
    /// Service day, `YYYYMMDD`, when the vehicle knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
}

impl ScanRequest {
    /// Parses a scan payload, refusing oversized or foreign-version input.
    pub fn parse(bytes: &[u8]) -> Result<Self, DenyReason> {
        if bytes.len() > MAX_SCAN_BYTES {
            return Err(DenyReason::MalformedScan);
        }
        let req: Self = serde_json::from_slice(bytes).map_err(|_| DenyReason::MalformedScan)?;
        let bad_trip = req.trip.as_ref().is_some_and(|t| {
            t.id.is_empty()
                || t.id.len() > 128
                || t.date.as_ref().is_some_and(|d| d.len() != 8 || !d.bytes().all(|b| b.is_ascii_digit()))
        });
        if req.v != PROTOCOL_VERSION || req.id.is_empty() || req.id.len() > 64 || bad_trip {
            return Err(DenyReason::MalformedScan);
        }
        Ok(req)
    }
}

/// Validator → gate, published on `.../verdict`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictMessage {
    /// Payload version.
    pub v: u8,
    /// The scan id this answers (empty if the scan was unreadable).
    pub id: String,
    /// Open the gate?
    pub open: bool,
    /// Why not, when `open` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<DenyReason>,
    /// The ticket presented, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<u64>,
    /// Rides left after this tap, for rides-based tickets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rides_left: Option<u32>,
    /// The validator's Ed25519 signature over [`VerdictMessage::signing_bytes`] (base64url),
    /// so a gate can tell a real verdict from one a rogue publisher sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
}

impl VerdictMessage {
    /// An opening verdict.
    pub fn open(id: &str, ticket: u64, rides_left: Option<u32>) -> Self {
        Self {
            v: PROTOCOL_VERSION,
            id: id.into(),
            open: true,
            reason: None,
            ticket: Some(ticket),
            rides_left,
            sig: None,
        }
    }

    /// A denying verdict.
    pub fn deny(id: &str, reason: DenyReason, ticket: Option<u64>) -> Self {
        Self {
            v: PROTOCOL_VERSION,
            id: id.into(),
            open: false,
            reason: Some(reason),
            ticket,
            rides_left: None,
            sig: None,
        }
    }

    /// What the validator signs: every field a gate acts on, bound to the gate it answers,
    /// so a verdict cannot be replayed to another gate or for another scan.
    pub fn signing_bytes(&self, gate_key: &str) -> Vec<u8> {
        let reason = self.reason.map(DenyReason::code).unwrap_or_default();
        let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        format!(
            "kippu-verdict-v{}\n{gate_key}\n{}\n{}\n{reason}\n{}\n{}",
            self.v,
            self.id,
            self.open,
            opt(self.ticket),
            opt(self.rides_left.map(u64::from))
        )
        .into_bytes()
    }

    /// Signs the verdict for `gate_key` with the validator's key.
    pub fn signed(mut self, key: &ed25519_dalek::SigningKey, gate_key: &str) -> Self {
        use base64::Engine as _;
        use ed25519_dalek::Signer as _;
        let sig = key.sign(&self.signing_bytes(gate_key));
        self.sig = Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig.to_bytes()));
        self
    }

    /// Whether one of `trusted` validator keys signed this verdict for `gate_key`.
    pub fn verify(&self, trusted: &[ed25519_dalek::VerifyingKey], gate_key: &str) -> bool {
        use base64::Engine as _;
        let Some(sig) = self.sig.as_deref() else { return false };
        let Ok(raw) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig) else { return false };
        let Ok(raw) = <[u8; 64]>::try_from(raw.as_slice()) else { return false };
        let sig = ed25519_dalek::Signature::from_bytes(&raw);
        let msg = self.signing_bytes(gate_key);
        trusted.iter().any(|k| k.verify_strict(&msg, &sig).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        assert_eq!(DenyReason::NoRidesLeft.code(), "NO_RIDES_LEFT");
        let v = VerdictMessage::deny("a", DenyReason::Expired, Some(3));
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, r#"{"v":1,"id":"a","open":false,"reason":"EXPIRED","ticket":3}"#);
    }

    #[test]
    fn verdicts_are_signed_for_one_gate_and_forgeries_fail() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let trusted = [key.verifying_key()];
        let v = VerdictMessage::open("s1", 9, Some(3)).signed(&key, "metro/central/g1");
        assert!(v.verify(&trusted, "metro/central/g1"));
        // Survives the wire.
        let back: VerdictMessage = serde_json::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert!(back.verify(&trusted, "metro/central/g1"));
        assert!(!v.verify(&trusted, "metro/central/g2"), "another gate's verdict");
        let mut flipped = v.clone();
        flipped.rides_left = Some(30);
        assert!(!flipped.verify(&trusted, "metro/central/g1"));
        let rogue = VerdictMessage::open("s1", 9, Some(3))
            .signed(&ed25519_dalek::SigningKey::from_bytes(&[8; 32]), "metro/central/g1");
        assert!(!rogue.verify(&trusted, "metro/central/g1"), "a rogue publisher's key");
        assert!(!VerdictMessage::open("s1", 9, Some(3)).verify(&trusted, "metro/central/g1"), "unsigned");
        let mut garbage = v;
        garbage.sig = Some("!!".into());
        assert!(!garbage.verify(&trusted, "metro/central/g1"));
    }

    #[test]
    fn bad_scans_are_malformed() {
        assert_eq!(ScanRequest::parse(b"not json"), Err(DenyReason::MalformedScan));
        assert_eq!(ScanRequest::parse(br#"{"v":2,"id":"x","pass":"p","ts":1}"#), Err(DenyReason::MalformedScan));
        assert_eq!(ScanRequest::parse(&vec![b' '; 5000]), Err(DenyReason::MalformedScan));
        assert!(ScanRequest::parse(br#"{"v":1,"id":"x","pass":"p","ts":1}"#).is_ok());
    }
}
