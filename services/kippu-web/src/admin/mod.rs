//! The consortium's operations: the gate fleet, the overview report, the insurance pool,
//! and Prometheus metrics. Pages take [`Admin`]; `/metrics` also takes the scraper's token.

mod fleet;
mod insurance;
mod metrics;
mod overview;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use crate::AppState;

/// Staff running the consortium. Today every staff sign-in is one; organisations and roles
/// (issue 19) narrow it to the consortium's own staff.
pub(crate) struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        crate::auth::require_staff(parts, s).map(|()| Admin).map_err(|r| *r)
    }
}

/// The admin routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/gates", get(fleet::gates))
        .route("/operators/report", get(overview::report))
        .route("/operators/insurance", get(insurance::insurance))
        .route("/metrics", get(metrics::metrics))
}
