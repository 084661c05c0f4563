//! Travelers' passkeys: registering one and signing in with it (the ceremonies are
//! [`crate::passkeys`]').

use crate::passkeys::{busy, refused, Audience, Stored};
use crate::session::now;
use crate::session::Traveler;
use crate::{AppError, AppState};
use alloy::primitives::Address;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use axum_extra::extract::cookie::CookieJar;
use kippu_domain::model::PasskeyRow;
use webauthn_rp::bin::{Decode, Encode};
use webauthn_rp::request::register::{
    CredProtect, Nickname, PublicKeyCredentialUserEntity, RegistrationVerificationOptions, UserHandle64, Username,
};
use webauthn_rp::request::{ExtensionInfo, PublicKeyCredentialDescriptor};
use webauthn_rp::response::{AuthTransports, CredentialId};
use webauthn_rp::{PublicKeyCredentialCreationOptions, Registration};

/// The account's WebAuthn user handle: the one its passkeys already use, else a new random one.
async fn user_handle(s: &AppState, me: Address) -> Result<UserHandle64, AppError> {
    let existing = s.store.passkeys_of(&me).await?;
    match existing.first().and_then(|p| <[u8; 64]>::try_from(p.user_handle.as_slice()).ok()) {
        Some(bytes) => Ok(UserHandle64::decode(bytes).unwrap_or_else(|never| match never {})),
        None => Ok(UserHandle64::new()),
    }
}

/// `POST /passkeys/register/start`: creation options for a new passkey of the signed-in account.
pub(crate) async fn register_start(State(s): State<AppState>, Traveler(me): Traveler) -> Result<Response, AppError> {
    let rp = s.passkeys.rp()?;
    let t = s.store.traveler(&me).await?.ok_or(AppError::SignInRequired)?;
    let user_id = user_handle(&s, me).await?;
    let email = s.store.email_of(&me).await?.unwrap_or_else(|| format!("{me:#x}"));
    let name = Username::try_from(email.as_str()).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let display = Nickname::try_from(t.display_name.as_str()).ok();
    let exclude = s
        .store
        .passkeys_of(&me)
        .await?
        .into_iter()
        .filter_map(|p| CredentialId::decode(p.credential_id).ok())
        .filter_map(|id| {
            AuthTransports::decode(0).ok().map(|transports| PublicKeyCredentialDescriptor { id, transports })
        })
        .collect();
    let user = PublicKeyCredentialUserEntity { name, id: &user_id, display_name: display };
    let mut options = PublicKeyCredentialCreationOptions::passkey(rp, user, exclude);
    options.timeout = s.passkeys.timeout;
    // Ask for credProtect but do not make the browser refuse an authenticator without it
    // (Chromium then fails the whole ceremony); user verification is required either way.
    options.extensions.cred_protect = CredProtect::UserVerificationRequired(ExtensionInfo::AllowDontEnforceValue);
    let (server, client) = options.start_ceremony().map_err(|e| AppError::Internal(format!("passkey options: {e}")))?;
    let body = serde_json::to_value(&client).map_err(|e| AppError::Internal(e.to_string()))?;
    if let Err(full) = s.passkeys.registering.hold(server) {
        tracing::warn!("passkey registrations: too many in progress");
        return Ok(busy(full));
    }
    Ok(Json(body).into_response())
}

/// `POST /passkeys/register/finish`: the browser's `PublicKeyCredential.toJSON()`.
pub(crate) async fn register_finish(
    State(s): State<AppState>,
    Traveler(me): Traveler,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let rp = s.passkeys.rp()?;
    let reg = match serde_json::from_slice::<Registration>(&body) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable passkey registration");
            return Ok(refused(format!("That is not a passkey registration ({e}).")));
        }
    };
    let Ok(challenge) = reg.challenge() else {
        return Ok(refused("That is not a passkey registration."));
    };
    let Some(server) = s.passkeys.registering.take(&challenge) else {
        return Ok(refused("This passkey request expired or was already used; try again."));
    };
    let origins = [s.passkeys.origin.as_str()];
    let opts = RegistrationVerificationOptions::<&str, &str> { allowed_origins: &origins, ..Default::default() };
    let cred = match server.verify(rp, &reg, &opts) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "passkey registration refused");
            return Ok(refused(format!("The passkey could not be verified: {e}")));
        }
    };
    let row = PasskeyRow {
        credential_id: cred.id().encode().map(<[u8]>::to_vec).unwrap_or_else(|never| match never {}),
        holder: me,
        user_handle: cred.user_id().encode().map(|h| h.to_vec()).unwrap_or_else(|never| match never {}),
        static_state: cred.static_state().encode().unwrap_or_else(|never| match never {}),
        dynamic_state: cred.dynamic_state().encode().map(|d| d.to_vec()).unwrap_or_else(|never| match never {}),
        created_at: now(),
        last_used: None,
    };
    if !s.store.insert_passkey(&row).await? {
        return Ok(refused("This passkey is already registered."));
    }
    metrics::counter!("kippu_passkeys_registered_total").increment(1);
    tracing::info!(holder = %me, "passkey added");
    Ok(Json(serde_json::json!({"ok": true})).into_response())
}

/// `POST /passkeys/signin/start`: request options; the authenticator picks the account.
pub(crate) async fn signin_start(State(s): State<AppState>) -> Result<Response, AppError> {
    s.passkeys.start_sign_in(Audience::Traveler)
}

/// `POST /passkeys/signin/finish`: verifies the assertion and starts a session.
pub(crate) async fn signin_finish(
    State(s): State<AppState>,
    jar: CookieJar,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let (auth, server) = match s.passkeys.take_sign_in(Audience::Traveler, &body) {
        Ok(taken) => taken,
        Err(refusal) => return Ok(*refusal),
    };
    let raw_id: Vec<u8> = auth.raw_id().as_ref().to_vec();
    let Some(row) = s.store.passkey(&raw_id).await? else {
        return Ok(refused("This passkey is not registered with Kippu (it may have been removed)."));
    };
    let stored = Stored {
        credential_id: &row.credential_id,
        user_handle: &row.user_handle,
        static_state: &row.static_state,
        dynamic_state: &row.dynamic_state,
    };
    let dynamic = match s.passkeys.verify_sign_in(server, &auth, stored)? {
        Ok(d) => d,
        Err(refusal) => {
            metrics::counter!("kippu_signin_failed_total").increment(1);
            return Ok(refusal);
        }
    };
    s.store.passkey_used(&row.credential_id, &dynamic, now()).await?;
    if let Some((_, reason)) = s.store.key_revocation(&row.holder).await? {
        return Ok(refused(crate::i18n::tf("signin.err.closed", reason)));
    }
    tracing::info!(holder = %row.holder, "signed in with a passkey");
    let res = crate::session::start_session(&s, jar, row.holder, "/").await?;
    // The page follows `to` itself (a fetch does not navigate); the cookie rides on this answer.
    let (mut parts, _) = res.into_parts();
    parts.status = StatusCode::OK;
    parts.headers.remove(axum::http::header::LOCATION);
    parts.headers.insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json"));
    Ok(Response::from_parts(parts, axum::body::Body::from(r#"{"ok":true,"to":"/"}"#)))
}

/// How many passkeys an account has (account page).
pub(crate) async fn count(s: &AppState, me: Address) -> Result<usize, AppError> {
    Ok(s.store.passkeys_of(&me).await?.len())
}
