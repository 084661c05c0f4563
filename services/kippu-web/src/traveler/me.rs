//! A traveler's own data: export, erasure, revoking their account key.

use crate::session::Traveler;
use crate::session::COOKIE;
use crate::{AppError, AppState};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use axum_extra::extract::cookie::CookieJar;
use kippu_identity::did_pkh;

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
    kippu_app::accounts::erase_account(&*s.store, &*s.chain, &s.notices(), &crate::CLOCK, me).await?;
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
    kippu_app::accounts::revoke_account_key(&*s.store, &s.notices(), &crate::CLOCK, me).await?;
    Ok((jar.remove(axum_extra::extract::cookie::Cookie::from(COOKIE)), Redirect::to("/signin?revoked=1"))
        .into_response())
}
