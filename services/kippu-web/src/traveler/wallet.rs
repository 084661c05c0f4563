//! The credential wallet, and signing in with an external wallet (`did:pkh`).

use crate::identity::credential_state;
use crate::identity::too_many;
use crate::identity::trust_list;
use crate::identity::verify_one;
use crate::session::now;
use crate::session::Traveler;
use crate::views::html;
use crate::views::Page;
use crate::{AppError, AppState};
use alloy::primitives::Address;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use axum_extra::extract::cookie::CookieJar;
use kippu_identity::did_pkh;
use serde_json::{json, Value};
use std::collections::HashMap;

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
            concession: crate::views::concession_name(
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
    use kippu_app::accounts::{sign_in_with_wallet, WalletSignIn, WalletSignInError};
    let answer = WalletSignIn { did: f.did, nonce: f.nonce, signature: f.signature };
    let signed_in = match sign_in_with_wallet(&*s.store, &*s.chain, &s.challenges, &crate::CLOCK, answer).await {
        Ok(w) => w,
        Err(WalletSignInError::KeyRevoked { at, reason }) => return Err(crate::custody::key_revoked(at, reason)),
        Err(WalletSignInError::Store(e)) => return Err(e.into()),
        Err(e) => return Err(AppError::BadRequest(e.to_string())),
    };
    let (address, did) = (signed_in.address, signed_in.did);
    let token = hex::encode(rand::random::<[u8; 32]>());
    s.store.create_session(&token, &address, now() + crate::session::SESSION_SECS).await?;
    Ok((jar.add(crate::session::new_cookie(token, s.secure_cookies())), Json(json!({"did": did, "signed_in": true})))
        .into_response())
}
