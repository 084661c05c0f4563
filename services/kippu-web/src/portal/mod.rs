//! The staff portal: an operator's reports, statements and timetable, an issuer's credentials,
//! each organisation's staff, API tokens and audit log, the consortium's organisations and its
//! chain-write outbox. Every route but the sign-in and the invitation takes [`Staff`] and asks it
//! for its permission.

mod chain_writes;
mod issuers;
mod log;
mod passkeys;
mod people;
mod reports;
mod signin;
mod timetable;
mod tokens;

use axum::routing::{get, post};
use axum::Router;

use crate::AppState;

/// A signed-in member of staff or an organisation's API token; each handler asks
/// [`crate::auth::Caller::may`] for what it does to whose resource.
pub(crate) type Staff = crate::auth::Caller;

/// The portal's routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/portal", get(people::home))
        .route("/portal/signin", get(signin::signin_page).post(signin::signin))
        .route("/portal/signout", post(signin::signout))
        .route("/portal/passkeys/register/start", post(passkeys::register_start))
        .route("/portal/passkeys/register/finish", post(passkeys::register_finish))
        .route("/portal/passkeys/signin/start", post(passkeys::signin_start))
        .route("/portal/passkeys/signin/finish", post(passkeys::signin_finish))
        .route("/portal/invitations/{secret}", get(signin::invitation).post(signin::accept))
        .route("/portal/organisations", get(people::organisations).post(people::add_organisation))
        .route("/portal/orgs/{slug}/staff", get(people::staff_list).post(people::invite))
        .route("/portal/orgs/{slug}/staff/{id}/role", post(people::set_role))
        .route("/portal/orgs/{slug}/staff/{id}/reinvite", post(people::reinvite))
        .route("/portal/orgs/{slug}/staff/{id}/disable", post(people::disable))
        .route("/portal/orgs/{slug}/tokens", get(tokens::list).post(tokens::issue))
        .route("/portal/orgs/{slug}/tokens/{id}/revoke", post(tokens::revoke))
        .route("/portal/audit", get(log::all))
        .route("/portal/audit.csv", get(log::all_csv))
        .route("/portal/chain-writes", get(chain_writes::list))
        .route("/portal/orgs/{slug}/audit", get(log::org))
        .route("/portal/orgs/{slug}/audit.csv", get(log::org_csv))
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
        .route(
            "/operators/{slug}/timetable",
            // GTFS zips of real agencies run to tens of MB; everything else stays under the 1 MiB default.
            get(timetable::current)
                .post(timetable::import)
                .layer(axum::extract::DefaultBodyLimit::max(kippu_gtfs::ImportLimits::DEFAULT.max_zip_bytes)),
        )
}
