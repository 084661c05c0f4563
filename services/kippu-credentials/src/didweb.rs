//! did:web identifiers for the consortium, its operators and concession issuers,
//! and the DID documents Kippu serves for them.

use serde_json::{json, Value};

use crate::keys::ed25519_multibase;

/// The did:web of `authority` (host, or host:port) with optional path segments.
///
/// A port's colon is percent-encoded, as the did:web spec requires, so
/// `127.0.0.1:8080` + `["issuers", "usf"]` is `did:web:127.0.0.1%3A8080:issuers:usf`.
pub fn did_web(authority: &str, path: &[&str]) -> String {
    let mut did = format!("did:web:{}", authority.replace(':', "%3A"));
    for segment in path {
        did.push(':');
        did.push_str(segment);
    }
    did
}

/// The HTTP(S) path Kippu serves a did:web document at: `/.well-known/did.json`
/// for the bare domain, `/<path>/did.json` otherwise.
pub fn did_web_path(did: &str) -> Option<String> {
    let rest = did.strip_prefix("did:web:")?;
    let mut parts = rest.split(':');
    parts.next()?;
    let path: Vec<&str> = parts.collect();
    Some(if path.is_empty() { "/.well-known/did.json".into() } else { format!("/{}/did.json", path.join("/")) })
}

/// An issuer's DID document: one Ed25519 Multikey, usable to assert credentials
/// (and to authenticate, so the issuer can sign status lists and presentations).
pub fn issuer_document(did: &str, public_key: &[u8; 32], name: &str) -> Value {
    let vm = format!("{did}#key-1");
    json!({
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
        "id": did,
        "alsoKnownAs": [],
        "verificationMethod": [{
            "id": vm,
            "type": "Multikey",
            "controller": did,
            "publicKeyMultibase": ed25519_multibase(public_key),
        }],
        "assertionMethod": [vm],
        "authentication": [vm],
        "service": [{ "id": format!("{did}#about"), "type": "LinkedDomains", "serviceEndpoint": name }],
    })
}

/// The DID document of an organisation whose key is an EVM account (the
/// consortium's concession attestor, an operator's payout account): the
/// account is named by CAIP-10 `blockchainAccountId`, so anyone can check an
/// on-chain signature against the organisation's DID.
pub fn account_document(did: &str, chain_id: u64, address: &str, name: &str) -> Value {
    let vm = format!("{did}#account");
    json!({
        "@context": ["https://www.w3.org/ns/did/v1", {
            "EcdsaSecp256k1RecoveryMethod2020": "https://identity.foundation/EcdsaSecp256k1RecoverySignature2020#EcdsaSecp256k1RecoveryMethod2020",
            "blockchainAccountId": "https://w3id.org/security#blockchainAccountId"
        }],
        "id": did,
        "verificationMethod": [{
            "id": vm,
            "type": "EcdsaSecp256k1RecoveryMethod2020",
            "controller": did,
            "blockchainAccountId": format!("eip155:{chain_id}:{address}"),
        }],
        "assertionMethod": [vm],
        "authentication": [vm],
        "service": [{ "id": format!("{did}#about"), "type": "LinkedDomains", "serviceEndpoint": name }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_web_encodes_port_and_paths() {
        assert_eq!(did_web("kippu.example", &[]), "did:web:kippu.example");
        let did = did_web("127.0.0.1:8080", &["issuers", "usf"]);
        assert_eq!(did, "did:web:127.0.0.1%3A8080:issuers:usf");
        assert_eq!(did_web_path(&did).unwrap(), "/issuers/usf/did.json");
        assert_eq!(did_web_path("did:web:kippu.example").unwrap(), "/.well-known/did.json");
        assert_eq!(did_web_path("did:key:z6Mk"), None);
    }
}
