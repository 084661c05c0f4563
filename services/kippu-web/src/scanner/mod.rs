//! The scanner API: an operator's voucher scanners redeem vouchers with their bearer token
//! ([`Scanner`]); inspectors' and gates' scanners verify a presented credential.

mod presentations;
mod vouchers;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::CookieJar;

use crate::auth::STAFF_COOKIE;
use crate::AppState;

/// The scanner API's routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/operators/{slug}/vouchers/redeem", post(vouchers::redeem_voucher))
        .route("/api/presentations/challenge", get(presentations::presentation_challenge))
        .route("/api/presentations", post(presentations::verify_presentation_api))
}

/// A voucher scanner of the operator named in the path (`/operators/{slug}/…`), by its
/// bearer token, or a signed-in staff member.
pub(crate) struct Scanner;

impl FromRequestParts<AppState> for Scanner {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        let portal = &s.identity.portal;
        let slug = parts.uri.path().strip_prefix("/operators/").and_then(|p| p.split('/').next()).unwrap_or("");
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if bearer.is_some_and(|b| portal.accepts_scanner(slug, b) || portal.accepts(b)) {
            return Ok(Scanner);
        }
        let jar = CookieJar::from_headers(&parts.headers);
        if jar.get(STAFF_COOKIE).is_some_and(|c| portal.live(c.value())) {
            return Ok(Scanner);
        }
        Err((StatusCode::UNAUTHORIZED, "voucher redemption: this operator's scanner token required").into_response())
    }
}
