//! Stripe Checkout as the application's [`kippu_app::ports::Payments`].

use async_trait::async_trait;
use kippu_app::ports::{CheckoutPage, CheckoutRequest, PaymentFailure};

use crate::{Checkout, TopUpRequest};

#[async_trait]
impl kippu_app::ports::Payments for Checkout {
    async fn open_checkout(&self, req: &CheckoutRequest) -> Result<CheckoutPage, PaymentFailure> {
        let session = self
            .create_session(&TopUpRequest {
                traveler: format!("{:#x}", req.traveler),
                amount_minor: req.amount_minor,
                success_url: req.success_url.clone(),
                cancel_url: req.cancel_url.clone(),
            })
            .await
            .map_err(|e| PaymentFailure(e.to_string()))?;
        Ok(CheckoutPage { id: session.id, url: session.url })
    }
}
