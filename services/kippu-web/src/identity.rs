//! Decentralized identity on the web: the did:web documents Kippu hosts, the
//! issuers' status lists and portal pages, the traveler's credential wallet,
//! presentations from self-custodied wallets, concession pricing, and the
//! traveler's personal data (export, erasure, key revocation).

use std::collections::HashMap;

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, Json};
use axum_extra::extract::cookie::CookieJar;
use chrono::{DateTime, Utc};
use kippu_credentials::{
    did_web, Concession, CredentialError, Credentials, IssuerKey, NewConcession, StatusEntry, StatusSource, TrustList,
    VerifiedConcession, STATUS_LIST_LEN,
};
use kippu_domain::model::{IssuedCredential, IssuerRow};
use kippu_identity::{did_pkh, Keystore};
use serde_json::{json, Value};

use crate::portal::Staff;
use crate::session::{now, Traveler, COOKIE};
use crate::{AppError, AppState};

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
    pub portal: crate::portal::PortalAuth,
}

type Page = Result<Html<String>, AppError>;

fn html<T: Template>(t: T) -> Page {
    Ok(Html(t.render()?))
}

fn chrono_now() -> DateTime<Utc> {
    Utc::now()
}

fn day(ts: i64) -> String {
    DateTime::from_timestamp(ts, 0).map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

// ---- documents Kippu publishes ------------------------------------------------

fn did_json(doc: Option<Value>) -> Response {
    match doc {
        Some(d) => ([(header::CONTENT_TYPE, "application/did+json")], d.to_string()).into_response(),
        None => (StatusCode::NOT_FOUND, "no such DID document").into_response(),
    }
}

/// `did:web:<authority>`: the consortium itself.
pub(crate) async fn well_known_did(State(s): State<AppState>) -> Response {
    let id = &s.identity;
    did_json(id.credentials.resolver().local_document(&did_web(&id.authority, &[])))
}

/// `did:web:<authority>:<kind>:<slug>`: operators and issuers.
pub(crate) async fn path_did(State(s): State<AppState>, Path((kind, slug)): Path<(String, String)>) -> Response {
    let id = &s.identity;
    did_json(id.credentials.resolver().local_document(&did_web(&id.authority, &[&kind, &slug])))
}

fn status_url(s: &AppState, slug: &str) -> String {
    format!("{}/credentials/status/{slug}", s.public_url)
}

async fn issuer_key(s: &AppState, slug: &str) -> Result<(IssuerRow, IssuerKey), AppError> {
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

async fn signed_status_list(s: &AppState, slug: &str) -> Result<Value, AppError> {
    let (row, key) = issuer_key(s, slug).await?;
    let revoked = s.store.revoked_indices(slug).await?;
    s.identity
        .credentials
        .status_list(&row.did, &key, &status_url(s, slug), &revoked, chrono_now())
        .await
        .map_err(|e| AppError::Internal(e.to_string()))
}

/// An issuer's Bitstring Status List, signed afresh so a revocation shows at once.
pub(crate) async fn status_list(State(s): State<AppState>, Path(slug): Path<String>) -> Result<Response, AppError> {
    let list = signed_status_list(&s, &slug).await?;
    Ok(([(header::CONTENT_TYPE, "application/vc+ld+json"), (header::CACHE_CONTROL, "no-store")], list.to_string())
        .into_response())
}

/// Status lists: Kippu's own are built in-process (no HTTP to ourselves); anyone else's
/// are fetched under the DID resolver's fetch policy (public addresses only, no redirects,
/// one deadline), with room for a list's 1 MiB.
struct Lists<'a>(&'a AppState);

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

async fn trust_list(s: &AppState) -> Result<TrustList, AppError> {
    let mut t = TrustList::default();
    for (issuer, concession) in s.store.trust_list().await? {
        if let Ok(c) = Concession::parse(&concession) {
            t.trust(&issuer, c);
        }
    }
    Ok(t)
}

async fn verify_one(s: &AppState, trust: &TrustList, vc: &Value) -> Result<VerifiedConcession, CredentialError> {
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

/// A challenge for a self-custodied wallet's presentation; 503 while too many are open.
pub(crate) async fn presentation_challenge(State(s): State<AppState>) -> Response {
    match s.presentation_challenges.issue(&s.identity.authority, now() as u64) {
        Ok(c) => Json(json!({"challenge": c.nonce, "domain": s.identity.authority, "expires_at": c.expires_at}))
            .into_response(),
        Err(e) => too_many(e),
    }
}

/// The answer to a challenge book that refused to issue: 503 with `Retry-After`.
fn too_many(e: kippu_identity::IdentityError) -> Response {
    match AppError::from(e) {
        AppError::Busy { message, retry_after_secs } => crate::error::busy_json(&message, retry_after_secs),
        other => other.into_response(),
    }
}

/// Verifies a presentation from any wallet: the answer names the holder and
/// the concessions proven, or the specific reason it was refused.
pub(crate) async fn verify_presentation_api(State(s): State<AppState>, Json(body): Json<Value>) -> Response {
    let vp = body.get("presentation").cloned().unwrap_or(Value::Null);
    let nonce = vp.pointer("/proof/challenge").and_then(Value::as_str).unwrap_or_default().to_owned();
    // One use per challenge: a replayed presentation finds its challenge gone.
    let challenge = match s.presentation_challenges.take(&nonce, now() as u64) {
        Ok(c) => c,
        Err(_) => {
            let e = CredentialError::WrongChallenge;
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"verified": false, "code": e.code(), "error": e.to_string()})),
            )
                .into_response();
        }
    };
    let trust = match trust_list(&s).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    match s
        .identity
        .credentials
        .verify_presentation(&vp, &challenge.nonce, &s.identity.authority, &trust, &Lists(&s), chrono_now())
        .await
    {
        Ok(v) => Json(json!({"verified": true, "holder": v.holder, "concessions": v.concessions})).into_response(),
        Err(e) => {
            metrics::counter!("kippu_presentations_refused_total", "code" => e.code()).increment(1);
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"verified": false, "code": e.code(), "error": e.to_string()})),
            )
                .into_response()
        }
    }
}

// ---- the traveler's wallet ----------------------------------------------------------

pub(crate) struct WalletView {
    id: String,
    concession: String,
    issuer: String,
    valid_until: String,
    state: String,
    ok: bool,
}

#[derive(Template)]
#[template(path = "credentials.html")]
struct WalletPage {
    did: String,
    credentials: Vec<WalletView>,
    notice: Option<String>,
    error: Option<String>,
    chain_id: u64,
}

async fn wallet_page(s: &AppState, me: Address, notice: Option<String>, error: Option<String>) -> Page {
    let trust = trust_list(s).await?;
    let issuers: HashMap<String, String> = s.store.issuers().await?.into_iter().map(|i| (i.did, i.name)).collect();
    let mut credentials = Vec::new();
    for w in s.store.wallet(&me).await? {
        let vc: Value = serde_json::from_str(&w.body).unwrap_or(Value::Null);
        let issuer = vc.get("issuer").and_then(Value::as_str).unwrap_or("?").to_owned();
        let result = verify_one(s, &trust, &vc).await;
        credentials.push(WalletView {
            id: w.id,
            concession: crate::pages::concession_name(
                vc.pointer("/credentialSubject/concession").and_then(Value::as_str).unwrap_or("?"),
            ),
            issuer: issuers.get(&issuer).cloned().unwrap_or(issuer),
            valid_until: vc.get("validUntil").and_then(Value::as_str).unwrap_or("").chars().take(10).collect(),
            ok: result.is_ok(),
            state: match result {
                Ok(_) => crate::i18n::t("cred.valid").into(),
                Err(e) => credential_state(&e),
            },
        });
    }
    html(WalletPage { did: did_pkh(s.chain.chain_id(), me), credentials, notice, error, chain_id: s.chain.chain_id() })
}

/// Why a credential in the wallet does not hold, in the page's language.
fn credential_state(e: &CredentialError) -> String {
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

pub(crate) async fn wallet(
    State(s): State<AppState>,
    Traveler(me): Traveler,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    let notice = q.contains_key("added").then(|| crate::i18n::t("cred.added").to_owned());
    wallet_page(&s, me, notice, None).await
}

#[derive(serde::Deserialize)]
pub(crate) struct ImportForm {
    credential: String,
}

/// Adds a credential the traveler got elsewhere; it must verify and name them.
pub(crate) async fn wallet_import(
    State(s): State<AppState>,
    Traveler(me): Traveler,
    Form(f): Form<ImportForm>,
) -> Result<Response, AppError> {
    let refuse = |msg: String| {
        let s = s.clone();
        async move {
            Ok::<_, AppError>(
                (StatusCode::UNPROCESSABLE_ENTITY, wallet_page(&s, me, None, Some(msg)).await?).into_response(),
            )
        }
    };
    let Ok(vc) = serde_json::from_str::<Value>(f.credential.trim()) else {
        return refuse(crate::i18n::t("cred.not_json").into()).await;
    };
    let trust = trust_list(&s).await?;
    match verify_one(&s, &trust, &vc).await {
        Err(e) => refuse(crate::i18n::tf("cred.not_added", credential_state(&e))).await,
        Ok(ok) if ok.subject != did_pkh(s.chain.chain_id(), me) => {
            refuse(crate::i18n::tf("cred.not_yours", &ok.subject)).await
        }
        Ok(ok) => {
            let id = ok
                .id
                .clone()
                .unwrap_or_else(|| format!("urn:kippu:imported:{}", hex::encode(rand::random::<[u8; 8]>())));
            s.store.add_to_wallet(&me, &id, &vc.to_string(), now()).await?;
            Ok(Redirect::to("/credentials?added=1").into_response())
        }
    }
}

/// The raw credential, for the traveler to keep or present elsewhere.
pub(crate) async fn wallet_download(
    State(s): State<AppState>,
    Traveler(me): Traveler,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let id = q.get("id").ok_or_else(|| AppError::BadRequest("Which credential? (id missing)".into()))?;
    let w = s.store.wallet(&me).await?.into_iter().find(|w| &w.id == id);
    let w = w.ok_or_else(|| AppError::NotFound(crate::i18n::t("cred.not_found").into()))?;
    Ok(([(header::CONTENT_TYPE, "application/vc+ld+json")], w.body).into_response())
}

// ---- issuer portal --------------------------------------------------------------------

pub(crate) struct IssuedView {
    id: String,
    holder: String,
    concession: String,
    issued: String,
    valid_until: String,
    revoked: Option<String>,
}

#[derive(Template)]
#[template(path = "issuer.html")]
struct IssuerPage {
    slug: String,
    did_path: String,
    name: String,
    did: String,
    concessions: Vec<String>,
    travelers: Vec<(String, String)>,
    issued: Vec<IssuedView>,
    default_until: String,
    notice: Option<String>,
    error: Option<String>,
    chain_id: u64,
}

async fn issuer_page(s: &AppState, slug: &str, notice: Option<String>, error: Option<String>) -> Page {
    let (row, _) = issuer_key(s, slug).await?;
    let concessions = s.store.trust_list().await?.into_iter().filter(|(d, _)| *d == row.did).map(|(_, c)| c).collect();
    let travelers = s.store.travelers().await?.into_iter().map(|t| (t.did, t.display_name)).collect();
    let issued = s
        .store
        .issued_by(slug)
        .await?
        .into_iter()
        .map(|c| IssuedView {
            id: c.id,
            holder: c.holder_did,
            concession: c.concession,
            issued: day(c.issued_at),
            valid_until: day(c.valid_until),
            revoked: c.revoked_at.map(day),
        })
        .collect();
    html(IssuerPage {
        did_path: kippu_credentials::did_web_path(&row.did).unwrap_or_default().trim_start_matches('/').to_owned(),
        slug: row.slug,
        name: row.name,
        did: row.did,
        concessions,
        travelers,
        issued,
        default_until: day(now() + 365 * 86_400),
        notice,
        error,
        chain_id: s.chain.chain_id(),
    })
}

pub(crate) async fn issuer(
    _staff: Staff,
    State(s): State<AppState>,
    Path(slug): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    issuer_page(&s, &slug, q.get("notice").cloned(), None).await
}

#[derive(serde::Deserialize)]
pub(crate) struct IssueForm {
    holder: String,
    concession: String,
    valid_until: String,
}

/// Issues a concession credential to a traveler's DID and delivers it to
/// their Kippu wallet when they have one here.
pub(crate) async fn issue(
    _staff: Staff,
    State(s): State<AppState>,
    Path(slug): Path<String>,
    headers: axum::http::HeaderMap,
    Form(f): Form<IssueForm>,
) -> Result<Response, AppError> {
    // An issuer's own systems ask for JSON and get the credential to hand over themselves.
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") || a.contains("application/vc"));
    let refuse = |msg: String| {
        let s = s.clone();
        let slug = slug.clone();
        async move {
            Ok::<_, AppError>(
                (StatusCode::UNPROCESSABLE_ENTITY, issuer_page(&s, &slug, None, Some(msg)).await?).into_response(),
            )
        }
    };
    let holder = match kippu_identity::normalize_did_pkh(f.holder.trim()) {
        Ok(d) => d,
        Err(e) => return refuse(format!("The holder must be a traveler's did:pkh DID: {e}.")).await,
    };
    let Ok(concession) = Concession::parse(&f.concession) else {
        return refuse(format!("Unknown concession {:?}.", f.concession)).await;
    };
    let until = match chrono::NaiveDate::parse_from_str(&f.valid_until, "%Y-%m-%d") {
        Ok(d) => d.and_hms_opt(23, 59, 59).expect("valid time").and_utc(),
        Err(_) => return refuse("Valid until must be a date (YYYY-MM-DD).".into()).await,
    };
    let issued_at = chrono_now();
    if until <= issued_at {
        return refuse("Valid until must be in the future.".into()).await;
    }
    let (row, key) = issuer_key(&s, &slug).await?;
    if !trust_list(&s).await?.allows(&row.did, concession) {
        return refuse(format!("{} is not on the trust list for {concession} concessions.", row.name)).await;
    }
    let id = format!("urn:uuid:{}", uuid_v4());
    let index = s
        .store
        .record_issued(
            &IssuedCredential {
                id: id.clone(),
                issuer_slug: slug.clone(),
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
    let vc = s
        .identity
        .credentials
        .issue(
            &row.did,
            &key,
            &NewConcession {
                id: id.clone(),
                subject_did: holder.clone(),
                concession,
                valid_from: issued_at,
                valid_until: until,
                status: Some(StatusEntry { list_url: status_url(&s, &slug), index: index as u64 }),
            },
        )
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let (_, address) = kippu_identity::parse_did_pkh(&holder).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let delivered = if s.store.traveler(&address).await?.is_some() {
        s.store.add_to_wallet(&address, &id, &vc.to_string(), now()).await?;
        "delivered to the traveler's Kippu wallet"
    } else {
        "the traveler can import it in their wallet"
    };
    metrics::counter!("kippu_credentials_issued_total", "concession" => concession.as_str()).increment(1);
    tracing::info!(issuer = %row.did, %id, %concession, "concession credential issued");
    if wants_json {
        return Ok(Json(vc).into_response());
    }
    let notice = format!("Issued {concession} credential {id}: {delivered}.");
    Ok(Redirect::to(&format!("/portal/issuers/{slug}?notice={}", urlencode(&notice))).into_response())
}

#[derive(serde::Deserialize)]
pub(crate) struct RevokeForm {
    id: String,
}

pub(crate) async fn revoke(
    _staff: Staff,
    State(s): State<AppState>,
    Path(slug): Path<String>,
    Form(f): Form<RevokeForm>,
) -> Result<Response, AppError> {
    if !s.store.revoke_issued(&slug, &f.id, now()).await? {
        return Err(AppError::NotFound(format!("{} is not an unrevoked credential of this issuer.", f.id)));
    }
    tracing::info!(issuer = %slug, id = %f.id, "concession credential revoked");
    let notice = format!("Revoked {}: its status list bit is set.", f.id);
    Ok(Redirect::to(&format!("/portal/issuers/{slug}?notice={}", urlencode(&notice))).into_response())
}

// ---- personal data ---------------------------------------------------------------------

/// Everything Kippu holds about the traveler, as a JSON download (GDPR art. 15).
pub(crate) async fn export(State(s): State<AppState>, Traveler(me): Traveler) -> Result<Response, AppError> {
    let did = did_pkh(s.chain.chain_id(), me);
    let data = s.store.export_personal_data(&me, &did).await?;
    let body = serde_json::to_string_pretty(&data).map_err(|e| AppError::Internal(e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"kippu-data-{me:#x}.json\"")),
        ],
        body,
    )
        .into_response())
}

#[derive(serde::Deserialize)]
pub(crate) struct ConfirmForm {
    confirm: Option<String>,
}

/// Erases the traveler's personal data (GDPR art. 17) and signs them out.
pub(crate) async fn erase(
    State(s): State<AppState>,
    Traveler(me): Traveler,
    jar: CookieJar,
    Form(f): Form<ConfirmForm>,
) -> Result<Response, AppError> {
    if f.confirm.as_deref() != Some("erase") {
        return Err(AppError::BadRequest(crate::i18n::t("data.err.erase_confirm").into()));
    }
    let did = did_pkh(s.chain.chain_id(), me);
    s.store.erase_personal_data(&me, &did, now()).await?;
    s.platform.key_revoked(me).await;
    tracing::info!(address = %me, "personal data erased at the traveler's request");
    Ok((jar.remove(axum_extra::extract::cookie::Cookie::from(COOKIE)), Redirect::to("/signin?erased=1"))
        .into_response())
}

/// Revokes the traveler's account key (a lost phone, a leaked key): it can
/// no longer sign in or sign passes.
pub(crate) async fn revoke_key(
    State(s): State<AppState>,
    Traveler(me): Traveler,
    jar: CookieJar,
    Form(f): Form<ConfirmForm>,
) -> Result<Response, AppError> {
    if f.confirm.as_deref() != Some("revoke") {
        return Err(AppError::BadRequest(crate::i18n::t("data.err.revoke_confirm").into()));
    }
    s.store.revoke_key(&me, "revoked by the traveler", now()).await?;
    s.platform.key_revoked(me).await;
    tracing::info!(address = %me, "account key revoked");
    Ok((jar.remove(axum_extra::extract::cookie::Cookie::from(COOKIE)), Redirect::to("/signin?revoked=1"))
        .into_response())
}

fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

pub(crate) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---- self-custodied sign-in ----------------------------------------------------------------

#[derive(serde::Deserialize)]
pub(crate) struct WalletChallengeQuery {
    did: String,
}

/// A sign-in challenge for a wallet: the exact text to `personal_sign`; 503 while too many are open.
pub(crate) async fn wallet_challenge(
    State(s): State<AppState>,
    Query(q): Query<WalletChallengeQuery>,
) -> Result<Response, AppError> {
    let did = kippu_identity::normalize_did_pkh(q.did.trim()).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let c = match s.challenges.issue(&s.identity.authority, now() as u64) {
        Ok(c) => c,
        Err(e) => return Ok(too_many(e)),
    };
    Ok(Json(json!({"did": did, "nonce": c.nonce, "message": c.message(&did), "expires_at": c.expires_at}))
        .into_response())
}

#[derive(serde::Deserialize)]
pub(crate) struct WalletSignin {
    did: String,
    nonce: String,
    signature: String,
}

/// DID authentication for a self-custodied wallet (the same verification the
/// custodial form goes through). A first sign-in registers the traveler with
/// no custodial key: Kippu never holds theirs.
pub(crate) async fn wallet_signin(
    State(s): State<AppState>,
    jar: CookieJar,
    Json(f): Json<WalletSignin>,
) -> Result<Response, AppError> {
    let did = kippu_identity::normalize_did_pkh(f.did.trim()).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let (chain_id, address) = kippu_identity::parse_did_pkh(&did).map_err(|e| AppError::BadRequest(e.to_string()))?;
    if chain_id != s.chain.chain_id() {
        return Err(AppError::BadRequest(format!(
            "This DID is on chain {chain_id}; Kippu runs on chain {}.",
            s.chain.chain_id()
        )));
    }
    let now_s = now() as u64;
    let challenge =
        s.challenges.take(&f.nonce, now_s).map_err(|e| AppError::BadRequest(format!("Sign-in refused: {e}.")))?;
    let verified = kippu_identity::verify_did_auth(&did, &challenge, &f.signature, now_s)
        .await
        .map_err(|e| AppError::BadRequest(format!("DID authentication failed: {e}.")))?;
    if verified != address {
        return Err(AppError::BadRequest("DID authentication failed: signer mismatch.".into()));
    }
    crate::pages::refuse_revoked(&s, address).await?;
    if s.store.traveler(&address).await?.is_none() {
        let short = format!("{address:#x}");
        s.store
            .upsert_traveler(&kippu_domain::model::Traveler {
                address,
                did: did.clone(),
                display_name: format!("Wallet {}…{}", &short[..6], &short[short.len() - 4..]),
                sealed_key: None,
                created_at: now(),
            })
            .await?;
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    s.store.create_session(&token, &address, now() + crate::session::SESSION_SECS).await?;
    tracing::info!(%did, "wallet signed in");
    Ok((jar.add(crate::session::new_cookie(token, s.secure_cookies())), Json(json!({"did": did, "signed_in": true})))
        .into_response())
}
