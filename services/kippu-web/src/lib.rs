//! Kippu's web app: traveler pages (sign-in, top-up, plans, tickets, the
//! rotating QR pass), the Stripe webhook, and the operator report. Handlers
//! stay thin: rules live in `kippu-domain`, IO in the adapters in [`AppState`].

mod accounts;
mod chart;
#[cfg(feature = "dev")]
mod dev;
mod error;
mod i18n;
mod identity;
mod pages;
mod passkeys;
mod payments;
mod portal;
mod qr;
mod reports;
mod security;
mod session;
#[cfg(test)]
mod tests_http;
mod timetable;

use std::sync::Arc;

use async_trait::async_trait;
use axum::http::header::{self, CONTENT_TYPE};
use axum::routing::{get, post};
use axum::Router;
use kippu_identity::{ChallengeBook, Keystore};

pub use accounts::LoginLimits;
#[cfg(feature = "dev")]
pub use dev::DevPlatform;
pub use error::AppError;
pub use i18n::catalogue_texts;
pub use identity::IdentityServices;
pub use passkeys::Passkeys;
pub use portal::PortalAuth;
pub use qr::{pass_png, qr_png, sign_pass};

/// A gate as shown on the fleet page.
#[derive(Debug, Clone)]
pub struct GateStatus {
    /// `operator/station/gate`.
    pub key: String,
    /// Station name.
    pub station: String,
    /// `online` or `offline`.
    pub state: String,
    /// Last verdict seen, human readable.
    pub last: String,
    /// The gate's device DID (`did:key`).
    pub did: String,
}

/// What delay-feed ingestion did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DelayOutcome {
    /// Trip updates in the feed.
    pub trips: usize,
    /// Trips at or over the threshold.
    pub delayed: usize,
    /// Vouchers issued on chain.
    pub vouchers: Vec<u64>,
    /// Trip updates dropped as older than one already used for the same trip.
    pub superseded: usize,
    /// Why the whole message was refused (duplicate, out of order, stale, malformed), if it was.
    pub rejected: Option<String>,
    /// Runs reported cancelled.
    pub cancelled: usize,
    /// Insured plans found affected (a claim each): `(policy id, "tapped" | "not_carried")`.
    pub affected: Vec<(u64, String)>,
    /// Claims the product's caps (per run, per day) or the pool cap stopped.
    pub capped: usize,
    /// Service alerts in the message.
    pub alerts: usize,
}

/// The running platform's services the web layer calls into, implemented by
/// the `kippu` binary that wires the adapters together. Only what production pages
/// need; the simulators and demo controls are `DevPlatform`'s (`dev` feature only).
#[async_trait]
pub trait Platform: Send + Sync {
    /// Waits until the indexer has booked everything mined so far.
    async fn catch_up(&self);
    /// Fleet status.
    async fn gates(&self) -> Vec<GateStatus>;
    /// An operator imported a new timetable: delays on its trips are matched from now on.
    async fn timetable_imported(&self, operator_id: u32, timetable: kippu_gtfs::Timetable);
    /// An account key was revoked: its passes must stop opening gates now.
    async fn key_revoked(&self, holder: alloy::primitives::Address);
    /// A traveler bound a contactless card to a ticket (`sig`: their EIP-712 binding):
    /// the validators learn it now rather than on the card's first tap.
    async fn card_bound(&self, card_key: [u8; 32], ticket_id: u64, sig: Vec<u8>);
    /// A card's binding was removed (lost card): its taps must stop opening gates now.
    async fn card_unbound(&self, card_key: [u8; 32]);
    /// A traveler revoked a phone's device key: its passes must stop opening gates now.
    async fn device_revoked(&self, device_key: [u8; 32]);
    /// Prometheus text exposition of the process's metrics.
    fn metrics(&self) -> String;
}

/// Shared state of the web app.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

/// What [`AppState`] holds.
pub struct Inner {
    /// Database.
    pub store: Arc<dyn kippu_app::ports::Store>,
    /// Chain adapter.
    pub chain: Arc<dyn kippu_app::ports::Chain>,
    /// Custodial keys.
    pub keystore: Keystore,
    /// Pending sign-in challenges (wallet sign-in).
    pub challenges: ChallengeBook,
    /// Pending presentation challenges (`/api/presentations/challenge`, and the concession
    /// presented at purchase): a book of their own, so a flood of one kind cannot lock
    /// travelers out of the other.
    pub presentation_challenges: ChallengeBook,
    /// The card payment provider (Stripe Checkout).
    pub checkout: Arc<dyn kippu_app::ports::Payments>,
    /// Stripe webhook signing secret.
    pub webhook_secret: String,
    /// Base URL travelers reach the app at (for Stripe's redirect URLs).
    pub public_url: String,
    /// Wired services.
    pub platform: Arc<dyn Platform>,
    /// The simulators and demo controls: their routes and page controls exist only when
    /// this is `Some` (`kippu dev`); `kippu serve` passes `None` even in a `dev` build.
    #[cfg(feature = "dev")]
    pub dev: Option<Arc<dyn DevPlatform>>,
    /// The bearer token a Prometheus scraper sends for `/metrics` (staff may sign in
    /// instead); `None`: staff only.
    pub metrics_token: Option<String>,
    /// DIDs, credentials and concessions.
    pub identity: IdentityServices,
    /// Password sign-in attempts per e-mail and client.
    pub login_limits: accounts::LoginLimits,
    /// Passkey ceremonies and the relying party.
    pub passkeys: passkeys::Passkeys,
    /// Where Stripe's hosted Checkout lives (`https://checkout.stripe.com`, or the loopback
    /// fake's origin): the one place besides this app a form may lead.
    pub checkout_origin: String,
}

impl AppState {
    /// Wraps the state.
    pub fn new(inner: Inner) -> Self {
        Self { inner: Arc::new(inner) }
    }

    /// Cookies carry `Secure` when travelers reach the app over HTTPS.
    pub(crate) fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

// Assets are compiled in so the binary runs from any directory.
const CSS: &str = include_str!("../../../web/static/kippu.css");
const PASS_JS: &str = include_str!("../../../web/static/pass.js");
const LIVE_JS: &str = include_str!("../../../web/static/live.js");
const QRCODE_JS: &str = include_str!("../../../web/static/vendor/qrcode-generator.js");
const DEVICE_JS: &str = include_str!("../../../web/static/device.js");
const SW_JS: &str = include_str!("../../../web/static/sw.js");
const PASSKEY_JS: &str = include_str!("../../../web/static/passkey.js");
const PRINT_JS: &str = include_str!("../../../web/static/print.js");

/// The app's router.
pub fn router(state: AppState) -> Router {
    let guard_state = state.clone();
    let csp = axum::http::HeaderValue::from_str(&security::csp(&state.checkout_origin))
        .expect("the CSP is a valid header value");
    let r = Router::new()
        .route("/", get(pages::home))
        .route("/signin", get(pages::signin_page))
        .route("/signin/password", post(accounts::password_signin))
        .route("/signup", get(accounts::signup_page).post(accounts::signup))
        .route("/passkeys/register/start", post(passkeys::register_start))
        .route("/passkeys/register/finish", post(passkeys::register_finish))
        .route("/passkeys/signin/start", post(passkeys::signin_start))
        .route("/passkeys/signin/finish", post(passkeys::signin_finish))
        .route("/account", get(accounts::account))
        .route("/account/devices/revoke", post(accounts::revoke_device))
        .route("/api/device", post(accounts::certify_device))
        .route("/api/device/{key}", get(accounts::device_status))
        .route("/signout", post(pages::signout))
        .route("/lang/{code}", get(i18n::switch))
        .route("/signin/wallet/challenge", get(identity::wallet_challenge))
        .route("/signin/wallet", post(identity::wallet_signin))
        .route("/topup", get(payments::topup_page).post(payments::topup))
        .route("/topup/done", get(payments::topup_done))
        .route("/webhooks/stripe", post(payments::stripe_webhook))
        .route("/plans", get(pages::plans))
        .route("/plans/{id}/buy", post(pages::buy))
        .route("/plans/{id}/receipt", get(pages::receipt))
        .route("/tickets", get(pages::tickets))
        .route("/tickets/{id}/pass", get(pages::pass_page))
        .route("/tickets/{id}/pass.png", get(pages::pass_image))
        .route("/tickets/{id}/cards", post(pages::bind_card))
        .route("/tickets/{id}/refund", post(pages::refund_ticket))
        .route("/tickets/{id}/cards/remove", post(pages::unbind_card))
        .route("/gates", get(pages::gates))
        .route("/operators/report", get(pages::report))
        .route("/operators/insurance", get(pages::insurance))
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
        .route("/operators/{slug}/vouchers/redeem", post(pages::redeem_voucher))
        .route("/operators/{slug}/scanner-token", get(portal::scanner_token))
        .route(
            "/operators/{slug}/timetable",
            // GTFS zips of real agencies run to tens of MB; everything else stays under the 1 MiB default.
            get(timetable::current)
                .post(timetable::import)
                .layer(axum::extract::DefaultBodyLimit::max(kippu_gtfs::ImportLimits::DEFAULT.max_zip_bytes)),
        )
        .route("/vouchers/{id}", get(pages::voucher_page))
        .route("/vouchers/{id}/code.png", get(pages::voucher_code))
        .route("/api/me", get(pages::api_me))
        .route("/api/events", get(pages::events))
        .route("/.well-known/did.json", get(identity::well_known_did))
        .route("/{kind}/{slug}/did.json", get(identity::path_did))
        .route("/credentials/status/{slug}", get(identity::status_list))
        .route("/credentials", get(identity::wallet))
        .route("/credentials/import", post(identity::wallet_import))
        .route("/credentials/download", get(identity::wallet_download))
        .route("/portal/signin", get(portal::signin_page).post(portal::signin))
        .route("/portal/issuers/{slug}", get(identity::issuer))
        .route("/portal/issuers/{slug}/issue", post(identity::issue))
        .route("/portal/issuers/{slug}/revoke", post(identity::revoke))
        .route("/api/presentations/challenge", get(identity::presentation_challenge))
        .route("/api/presentations", post(identity::verify_presentation_api))
        .route("/me/data", get(identity::export))
        .route("/me/erase", post(identity::erase))
        .route("/me/revoke-key", post(identity::revoke_key))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(portal::metrics));
    #[cfg(feature = "dev")]
    let r = if state.dev.is_some() { dev::routes(r) } else { r };
    r.route("/static/kippu.css", get(|| async { ([(CONTENT_TYPE, "text/css")], CSS) }))
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
        .layer(axum::extract::DefaultBodyLimit::max(1024 * 1024))
        .layer(axum::middleware::from_fn(i18n::scope))
        .layer(axum::middleware::from_fn(move |req, next| security::guard(guard_state.clone(), csp.clone(), req, next)))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    /// Every template as shipped, by file name.
    fn templates() -> Vec<(String, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/templates");
        let mut all: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "html"))
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
            .collect();
        all.sort();
        all
    }

    /// Inline event handler attributes (` onclick=`, ` onsubmit =` …) in `html`.
    fn inline_handlers(html: &str) -> Vec<String> {
        let lower = html.to_ascii_lowercase();
        lower
            .match_indices(" on")
            .filter_map(|(i, _)| {
                let rest = &lower[i + 3..];
                let name_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
                let after = rest[name_len..].trim_start();
                (name_len > 0 && after.starts_with('=')).then(|| format!("on{}", &rest[..name_len]))
            })
            .collect()
    }

    /// The CSP (`script-src 'self'`) runs no inline script, so a handler written in a template
    /// would silently do nothing: every script is a file the app serves.
    #[test]
    fn templates_have_no_inline_script() {
        assert_eq!(inline_handlers(r#"<button type="button" onclick="window.print()">"#), ["onclick"]);
        assert!(inline_handlers("<p>Pay on time = good</p><a data-on=x>").is_empty());
        let templates = templates();
        assert!(templates.len() > 10, "templates found");
        for (name, html) in &templates {
            assert_eq!(inline_handlers(html), Vec::<String>::new(), "{name}: inline event handlers");
            assert!(!html.contains("javascript:"), "{name}: javascript: URL");
            for tag in html.match_indices("<script").map(|(i, _)| &html[i..]) {
                let open = &tag[..tag.find('>').unwrap_or(tag.len())];
                assert!(open.contains(" src="), "{name}: inline <script>");
            }
        }
    }

    #[test]
    fn the_statement_prints_from_a_served_script() {
        let (_, statement) = templates().into_iter().find(|(n, _)| n == "operator_statement.html").unwrap();
        assert!(statement.contains("<script src=\"/static/print.js\"></script>"));
        assert!(statement.contains("data-print"), "the Print button is found by the script");
        assert!(super::PRINT_JS.contains("[data-print]") && super::PRINT_JS.contains("window.print()"));
    }
}
