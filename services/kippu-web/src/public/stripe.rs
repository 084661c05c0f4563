//! Stripe's webhook: a completed Checkout mints the traveler's FARE, once.

use crate::session::now;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use kippu_app::topup::{credit_payment, CompletedPayment, CreditPaymentError, Credited};
use kippu_payments::{verify_webhook, CHECKOUT_SESSION_COMPLETED, DEFAULT_TOLERANCE_SECS};

/// Stripe's webhook. 2xx tells Stripe to stop retrying, so it is returned only
/// once the FARE is minted (or was already); transient failures return 5xx.
pub(crate) async fn stripe_webhook(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let sig = headers.get("stripe-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    let event = match verify_webhook(&body, sig, &s.webhook_secret, now(), DEFAULT_TOLERANCE_SECS) {
        Ok(e) => e,
        Err(e) => {
            metrics::counter!("kippu_webhooks_total", "outcome" => "rejected").increment(1);
            tracing::warn!(error = %e, "rejected webhook");
            return (StatusCode::BAD_REQUEST, format!("invalid webhook: {e}")).into_response();
        }
    };
    let first = s.store.first_webhook_delivery(&event.id, now()).await.unwrap_or(true);
    if event.kind != CHECKOUT_SESSION_COMPLETED {
        return (StatusCode::OK, "ignored").into_response();
    }
    let Some(done) = event.completed.filter(|c| c.is_paid()) else {
        return (StatusCode::OK, "not paid").into_response();
    };
    match mint_for(&s, &done.session_id, done.amount_total, &done.traveler).await {
        Ok(msg) => {
            metrics::counter!("kippu_webhooks_total", "outcome" => msg.replace(' ', "_")).increment(1);
            tracing::info!(event = %event.id, first, session = %done.session_id, "{msg}");
            (StatusCode::OK, msg).into_response()
        }
        Err((code, msg)) => {
            tracing::warn!(event = %event.id, session = %done.session_id, "{msg}");
            (code, msg).into_response()
        }
    }
}

async fn mint_for(
    s: &AppState,
    session_id: &str,
    amount: i64,
    traveler: &str,
) -> Result<&'static str, (StatusCode, String)> {
    let paid = CompletedPayment { session_id: session_id.to_owned(), amount, traveler: traveler.to_owned() };
    match credit_payment(&*s.store, &*s.chain, &crate::CLOCK, &paid).await {
        Ok(Credited::Minted { .. }) => {
            s.platform.catch_up().await;
            Ok("minted")
        }
        Ok(Credited::AlreadyMinted) => Ok("already minted"),
        Err(e @ CreditPaymentError::UnknownSession) => Err((StatusCode::NOT_FOUND, e.to_string())),
        Err(e @ CreditPaymentError::Mismatch) => Err((StatusCode::BAD_REQUEST, e.to_string())),
        Err(e @ (CreditPaymentError::Store(_) | CreditPaymentError::Chain(_))) => {
            Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
        }
    }
}
