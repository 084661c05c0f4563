//! What anyone may fetch, signed in or not: DID documents and credential status lists,
//! Stripe's webhook (authenticated by its signature), the language switch, the health
//! check and the static assets.

mod did;
mod stripe;

use axum::http::header::{self, CONTENT_TYPE};
use axum::routing::{get, post};
use axum::Router;

use crate::AppState;

// Assets are compiled in so the binary runs from any directory.
pub(crate) const CSS: &str = include_str!("../../../../web/static/kippu.css");
pub(crate) const PASS_JS: &str = include_str!("../../../../web/static/pass.js");
pub(crate) const LIVE_JS: &str = include_str!("../../../../web/static/live.js");
pub(crate) const QRCODE_JS: &str = include_str!("../../../../web/static/vendor/qrcode-generator.js");
pub(crate) const DEVICE_JS: &str = include_str!("../../../../web/static/device.js");
pub(crate) const SW_JS: &str = include_str!("../../../../web/static/sw.js");
pub(crate) const PASSKEY_JS: &str = include_str!("../../../../web/static/passkey.js");
pub(crate) const PRINT_JS: &str = include_str!("../../../../web/static/print.js");

/// The public routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/lang/{code}", get(crate::i18n::switch))
        .route("/webhooks/stripe", post(stripe::stripe_webhook))
        .route("/.well-known/did.json", get(did::well_known_did))
        .route("/{kind}/{slug}/did.json", get(did::path_did))
        .route("/credentials/status/{slug}", get(did::status_list))
        .route("/healthz", get(|| async { "ok" }))
        .route("/static/kippu.css", get(|| async { ([(CONTENT_TYPE, "text/css")], CSS) }))
        .route("/static/pass.js", get(|| async { ([(CONTENT_TYPE, "text/javascript")], PASS_JS) }))
        .route("/static/live.js", get(|| async { ([(CONTENT_TYPE, "text/javascript")], LIVE_JS) }))
        .route("/static/device.js", get(|| async { ([(CONTENT_TYPE, "text/javascript")], DEVICE_JS) }))
        .route("/static/passkey.js", get(|| async { ([(CONTENT_TYPE, "text/javascript")], PASSKEY_JS) }))
        .route("/static/print.js", get(|| async { ([(CONTENT_TYPE, "text/javascript")], PRINT_JS) }))
        // At the root so its scope covers the pass pages.
        .route(
            "/sw.js",
            get(|| async { ([(CONTENT_TYPE, "text/javascript"), (header::CACHE_CONTROL, "no-cache")], SW_JS) }),
        )
        .route("/static/vendor/qrcode-generator.js", get(|| async { ([(CONTENT_TYPE, "text/javascript")], QRCODE_JS) }))
}
