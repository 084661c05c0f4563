//! Concession credentials, as the issuers Kippu hosts issue and revoke them.
//!
//! An issuer (a university, a welfare office) is a `did:web` identity whose Ed25519 seed is
//! sealed in the keystore. It issues a W3C VC 2.0 concession credential to a traveler's
//! `did:pkh`, at a free, randomly drawn index of its Bitstring Status List, and revokes it by
//! setting that bit. Kippu honours only concessions the trust list names the issuer for.

use kippu_credentials::{Concession, Credentials, IssuerKey, NewConcession, StatusEntry, TrustList, STATUS_LIST_LEN};
use kippu_domain::model::{IssuedCredential, IssuerRow};
use kippu_identity::Keystore;
use serde_json::Value;

use crate::ports::{Clock, Store};
use crate::{PortError, PortResult};

/// The trust list: which issuer DID may grant which concession. Entries naming a concession
/// this build does not know are skipped.
pub async fn trust_list(store: &dyn Store) -> PortResult<TrustList> {
    let mut t = TrustList::default();
    for (issuer, concession) in store.trust_list().await? {
        if let Ok(c) = Concession::parse(&concession) {
            t.trust(&issuer, c);
        }
    }
    Ok(t)
}

/// Why an issuer's key could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssuerKeyError {
    /// No such issuer is hosted here.
    #[error("No issuer {slug:?} is hosted here.")]
    UnknownIssuer {
        /// The slug asked for.
        slug: String,
    },
    /// The sealed seed would not open.
    #[error("{0}")]
    Keystore(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
}

/// A hosted issuer and its signing key, opened from the keystore.
pub async fn issuer_key(
    store: &dyn Store,
    keystore: &Keystore,
    slug: &str,
) -> Result<(IssuerRow, IssuerKey), IssuerKeyError> {
    let row = store
        .issuers()
        .await?
        .into_iter()
        .find(|i| i.slug == slug)
        .ok_or_else(|| IssuerKeyError::UnknownIssuer { slug: slug.to_owned() })?;
    let seed = keystore.open_seed(&row.did, &row.sealed_seed).map_err(|e| IssuerKeyError::Keystore(e.to_string()))?;
    Ok((row, IssuerKey::from_seed(*seed)))
}

/// An issuer's staff issuing a concession, as typed in the portal (or sent by the issuer's
/// own systems).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueCredential {
    /// The issuer's slug.
    pub issuer_slug: String,
    /// The holder's `did:pkh`, as typed.
    pub holder: String,
    /// The concession (`student`, `senior`, `disability`).
    pub concession: String,
    /// The last day it is valid, `YYYY-MM-DD` (valid to 23:59:59 UTC that day).
    pub valid_until: String,
    /// The issuer's status list URL the credential points to.
    pub status_list_url: String,
}

/// A credential issued.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuedConcession {
    /// The credential's id (`urn:uuid:…`).
    pub id: String,
    /// The signed credential.
    pub vc: Value,
    /// Its concession.
    pub concession: Concession,
    /// The issuer's DID.
    pub issuer_did: String,
    /// The holder's DID, normalized.
    pub holder_did: String,
    /// Whether it was put in the holder's Kippu wallet (they have an account here); otherwise
    /// they import it themselves.
    pub delivered: bool,
}

/// Why no credential was issued. `Display` is the sentence the issuer's staff read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueCredentialError {
    /// The holder is not a `did:pkh` DID.
    #[error("The holder must be a traveler's did:pkh DID: {0}.")]
    BadHolder(String),
    /// No such concession.
    #[error("Unknown concession {0:?}.")]
    UnknownConcession(String),
    /// The validity end is not a date.
    #[error("Valid until must be a date (YYYY-MM-DD).")]
    BadDate,
    /// The validity end is not in the future.
    #[error("Valid until must be in the future.")]
    NotInFuture,
    /// The issuer is not hosted here, or its key would not open.
    #[error(transparent)]
    Issuer(#[from] IssuerKeyError),
    /// The trust list does not name the issuer for this concession.
    #[error("{issuer_name} is not on the trust list for {concession} concessions.")]
    NotTrusted {
        /// The issuer's name.
        issuer_name: String,
        /// The concession.
        concession: Concession,
    },
    /// Signing the credential failed.
    #[error("{0}")]
    Signing(String),
    /// The holder's DID names no address.
    #[error("{0}")]
    HolderAddress(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
}

/// Issues a concession credential to a traveler's DID: the form is checked, the issuer must be
/// on the trust list for the concession, a status index is drawn and recorded before signing
/// (so every credential out there can be revoked), and the credential goes to the holder's
/// Kippu wallet when they have one here.
pub async fn issue_credential(
    store: &dyn Store,
    keystore: &Keystore,
    credentials: &Credentials,
    clock: &dyn Clock,
    req: IssueCredential,
) -> Result<IssuedConcession, IssueCredentialError> {
    let holder = kippu_identity::normalize_did_pkh(req.holder.trim())
        .map_err(|e| IssueCredentialError::BadHolder(e.to_string()))?;
    let Ok(concession) = Concession::parse(&req.concession) else {
        return Err(IssueCredentialError::UnknownConcession(req.concession));
    };
    let until = match chrono::NaiveDate::parse_from_str(&req.valid_until, "%Y-%m-%d") {
        Ok(d) => d.and_hms_opt(23, 59, 59).expect("valid time").and_utc(),
        Err(_) => return Err(IssueCredentialError::BadDate),
    };
    let issued_at = chrono::DateTime::from_timestamp(clock.now(), 0).unwrap_or_default();
    if until <= issued_at {
        return Err(IssueCredentialError::NotInFuture);
    }
    let (row, key) = issuer_key(store, keystore, &req.issuer_slug).await?;
    if !trust_list(store).await?.allows(&row.did, concession) {
        return Err(IssueCredentialError::NotTrusted { issuer_name: row.name, concession });
    }
    let id = format!("urn:uuid:{}", uuid_v4());
    let index = store
        .record_issued(
            &IssuedCredential {
                id: id.clone(),
                issuer_slug: req.issuer_slug.clone(),
                holder_did: holder.clone(),
                concession: concession.to_string(),
                status_index: 0,
                issued_at: issued_at.timestamp(),
                valid_until: until.timestamp(),
                revoked_at: None,
            },
            STATUS_LIST_LEN as i64,
        )
        .await?;
    let vc = credentials
        .issue(
            &row.did,
            &key,
            &NewConcession {
                id: id.clone(),
                subject_did: holder.clone(),
                concession,
                valid_from: issued_at,
                valid_until: until,
                status: Some(StatusEntry { list_url: req.status_list_url, index: index as u64 }),
            },
        )
        .await
        .map_err(|e| IssueCredentialError::Signing(e.to_string()))?;
    let (_, address) =
        kippu_identity::parse_did_pkh(&holder).map_err(|e| IssueCredentialError::HolderAddress(e.to_string()))?;
    let delivered = store.traveler(&address).await?.is_some();
    if delivered {
        store.add_to_wallet(&address, &id, &vc.to_string(), clock.now()).await?;
    }
    metrics::counter!("kippu_credentials_issued_total", "concession" => concession.as_str()).increment(1);
    tracing::info!(issuer = %row.did, %id, %concession, "concession credential issued");
    Ok(IssuedConcession { id, vc, concession, issuer_did: row.did, holder_did: holder, delivered })
}

/// Why a credential was not revoked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevokeCredentialError {
    /// Not a credential of this issuer, or revoked already.
    #[error("{id} is not an unrevoked credential of this issuer.")]
    NotFound {
        /// The id asked for.
        id: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
}

/// Revokes an issued credential: its status list bit is set, so every verifier (Kippu at the
/// next purchase, anyone else at their next fetch of the list) refuses it.
pub async fn revoke_credential(
    store: &dyn Store,
    clock: &dyn Clock,
    issuer_slug: &str,
    id: &str,
) -> Result<(), RevokeCredentialError> {
    if !store.revoke_issued(issuer_slug, id, clock.now()).await? {
        return Err(RevokeCredentialError::NotFound { id: id.to_owned() });
    }
    tracing::info!(issuer = %issuer_slug, %id, "concession credential revoked");
    Ok(())
}

/// A random (version 4) UUID.
fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}
