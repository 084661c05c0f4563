//! Identity services the audiences share: the issuers' keys and status lists, the trust list, and verifying a traveler's concession credential.

use crate::session::now;
use crate::{AppError, AppState};
use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use kippu_app::ports::{ConcessionFailure, Concessions, PresentedConcession};
use kippu_credentials::{
    Concession, CredentialError, Credentials, IssuerKey, StatusSource, TrustList, VerifiedConcession,
};
use kippu_domain::model::IssuerRow;
use kippu_identity::did_pkh;
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
    Ok(kippu_app::credentials::issuer_key(&*s.store, &s.keystore, slug).await?)
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
    Ok(kippu_app::credentials::trust_list(&*s.store).await?)
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
) -> Result<VerifiedConcession, ConcessionFailure> {
    let did = did_pkh(s.chain.chain_id(), signer.address());
    let domain = s.identity.authority.clone();
    let now_s = now() as u64;
    let challenge = s.presentation_challenges.issue(&domain, now_s).map_err(|e| match e {
        kippu_identity::IdentityError::TooManyChallenges { retry_after_secs, .. } => {
            ConcessionFailure::Busy { retry_after_secs }
        }
        other => ConcessionFailure::Challenge(other.to_string()),
    })?;
    let secret: [u8; 32] = signer.to_bytes().0;
    let vp = s
        .identity
        .credentials
        .present(&secret, &did, std::slice::from_ref(vc), &challenge.nonce, &domain)
        .await
        .map_err(|e| ConcessionFailure::Unavailable(e.to_string()))?;
    let challenge = s
        .presentation_challenges
        .take(&challenge.nonce, now_s)
        .map_err(|e| ConcessionFailure::Challenge(e.to_string()))?;
    let trust = trust_list(s).await.map_err(unavailable)?;
    let verified = s
        .identity
        .credentials
        .verify_presentation(&vp, &challenge.nonce, &domain, &trust, &Lists(s), chrono_now())
        .await
        .map_err(|e| ConcessionFailure::NotVerified(e.to_string()))?;
    verified.concessions.into_iter().next().ok_or(ConcessionFailure::NonePresented)
}

/// An internal failure (the store) while presenting a concession.
fn unavailable(e: AppError) -> ConcessionFailure {
    match e {
        AppError::Internal(m) => ConcessionFailure::Unavailable(m),
        other => ConcessionFailure::Unavailable(other.to_string()),
    }
}

/// The traveler's concession credentials as the purchase use case's port: the best one
/// held, presented with the traveler's key and verified afresh.
pub(crate) struct HeldConcessions<'a>(pub(crate) &'a AppState);

#[async_trait::async_trait]
impl Concessions for HeldConcessions<'_> {
    async fn present_best(
        &self,
        traveler: &PrivateKeySigner,
    ) -> Result<Option<PresentedConcession>, ConcessionFailure> {
        let s = self.0;
        let Some((_, bps, vc)) = best_concession(s, traveler.address()).await.map_err(unavailable)? else {
            return Ok(None);
        };
        let ok = present_and_verify(s, traveler, &vc).await?;
        Ok(Some(PresentedConcession { kind: ok.concession.kind(), discount_bps: bps }))
    }
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

/// The answer to a challenge book that refused to issue: 503 with `Retry-After`.
pub(crate) fn too_many(e: kippu_identity::IdentityError) -> Response {
    match AppError::from(e) {
        AppError::Busy { message, retry_after_secs } => crate::error::busy_json(&message, retry_after_secs),
        other => other.into_response(),
    }
}
