//! [`SoftAuthenticator`]: a passkey authenticator in software (ES256, `none` attestation,
//! user present and verified), answering the options `/passkeys/register/start` and
//! `/passkeys/signin/start` return with the JSON a browser's `PublicKeyCredential.toJSON()`
//! gives, so the passkey routes can be driven with no browser.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Flags of the authenticator data: user present, user verified.
const UP_UV: u8 = 0x01 | 0x04;
/// … and attested credential data included (registration).
const UP_UV_AT: u8 = UP_UV | 0x40;

/// One passkey held by a software authenticator.
pub struct SoftAuthenticator {
    key: SigningKey,
    credential_id: [u8; 16],
    user_handle: Option<Vec<u8>>,
    rp_id: String,
    origin: String,
    sign_count: u32,
}

impl SoftAuthenticator {
    /// An authenticator for the site at `origin` (`https://kippu.test`): the relying party is its host.
    pub fn new(origin: &str) -> Self {
        let host = origin.split("://").nth(1).unwrap_or(origin);
        let host = host.rsplit_once(':').map_or(host, |(h, port)| if port.parse::<u16>().is_ok() { h } else { host });
        Self {
            key: SigningKey::from_slice(&rand::random::<[u8; 32]>()).expect("a P-256 key"),
            credential_id: rand::random(),
            user_handle: None,
            rp_id: host.to_owned(),
            origin: origin.trim_end_matches('/').to_owned(),
            sign_count: 0,
        }
    }

    /// The credential id.
    pub fn credential_id(&self) -> [u8; 16] {
        self.credential_id
    }

    /// Answers creation options with a new credential (`navigator.credentials.create`).
    pub fn register(&mut self, options: &Value) -> Value {
        let o = options.get("publicKey").unwrap_or(options);
        let challenge = o["challenge"].as_str().expect("options name a challenge");
        self.user_handle = o["user"]["id"].as_str().map(|id| B64URL.decode(id).expect("a base64url user id"));
        let client_data = self.client_data("webauthn.create", challenge);
        let point = self.key.verifying_key().to_encoded_point(false);
        let (x, y) = (point.x().expect("x"), point.y().expect("y"));
        let mut cose = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20];
        cose.extend_from_slice(x);
        cose.extend_from_slice(&[0x22, 0x58, 0x20]);
        cose.extend_from_slice(y);
        let mut auth_data = self.auth_data_head(UP_UV_AT);
        auth_data.extend_from_slice(&[0; 16]); // AAGUID
        auth_data.extend_from_slice(&(self.credential_id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(&self.credential_id);
        auth_data.extend_from_slice(&cose);
        // CBOR {"fmt": "none", "attStmt": {}, "authData": bytes}, keys in CTAP canonical order.
        let mut attestation = vec![0xa3, 0x63];
        attestation.extend_from_slice(b"fmt");
        attestation.push(0x64);
        attestation.extend_from_slice(b"none");
        attestation.push(0x67);
        attestation.extend_from_slice(b"attStmt");
        attestation.push(0xa0);
        attestation.push(0x68);
        attestation.extend_from_slice(b"authData");
        cbor_bytes(&mut attestation, &auth_data);
        // SubjectPublicKeyInfo of an uncompressed P-256 key.
        let mut spki = vec![
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
            0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        spki.extend_from_slice(point.as_bytes());
        let id = B64URL.encode(self.credential_id);
        json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "response": {
                "clientDataJSON": B64URL.encode(&client_data),
                "authenticatorData": B64URL.encode(&auth_data),
                "transports": ["internal"],
                "publicKey": B64URL.encode(&spki),
                "publicKeyAlgorithm": -7,
                "attestationObject": B64URL.encode(&attestation),
            },
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
        })
    }

    /// Answers request options with an assertion (`navigator.credentials.get`), naming the account.
    pub fn sign_in(&mut self, options: &Value) -> Value {
        let o = options.get("publicKey").unwrap_or(options);
        let challenge = o["challenge"].as_str().expect("options name a challenge");
        let client_data = self.client_data("webauthn.get", challenge);
        self.sign_count += 1;
        let auth_data = self.auth_data_head(UP_UV);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&client_data));
        let sig: Signature = self.key.sign(&signed);
        let id = B64URL.encode(self.credential_id);
        json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "response": {
                "clientDataJSON": B64URL.encode(&client_data),
                "authenticatorData": B64URL.encode(&auth_data),
                "signature": B64URL.encode(sig.to_der().as_bytes()),
                "userHandle": B64URL.encode(self.user_handle.as_deref().expect("registered first")),
            },
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
        })
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        // The order browsers write, which relying parties may parse in that order.
        format!(r#"{{"type":"{kind}","challenge":"{challenge}","origin":"{}","crossOrigin":false}}"#, self.origin)
            .into_bytes()
    }

    fn auth_data_head(&self, flags: u8) -> Vec<u8> {
        let mut d = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        d.push(flags);
        d.extend_from_slice(&self.sign_count.to_be_bytes());
        d
    }
}

/// A CBOR byte string.
fn cbor_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    match bytes.len() {
        n if n < 24 => out.push(0x40 | n as u8),
        n if n < 256 => out.extend_from_slice(&[0x58, n as u8]),
        n => {
            out.push(0x59);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(bytes);
}
