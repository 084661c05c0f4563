//! Card top-up through Stripe Checkout and the webhook that mints FARE.
//!
//! Exactly-once minting rests on three guards, outermost first: the webhook
//! signature (only Stripe can trigger a mint), the payment row's `open → paid`
//! transition, and the FareToken's own refusal to mint one payment reference
//! twice. The last one holds even when two deliveries race, or the database
//! and chain disagree after a crash, so a retry is always safe.

use alloy::primitives::keccak256;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use kippu_domain::money::{format_fare, parse_fare};
use kippu_payments::{verify_webhook, CHECKOUT_SESSION_COMPLETED, DEFAULT_TOLERANCE_SECS};

use crate::session::{now, Traveler};
use crate::{AppError, AppState};

/// Smallest and largest top-up, in minor units.
const MIN_TOPUP: i64 = 100;
const MAX_TOPUP: i64 = 50_000;

#[derive(Template)]
#[template(path = "topup.html")]
struct TopupPage {
    error: Option<String>,
    chain_id: u64,
}

pub(crate) async fn topup_page(State(s): State<AppState>, Traveler(_): Traveler) -> Result<Html<String>, AppError> {
    Ok(Html(TopupPage { error: None, chain_id: s.chain.chain_id() }.render()?))
}

#[derive(serde::Deserialize)]
pub(crate) struct TopupForm {
    amount: String,
}

pub(crate) async fn topup(
    State(s): State<AppState>,
    Traveler(me): Traveler,
    Form(f): Form<TopupForm>,
) -> Result<Response, AppError> {
    let amount = match parse_fare(&f.amount) {
        Some(a) if (MIN_TOPUP..=MAX_TOPUP).contains(&a) => a,
        _ => {
            let error = Some(crate::i18n::tn2(
                "topup.err.amount",
                "min",
                format_fare(i128::from(MIN_TOPUP)),
                "max",
                format_fare(i128::from(MAX_TOPUP)),
            ));
            let page = TopupPage { error, chain_id: s.chain.chain_id() }.render()?;
            return Ok((StatusCode::BAD_REQUEST, Html(page)).into_response());
        }
    };
    let req = kippu_app::ports::CheckoutRequest {
        traveler: me,
        amount_minor: amount,
        success_url: format!("{}/topup/done?session_id={{CHECKOUT_SESSION_ID}}", s.public_url),
        cancel_url: format!("{}/topup", s.public_url),
    };
    let session = s.checkout.open_checkout(&req).await.map_err(|e| AppError::Internal(format!("stripe: {e}")))?;
    s.store.create_payment(&session.id, &me, amount, now()).await?;
    Ok(Redirect::to(&session.url).into_response())
}

#[derive(Template)]
#[template(path = "topup_done.html")]
struct TopupDone {
    /// `complete`, `processing` or `pending` (for scripts and tests).
    status: String,
    /// The status in the page's language.
    heading: &'static str,
    message: String,
    balance: String,
    done: bool,
    chain_id: u64,
}

pub(crate) async fn topup_done(
    State(s): State<AppState>,
    Traveler(me): Traveler,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Result<Html<String>, AppError> {
    use crate::i18n::{t, tf};
    let id = q.get("session_id").ok_or_else(|| AppError::BadRequest(t("topup.err.no_session").into()))?;
    let p = match s.store.payment(id).await? {
        Some(p) if p.traveler == me => p,
        _ => return Err(AppError::NotFound(t("topup.err.unknown").into())),
    };
    let (status, message, done) = match p.status.as_str() {
        "minted" => ("complete", tf("topup_done.minted", format_fare(i128::from(p.amount))), true),
        "paid" => ("processing", t("topup_done.paid").to_string(), false),
        _ => ("pending", t("topup_done.waiting").to_string(), false),
    };
    let balance = s.chain.fare_balance(me).await?;
    Ok(Html(
        TopupDone {
            status: status.into(),
            heading: t(&format!("topup_done.{status}")),
            message,
            balance: format_fare(balance as i128),
            done,
            chain_id: s.chain.chain_id(),
        }
        .render()?,
    ))
}

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
