//! Staff passkeys: a signed-in member of staff adds one (from the portal's home), and signs in
//! with it on the portal's sign-in page. Their credentials live apart from travelers', so
//! neither kind of passkey opens the other kind of account.

use crate::audit::ClientAddr;
use crate::passkeys::{busy, refused, Audience, Stored};
use crate::portal::Staff;
use crate::session::now;
use crate::{AppError, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use axum_extra::extract::cookie::CookieJar;
use kippu_domain::audit::AuditAction;
use kippu_domain::model::{StaffAccount, StaffPasskeyRow};
use webauthn_rp::bin::{Decode, Encode};
use webauthn_rp::request::register::{
    CredProtect, PublicKeyCredentialUserEntity, RegistrationVerificationOptions, UserHandle64, Username,
};
use webauthn_rp::request::{ExtensionInfo, PublicKeyCredentialDescriptor};
use webauthn_rp::response::{AuthTransports, CredentialId};
use webauthn_rp::{PublicKeyCredentialCreationOptions, Registration};

/// Passkeys are a person's: a machine's token adds none.
fn person(staff: &Staff) -> Result<&StaffAccount, AppError> {
    staff.account.as_ref().ok_or_else(|| AppError::Forbidden("API tokens have no passkeys".into()))
}

/// `POST /portal/passkeys/register/start`: creation options for a passkey of the signed-in member of staff.
pub(crate) async fn register_start(staff: Staff, State(s): State<AppState>) -> Result<Response, AppError> {
    let me = person(&staff)?;
    let rp = s.passkeys.rp()?;
    let existing = s.store.staff_passkeys_of(&me.id).await?;
    let user_id = match existing.first().and_then(|p| <[u8; 64]>::try_from(p.user_handle.as_slice()).ok()) {
        Some(bytes) => UserHandle64::decode(bytes).unwrap_or_else(|never| match never {}),
        None => UserHandle64::new(),
    };
    let name = Username::try_from(me.email.as_str()).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let exclude = existing
        .into_iter()
        .filter_map(|p| CredentialId::decode(p.credential_id).ok())
        .filter_map(|id| {
            AuthTransports::decode(0).ok().map(|transports| PublicKeyCredentialDescriptor { id, transports })
        })
        .collect();
    let user = PublicKeyCredentialUserEntity { name, id: &user_id, display_name: None };
    let mut options = PublicKeyCredentialCreationOptions::passkey(rp, user, exclude);
    options.timeout = s.passkeys.timeout;
    options.extensions.cred_protect = CredProtect::UserVerificationRequired(ExtensionInfo::AllowDontEnforceValue);
    let (server, client) = options.start_ceremony().map_err(|e| AppError::Internal(format!("passkey options: {e}")))?;
    let body = serde_json::to_value(&client).map_err(|e| AppError::Internal(e.to_string()))?;
    if let Err(full) = s.passkeys.staff_registering.hold(server) {
        return Ok(busy(full));
    }
    Ok(Json(body).into_response())
}

/// `POST /portal/passkeys/register/finish`: the browser's `PublicKeyCredential.toJSON()`.
pub(crate) async fn register_finish(
    staff: Staff,
    State(s): State<AppState>,
    client: ClientAddr,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let me = person(&staff)?;
    let rp = s.passkeys.rp()?;
    let Ok(reg) = serde_json::from_slice::<Registration>(&body) else {
        return Ok(refused("That is not a passkey registration."));
    };
    let Ok(challenge) = reg.challenge() else {
        return Ok(refused("That is not a passkey registration."));
    };
    let Some(server) = s.passkeys.staff_registering.take(&challenge) else {
        return Ok(refused("This passkey request expired or was already used; try again."));
    };
    let origins = [s.passkeys.origin.as_str()];
    let opts = RegistrationVerificationOptions::<&str, &str> { allowed_origins: &origins, ..Default::default() };
    let cred = match server.verify(rp, &reg, &opts) {
        Ok(c) => c,
        Err(e) => return Ok(refused(format!("The passkey could not be verified: {e}"))),
    };
    let row = StaffPasskeyRow {
        credential_id: cred.id().encode().map(<[u8]>::to_vec).unwrap_or_else(|never| match never {}),
        account_id: me.id.clone(),
        user_handle: cred.user_id().encode().map(|h| h.to_vec()).unwrap_or_else(|never| match never {}),
        static_state: cred.static_state().encode().unwrap_or_else(|never| match never {}),
        dynamic_state: cred.dynamic_state().encode().map(|d| d.to_vec()).unwrap_or_else(|never| match never {}),
        created_at: now(),
        last_used: None,
    };
    if !s.store.insert_staff_passkey(&row).await? {
        return Ok(refused("This passkey is already registered."));
    }
    crate::audit::record(&s, &staff.actor, &me.organisation, AuditAction::PasskeyAdded, &me.email, &client).await;
    Ok(Json(serde_json::json!({"ok": true})).into_response())
}

/// `POST /portal/passkeys/signin/start`: request options; the authenticator picks the account.
pub(crate) async fn signin_start(State(s): State<AppState>) -> Result<Response, AppError> {
    s.passkeys.start_sign_in(Audience::Staff)
}

/// `POST /portal/passkeys/signin/finish`: verifies the assertion against a staff passkey and
/// opens a staff session (a disabled account's passkey opens nothing).
pub(crate) async fn signin_finish(
    State(s): State<AppState>,
    client: ClientAddr,
    jar: CookieJar,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let (auth, server) = match s.passkeys.take_sign_in(Audience::Staff, &body) {
        Ok(taken) => taken,
        Err(refusal) => return Ok(*refusal),
    };
    let raw_id: Vec<u8> = auth.raw_id().as_ref().to_vec();
    let Some(row) = s.store.staff_passkey(&raw_id).await? else {
        return Ok(refused("This passkey is not a Kippu staff passkey (it may have been removed)."));
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
            metrics::counter!("kippu_staff_signin_failed_total").increment(1);
            return Ok(refusal);
        }
    };
    let at = now();
    s.store.staff_passkey_used(&row.credential_id, &dynamic, at).await?;
    let Some(account) = s.store.staff_account(&row.account_id).await?.filter(|a| a.disabled_at.is_none()) else {
        return Ok((StatusCode::FORBIDDEN, Json(serde_json::json!({"error": "This staff account is disabled."})))
            .into_response());
    };
    let session = kippu_app::staff::open_session(&*s.store, &account, at).await?;
    let actor = kippu_app::staff::actor_name(&account);
    crate::audit::record(&s, &actor, &account.organisation, AuditAction::SignIn, "portal (passkey)", &client).await;
    let cookie = super::signin::session_cookie(session, s.secure_cookies());
    Ok((jar.add(cookie), Json(serde_json::json!({"ok": true, "to": "/portal"}))).into_response())
}
