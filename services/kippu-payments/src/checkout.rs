//! Creating Stripe Checkout sessions for FARE top-ups.

use std::collections::HashMap;
use std::time::Duration;

use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData, ProductData,
};
use stripe_checkout::CheckoutSessionMode;
use stripe_types::Currency;

use crate::{PaymentsError, Result, StripeConfig};

/// Product name shown on Stripe's hosted page and receipts.
const PRODUCT_NAME: &str = "FARE top-up";

/// Without a bound a stalled Stripe connection would hang the caller's HTTP handler.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A traveler's request to buy FARE credit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopUpRequest {
    /// Traveler's `0x...` address; sent as `client_reference_id` and `metadata[traveler]`
    /// so the webhook can tell whom to credit.
    pub traveler: String,
    /// Amount to charge in minor units (cents).
    pub amount_minor: i64,
    /// Where Stripe sends the browser after payment. May contain Stripe's
    /// `{CHECKOUT_SESSION_ID}` placeholder.
    pub success_url: String,
    /// Where Stripe sends the browser if the traveler backs out.
    pub cancel_url: String,
}

/// The parts of a created Checkout session the platform needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSession {
    /// Stripe's session id, `cs_...`.
    pub id: String,
    /// Hosted payment page to redirect the traveler to.
    pub url: String,
}

/// Client for creating Stripe Checkout sessions.
#[derive(Debug, Clone)]
pub struct Checkout {
    client: stripe::Client,
    currency: Currency,
}

impl Checkout {
    /// Builds a client for `config.api_base` authenticated with `config.secret_key`.
    ///
    /// # Errors
    /// [`PaymentsError::Config`] if the key is empty or not a valid header value, the base
    /// URL does not parse, or the currency is not one Stripe knows.
    pub fn new(config: &StripeConfig) -> Result<Self> {
        if config.secret_key.trim().is_empty() {
            return Err(PaymentsError::Config("secret_key is empty".into()));
        }
        let currency_code = config.currency.trim().to_ascii_lowercase();
        let currency: Currency = match currency_code.parse() {
            Ok(Currency::Unknown(code)) => return Err(PaymentsError::Config(format!("unknown currency {code:?}"))),
            Ok(currency) => currency,
            Err(never) => match never {},
        };
        let api_base = normalize_api_base(&config.api_base)?;

        // rustls cannot choose a crypto provider by itself once more than one provider
        // feature is unified into the final binary (alloy and this crate may disagree), and
        // the async-stripe connector would then panic. Installing one up front avoids that;
        // the error only says a provider was already installed, which is fine.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

        let client =
            stripe::ClientBuilder::new(config.secret_key.clone()).url(api_base).timeout(REQUEST_TIMEOUT).build()?;
        Ok(Self { client, currency })
    }

    /// Creates a one-off `payment`-mode Checkout session charging `req.amount_minor`.
    ///
    /// # Errors
    /// [`PaymentsError::InvalidRequest`] for a non-positive amount or empty traveler,
    /// [`PaymentsError::StripeApi`] when Stripe rejects the request,
    /// [`PaymentsError::Transport`] when it cannot be reached, and
    /// [`PaymentsError::UnexpectedResponse`] if the session comes back without a URL.
    pub async fn create_session(&self, req: &TopUpRequest) -> Result<CheckoutSession> {
        if req.amount_minor <= 0 {
            return Err(PaymentsError::InvalidRequest(format!(
                "amount_minor must be positive, got {}",
                req.amount_minor
            )));
        }
        if req.traveler.trim().is_empty() {
            return Err(PaymentsError::InvalidRequest("traveler is empty".into()));
        }

        let mut product = ProductData::new(PRODUCT_NAME);
        product.description = Some(format!("FARE credit for {}", req.traveler));
        let mut price_data = CreateCheckoutSessionLineItemsPriceData::new(self.currency.clone());
        price_data.unit_amount = Some(req.amount_minor);
        price_data.product_data = Some(product);
        let mut line_item = CreateCheckoutSessionLineItems::new();
        line_item.price_data = Some(price_data);
        line_item.quantity = Some(1);

        let metadata = HashMap::from([("traveler".to_owned(), req.traveler.clone())]);
        let session = CreateCheckoutSession::new()
            .mode(CheckoutSessionMode::Payment)
            .line_items(vec![line_item])
            .client_reference_id(req.traveler.clone())
            .metadata(metadata)
            .success_url(req.success_url.clone())
            .cancel_url(req.cancel_url.clone())
            .send(&self.client)
            .await?;

        let id = session.id.as_str().to_owned();
        let url = session
            .url
            .ok_or_else(|| PaymentsError::UnexpectedResponse(format!("checkout session {id} has no url")))?;
        Ok(CheckoutSession { id, url })
    }
}

/// async-stripe appends `v1/...` directly to the base, so it must end in exactly one `/`.
fn normalize_api_base(raw: &str) -> Result<String> {
    let trimmed = raw.trim().trim_end_matches('/');
    if !(trimmed.starts_with("http://") || trimmed.starts_with("https://")) {
        return Err(PaymentsError::Config(format!("api_base must be an http(s) URL, got {raw:?}")));
    }
    Ok(format!("{trimmed}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(api_base: &str, currency: &str) -> StripeConfig {
        StripeConfig {
            api_base: api_base.into(),
            secret_key: "sk_test_x".into(),
            webhook_secret: "whsec_x".into(),
            currency: currency.into(),
        }
    }

    #[test]
    fn api_base_gets_exactly_one_trailing_slash() {
        assert_eq!(normalize_api_base("https://api.stripe.com").unwrap(), "https://api.stripe.com/");
        assert_eq!(normalize_api_base("http://127.0.0.1:9/stripe//").unwrap(), "http://127.0.0.1:9/stripe/");
        assert!(normalize_api_base("api.stripe.com").is_err());
    }

    #[test]
    fn rejects_unknown_currency_and_empty_key() {
        assert!(matches!(Checkout::new(&config("https://api.stripe.com", "zzz")), Err(PaymentsError::Config(_))));
        let mut no_key = config("https://api.stripe.com", "eur");
        no_key.secret_key = " ".into();
        assert!(matches!(Checkout::new(&no_key), Err(PaymentsError::Config(_))));
        assert!(Checkout::new(&config("https://api.stripe.com", "EUR")).is_ok());
    }
}
