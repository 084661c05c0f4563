//! Identity services the audiences share: the issuers' keys and status lists, the trust list, and verifying a traveler's concession credential.

use crate::session::now;
use crate::{AppError, AppState};
use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use kippu_credentials::{
    Concession, CredentialError, Credentials, IssuerKey, StatusSource, TrustList, VerifiedConcession,
};
use kippu_domain::model::IssuerRow;
use kippu_identity::{did_pkh, Keystore};
use serde_json::Value;
use std::collections::HashMap;

/// What the identity pages need, built by the binary at start-up.
pub struct IdentityServices {
    /// Issues and verifies credentials; its resolver answers for Kippu's own did:web documents.
    pub credentials: Credentials,
    /// `host[:port]` of the public URL: the did:web authority.
    pub authority: String,
    /// The consortium's concession attestor (holds PlanMarket's CONCESSION_ISSUER_ROLE).
    pub attestor: PrivateKeySigner,
    /// Discount per concession, in basis points.
    pub discounts: HashMap<Concession, u16>,
    /// Staff sign-in for the issuer portal.
    pub portal: crate::auth::PortalAuth,
}

pub(crate) fn chrono_now() -> DateTime<Utc> {
    Utc::now()
}

pub(crate) fn day(ts: i64) -> String {
    DateTime::from_timestamp(ts, 0).map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

pub(crate) fn status_url(s: &AppState, slug: &str) -> String {
    format!("{}/credentials/status/{slug}", s.public_url)
}

pub(crate) async fn issuer_key(s: &AppState, slug: &str) -> Result<(IssuerRow, IssuerKey), AppError> {
    let row = s
        .store
        .issuers()
        .await?
        .into_iter()
        .find(|i| i.slug == slug)
        .ok_or_else(|| AppError::NotFound(format!("No issuer {slug:?} is hosted here.")))?;
    let seed = open_issuer_seed(&s.keystore, &row)?;
    Ok((row, IssuerKey::from_seed(seed)))
}

fn open_issuer_seed(keystore: &Keystore, row: &IssuerRow) -> Result<[u8; 32], AppError> {
    keystore.open_seed(&row.did, &row.sealed_seed).map(|s| *s).map_err(|e| AppError::Internal(e.to_string()))
}

pub(crate) async fn signed_status_list(s: &AppState, slug: &str) -> Result<Value, AppError> {
    let (row, key) = issuer_key(s, slug).await?;
    let revoked = s.store.revoked_indices(slug).await?;
    s.identity
        .credentials
        .status_list(&row.did, &key, &status_url(s, slug), &revoked, chrono_now())
        .await
        .map_err(|e| AppError::Internal(e.to_string()))
}

/// Status lists: Kippu's own are built in-process (no HTTP to ourselves); anyone else's
/// are fetched under the DID resolver's fetch policy (public addresses only, no redirects,
/// one deadline), with room for a list's 1 MiB.
pub(crate) struct Lists<'a>(pub(crate) &'a AppState);

/// The largest status list fetched: a Bitstring Status List of 131,072 entries is 16 KiB
/// before compression, so 1 MiB leaves room for much longer lists and their proofs.
const MAX_STATUS_LIST_BYTES: usize = 1 << 20;

impl StatusSource for Lists<'_> {
    async fn status_list(&self, url: &str) -> Result<Value, String> {
        let s = self.0;
        let own = format!("{}/credentials/status/", s.public_url);
        if let Some(slug) = url.strip_prefix(&own) {
            return signed_status_list(s, slug).await.map_err(|e| e.to_string());
        }
        let policy = s.identity.credentials.resolver().fetch_policy().clone().with_max_bytes(MAX_STATUS_LIST_BYTES);
        let body = policy.get(url, "application/vc+ld+json, application/json").await.map_err(|e| e.to_string())?;
        serde_json::from_slice(&body).map_err(|e| format!("{url}: not JSON ({e})"))
    }
}

pub(crate) async fn trust_list(s: &AppState) -> Result<TrustList, AppError> {
    let mut t = TrustList::default();
    for (issuer, concession) in s.store.trust_list().await? {
        if let Ok(c) = Concession::parse(&concession) {
            t.trust(&issuer, c);
        }
    }
    Ok(t)
}

pub(crate) async fn verify_one(
    s: &AppState,
    trust: &TrustList,
    vc: &Value,
) -> Result<VerifiedConcession, CredentialError> {
    s.identity.credentials.verify_credential(vc, trust, &Lists(s), chrono_now()).await
}

// ---- concessions at purchase ------------------------------------------------------
/// The traveler's best currently valid concession, with the credential that proves it.
pub(crate) async fn best_concession(s: &AppState, me: Address) -> Result<Option<(Concession, u16, Value)>, AppError> {
    let trust = trust_list(s).await?;
    let mut best: Option<(Concession, u16, Value)> = None;
    let did = did_pkh(s.chain.chain_id(), me);
    for w in s.store.wallet(&me).await? {
        let Ok(vc) = serde_json::from_str::<Value>(&w.body) else { continue };
        let Ok(ok) = verify_one(s, &trust, &vc).await else { continue };
        if ok.subject != did {
            continue;
        }
        let bps = s.identity.discounts.get(&ok.concession).copied().unwrap_or(0);
        if best.as_ref().is_none_or(|(_, b, _)| bps > *b) {
            best = Some((ok.concession, bps, vc));
        }
    }
    Ok(best)
}

/// Presents `vc` for a custodial traveler exactly as a wallet would: a fresh
/// challenge, a presentation signed by the account key inside this process,
/// and the same verification a self-custodied wallet's presentation gets.
pub(crate) async fn present_and_verify(
    s: &AppState,
    signer: &PrivateKeySigner,
    vc: &Value,
) -> Result<VerifiedConcession, AppError> {
    let did = did_pkh(s.chain.chain_id(), signer.address());
    let domain = s.identity.authority.clone();
    let now_s = now() as u64;
    let challenge = s.presentation_challenges.issue(&domain, now_s)?;
    let secret: [u8; 32] = signer.to_bytes().0;
    let vp = s
        .identity
        .credentials
        .present(&secret, &did, std::slice::from_ref(vc), &challenge.nonce, &domain)
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let challenge =
        s.presentation_challenges.take(&challenge.nonce, now_s).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let trust = trust_list(s).await?;
    let verified = s
        .identity
        .credentials
        .verify_presentation(&vp, &challenge.nonce, &domain, &trust, &Lists(s), chrono_now())
        .await
        .map_err(|e| AppError::Refused(format!("Your concession could not be verified: {e}")))?;
    verified.concessions.into_iter().next().ok_or_else(|| AppError::Refused("No concession presented.".into()))
}

/// Why a credential in the wallet does not hold, in the page's language.
pub(crate) fn credential_state(e: &CredentialError) -> String {
    use crate::i18n::{t, tf};
    match e {
        CredentialError::NotYetValid(at) => tf("cred.state.NOT_YET_VALID", at),
        CredentialError::Expired(at) => tf("cred.state.EXPIRED", at),
        CredentialError::Malformed(_)
        | CredentialError::NotAConcession
        | CredentialError::UnknownConcession(_)
        | CredentialError::Unsigned
        | CredentialError::BadSignature { .. }
        | CredentialError::UntrustedIssuer { .. }
        | CredentialError::Revoked
        | CredentialError::StatusUnavailable(_)
        | CredentialError::UnresolvableDid { .. } => t(&format!("cred.state.{}", e.code())).into(),
        other => tf("cred.state.other", other.code()),
    }
}

pub(crate) fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The answer to a challenge book that refused to issue: 503 with `Retry-After`.
pub(crate) fn too_many(e: kippu_identity::IdentityError) -> Response {
    match AppError::from(e) {
        AppError::Busy { message, retry_after_secs } => crate::error::busy_json(&message, retry_after_secs),
        other => other.into_response(),
    }
}
