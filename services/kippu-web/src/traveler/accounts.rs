//! Password accounts: sign-up, sign-in (rate limited), the account page and its devices.

use crate::i18n::{t, tf};
use crate::limits::Peer;
use crate::session::start_session;
use crate::session::Traveler;
use crate::session::COOKIE;
use crate::{AppError, AppState};
use alloy::primitives::Address;
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use axum_extra::extract::cookie::CookieJar;
use kippu_app::accounts::{
    sign_in_throttled, sign_up, EmailProblem, PasswordSignInError, SignUp, SignUpError, SignUpProblem,
};
use kippu_app::devices::{revoke_device as revoke_device_of, RevokeDevice, RevokeDeviceError};
use std::net::SocketAddr;

// ---- sign-up -------------------------------------------------------------------
#[derive(Template)]
#[template(path = "signup.html")]
struct SignupPage {
    errors: Vec<(&'static str, String)>,
    name: String,
    email: String,
    chain_id: u64,
}

impl SignupPage {
    fn error_for(&self, field: &str) -> Option<&str> {
        self.errors.iter().find(|(f, _)| *f == field).map(|(_, m)| m.as_str())
    }
}

pub(crate) async fn signup_page(State(s): State<AppState>) -> Result<Html<String>, AppError> {
    let page = SignupPage { errors: vec![], name: String::new(), email: String::new(), chain_id: chain(&s) };
    Ok(Html(page.render()?))
}

pub(crate) fn chain(s: &AppState) -> u64 {
    s.chain.chain_id()
}

#[derive(serde::Deserialize)]
pub(crate) struct SignupForm {
    name: String,
    email: String,
    password: String,
    confirm: String,
}

pub(crate) async fn signup(
    State(s): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    jar: CookieJar,
    Form(f): Form<SignupForm>,
) -> Result<Response, AppError> {
    if !s.login_limits.allow_signup(s.login_limits.client(peer, &headers)) {
        metrics::counter!("kippu_signup_throttled_total").increment(1);
        let errors = vec![("email", t("signin.err.throttled").to_owned())];
        let page = SignupPage { errors, name: f.name, email: f.email.trim().to_owned(), chain_id: chain(&s) };
        return Ok((StatusCode::TOO_MANY_REQUESTS, Html(page.render()?)).into_response());
    }
    let name = f.name.trim().to_owned();
    let typed_email = f.email.trim().to_owned();
    let form = SignUp { name: f.name, email: f.email, password: f.password, confirm: f.confirm };
    let (errors, name, email) = match sign_up(&*s.store, &*s.chain, &s.keystore, &crate::CLOCK, form).await {
        Ok(up) => return start_session(&s, jar, up.address, "/").await,
        Err(SignUpError::Invalid(problems)) => (problems.into_iter().map(problem).collect(), name, typed_email),
        // Two sign-ups raced for one e-mail; the other won. The key made here is dropped unused.
        Err(SignUpError::EmailTaken { email }) => {
            (vec![("email", t("signup.err.taken").to_owned())], String::new(), email)
        }
        Err(SignUpError::Hashing(e) | SignUpError::Keystore(e)) => return Err(AppError::Internal(e)),
        Err(SignUpError::Store(e)) => return Err(e.into()),
    };
    let page = SignupPage { errors, name, email, chain_id: chain(&s) };
    Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(page.render()?)).into_response())
}

/// A sign-up form's problem as the page shows it: the field and what to fix.
fn problem(p: SignUpProblem) -> (&'static str, String) {
    match p {
        SignUpProblem::Name => ("name", t("signup.err.name").to_owned()),
        SignUpProblem::Email(EmailProblem::Invalid) => ("email", t("signup.err.email").to_owned()),
        SignUpProblem::Email(EmailProblem::Spaces) => ("email", t("signup.err.email_spaces").to_owned()),
        SignUpProblem::PasswordTooShort { min } => ("password", tf("signup.err.short", min)),
        SignUpProblem::PasswordTooLong { max } => ("password", tf("signup.err.long", max)),
        SignUpProblem::ConfirmMismatch => ("confirm", t("signup.err.confirm").to_owned()),
        SignUpProblem::EmailTaken => ("email", t("signup.err.taken").to_owned()),
    }
}

// ---- password sign-in ----------------------------------------------------------
#[derive(serde::Deserialize)]
pub(crate) struct PasswordForm {
    email: String,
    password: String,
}

/// Why a password sign-in failed, for the sign-in page.
pub(crate) enum PasswordOutcome {
    SignedIn(Address),
    Wrong,
    Throttled,
    Locked(i64),
    Revoked(String),
}

pub(crate) async fn check_password(
    s: &AppState,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    email: &str,
    password: &str,
) -> Result<PasswordOutcome, AppError> {
    if !s.login_limits.allow(email, s.login_limits.client(peer, headers)) {
        metrics::counter!("kippu_signin_throttled_total").increment(1);
        return Ok(PasswordOutcome::Throttled);
    }
    let client = s.login_limits.client(peer, headers).to_string();
    match sign_in_throttled(&*s.store, email, password, &client, crate::session::now()).await {
        Ok(address) => Ok(PasswordOutcome::SignedIn(address)),
        Err(PasswordSignInError::Locked { until }) => {
            metrics::counter!("kippu_signin_locked_total").increment(1);
            Ok(PasswordOutcome::Locked(until))
        }
        Err(PasswordSignInError::Wrong) => Ok(PasswordOutcome::Wrong),
        Err(PasswordSignInError::KeyRevoked { reason }) => Ok(PasswordOutcome::Revoked(reason)),
        Err(PasswordSignInError::Internal(e)) => Err(AppError::Internal(e)),
        Err(PasswordSignInError::Store(e)) => Err(e.into()),
    }
}

pub(crate) async fn password_signin(
    State(s): State<AppState>,
    Peer(peer): Peer,
    jar: CookieJar,
    headers: HeaderMap,
    Form(f): Form<PasswordForm>,
) -> Result<Response, AppError> {
    let (status, msg) = match check_password(&s, peer, &headers, &f.email, &f.password).await? {
        PasswordOutcome::SignedIn(address) => {
            tracing::info!(%address, "signed in with password");
            return start_session(&s, jar, address, "/").await;
        }
        PasswordOutcome::Wrong => (StatusCode::UNAUTHORIZED, t("signin.err.wrong").to_owned()),
        PasswordOutcome::Throttled => (StatusCode::TOO_MANY_REQUESTS, t("signin.err.throttled").to_owned()),
        PasswordOutcome::Locked(until) => {
            (StatusCode::TOO_MANY_REQUESTS, tf("signin.err.locked", crate::views::fmt_time(until)))
        }
        PasswordOutcome::Revoked(reason) => (StatusCode::FORBIDDEN, tf("signin.err.closed", reason)),
    };
    let page = crate::traveler::home::signin_with(&s, Some(msg), f.email.trim().to_owned()).await?;
    Ok((status, page).into_response())
}

pub(crate) struct DeviceView {
    pub(crate) key: String,
    pub(crate) short: String,
    pub(crate) label: String,
    pub(crate) since: String,
    pub(crate) until: String,
    pub(crate) revoked: bool,
}

pub(crate) async fn devices_of(s: &AppState, me: Address) -> Result<Vec<DeviceView>, AppError> {
    let day =
        |t: i64| chrono::DateTime::from_timestamp(t, 0).map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default();
    Ok(s.store
        .devices_of(&me)
        .await?
        .into_iter()
        .map(|d| {
            let key = alloy::hex::encode(d.device_key);
            DeviceView {
                short: format!("{}…{}", &key[..8], &key[56..]),
                key,
                label: d.label,
                since: day(d.created_at),
                until: day(d.cert_expiry),
                revoked: d.revoked_at.is_some(),
            }
        })
        .collect())
}

#[derive(serde::Deserialize)]
pub(crate) struct RevokeDeviceForm {
    device: String,
}

/// A lost phone: its key signs no more passes anywhere, from the next scan on, and every
/// other session of the account ends, so the phone cannot have a new key certified either.
pub(crate) async fn revoke_device(
    State(s): State<AppState>,
    Traveler(me): Traveler,
    jar: CookieJar,
    Form(f): Form<RevokeDeviceForm>,
) -> Result<Response, AppError> {
    let key = alloy::hex::decode(f.device.trim())
        .ok()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or_else(|| AppError::BadRequest("That is not a device key.".into()))?;
    // `Traveler` found the session, so the cookie is there.
    let keep = jar.get(COOKIE).map(|c| c.value().to_owned()).unwrap_or_default();
    let req = RevokeDevice { holder: me, device_key: key, keep_session: keep };
    match revoke_device_of(&*s.store, &s.notices(), &crate::CLOCK, req).await {
        Ok(()) => Ok(Redirect::to("/account#devices").into_response()),
        Err(e @ RevokeDeviceError::NoSuchDevice) => Err(AppError::NotFound(e.to_string())),
        Err(RevokeDeviceError::Store(e)) => Err(e.into()),
    }
}

// ---- the account page -------------------------------------------------------------
#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    name: String,
    did: String,
    address: String,
    email: Option<String>,
    devices: Vec<DeviceView>,
    passkeys: usize,
    passkeys_available: bool,
    chain_id: u64,
}

pub(crate) async fn account(State(s): State<AppState>, Traveler(me): Traveler) -> Result<Html<String>, AppError> {
    let t = s.store.traveler(&me).await?.ok_or(AppError::SignInRequired)?;
    let page = AccountPage {
        name: t.display_name,
        did: t.did,
        address: format!("{me:#x}"),
        email: s.store.email_of(&me).await?,
        devices: devices_of(&s, me).await?,
        passkeys: crate::traveler::passkeys::count(&s, me).await?,
        passkeys_available: s.passkeys.available(),
        chain_id: chain(&s),
    };
    Ok(Html(page.render()?))
}
