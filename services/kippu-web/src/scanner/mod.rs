//! The scanner API: an operator's voucher scanners redeem vouchers with their bearer token
//! ([`Scanner`]); inspectors' and gates' scanners verify a presented credential.

mod presentations;
mod vouchers;

use axum::routing::{get, post};
use axum::Router;

use crate::AppState;

/// The scanner API's routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/operators/{slug}/vouchers/redeem", post(vouchers::redeem_voucher))
        .route("/api/presentations/challenge", get(presentations::presentation_challenge))
        .route("/api/presentations", post(presentations::verify_presentation_api))
}

/// A voucher scanner: an operator's API token with `vouchers:redeem` (or signed-in staff of
/// that operator); the handler checks it is this operator's.
pub(crate) type Scanner = crate::auth::Caller;
