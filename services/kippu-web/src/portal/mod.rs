//! The staff portal: an operator's reports, statements, timetable and scanner token, and an
//! issuer's credentials. Every route but the sign-in takes [`Staff`].

mod issuers;
mod reports;
mod scanners;
mod signin;
mod timetable;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use crate::AppState;

/// A signed-in member of staff (an issuer's, an operator's, the consortium's).
pub(crate) struct Staff;

impl FromRequestParts<AppState> for Staff {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        crate::auth::require_staff(parts, s).map(|()| Staff).map_err(|r| *r)
    }
}

/// The portal's routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/portal/signin", get(signin::signin_page).post(signin::signin))
        .route("/portal/issuers/{slug}", get(issuers::issuer))
        .route("/portal/issuers/{slug}/issue", post(issuers::issue))
        .route("/portal/issuers/{slug}/revoke", post(issuers::revoke))
        .route("/operators/{slug}/report", get(reports::report))
        .route("/operators/{slug}/report.csv", get(reports::report_csv))
        .route("/operators/{slug}/report.json", get(reports::report_json))
        .route("/operators/{slug}/events", get(reports::events))
        .route("/operators/{slug}/events.csv", get(reports::events_csv))
        .route("/operators/{slug}/events.json", get(reports::events_json))
        .route("/operators/{slug}/rides", get(reports::rides))
        .route("/operators/{slug}/rides.csv", get(reports::rides_csv))
        .route("/operators/{slug}/rides.json", get(reports::rides_json))
        .route("/operators/{slug}/statements/{period}", get(reports::statement))
        .route("/operators/{slug}/scanner-token", get(scanners::scanner_token))
        .route(
            "/operators/{slug}/timetable",
            // GTFS zips of real agencies run to tens of MB; everything else stays under the 1 MiB default.
            get(timetable::current)
                .post(timetable::import)
                .layer(axum::extract::DefaultBodyLimit::max(kippu_gtfs::ImportLimits::DEFAULT.max_zip_bytes)),
        )
}
