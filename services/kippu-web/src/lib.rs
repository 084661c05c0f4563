//! Kippu's web app: traveler pages (sign-in, top-up, plans, tickets, the
//! rotating QR pass), the Stripe webhook, and the operator report. Handlers
//! stay thin: they parse, authorize, call one of `kippu-app`'s use cases and render
//! (each typed error as its status and message); IO is the adapters' in [`AppState`].

// The audiences, each a router of its own with its own extractor; they never import
// one another (tests/architecture.rs). What they share sits beside them as leaf modules.
mod admin;
#[cfg(feature = "dev")]
mod dev;
mod portal;
mod public;
mod scanner;
mod traveler;
mod traveler_api;

mod audit;
mod auth;
mod chart;
mod custody;
#[cfg(feature = "dev")]
mod demo;
mod error;
mod i18n;
mod identity;
mod limits;
mod passkeys;
mod qr;
mod security;
mod session;
#[cfg(test)]
mod tests_http;
mod views;

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use kippu_identity::{ChallengeBook, Keystore};

#[cfg(feature = "dev")]
pub use dev::DevPlatform;
pub use error::AppError;
pub use i18n::catalogue_texts;
pub use identity::IdentityServices;
pub use limits::LoginLimits;
pub use passkeys::Passkeys;
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

/// What delay-feed ingestion did (the insurer's result; the demo's hand-fed feed shows it).
pub use kippu_app::insurance::DelayOutcome;

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
    /// Prometheus text exposition of the process's metrics (those read from the database,
    /// such as the outbox's open writes, read now).
    async fn metrics(&self) -> String;
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
    /// The chain-write outbox, for the admin page that shows how its writes stand.
    pub chain_writes: Arc<dyn kippu_app::ports::ChainWrites>,
    /// When the outbox's sender re-sends and reports a write stuck (the admin page says which are).
    pub outbox_policy: kippu_domain::outbox::Policy,
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
    pub login_limits: LoginLimits,
    /// Passkey ceremonies and the relying party.
    pub passkeys: Passkeys,
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

/// The clock the use cases read: the system's.
pub(crate) const CLOCK: kippu_app::ports::SystemClock = kippu_app::ports::SystemClock;

/// The platform as the use cases' [`kippu_app::ports::Notifier`]: what the gates (and the
/// insurer's matcher) must learn at once goes to the [`Platform`] method of the same name.
pub(crate) struct Notices<'a>(pub(crate) &'a dyn Platform);

#[async_trait]
impl kippu_app::ports::Notifier for Notices<'_> {
    async fn key_revoked(&self, holder: alloy::primitives::Address) {
        self.0.key_revoked(holder).await;
    }

    async fn device_revoked(&self, device_key: [u8; 32]) {
        self.0.device_revoked(device_key).await;
    }

    async fn card_bound(&self, card_key: [u8; 32], ticket_id: u64, sig: Vec<u8>) {
        self.0.card_bound(card_key, ticket_id, sig).await;
    }

    async fn card_unbound(&self, card_key: [u8; 32]) {
        self.0.card_unbound(card_key).await;
    }

    async fn timetable_imported(&self, operator_id: u32, timetable: kippu_gtfs::Timetable) {
        self.0.timetable_imported(operator_id, timetable).await;
    }
}

impl AppState {
    /// The platform as the use cases' notifier.
    pub(crate) fn notices(&self) -> Notices<'_> {
        Notices(&*self.platform)
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

/// The app's router: one per audience, merged.
pub fn router(state: AppState) -> Router {
    let guard_state = state.clone();
    let csp = axum::http::HeaderValue::from_str(&security::csp(&state.checkout_origin))
        .expect("the CSP is a valid header value");
    let r = Router::new()
        .merge(public::routes())
        .merge(traveler::routes())
        .merge(traveler_api::routes())
        .merge(scanner::routes())
        .merge(portal::routes())
        .merge(admin::routes());
    #[cfg(feature = "dev")]
    let r = if state.dev.is_some() { dev::routes(r) } else { r };
    r.layer(axum::extract::DefaultBodyLimit::max(1024 * 1024))
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
        assert!(super::public::PRINT_JS.contains("[data-print]") && super::public::PRINT_JS.contains("window.print()"));
    }
}
