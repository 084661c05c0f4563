//! FARE top-up payments for Kippu.
//!
//! Travelers buy FARE credit through a Stripe Checkout session; once Stripe reports the
//! payment through a signed `checkout.session.completed` webhook, the platform credits the
//! traveler's address. This crate covers the Stripe side of that flow:
//!
//! - [`Checkout`] creates hosted Checkout sessions through the `async-stripe` client;
//! - [`verify_webhook`] authenticates and parses webhook deliveries (and [`sign_webhook`]
//!   produces the matching header);
//! - `fake` (behind the `fake` feature, which only `kippu dev` and tests enable) is a loopback
//!   stand-in for Stripe that speaks the same wire format, for development and tests on
//!   machines that cannot reach Stripe.

mod checkout;
mod config;
mod error;
#[cfg(feature = "fake")]
pub mod fake;
mod port;
mod webhook;

pub use checkout::{Checkout, CheckoutSession, TopUpRequest};
pub use config::StripeConfig;
pub use error::{PaymentsError, Result};
pub use webhook::{
    sign_webhook, verify_webhook, CompletedCheckout, WebhookEvent, CHECKOUT_SESSION_COMPLETED, DEFAULT_TOLERANCE_SECS,
};
