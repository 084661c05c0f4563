//! The consortium's operations: the gate fleet, the overview report, the insurance pool,
//! and Prometheus metrics. Pages take [`Admin`]; `/metrics` also takes the scraper's token.

mod fleet;
mod insurance;
mod metrics;
mod overview;

use axum::routing::get;
use axum::Router;

use crate::AppState;

/// Staff of the consortium (or, for the insurance pool, the insurer): each handler asks
/// [`crate::auth::Caller::may`] for the consortium-wide permission it needs.
pub(crate) type Admin = crate::auth::Caller;

/// The admin routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/gates", get(fleet::gates))
        .route("/operators/report", get(overview::report))
        .route("/operators/insurance", get(insurance::insurance))
        .route("/metrics", get(metrics::metrics))
}
