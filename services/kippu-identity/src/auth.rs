use std::collections::HashMap;
use std::sync::Mutex;

use alloy::primitives::{Address, Signature};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use ssi_dids::document::verification_method::ValueOrReference;
use ssi_dids::document::DIDVerificationMethod;
use ssi_dids::{DIDResolver, Document, DID, DIDPKH};

use crate::did::{parse_address, parse_chain_id, parse_did_pkh};
use crate::{IdentityError, Result};

/// How long a sign-in challenge stays valid when issued by [`ChallengeBook`].
///
/// Five minutes leaves time to switch to a wallet app and back, while keeping
/// the window in which a leaked signature is usable short.
pub const DEFAULT_CHALLENGE_TTL_SECS: u64 = 300;

/// The did:pkh verification method type whose key is "whoever can sign for
/// this account", i.e. checked by public-key recovery (what personal_sign needs).
const RECOVERY_METHOD_TYPE: &str = "EcdsaSecp256k1RecoveryMethod2020";

/// A one-time sign-in challenge.
///
/// Times are Unix seconds. The challenge is accepted while `now < expires_at`;
/// `issued_at` is informational (shown to the traveler in the signed text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// 16 random bytes, hex: makes every signed message unique so a captured
    /// signature cannot be replayed for a later sign-in.
    pub nonce: String,
    /// The site asking for the signature; part of the signed text so a
    /// signature phished by another site is useless here.
    pub domain: String,
    /// When the challenge was issued.
    pub issued_at: u64,
    /// First second at which the challenge is no longer accepted.
    pub expires_at: u64,
}

impl Challenge {
    /// Issues a fresh challenge for `domain`, valid for `ttl_secs` from `now`.
    pub fn new(domain: impl Into<String>, now: u64, ttl_secs: u64) -> Self {
        let mut nonce = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        Self {
            nonce: hex::encode(nonce),
            domain: domain.into(),
            issued_at: now,
            expires_at: now.saturating_add(ttl_secs),
        }
    }

    /// The exact text the traveler signs with EIP-191 `personal_sign`.
    ///
    /// For an Ethereum account (`did:pkh:eip155:{chain}:{address}`) it is a Sign-In with
    /// Ethereum message (EIP-4361), so any wallet shows it as a sign-in request and checks
    /// the domain; the DID goes in `Resources`. Other DIDs sign the same fields under a
    /// "with your DID" header.
    pub fn message(&self, did: &str) -> String {
        const STATEMENT: &str = "Sign in to Kippu. This signature proves you control this account; \
                                 it does not authorize any payment or transaction.";
        let (issued, expires) = (rfc3339(self.issued_at), rfc3339(self.expires_at));
        let local =
            self.domain.starts_with("127.") || self.domain.starts_with("localhost") || self.domain.starts_with("[::1]");
        let uri = format!("{}://{}", if local { "http" } else { "https" }, self.domain);
        if let Some((chain, address)) = eip155_account(did) {
            return format!(
                "{domain} wants you to sign in with your Ethereum account:\n{address}\n\n{STATEMENT}\n\n\
                 URI: {uri}\nVersion: 1\nChain ID: {chain}\nNonce: {nonce}\nIssued At: {issued}\n\
                 Expiration Time: {expires}\nResources:\n- {did}",
                domain = self.domain,
                nonce = self.nonce,
            );
        }
        format!(
            "{domain} wants you to sign in with your DID:\n{did}\n\n{STATEMENT}\n\nURI: {uri}\nVersion: 1\n\
             Nonce: {nonce}\nIssued At: {issued}\nExpiration Time: {expires}",
            domain = self.domain,
            nonce = self.nonce,
        )
    }

    /// Whether the challenge can no longer be answered at `now`.
    pub fn is_expired(&self, now: u64) -> bool {
        now >= self.expires_at
    }

    fn check_fresh(&self, now: u64) -> Result<()> {
        if self.is_expired(now) {
            return Err(IdentityError::ChallengeExpired { expires_at: self.expires_at, now });
        }
        Ok(())
    }
}

/// `(chain id, EIP-55 address)` of a `did:pkh:eip155` DID.
fn eip155_account(did: &str) -> Option<(u64, String)> {
    let rest = did.strip_prefix("did:pkh:eip155:")?;
    let (chain, address) = rest.split_once(':')?;
    let address: Address = address.parse().ok()?;
    Some((chain.parse().ok()?, address.to_checksum(None)))
}

fn rfc3339(unix_secs: u64) -> String {
    i64::try_from(unix_secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        // Out of chrono's range is not a real date; still show something
        // deterministic rather than failing to build the message.
        .unwrap_or_else(|| format!("@{unix_secs}"))
}

/// Signs `challenge` for `did` with a custodial key, as `personal_sign` would.
///
/// Used server-side for custodial travelers so their private key never leaves
/// the server process. Returns the 65-byte signature as `0x…` hex.
pub fn sign_challenge(signer: &PrivateKeySigner, challenge: &Challenge, did: &str) -> Result<String> {
    let signature = signer
        .sign_message_sync(challenge.message(did).as_bytes())
        .map_err(|e| IdentityError::SigningFailed(e.to_string()))?;
    Ok(format!("0x{}", hex::encode(signature.as_bytes())))
}

/// Verifies a DID-auth response and returns the authenticated address.
///
/// Steps, each with its own error: the challenge must still be valid
/// ([`IdentityError::ChallengeExpired`]); the DID must be an eip155 `did:pkh`
/// that `ssi` resolves ([`IdentityError::UnresolvableDid`]); its document must
/// list an authentication method whose `blockchainAccountId` is the DID's
/// account ([`IdentityError::NoVerificationMethod`]); the signature must parse
/// ([`IdentityError::BadSignature`]) and recover, over
/// [`Challenge::message`], to that account ([`IdentityError::SignerMismatch`]).
///
/// This does not consume the challenge: take it from the single-use store
/// (e.g. [`ChallengeBook::take`]) before calling this.
pub async fn verify_did_auth(did: &str, challenge: &Challenge, signature_hex: &str, now: u64) -> Result<Address> {
    verify_with(&DIDPKH, did, challenge, signature_hex, now).await
}

/// [`verify_did_auth`] against any resolver, so tests can feed documents that
/// the did:pkh method itself never produces.
pub(crate) async fn verify_with(
    resolver: &impl DIDResolver,
    did: &str,
    challenge: &Challenge,
    signature_hex: &str,
    now: u64,
) -> Result<Address> {
    challenge.check_fresh(now)?;
    let (chain_id, address) = parse_did_pkh(did)?;

    let document = resolve(resolver, did).await?;
    let accepted = authentication_methods(&document)
        .filter(|vm| vm.type_ == RECOVERY_METHOD_TYPE)
        .any(|vm| names_account(vm, chain_id, address));
    if !accepted {
        return Err(IdentityError::NoVerificationMethod(did.to_owned()));
    }

    let signature = parse_signature(signature_hex)?;
    let recovered = signature
        .recover_address_from_msg(challenge.message(did).as_bytes())
        .map_err(|e| IdentityError::BadSignature(e.to_string()))?;
    if recovered != address {
        return Err(IdentityError::SignerMismatch { expected: address, recovered });
    }
    Ok(address)
}

/// Resolution goes through ssi's did:pkh method rather than being synthesised
/// here, so Kippu trusts exactly the document a standard resolver produces.
async fn resolve(resolver: &impl DIDResolver, did: &str) -> Result<Document> {
    let unresolvable = |reason: String| IdentityError::UnresolvableDid { did: did.to_owned(), reason };
    let parsed = DID::new(did).map_err(|e| unresolvable(e.to_string()))?;
    let output = resolver.resolve(parsed).await.map_err(|e| unresolvable(e.to_string()))?;
    Ok(output.document.into_document())
}

/// Verification methods the document allows for authentication, whether
/// referenced by id or embedded in the `authentication` relationship.
fn authentication_methods(doc: &Document) -> impl Iterator<Item = &DIDVerificationMethod> {
    doc.verification_relationships.authentication.iter().filter_map(move |entry| match entry {
        ValueOrReference::Value(vm) => Some(vm),
        ValueOrReference::Reference(reference) => {
            let id = reference.as_did_reference().resolve(&doc.id).into_owned();
            doc.verification_method.iter().find(|vm| vm.id == id)
        }
    })
}

/// Compares by value, not string, because the document may spell the address
/// in lowercase while the DID we were given is checksummed (or vice versa).
fn names_account(vm: &DIDVerificationMethod, chain_id: u64, address: Address) -> bool {
    let Some(account) = vm.properties.get("blockchainAccountId").and_then(|v| v.as_str()) else {
        return false;
    };
    let mut parts = account.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("eip155"), Some(reference), Some(addr), None) => {
            parse_chain_id(reference).ok() == Some(chain_id) && parse_address(addr).ok() == Some(address)
        }
        _ => false,
    }
}

fn parse_signature(signature_hex: &str) -> Result<Signature> {
    let trimmed = signature_hex.trim();
    let hex_part = trimmed.strip_prefix("0x").unwrap_or(trimmed);
    let bytes = hex::decode(hex_part).map_err(|e| IdentityError::BadSignature(e.to_string()))?;
    if bytes.len() != 65 {
        return Err(IdentityError::BadSignature(format!("expected 65 bytes, got {}", bytes.len())));
    }
    Signature::from_raw(&bytes).map_err(|e| IdentityError::BadSignature(e.to_string()))
}

/// How many challenges a [`ChallengeBook`] holds at most by default.
///
/// Each is about 200 bytes, so the bound keeps the book near 2 MB however many are
/// requested; a person signs in with one, so 10,000 open at once is far beyond what a
/// single server sees in five minutes of real sign-ins.
pub const DEFAULT_MAX_OUTSTANDING_CHALLENGES: usize = 10_000;

/// In-memory store of outstanding challenges, each usable once.
///
/// Bounded: at most `max_outstanding` challenges are held. Expired ones are dropped
/// whenever one of them may have expired (and always before refusing), so a flood of
/// requests that are never answered fills the book for one TTL at most, and then
/// [`ChallengeBook::issue`] refuses with [`IdentityError::TooManyChallenges`] instead of
/// growing.
///
/// Suitable for a single server process; a multi-instance deployment needs the
/// same semantics (atomic take) in a shared store.
#[derive(Debug)]
pub struct ChallengeBook {
    ttl_secs: u64,
    max_outstanding: usize,
    outstanding: Mutex<Book>,
}

#[derive(Debug, Default)]
struct Book {
    by_nonce: HashMap<String, Challenge>,
    /// No challenge held expires before this: pruning is pointless until then, so
    /// issuing stays O(1) and the O(n) sweep runs at most about once a second.
    earliest_expiry: u64,
}

impl Book {
    /// Drops every challenge expired at `now`, if any can be.
    fn prune(&mut self, now: u64) {
        if now < self.earliest_expiry {
            return;
        }
        self.by_nonce.retain(|_, c| !c.is_expired(now));
        self.earliest_expiry = self.by_nonce.values().map(|c| c.expires_at).min().unwrap_or(u64::MAX);
    }
}

impl Default for ChallengeBook {
    fn default() -> Self {
        Self::new(DEFAULT_CHALLENGE_TTL_SECS)
    }
}

impl ChallengeBook {
    /// A book whose challenges live for `ttl_secs`, holding at most
    /// [`DEFAULT_MAX_OUTSTANDING_CHALLENGES`].
    pub fn new(ttl_secs: u64) -> Self {
        Self::with_limit(ttl_secs, DEFAULT_MAX_OUTSTANDING_CHALLENGES)
    }

    /// A book whose challenges live for `ttl_secs`, holding at most `max_outstanding`
    /// (at least one).
    pub fn with_limit(ttl_secs: u64, max_outstanding: usize) -> Self {
        Self {
            ttl_secs,
            max_outstanding: max_outstanding.max(1),
            outstanding: Mutex::new(Book { by_nonce: HashMap::new(), earliest_expiry: u64::MAX }),
        }
    }

    /// The most challenges this book holds at once.
    pub fn limit(&self) -> usize {
        self.max_outstanding
    }

    /// Issues and records a new challenge for `domain`.
    ///
    /// Refused with [`IdentityError::TooManyChallenges`] when the book is full of
    /// challenges that have not expired yet; the error says when one will have.
    pub fn issue(&self, domain: &str, now: u64) -> Result<Challenge> {
        let challenge = Challenge::new(domain, now, self.ttl_secs);
        let mut book = self.lock();
        book.prune(now);
        if book.by_nonce.len() >= self.max_outstanding {
            return Err(IdentityError::TooManyChallenges {
                limit: self.max_outstanding,
                retry_after_secs: book.earliest_expiry.saturating_sub(now).max(1),
            });
        }
        book.earliest_expiry = book.earliest_expiry.min(challenge.expires_at);
        book.by_nonce.insert(challenge.nonce.clone(), challenge.clone());
        Ok(challenge)
    }

    /// Removes and returns the challenge with `nonce`.
    ///
    /// Removal happens before the expiry check so that a nonce can never be
    /// answered twice, even if the first answer fails verification.
    pub fn take(&self, nonce: &str, now: u64) -> Result<Challenge> {
        let mut book = self.lock();
        let taken = book.by_nonce.remove(nonce);
        book.prune(now);
        drop(book);
        let challenge = taken.ok_or(IdentityError::UnknownChallenge)?;
        challenge.check_fresh(now)?;
        Ok(challenge)
    }

    /// Number of challenges still held (including expired, not yet pruned ones).
    pub fn len(&self) -> usize {
        self.lock().by_nonce.len()
    }

    /// Whether no challenge is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        // A panic while holding the lock cannot leave the map half-updated
        // (every operation is a single insert/remove/retain), so keep going.
        self.outstanding.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{deterministic_demo_key, did_pkh};
    use ssi_dids::resolution::Output;
    use ssi_dids::{DIDBuf, StaticDIDResolver};

    const NOW: u64 = 1_750_000_000;

    #[test]
    fn message_is_sign_in_with_ethereum_for_an_account() {
        let mut c = Challenge::new("kippu.example", NOW, 300);
        assert_eq!(c.nonce.len(), 32);
        assert!(c.nonce.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(c.nonce, Challenge::new("kippu.example", NOW, 300).nonce);
        assert_eq!(c.expires_at, NOW + 300);
        c.nonce = "32891756c38e4c0ab5c86b8d5f1e1d2c".into();
        let did = "did:pkh:eip155:1:0xb9c5714089478a327f09197987f16f9e5d936e8a";
        // EIP-4361's layout, line for line (the address EIP-55 checksummed).
        let expected = "kippu.example wants you to sign in with your Ethereum account:\n\
            0xB9C5714089478a327F09197987f16f9E5d936E8a\n\
            \n\
            Sign in to Kippu. This signature proves you control this account; it does not authorize any payment or transaction.\n\
            \n\
            URI: https://kippu.example\n\
            Version: 1\n\
            Chain ID: 1\n\
            Nonce: 32891756c38e4c0ab5c86b8d5f1e1d2c\n\
            Issued At: 2025-06-15T15:06:40Z\n\
            Expiration Time: 2025-06-15T15:11:40Z\n\
            Resources:\n\
            - did:pkh:eip155:1:0xb9c5714089478a327f09197987f16f9e5d936e8a";
        assert_eq!(c.message(did), expected);
        let local = Challenge { domain: "127.0.0.1:8080".into(), ..c.clone() };
        assert!(local.message(did).contains("\nURI: http://127.0.0.1:8080\n"));
        let other = c.message("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK");
        assert!(other.starts_with("kippu.example wants you to sign in with your DID:\ndid:key:z6Mk"));
    }

    #[test]
    fn book_takes_each_nonce_once() {
        let book = ChallengeBook::new(60);
        let c = book.issue("kippu.example", NOW).unwrap();
        assert_eq!(book.len(), 1);
        assert_eq!(book.take(&c.nonce, NOW + 1).unwrap(), c);
        assert_eq!(book.take(&c.nonce, NOW + 2), Err(IdentityError::UnknownChallenge));
        assert_eq!(book.take("never-issued", NOW), Err(IdentityError::UnknownChallenge));
        assert!(book.is_empty());
    }

    #[test]
    fn book_expires_and_prunes() {
        let book = ChallengeBook::new(60);
        let late = book.issue("kippu.example", NOW).unwrap();
        assert_eq!(
            book.take(&late.nonce, NOW + 60),
            Err(IdentityError::ChallengeExpired { expires_at: NOW + 60, now: NOW + 60 })
        );
        // Expired challenges are dropped when others are issued or taken.
        let _stale = book.issue("kippu.example", NOW).unwrap();
        let fresh = book.issue("kippu.example", NOW + 100).unwrap();
        assert_eq!(book.len(), 1);
        assert!(book.take(&fresh.nonce, NOW + 101).is_ok());
    }

    #[test]
    fn a_flood_of_challenges_is_refused_at_the_bound_until_they_expire() {
        let book = ChallengeBook::with_limit(60, 100);
        for i in 0..100 {
            book.issue("kippu.example", NOW + i % 5).unwrap();
        }
        // Full of live challenges: refused, and the book does not grow.
        for _ in 0..1_000 {
            assert_eq!(
                book.issue("kippu.example", NOW + 10),
                Err(IdentityError::TooManyChallenges { limit: 100, retry_after_secs: 50 })
            );
        }
        assert_eq!(book.len(), 100);
        // Once the first ones expire they are pruned (not merely refused), and issuing works again.
        let again = book.issue("kippu.example", NOW + 60).unwrap();
        assert_eq!(book.len(), 81, "the 20 issued at NOW expired and were dropped");
        assert!(book.take(&again.nonce, NOW + 61).is_ok());
        // Long after, everything expired is gone at the next issue.
        book.issue("kippu.example", NOW + 1_000).unwrap();
        assert_eq!(book.len(), 1);
        assert_eq!(ChallengeBook::default().limit(), DEFAULT_MAX_OUTSTANDING_CHALLENGES);
    }

    #[test]
    fn taking_a_challenge_frees_its_place_in_a_full_book() {
        let book = ChallengeBook::with_limit(60, 2);
        let a = book.issue("kippu.example", NOW).unwrap();
        book.issue("kippu.example", NOW).unwrap();
        assert!(matches!(book.issue("kippu.example", NOW), Err(IdentityError::TooManyChallenges { .. })));
        book.take(&a.nonce, NOW).unwrap();
        assert!(book.issue("kippu.example", NOW).is_ok());
        assert_eq!(book.len(), 2);
    }

    fn static_resolver(did: &str, document: serde_json::Value) -> StaticDIDResolver {
        let mut resolver = StaticDIDResolver::new();
        resolver.insert(
            DIDBuf::from_string(did.to_owned()).unwrap(),
            Output::from_content(serde_json::to_vec(&document).unwrap(), Some("application/did+json".to_owned())),
        );
        resolver
    }

    fn document(did: &str, account: &str, authentication: bool) -> serde_json::Value {
        let vm_id = format!("{did}#blockchainAccountId");
        let mut doc = serde_json::json!({
            "id": did,
            "verificationMethod": [{
                "id": vm_id,
                "type": RECOVERY_METHOD_TYPE,
                "controller": did,
                "blockchainAccountId": account,
            }],
            "assertionMethod": [vm_id],
        });
        if authentication {
            doc["authentication"] = serde_json::json!(["#blockchainAccountId"]);
        }
        doc
    }

    #[tokio::test]
    async fn static_document_with_relative_authentication_reference_is_accepted() {
        let signer = deterministic_demo_key("static");
        let did = did_pkh(10, signer.address());
        let account = format!("eip155:10:{:#x}", signer.address());
        let resolver = static_resolver(&did, document(&did, &account, true));
        let c = Challenge::new("kippu.example", NOW, 60);
        let sig = sign_challenge(&signer, &c, &did).unwrap();
        let got = verify_with(&resolver, &did, &c, &sig, NOW).await;
        assert_eq!(got, Ok(signer.address()));
    }

    #[tokio::test]
    async fn no_matching_authentication_method() {
        let signer = deterministic_demo_key("static");
        let did = did_pkh(10, signer.address());
        let c = Challenge::new("kippu.example", NOW, 60);
        let sig = sign_challenge(&signer, &c, &did).unwrap();
        let same = format!("eip155:10:{:#x}", signer.address());
        let other_chain = format!("eip155:1:{:#x}", signer.address());
        let other_addr = format!("eip155:10:{:#x}", Address::ZERO);
        for doc in [
            document(&did, &same, false),
            document(&did, &other_chain, true),
            document(&did, &other_addr, true),
            document(&did, "not-a-caip10", true),
            serde_json::json!({ "id": did }),
        ] {
            let resolver = static_resolver(&did, doc.clone());
            assert_eq!(
                verify_with(&resolver, &did, &c, &sig, NOW).await,
                Err(IdentityError::NoVerificationMethod(did.clone())),
                "{doc}"
            );
        }
    }

    #[tokio::test]
    async fn unresolvable_did() {
        let signer = deterministic_demo_key("static");
        let did = did_pkh(10, signer.address());
        let c = Challenge::new("kippu.example", NOW, 60);
        let sig = sign_challenge(&signer, &c, &did).unwrap();
        let err = verify_with(&StaticDIDResolver::new(), &did, &c, &sig, NOW).await.unwrap_err();
        assert!(matches!(err, IdentityError::UnresolvableDid { .. }), "{err}");
    }
}
