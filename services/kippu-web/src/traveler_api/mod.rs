//! The traveler's JSON API, for the app's scripts and a phone: their live state, the event
//! stream, and certifying the phone's device key. Calls take [`crate::session::Traveler`],
//! the same session cookie the pages use.

mod device;
mod me;

use axum::routing::{get, post};
use axum::Router;

use crate::AppState;

/// The traveler API's routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/me", get(me::api_me))
        .route("/api/events", get(me::events))
        .route("/api/device", post(device::certify_device))
        .route("/api/device/{key}", get(device::device_status))
}
