//! Stripe's webhook: a completed Checkout mints the traveler's FARE, once.

use crate::session::now;
use crate::AppState;
use alloy::primitives::keccak256;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
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
    let internal = |e: String| (StatusCode::INTERNAL_SERVER_ERROR, e);
    let p = s.store.payment(session_id).await.map_err(|e| internal(e.to_string()))?;
    let Some(p) = p else {
        return Err((StatusCode::NOT_FOUND, "unknown checkout session".into()));
    };
    if p.amount != amount || !traveler.eq_ignore_ascii_case(&format!("{:#x}", p.traveler)) {
        return Err((StatusCode::BAD_REQUEST, "session does not match the recorded top-up".into()));
    }
    if p.status == "minted" {
        return Ok("already minted");
    }
    s.store.mark_paid(session_id).await.map_err(|e| internal(e.to_string()))?;
    let payment_ref = keccak256(session_id.as_bytes());
    let tx = match s.chain.mint_fare(p.traveler, p.amount as u128, payment_ref).await {
        Ok(tx) => format!("{tx:#x}"),
        // minted by an earlier delivery of this webhook whose bookkeeping did not finish
        Err(kippu_app::ChainFailure::Rejected(kippu_domain::ContractRejection::PaymentAlreadyMinted { .. })) => {
            "already-minted".into()
        }
        Err(e) => return Err(internal(e.to_string())),
    };
    s.store.mark_minted(session_id, &tx).await.map_err(|e| internal(e.to_string()))?;
    s.platform.catch_up().await;
    Ok("minted")
}
