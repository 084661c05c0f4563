//! A traveler's tickets: the list, the rotating pass, contactless cards, refunds.

use crate::custody::{custodial_signer, signer_error};
use crate::session::now;
use crate::session::Traveler;
use crate::views::fmt_time;
use crate::views::html;
use crate::views::Catalogue;
use crate::views::GateButton;
use crate::views::Page;
use crate::views::TicketView;
use crate::{qr, AppError, AppState};
use alloy::primitives::Address;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use kippu_app::tickets::{
    bind_card as bind_card_to, unbind_card as unbind_card_from, BindCard, CardError, RefundTicketError,
};
use kippu_domain::model::TicketRow;
use kippu_domain::money::format_fare;
use std::collections::HashMap;

#[derive(Template)]
#[template(path = "tickets.html")]
struct TicketsPage {
    tickets: Vec<TicketView>,
    notice: Option<String>,
    /// The plan just bought, for a link to its receipt.
    bought: Option<u64>,
    chain_id: u64,
}

pub(crate) async fn tickets(
    State(s): State<AppState>,
    Traveler(me): Traveler,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    let cat = Catalogue::load(&s).await?;
    let tickets = s.store.tickets_of(&me).await?.iter().map(|t| cat.ticket(t)).collect();
    // The URL only says what to look up: a banner is shown for a plan this traveler bought and
    // a refund the ledger booked to them, with the amount booked, never one the link made up.
    let number = |k: &str| q.get(k).and_then(|v| v.parse::<u64>().ok());
    let bought = match number("bought") {
        Some(p) => s.store.plan_receipt(p).await?.filter(|r| r.traveler == me).map(|r| r.plan_id),
        None => None,
    };
    let refunded = match number("refunded") {
        Some(t) => s.store.refund_of(t, &me).await?.map(|amount| (t, amount)),
        None => None,
    };
    let notice = match (bought, refunded) {
        (Some(p), _) => Some(crate::i18n::tf("tickets.bought", p)),
        (None, Some((t, amount))) => {
            Some(crate::i18n::tf("tickets.refunded", t).replacen("{}", &format_fare(i128::from(amount)), 1))
        }
        _ => None,
    };
    html(TicketsPage { tickets, notice, bought, chain_id: s.chain.chain_id() })
}

async fn own_ticket(s: &AppState, me: Address, id: u64) -> Result<TicketRow, AppError> {
    kippu_app::tickets::own_ticket(&*s.store, me, id).await?.ok_or_else(|| not_yours(id))
}

/// Someone else's ticket, or none: the two read the same.
fn not_yours(id: u64) -> AppError {
    AppError::NotFound(crate::i18n::tf("ticket.not_yours", id))
}

#[derive(Template)]
#[template(path = "pass.html")]
struct PassPage {
    id: u64,
    product: String,
    operator: String,
    rides: String,
    gates: Vec<GateButton>,
    chain_id: u64,
    /// The holder's address: the phone keeps one device key per account.
    account: String,
    /// Card numbers (hex) bound to this ticket.
    cards: Vec<String>,
    card_error: Option<String>,
    /// This ticket's entries, newest first: (time, gate).
    history: Vec<(String, String)>,
    /// What a refund would return now (formatted FARE), for an unused refundable ticket.
    refund: Option<String>,
}

pub(crate) async fn pass_page(State(s): State<AppState>, Traveler(me): Traveler, Path(id): Path<u64>) -> Page {
    pass_page_with(&s, me, id, None).await
}

async fn pass_page_with(s: &AppState, me: Address, id: u64, card_error: Option<String>) -> Page {
    let t = own_ticket(s, me, id).await?;
    let history: Vec<(String, String)> =
        s.store.taps_of_ticket(id).await?.into_iter().map(|tap| (fmt_time(tap.at), tap.gate_key)).collect();
    let cat = Catalogue::load(s).await?;
    let v = cat.ticket(&t);
    // The simulated gates' buttons exist only in a dev build with its routes on.
    #[cfg(feature = "dev")]
    let gates = crate::demo::gate_buttons(s).await?;
    #[cfg(not(feature = "dev"))]
    let gates = Vec::new();
    html(PassPage {
        id,
        product: v.product,
        operator: v.operator,
        rides: v.rides,
        gates,
        chain_id: s.chain.chain_id(),
        account: format!("{me:#x}"),
        cards: s
            .store
            .cards_of(&me)
            .await?
            .into_iter()
            .filter(|c| c.ticket_id == id)
            .map(|c| alloy::hex::encode(c.card_key))
            .collect(),
        card_error,
        refund: match history.is_empty() {
            true => refund_offer(s, id).await,
            false => None,
        },
        history,
    })
}

/// The refund an unused ticket would get now, if its product allows one.
async fn refund_offer(s: &AppState, id: u64) -> Option<String> {
    kippu_app::tickets::refund_offer(&*s.chain, &crate::CLOCK, id).await.map(|amount| format_fare(amount as i128))
}

/// Refunds an unused ticket (gasless: Kippu relays; the FARE goes to the holder). A ticket
/// with any recorded entry is used and keeps its fare.
pub(crate) async fn refund_ticket(
    State(s): State<AppState>,
    Traveler(me): Traveler,
    client: crate::audit::ClientAddr,
    Path(id): Path<u64>,
) -> Result<Response, AppError> {
    match kippu_app::tickets::refund_ticket(&*s.store, &*s.chain, &crate::CLOCK, me, id).await {
        Ok(refunded) => {
            let (actor, target) = (format!("traveler:{me:#x}"), format!("ticket {id}: {}", refunded.amount));
            use kippu_domain::audit::AuditAction::Refunded;
            crate::audit::record(&s, &actor, "kippu", Refunded, &target, &client).await;
            s.platform.catch_up().await;
            Ok(Redirect::to(&format!("/tickets?refunded={id}")).into_response())
        }
        Err(RefundTicketError::NotYours { ticket_id }) => Err(not_yours(ticket_id)),
        Err(RefundTicketError::Used) => Err(AppError::Refused(crate::i18n::t("refund.used").into())),
        Err(RefundTicketError::NotRefundable) => Err(AppError::Refused(crate::i18n::t("refund.not_refundable").into())),
        Err(RefundTicketError::Chain(e)) => Err(e.into()),
        Err(RefundTicketError::Store(e)) => Err(e.into()),
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct CardForm {
    card: String,
}

/// Binds a contactless card to the ticket: the account key signs the EIP-712 binding in the
/// keystore, the binding is stored, and the validators load it at once.
pub(crate) async fn bind_card(
    State(s): State<AppState>,
    Traveler(me): Traveler,
    Path(id): Path<u64>,
    Form(f): Form<CardForm>,
) -> Result<Response, AppError> {
    let req = BindCard { holder: me, ticket_id: id, card: f.card };
    let msg = match bind_card_to(&*s.store, &*s.chain, &s.keystore, &s.notices(), &crate::CLOCK, req).await {
        Ok(_) => return Ok(Redirect::to(&format!("/tickets/{id}/pass#cards")).into_response()),
        Err(CardError::NotACard) => (StatusCode::UNPROCESSABLE_ENTITY, crate::i18n::t("card.err.format")),
        Err(CardError::CardTaken) => (StatusCode::CONFLICT, crate::i18n::t("card.err.taken")),
        Err(e) => return Err(card_error(e, "link cards with their wallet")),
    };
    let (status, msg) = msg;
    Ok((status, pass_page_with(&s, me, id, Some(msg.into())).await?).into_response())
}

/// A card refusal with no page of its own.
fn card_error(e: CardError, do_instead: &str) -> AppError {
    match e {
        CardError::NotYours { ticket_id } => not_yours(ticket_id),
        CardError::NotACard => AppError::BadRequest(crate::i18n::t("card.err.not_card").into()),
        CardError::CardTaken => AppError::Refused(crate::i18n::t("card.err.taken").into()),
        CardError::NotBound => AppError::NotFound(crate::i18n::t("card.err.none").into()),
        CardError::Signer(e) => signer_error(e, do_instead),
        CardError::Signing(e) => AppError::Internal(e),
        CardError::Store(e) => e.into(),
    }
}

/// Removes a card's binding (a lost card).
pub(crate) async fn unbind_card(
    State(s): State<AppState>,
    Traveler(me): Traveler,
    Path(id): Path<u64>,
    Form(f): Form<CardForm>,
) -> Result<Response, AppError> {
    match unbind_card_from(&*s.store, &s.notices(), me, id, &f.card).await {
        Ok(_) => Ok(Redirect::to(&format!("/tickets/{id}/pass#cards")).into_response()),
        Err(e) => Err(card_error(e, "link cards with their wallet")),
    }
}

/// A freshly signed pass as PNG. Signed in-process by the custodial key; the
/// next issue moves this onto the phone (device key certified by the account).
pub(crate) async fn pass_image(
    State(s): State<AppState>,
    Traveler(me): Traveler,
    Path(id): Path<u64>,
) -> Result<Response, AppError> {
    let t = own_ticket(&s, me, id).await?;
    let signer = custodial_signer(&s, me, "sign passes in their wallet").await?;
    let png = qr::pass_png(&signer, t.id, now() as u64).map_err(AppError::Internal)?;
    Ok(([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "no-store")], png).into_response())
}
