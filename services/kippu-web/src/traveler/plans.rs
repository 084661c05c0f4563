//! The catalogue of plans, buying one, and its receipt.

use crate::custody::signer_error;
use crate::identity::HeldConcessions;
use crate::session::Traveler;
use crate::views::concession_name;
use crate::views::fmt_time;
use crate::views::html;
use crate::views::Catalogue;
use crate::views::Page;
use crate::{AppError, AppState};
use alloy::primitives::{Address, B256};
use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use kippu_app::purchase::{buy_plan, BuyPlan, BuyPlanError};
use kippu_domain::money::format_fare;

#[derive(Template)]
#[template(path = "receipt.html")]
struct ReceiptPage {
    plan_id: u64,
    bundle: String,
    paid: String,
    valid_from: String,
    buyer: String,
    tx_hash: String,
    block: i64,
    legs: Vec<(u64, String, String, String)>,
    chain_id: u64,
}

/// `GET /plans/{id}/receipt`: what was bought, for how much, and the transaction that did it.
/// Every amount is as recorded at the sale (the purchase's price and its legs' shares), so a
/// refund or a later price change leaves the receipt as it was.
pub(crate) async fn receipt(State(s): State<AppState>, Traveler(me): Traveler, Path(id): Path<u64>) -> Page {
    let r = match s.store.plan_receipt(id).await? {
        Some(r) if r.traveler == me => r,
        _ => return Err(AppError::NotFound(format!("You bought no plan #{id}."))),
    };
    let cat = Catalogue::load(&s).await?;
    let bundle = s.store.bundles().await?.into_iter().find(|b| b.id == r.bundle_id);
    let t = s.store.traveler(&me).await?;
    html(ReceiptPage {
        plan_id: id,
        bundle: bundle.map_or_else(|| format!("bundle {}", r.bundle_id), |b| b.name),
        paid: format_fare(i128::from(r.price)),
        valid_from: fmt_time(r.valid_from),
        buyer: t.map_or_else(|| format!("{me:#x}"), |t| format!("{} ({})", t.display_name, t.did)),
        tx_hash: r.tx_hash,
        block: r.block_number,
        legs: r
            .legs
            .iter()
            .map(|&(ticket, operator, product, share)| {
                (ticket, cat.product_name(product), cat.operator(operator), format_fare(i128::from(share)))
            })
            .collect(),
        chain_id: s.chain.chain_id(),
    })
}

pub(crate) struct BundleView {
    id: u32,
    name: String,
    description: String,
    legs: Vec<String>,
    price: String,
    list: String,
    saving: String,
    concession_price: Option<String>,
    /// A fresh purchase request id for this form: submitted twice, it buys one plan.
    request: String,
}

#[derive(Template)]
#[template(path = "plans.html")]
struct PlansPage {
    bundles: Vec<BundleView>,
    concession: Option<String>,
    balance: String,
    error: Option<String>,
    chain_id: u64,
}

async fn plans_with(s: &AppState, me: Address, error: Option<String>) -> Page {
    let cat = Catalogue::load(s).await?;
    let concession = crate::identity::best_concession(s, me).await?;
    let mut bundles = Vec::new();
    for b in s.store.bundles().await? {
        let prices: Vec<u128> =
            b.product_ids.iter().map(|id| cat.products.get(id).map_or(0, |p| p.price.max(0) as u128)).collect();
        let Some(q) = kippu_domain::pricing::quote(&prices, b.discount_bps) else { continue };
        bundles.push(BundleView {
            id: b.id,
            name: b.name,
            description: b.description,
            legs: b
                .product_ids
                .iter()
                .filter_map(|id| cat.products.get(id))
                .map(|p| {
                    format!("{} · {} ({} FARE)", p.name, cat.operator(p.operator_id), format_fare(i128::from(p.price)))
                })
                .collect(),
            price: format_fare(q.price as i128),
            list: format_fare(q.list_total as i128),
            saving: format_fare(q.saving() as i128),
            request: format!("{:#x}", B256::from(rand::random::<[u8; 32]>())),
            concession_price: match &concession {
                Some((_, bps, _)) => Some(format_fare(s.chain.quote_with_concession(b.id, *bps).await? as i128)),
                None => None,
            },
        });
    }
    let balance = s.chain.fare_balance(me).await?;
    let concession = concession.map(|(c, bps, _)| {
        crate::i18n::tn2("plans.concession_kind", "kind", concession_name(c.as_str()), "pct", bps / 100)
    });
    html(PlansPage { bundles, concession, balance: format_fare(balance as i128), error, chain_id: s.chain.chain_id() })
}

pub(crate) async fn plans(State(s): State<AppState>, Traveler(me): Traveler) -> Page {
    plans_with(&s, me, None).await
}

/// The buy form's fields.
#[derive(serde::Deserialize)]
struct BuyForm {
    request: Option<String>,
}

/// The purchase request id the form carries (its page chose it), so a form submitted twice
/// buys one plan; a client that sends none (an older page, a script) gets a fresh one. A
/// malformed or zero id is refused, not replaced: it would silently turn a retry into a
/// second purchase.
fn purchase_request(body: &[u8]) -> Result<B256, AppError> {
    let form: BuyForm = serde_urlencoded::from_bytes(body)
        .map_err(|_| AppError::BadRequest(crate::i18n::t("plans.err.request").into()))?;
    match form.request.as_deref().map(str::trim) {
        None | Some("") => Ok(B256::from(rand::random::<[u8; 32]>())),
        Some(r) => match r.parse::<B256>() {
            Ok(id) if r.starts_with("0x") && r.len() == 66 && id != B256::ZERO => Ok(id),
            _ => Err(AppError::BadRequest(crate::i18n::t("plans.err.request").into())),
        },
    }
}

/// Buys a bundle in one gasless transaction: the traveler's custodial key signs
/// an EIP-2612 permit for exactly the quoted price, Kippu relays it.
pub(crate) async fn buy(
    State(s): State<AppState>,
    Traveler(me): Traveler,
    Path(bundle_id): Path<u32>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let request_id = purchase_request(&body)?;
    let req = BuyPlan { traveler: me, bundle_id, request_id, attestor: &s.identity.attestor };
    let plan_id = match buy_plan(&*s.store, &*s.chain, &s.keystore, &HeldConcessions(&s), req).await {
        Ok(bought) => bought.plan_id,
        Err(BuyPlanError::Signer(e)) => return Err(signer_error(e, "buy from their wallet")),
        Err(BuyPlanError::NotOnSale) => return Err(AppError::NotFound(crate::i18n::t("plans.err.not_on_sale").into())),
        Err(BuyPlanError::Concession(e)) => return Err(e.into()),
        Err(BuyPlanError::InsufficientFare { needed, have }) => {
            let msg = crate::i18n::tn2(
                "plans.err.short",
                "price",
                format_fare(needed as i128),
                "balance",
                format_fare(have as i128),
            );
            let page = plans_with(&s, me, Some(msg)).await?;
            return Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
        Err(BuyPlanError::Chain(e)) => return Err(e.into()),
    };
    s.platform.catch_up().await;
    Ok(Redirect::to(&format!("/tickets?bought={plan_id}")).into_response())
}
