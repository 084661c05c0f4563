//! [`FakePayments`]: a card payment provider that opens no page anywhere. It records every
//! [`CheckoutRequest`], answers `cs_test_<n>` sessions on a hosted-page URL under its origin,
//! and can be told to fail.

use std::sync::Mutex;

use async_trait::async_trait;
use kippu_app::ports::{CheckoutPage, CheckoutRequest, PaymentFailure, Payments};

/// The origin of the fake's hosted payment pages unless another is given.
pub const CHECKOUT_ORIGIN: &str = "https://checkout.kippu.test";

#[derive(Debug, Default)]
struct State {
    requests: Vec<CheckoutRequest>,
    opened: u64,
    fail_next: Option<String>,
    down: Option<String>,
}

/// Card payments in memory.
#[derive(Debug)]
pub struct FakePayments {
    origin: String,
    state: Mutex<State>,
}

impl Default for FakePayments {
    fn default() -> Self {
        Self::new(CHECKOUT_ORIGIN)
    }
}

impl FakePayments {
    /// A provider whose pages live under `origin` (`https://checkout.example`, no trailing slash).
    pub fn new(origin: &str) -> Self {
        Self { origin: origin.trim_end_matches('/').to_owned(), state: Mutex::default() }
    }

    /// Where its hosted pages live.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every request made, oldest first (failed ones too).
    pub fn requests(&self) -> Vec<CheckoutRequest> {
        self.state().requests.clone()
    }

    /// The newest request.
    pub fn last_request(&self) -> Option<CheckoutRequest> {
        self.state().requests.last().cloned()
    }

    /// The next request fails with `why`.
    pub fn fail_next(&self, why: &str) {
        self.state().fail_next = Some(why.to_owned());
    }

    /// While `Some`, every request fails (the provider is down).
    pub fn set_down(&self, why: Option<&str>) {
        self.state().down = why.map(str::to_owned);
    }
}

#[async_trait]
impl Payments for FakePayments {
    async fn open_checkout(&self, req: &CheckoutRequest) -> Result<CheckoutPage, PaymentFailure> {
        let mut st = self.state();
        st.requests.push(req.clone());
        if let Some(why) = st.fail_next.take().or_else(|| st.down.clone()) {
            return Err(PaymentFailure(why));
        }
        st.opened += 1;
        let id = format!("cs_test_{}", st.opened);
        Ok(CheckoutPage { url: format!("{}/pay/{id}", self.origin), id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::Address;

    fn request(amount_minor: i64) -> CheckoutRequest {
        CheckoutRequest {
            traveler: Address::repeat_byte(7),
            amount_minor,
            success_url: "http://app.test/topup/done?session={CHECKOUT_SESSION_ID}".into(),
            cancel_url: "http://app.test/topup".into(),
        }
    }

    #[tokio::test]
    async fn numbers_sessions_records_requests_and_fails_when_told() {
        let p = FakePayments::new("https://pay.test/");
        let a = p.open_checkout(&request(500)).await.unwrap();
        assert_eq!((a.id.as_str(), a.url.as_str()), ("cs_test_1", "https://pay.test/pay/cs_test_1"));
        p.fail_next("card network down");
        assert_eq!(p.open_checkout(&request(700)).await.unwrap_err().0, "card network down");
        let b = p.open_checkout(&request(900)).await.unwrap();
        assert_eq!(b.id, "cs_test_2", "a failed request opens no session");
        p.set_down(Some("maintenance"));
        assert!(p.open_checkout(&request(100)).await.is_err());
        p.set_down(None);
        assert_eq!(p.requests().iter().map(|r| r.amount_minor).collect::<Vec<_>>(), [500, 700, 900, 100]);
        assert_eq!(p.last_request().unwrap().traveler, Address::repeat_byte(7));
    }
}
