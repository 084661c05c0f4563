//! Stripe webhook signatures (`Stripe-Signature: t=..,v1=..`) and event parsing.
//!
//! This is a direct implementation of Stripe's documented scheme rather than
//! `async-stripe-webhook`'s: that one hard-codes a 300 s tolerance, folds "no v1" and
//! "malformed header" into one error, and insists on deserializing every field of the
//! full Event and Checkout Session schemas, which this service does not need.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::{PaymentsError, Result};

type HmacSha256 = Hmac<Sha256>;

/// Stripe's recommended maximum age of a signed webhook, in seconds.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// Event type emitted when a traveler finishes a Checkout session.
pub const CHECKOUT_SESSION_COMPLETED: &str = "checkout.session.completed";

/// A verified Stripe event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// Event id, `evt_...`. Stripe may deliver an event more than once, so receivers
    /// should deduplicate on this.
    pub id: String,
    /// Event type, e.g. [`CHECKOUT_SESSION_COMPLETED`].
    pub kind: String,
    /// When Stripe created the event, Unix seconds.
    pub created: i64,
    /// The completed session, present iff `kind` is `checkout.session.completed`.
    pub completed: Option<CompletedCheckout>,
}

/// The fields of a completed Checkout session that matter for crediting a top-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedCheckout {
    /// Checkout session id, `cs_...`.
    pub session_id: String,
    /// Traveler address, from `client_reference_id` (or `metadata[traveler]` if absent).
    pub traveler: String,
    /// Amount charged in minor units.
    pub amount_total: i64,
    /// Lower-case ISO currency.
    pub currency: String,
    /// `paid`, `unpaid` or `no_payment_required`. Only `paid` means money arrived:
    /// delayed payment methods complete the session while still `unpaid`.
    pub payment_status: String,
}

impl CompletedCheckout {
    /// Whether the funds are actually captured (`payment_status == "paid"`).
    pub fn is_paid(&self) -> bool {
        self.payment_status == "paid"
    }
}

/// Computes the `Stripe-Signature` header Stripe would send for `payload` signed with
/// `secret` at Unix time `t`: `t=<t>,v1=<hex(HMAC-SHA256(secret, "<t>.<payload>"))>`.
pub fn sign_webhook(payload: &[u8], secret: &str, t: i64) -> String {
    format!("t={t},v1={}", hex::encode(signed_payload_mac(payload, secret, t).finalize().into_bytes()))
}

fn signed_payload_mac(payload: &[u8], secret: &str, t: i64) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

/// Verifies a webhook delivery and parses the event.
///
/// `payload` must be the raw request body exactly as received (re-serialized JSON will not
/// verify). The delivery is accepted if any `v1` signature in `signature_header` matches;
/// other schemes (`v0`, test-mode extras) are ignored. `now_unix` and `tolerance_secs`
/// are parameters so callers can test replays; pass the current time and
/// [`DEFAULT_TOLERANCE_SECS`] in production.
///
/// # Errors
/// In the order checked: [`PaymentsError::MalformedSignatureHeader`],
/// [`PaymentsError::NoV1Signature`], [`PaymentsError::SignatureMismatch`],
/// [`PaymentsError::TimestampOutsideTolerance`], [`PaymentsError::MalformedPayload`].
pub fn verify_webhook(
    payload: &[u8],
    signature_header: &str,
    secret: &str,
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<WebhookEvent> {
    let header = SignatureHeader::parse(signature_header)?;
    if header.v1.is_empty() {
        return Err(PaymentsError::NoV1Signature);
    }

    let expected = signed_payload_mac(payload, secret, header.t);
    // `verify_slice` compares in constant time; a candidate that is not even valid hex
    // simply cannot match.
    let matched = header
        .v1
        .iter()
        .any(|candidate| hex::decode(candidate).is_ok_and(|sig| expected.clone().verify_slice(&sig).is_ok()));
    if !matched {
        return Err(PaymentsError::SignatureMismatch);
    }

    // Checked after the signature (as Stripe's own libraries do) so that a forged
    // header cannot learn anything about the clock. Both directions are rejected: a
    // timestamp far in the future is as suspicious as an old one.
    let tolerance = u64::try_from(tolerance_secs).unwrap_or(0);
    if now_unix.abs_diff(header.t) > tolerance {
        return Err(PaymentsError::TimestampOutsideTolerance { timestamp: header.t, now: now_unix, tolerance_secs });
    }

    parse_event(payload)
}

struct SignatureHeader<'a> {
    t: i64,
    v1: Vec<&'a str>,
}

impl<'a> SignatureHeader<'a> {
    fn parse(raw: &'a str) -> Result<Self> {
        let malformed = |why: &str| PaymentsError::MalformedSignatureHeader(why.to_owned());
        if raw.trim().is_empty() {
            return Err(malformed("header is missing or empty"));
        }
        let mut t = None;
        let mut v1 = Vec::new();
        for item in raw.split(',') {
            let (key, value) = item.trim().split_once('=').ok_or_else(|| malformed("element without '='"))?;
            match key {
                "t" => {
                    if t.is_some() {
                        return Err(malformed("more than one timestamp"));
                    }
                    t = Some(value.parse::<i64>().map_err(|_| malformed("timestamp is not an integer"))?);
                }
                "v1" => v1.push(value),
                // v0 and future schemes are deliberately not trusted.
                _ => {}
            }
        }
        let t = t.ok_or_else(|| malformed("no timestamp"))?;
        Ok(Self { t, v1 })
    }
}

#[derive(Deserialize)]
struct RawEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    data: RawEventData,
}

#[derive(Deserialize)]
struct RawEventData {
    object: serde_json::Value,
}

#[derive(Deserialize)]
struct RawSession {
    id: String,
    client_reference_id: Option<String>,
    #[serde(default)]
    metadata: Option<std::collections::HashMap<String, String>>,
    amount_total: Option<i64>,
    currency: Option<String>,
    payment_status: String,
}

fn parse_event(payload: &[u8]) -> Result<WebhookEvent> {
    let malformed = |why: String| PaymentsError::MalformedPayload(why);
    let raw: RawEvent = serde_json::from_slice(payload).map_err(|e| malformed(e.to_string()))?;
    let completed = if raw.kind == CHECKOUT_SESSION_COMPLETED {
        let session: RawSession =
            serde_json::from_value(raw.data.object).map_err(|e| malformed(format!("data.object: {e}")))?;
        let traveler = session
            .client_reference_id
            .or_else(|| session.metadata.and_then(|mut m| m.remove("traveler")))
            .ok_or_else(|| malformed(format!("session {} names no traveler", session.id)))?;
        Some(CompletedCheckout {
            amount_total: session
                .amount_total
                .ok_or_else(|| malformed(format!("session {} has no amount_total", session.id)))?,
            currency: session.currency.ok_or_else(|| malformed(format!("session {} has no currency", session.id)))?,
            session_id: session.id,
            traveler,
            payment_status: session.payment_status,
        })
    } else {
        None
    };
    Ok(WebhookEvent { id: raw.id, kind: raw.kind, created: raw.created, completed })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_kippu";
    const NOW: i64 = 1_760_000_000;

    fn completed_payload() -> Vec<u8> {
        serde_json::json!({
            "id": "evt_test_1",
            "object": "event",
            "api_version": "2026-09-30.endive",
            "created": NOW,
            "livemode": false,
            "pending_webhooks": 1,
            "type": "checkout.session.completed",
            "data": { "object": {
                "id": "cs_test_1",
                "object": "checkout.session",
                "amount_total": 2000,
                "currency": "eur",
                "client_reference_id": "0xabc",
                "metadata": { "traveler": "0xabc" },
                "mode": "payment",
                "status": "complete",
                "payment_status": "paid"
            }}
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn known_answer_hmac() {
        // Expected value computed independently from the hmac crate on the literal
        // signed-payload string, so a formatting slip in sign_webhook (separator, order,
        // encoding) makes this fail.
        let mut mac = HmacSha256::new_from_slice(b"whsec_kat").unwrap();
        mac.update(b"1700000000.{\"id\":\"evt_kat\"}");
        let expected_hex = hex::encode(mac.finalize().into_bytes());
        // And pinned, as computed by a separate HMAC implementation (Python's hmac module).
        assert_eq!(expected_hex, "8e6c0dcba41bf13e245859de6dd1938de8b415a4d6dc0c081c1f53f41b563d33");
        assert_eq!(
            sign_webhook(br#"{"id":"evt_kat"}"#, "whsec_kat", 1_700_000_000),
            format!("t=1700000000,v1={expected_hex}")
        );
    }

    #[test]
    fn known_answer_rfc4231_case_2() {
        // RFC 4231 test case 2 pins the primitive itself (key "Jefe").
        let mut mac = HmacSha256::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn accepts_valid_signature_and_parses_completed_session() {
        let payload = completed_payload();
        let header = sign_webhook(&payload, SECRET, NOW - 10);
        let event = verify_webhook(&payload, &header, SECRET, NOW, DEFAULT_TOLERANCE_SECS).unwrap();
        assert_eq!(event.id, "evt_test_1");
        assert_eq!(event.kind, CHECKOUT_SESSION_COMPLETED);
        assert_eq!(event.created, NOW);
        let completed = event.completed.unwrap();
        assert_eq!(
            completed,
            CompletedCheckout {
                session_id: "cs_test_1".into(),
                traveler: "0xabc".into(),
                amount_total: 2000,
                currency: "eur".into(),
                payment_status: "paid".into(),
            }
        );
        assert!(completed.is_paid());
    }

    #[test]
    fn accepts_when_any_v1_matches_and_ignores_v0() {
        let payload = completed_payload();
        let good = sign_webhook(&payload, SECRET, NOW);
        let good_sig = good.split_once(",v1=").unwrap().1;
        let header = format!("t={NOW},v1={},v1={good_sig},v0=deadbeef", "00".repeat(32));
        verify_webhook(&payload, &header, SECRET, NOW, DEFAULT_TOLERANCE_SECS).unwrap();
        // Whitespace after commas is tolerated, as Stripe's libraries do.
        let spaced = format!("t={NOW}, v1={good_sig}");
        verify_webhook(&payload, &spaced, SECRET, NOW, DEFAULT_TOLERANCE_SECS).unwrap();
    }

    #[test]
    fn rejects_tampered_payload() {
        let payload = completed_payload();
        let header = sign_webhook(&payload, SECRET, NOW);
        let tampered = String::from_utf8(payload).unwrap().replace("2000", "200000");
        let err = verify_webhook(tampered.as_bytes(), &header, SECRET, NOW, 300).unwrap_err();
        assert!(matches!(err, PaymentsError::SignatureMismatch), "{err}");
    }

    #[test]
    fn rejects_wrong_secret() {
        let payload = completed_payload();
        let header = sign_webhook(&payload, "whsec_other", NOW);
        let err = verify_webhook(&payload, &header, SECRET, NOW, 300).unwrap_err();
        assert!(matches!(err, PaymentsError::SignatureMismatch), "{err}");
    }

    #[test]
    fn rejects_stale_and_future_timestamps() {
        let payload = completed_payload();
        let stale = sign_webhook(&payload, SECRET, NOW - 301);
        let err = verify_webhook(&payload, &stale, SECRET, NOW, 300).unwrap_err();
        assert!(
            matches!(err, PaymentsError::TimestampOutsideTolerance { timestamp, .. } if timestamp == NOW - 301),
            "{err}"
        );
        // Exactly at the edge is still fine.
        let edge = sign_webhook(&payload, SECRET, NOW - 300);
        verify_webhook(&payload, &edge, SECRET, NOW, 300).unwrap();
        let future = sign_webhook(&payload, SECRET, NOW + 3600);
        assert!(matches!(
            verify_webhook(&payload, &future, SECRET, NOW, 300),
            Err(PaymentsError::TimestampOutsideTolerance { .. })
        ));
        // Extreme values must not overflow.
        let ancient = sign_webhook(&payload, SECRET, i64::MIN);
        assert!(matches!(
            verify_webhook(&payload, &ancient, SECRET, i64::MAX, 300),
            Err(PaymentsError::TimestampOutsideTolerance { .. })
        ));
    }

    #[test]
    fn rejects_malformed_headers() {
        let payload = completed_payload();
        for header in ["", "   ", "garbage", "t=abc,v1=00", "v1=00", "t=1,t=2,v1=00", "t=1,,v1=00"] {
            let err = verify_webhook(&payload, header, SECRET, NOW, 300).unwrap_err();
            assert!(matches!(err, PaymentsError::MalformedSignatureHeader(_)), "{header:?}: {err}");
        }
    }

    #[test]
    fn rejects_header_without_v1() {
        let payload = completed_payload();
        let err = verify_webhook(&payload, &format!("t={NOW},v0=abcd"), SECRET, NOW, 300).unwrap_err();
        assert!(matches!(err, PaymentsError::NoV1Signature), "{err}");
    }

    #[test]
    fn rejects_non_hex_signature_as_mismatch() {
        let payload = completed_payload();
        let err = verify_webhook(&payload, &format!("t={NOW},v1=zz"), SECRET, NOW, 300).unwrap_err();
        assert!(matches!(err, PaymentsError::SignatureMismatch), "{err}");
    }

    #[test]
    fn rejects_malformed_json_even_when_signed() {
        for payload in [&b"not json"[..], br#"{"id":"evt_1","type":"checkout.session.completed","created":1,"data":{"object":{"id":"cs_1","payment_status":"paid"}}}"#] {
            let header = sign_webhook(payload, SECRET, NOW);
            let err = verify_webhook(payload, &header, SECRET, NOW, 300).unwrap_err();
            assert!(matches!(err, PaymentsError::MalformedPayload(_)), "{err}");
        }
    }

    #[test]
    fn other_event_kinds_have_no_completed_session() {
        let payload = br#"{"id":"evt_2","object":"event","type":"payment_intent.created","created":5,"data":{"object":{"id":"pi_1"}}}"#;
        let header = sign_webhook(payload, SECRET, NOW);
        let event = verify_webhook(payload, &header, SECRET, NOW, 300).unwrap();
        assert_eq!(event.kind, "payment_intent.created");
        assert!(event.completed.is_none());
    }
}
