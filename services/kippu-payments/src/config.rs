//! Stripe connection settings.

/// Settings needed to talk to Stripe (or to the loopback fake of the `fake` feature).
#[derive(Clone)]
pub struct StripeConfig {
    /// API origin: `https://api.stripe.com` in production, the fake's
    /// `FakeStripeHandle::base_url` in dev and tests.
    pub api_base: String,
    /// Secret API key (`sk_live_...` / `sk_test_...`), sent as a Bearer token.
    pub secret_key: String,
    /// Webhook endpoint signing secret (`whsec_...`).
    pub webhook_secret: String,
    /// Lower-case ISO 4217 currency for top-ups, e.g. `eur`.
    pub currency: String,
}

impl StripeConfig {
    /// Production API origin.
    pub const LIVE_API_BASE: &'static str = "https://api.stripe.com";
}

// Hand-written so that secrets never end up in logs through `{:?}`.
impl std::fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeConfig")
            .field("api_base", &self.api_base)
            .field("secret_key", &"<redacted>")
            .field("webhook_secret", &"<redacted>")
            .field("currency", &self.currency)
            .finish()
    }
}
