//! The traveler's session cookie, and the extractors that read it.

use crate::{AppError, AppState};
use alloy::primitives::Address;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};

pub(crate) async fn start_session(
    s: &AppState,
    jar: CookieJar,
    address: Address,
    to: &str,
) -> Result<Response, AppError> {
    let token = hex::encode(rand::random::<[u8; 32]>());
    s.store.create_session(&token, &address, now() + SESSION_SECS).await?;
    Ok((jar.add(new_cookie(token, s.secure_cookies())), Redirect::to(to)).into_response())
}

pub(crate) const COOKIE: &str = "kippu_session";

pub(crate) const SESSION_SECS: i64 = 12 * 3600;

/// The signed-in traveler.
pub(crate) struct Traveler(pub(crate) Address);

/// The signed-in traveler, if any.
pub(crate) struct MaybeTraveler(pub(crate) Option<Address>);

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The session cookie; `secure` (HTTPS only) whenever the app is served over HTTPS.
pub(crate) fn new_cookie(token: String, secure: bool) -> Cookie<'static> {
    Cookie::build((COOKIE, token))
        .path("/")
        .http_only(true)
        .secure(secure)
        // Lax so the redirect back from Stripe Checkout keeps the session.
        .same_site(SameSite::Lax)
        .max_age(time_secs(SESSION_SECS))
        .build()
}

fn time_secs(s: i64) -> time::Duration {
    time::Duration::seconds(s)
}

impl FromRequestParts<AppState> for MaybeTraveler {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let jar = CookieJar::from_headers(&parts.headers);
        let Some(c) = jar.get(COOKIE) else { return Ok(Self(None)) };
        Ok(Self(state.store.session(c.value(), now()).await?))
    }
}

impl FromRequestParts<AppState> for Traveler {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        MaybeTraveler::from_request_parts(parts, state).await?.0.map(Self).ok_or(AppError::SignInRequired)
    }
}
