//! Topping up FARE by card (Stripe Checkout).

use crate::session::Traveler;
use crate::{AppError, AppState};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use kippu_app::topup::{open_top_up, OpenTopUp, OpenTopUpError, MAX_TOPUP, MIN_TOPUP};
use kippu_domain::money::{format_fare, parse_fare};

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
    let refuse = || -> Result<Response, AppError> {
        let error = Some(crate::i18n::tn2(
            "topup.err.amount",
            "min",
            format_fare(i128::from(MIN_TOPUP)),
            "max",
            format_fare(i128::from(MAX_TOPUP)),
        ));
        let page = TopupPage { error, chain_id: s.chain.chain_id() }.render()?;
        Ok((StatusCode::BAD_REQUEST, Html(page)).into_response())
    };
    let Some(amount) = parse_fare(&f.amount) else { return refuse() };
    let req = OpenTopUp {
        traveler: me,
        amount_minor: amount,
        success_url: format!("{}/topup/done?session_id={{CHECKOUT_SESSION_ID}}", s.public_url),
        cancel_url: format!("{}/topup", s.public_url),
    };
    let session = match open_top_up(&*s.checkout, &*s.store, &crate::CLOCK, req).await {
        Ok(page) => page,
        Err(OpenTopUpError::AmountOutOfRange { .. }) => return refuse(),
        Err(OpenTopUpError::Payments(e)) => return Err(AppError::Internal(format!("stripe: {e}"))),
        Err(OpenTopUpError::Store(e)) => return Err(e.into()),
    };
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
