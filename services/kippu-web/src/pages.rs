//! Traveler pages and the operator report.

use std::collections::HashMap;

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, Json};
use axum_extra::extract::cookie::CookieJar;
use kippu_domain::model::{Operator, Product, TicketRow};
use kippu_domain::money::format_fare;
use kippu_identity::{did_pkh, SealedKey};

use crate::portal::Staff;
use crate::session::{now, MaybeTraveler, Traveler, COOKIE};
use crate::{chart, qr, AppError, AppState};

type Page = Result<Html<String>, AppError>;

fn html<T: Template>(t: T) -> Page {
    Ok(Html(t.render()?))
}

fn fmt_time(ts: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| ts.to_string())
}

pub(crate) struct TravelerCard {
    pub(crate) address: String,
    pub(crate) name: String,
    pub(crate) did: String,
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SigninPage {
    /// Demo travelers to sign in as with one click: development only.
    travelers: Vec<TravelerCard>,
    error: Option<String>,
    email: String,
    /// Whether passkey sign-in is offered (the app is reached by a domain name).
    passkeys: bool,
    chain_id: u64,
}

pub(crate) async fn signin_page(State(s): State<AppState>) -> Page {
    signin_with(&s, None, String::new()).await
}

pub(crate) async fn signin_with(s: &AppState, error: Option<String>, email: String) -> Page {
    // Production lists no accounts: one-click sign-in exists only in a dev build with its routes on.
    #[cfg(feature = "dev")]
    let travelers = crate::dev::demo_travelers(s).await?;
    #[cfg(not(feature = "dev"))]
    let travelers = Vec::new();
    html(SigninPage { travelers, error, email, passkeys: s.passkeys.available(), chain_id: s.chain.chain_id() })
}

pub(crate) async fn signout(State(s): State<AppState>, jar: CookieJar) -> Result<Response, AppError> {
    if let Some(c) = jar.get(COOKIE) {
        s.store.delete_session(c.value()).await?;
    }
    // Forget this traveler on this device: "cache" alone leaves the service worker's Cache
    // Storage (the pass pages kept for offline use) and IndexedDB (the phone's device key).
    let clear = [(header::HeaderName::from_static("clear-site-data"), "\"cache\", \"storage\"")];
    Ok((clear, jar.remove(axum_extra::extract::cookie::Cookie::from(COOKIE)), Redirect::to("/signin")).into_response())
}

/// A revoked account key signs nothing: no sign-in, no pass.
pub(crate) async fn refuse_revoked(s: &AppState, address: Address) -> Result<(), AppError> {
    match s.store.key_revocation(&address).await? {
        Some((at, reason)) => {
            // The stored reasons Kippu writes, in the page's language; any other as stored.
            let reason = match reason.as_str() {
                "revoked by the traveler" => crate::i18n::t("key.reason.traveler").to_owned(),
                "erased at the traveler's request" => crate::i18n::t("key.reason.erased").to_owned(),
                _ => reason,
            };
            Err(AppError::Refused(crate::i18n::tn2("key.revoked", "at", fmt_time(at), "reason", reason)))
        }
        None => Ok(()),
    }
}

/// The signed-in traveler's custodial key, opened for one signature in this
/// process; refused for revoked keys and for wallet accounts (which `do_instead`).
pub(crate) async fn custodial_signer(
    s: &AppState,
    me: Address,
    do_instead: &str,
) -> Result<PrivateKeySigner, AppError> {
    let t = s.store.traveler(&me).await?.ok_or(AppError::SignInRequired)?;
    let sealed =
        t.sealed_key.as_deref().ok_or_else(|| AppError::BadRequest(format!("Wallet accounts {do_instead}.")))?;
    refuse_revoked(s, me).await?;
    open_key(s, me, sealed)
}

/// A concession's name in the page's language (`student`, `senior`, `disability`).
pub(crate) fn concession_name(kind: &str) -> String {
    match kind {
        "student" | "senior" | "disability" => crate::i18n::t(&format!("concession.{kind}")).to_owned(),
        other => other.to_owned(),
    }
}

/// How a voucher stands, in words.
fn voucher_state(v: &kippu_domain::model::VoucherRow) -> String {
    match v.redeemed_by {
        Some(_) => crate::i18n::t("voucher.redeemed").into(),
        None if v.expiry < now() => crate::i18n::t("voucher.expired").into(),
        None => crate::i18n::tf("voucher.valid_until", fmt_time(v.expiry)),
    }
}

pub(crate) fn open_key(s: &AppState, address: Address, sealed: &str) -> Result<PrivateKeySigner, AppError> {
    let sealed = SealedKey::parse(sealed).map_err(|e| AppError::Internal(e.to_string()))?;
    s.keystore.open_for(address, &sealed).map_err(|e| AppError::Internal(e.to_string()))
}

pub(crate) struct TicketView {
    id: u64,
    product: String,
    operator: String,
    validity: String,
    rides: String,
    kind: &'static str,
}

struct Catalogue {
    operators: HashMap<u32, Operator>,
    products: HashMap<u32, Product>,
}

impl Catalogue {
    async fn load(s: &AppState) -> Result<Self, AppError> {
        Ok(Self {
            operators: s.store.operators().await?.into_iter().map(|o| (o.id, o)).collect(),
            products: s.store.products().await?.into_iter().map(|p| (p.id, p)).collect(),
        })
    }

    fn operator(&self, id: u32) -> String {
        self.operators.get(&id).map(|o| o.name.clone()).unwrap_or_else(|| format!("operator {id}"))
    }

    fn product_name(&self, id: u32) -> String {
        self.products.get(&id).map(|p| p.name.clone()).unwrap_or_else(|| format!("product {id}"))
    }

    fn ticket(&self, t: &TicketRow) -> TicketView {
        let p = self.products.get(&t.product_id);
        let insurance = p.is_some_and(|p| p.insurance);
        TicketView {
            id: t.id,
            product: p.map(|p| p.name.clone()).unwrap_or_else(|| format!("product {}", t.product_id)),
            operator: self.operator(t.operator_id),
            validity: format!("{} → {}", fmt_time(t.valid_from), fmt_time(t.valid_until)),
            rides: if insurance {
                crate::i18n::t("ticket.delay_cover").into()
            } else {
                match t.rides_left() {
                    None => crate::i18n::t("ticket.unlimited").into(),
                    Some(1) => crate::i18n::t("ticket.one_ride").into(),
                    Some(n) => crate::i18n::tf("ticket.rides_left", n),
                }
            },
            kind: if insurance { "insurance" } else { "ride" },
        }
    }
}

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

pub(crate) struct VoucherView {
    id: u64,
    value: String,
    operator: String,
    state: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    name: String,
    did: String,
    balance: String,
    tickets: Vec<TicketView>,
    vouchers: Vec<VoucherView>,
    alerts: Vec<kippu_gtfs::ServiceAlert>,
    chain_id: u64,
}

pub(crate) async fn home(State(s): State<AppState>, MaybeTraveler(me): MaybeTraveler) -> Result<Response, AppError> {
    let Some(me) = me else { return Ok(Redirect::to("/signin").into_response()) };
    let t = s.store.traveler(&me).await?.ok_or(AppError::SignInRequired)?;
    let cat = Catalogue::load(&s).await?;
    let balance = s.chain.fare_balance(me).await?;
    let rows = s.store.tickets_of(&me).await?;
    // Alerts on the routes the traveler's current tickets are sold for.
    let my_routes: std::collections::HashSet<&str> = rows
        .iter()
        .filter(|t| t.valid_until > now())
        .filter_map(|t| cat.products.get(&t.product_id))
        .flat_map(|p| p.routes.iter().map(String::as_str))
        .collect();
    let alerts = active_alerts(&s, now() as u64)
        .await?
        .into_iter()
        .filter(|a| a.routes.iter().any(|r| my_routes.contains(r.as_str())))
        .collect();
    let tickets = rows.iter().map(|t| cat.ticket(t)).collect();
    let vouchers = s
        .store
        .vouchers_of(&me)
        .await?
        .into_iter()
        .map(|v| VoucherView {
            id: v.id,
            value: format_fare(i128::from(v.value)),
            operator: cat.operator(v.operator_id),
            state: voucher_state(&v),
        })
        .collect();
    Ok(html(HomePage {
        name: t.display_name,
        did: t.did,
        balance: format_fare(balance as i128),
        tickets,
        vouchers,
        alerts,
        chain_id: s.chain.chain_id(),
    })?
    .into_response())
}

/// Pushes the signed-in traveler's new vouchers as Server-Sent Events. The
/// store is polled every 2 s per open page, which is cheap next to the
/// seconds a delay report takes to be mined and indexed.
pub(crate) async fn events(
    State(s): State<AppState>,
    Traveler(me): Traveler,
) -> axum::response::sse::Sse<impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>>
{
    use axum::response::sse::{Event, KeepAlive, Sse};
    let known: std::collections::HashSet<u64> =
        s.store.vouchers_of(&me).await.unwrap_or_default().into_iter().map(|v| v.id).collect();
    // The stream outlives the request's language scope: its texts keep the page's language.
    let lang = crate::i18n::current();
    let stream =
        futures::stream::unfold((s, known, Vec::<Event>::new()), move |(s, mut known, mut queue)| async move {
            loop {
                if let Some(e) = queue.pop() {
                    return Some((Ok(e), (s, known, queue)));
                }
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                let Ok(vouchers) = s.store.vouchers_of(&me).await else { continue };
                let fresh: Vec<_> = vouchers.into_iter().filter(|v| !known.contains(&v.id)).collect();
                if fresh.is_empty() {
                    continue;
                }
                // The catalogue (operator names) is read only when there is something to send.
                let Ok(cat) = Catalogue::load(&s).await else { continue };
                for v in fresh {
                    known.insert(v.id);
                    let data = serde_json::json!({
                        "id": v.id,
                        "value": format_fare(i128::from(v.value)),
                        "operator": cat.operator(v.operator_id),
                        "state": crate::i18n::within(lang, || voucher_state(&v)),
                    });
                    queue.push(Event::default().event("voucher").data(data.to_string()));
                }
            }
        });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Machine-readable view of the signed-in traveler (used by tests and the app's scripts).
pub(crate) async fn api_me(
    State(s): State<AppState>,
    Traveler(me): Traveler,
) -> Result<Json<serde_json::Value>, AppError> {
    let balance = s.chain.fare_balance(me).await?;
    let tickets: Vec<_> = s
        .store
        .tickets_of(&me)
        .await?
        .iter()
        .map(|t| serde_json::json!({"id": t.id, "plan_id": t.plan_id, "operator_id": t.operator_id, "product_id": t.product_id, "rides_left": t.rides_left(), "valid_until": t.valid_until}))
        .collect();
    let vouchers: Vec<_> = s
        .store
        .vouchers_of(&me)
        .await?
        .iter()
        .map(|v| serde_json::json!({"id": v.id, "value": v.value, "operator_id": v.operator_id, "redeemed": v.redeemed_by.is_some()}))
        .collect();
    Ok(Json(serde_json::json!({
        "address": format!("{me:#x}"),
        "did": did_pkh(s.chain.chain_id(), me),
        "balance": balance as u64,
        "tickets": tickets,
        "vouchers": vouchers,
    })))
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

/// Buys a bundle in one gasless transaction: the traveler's custodial key signs
/// an EIP-2612 permit for exactly the quoted price, Kippu relays it.
pub(crate) async fn buy(
    State(s): State<AppState>,
    Traveler(me): Traveler,
    Path(bundle_id): Path<u32>,
) -> Result<Response, AppError> {
    let signer = custodial_signer(&s, me, "buy from their wallet").await?;
    let (list_price, _) = match s.chain.quote(bundle_id).await {
        Ok(q) => q,
        Err(kippu_app::ChainFailure::Rejected(kippu_domain::ContractRejection::UnknownBundle { .. })) => {
            return Err(AppError::NotFound(crate::i18n::t("plans.err.not_on_sale").into()))
        }
        Err(e) => return Err(e.into()),
    };
    // A held concession is presented (and verified afresh: it may have been revoked since the page was shown).
    let concession = match crate::identity::best_concession(&s, me).await? {
        Some((_, bps, vc)) => {
            let ok = crate::identity::present_and_verify(&s, &signer, &vc).await?;
            Some((ok.concession, bps))
        }
        None => None,
    };
    let price = match concession {
        Some((_, bps)) => s.chain.quote_with_concession(bundle_id, bps).await?,
        None => list_price,
    };
    let balance = s.chain.fare_balance(me).await?;
    if balance < price {
        let msg = crate::i18n::tn2(
            "plans.err.short",
            "price",
            format_fare(price as i128),
            "balance",
            format_fare(balance as i128),
        );
        return Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, plans_with(&s, me, Some(msg)).await?).into_response());
    }
    let (plan_id, tx) = match concession {
        Some((c, bps)) => {
            s.chain
                .buy_with_permit_and_concession(&signer, &s.identity.attestor, bundle_id, price, 0, c.kind(), bps)
                .await?
        }
        None => s.chain.buy_with_permit(&signer, bundle_id, price, 0).await?,
    };
    tracing::info!(plan_id, %tx, "plan bought");
    metrics::counter!("kippu_plans_bought_total").increment(1);
    s.platform.catch_up().await;
    Ok(Redirect::to(&format!("/tickets?bought={plan_id}")).into_response())
}

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
    match s.store.ticket(id).await? {
        Some(t) if t.holder == me => Ok(t),
        _ => Err(AppError::NotFound(crate::i18n::tf("ticket.not_yours", id))),
    }
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

/// A simulated gate on the pass page (dev only); an on-board one offers the runs its vehicle may be working.
pub(crate) struct GateButton {
    pub(crate) key: String,
    pub(crate) runs: Vec<(String, String)>,
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
    let gates = crate::dev::gate_buttons(s).await?;
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
    match s.chain.refundable(id).await {
        Ok((amount, deadline)) if amount > 0 && deadline > now() as u64 => Some(format_fare(amount as i128)),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(ticket = id, error = %e, "refund offer unknown");
            None
        }
    }
}

/// Refunds an unused ticket (gasless: Kippu relays; the FARE goes to the holder). A ticket
/// with any recorded entry is used and keeps its fare.
pub(crate) async fn refund_ticket(
    State(s): State<AppState>,
    Traveler(me): Traveler,
    Path(id): Path<u64>,
) -> Result<Response, AppError> {
    own_ticket(&s, me, id).await?;
    if !s.store.taps_of_ticket(id).await?.is_empty() {
        return Err(AppError::Refused(crate::i18n::t("refund.used").into()));
    }
    if refund_offer(&s, id).await.is_none() {
        return Err(AppError::Refused(crate::i18n::t("refund.not_refundable").into()));
    }
    let amount = s.chain.refund(id).await?;
    s.platform.catch_up().await;
    tracing::info!(ticket = id, amount, "ticket refunded");
    Ok(Redirect::to(&format!("/tickets?refunded={id}")).into_response())
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
    let t = own_ticket(&s, me, id).await?;
    let Some(card_key) = kippu_domain::card::parse_card_key(&f.card) else {
        let msg = crate::i18n::t("card.err.format");
        return Ok(
            (StatusCode::UNPROCESSABLE_ENTITY, pass_page_with(&s, me, id, Some(msg.into())).await?).into_response()
        );
    };
    if let Some(other) = s.store.card_binding(&card_key).await? {
        if other.holder != me {
            let msg = crate::i18n::t("card.err.taken");
            return Ok((StatusCode::CONFLICT, pass_page_with(&s, me, id, Some(msg.into())).await?).into_response());
        }
    }
    let signer = custodial_signer(&s, me, "link cards with their wallet").await?;
    let digest = kippu_domain::card::binding_digest(s.chain.chain_id(), &card_key, t.id);
    let sig = signer.sign_hash_sync(&digest).map_err(|e| AppError::Internal(e.to_string()))?.as_bytes().to_vec();
    let row = kippu_domain::model::CardBindingRow {
        card_key,
        ticket_id: t.id,
        holder: me,
        sig: sig.clone(),
        bound_at: now(),
    };
    s.store.bind_card(&row).await?;
    s.platform.card_bound(card_key, t.id, sig).await;
    tracing::info!(ticket = t.id, "card bound");
    Ok(Redirect::to(&format!("/tickets/{id}/pass#cards")).into_response())
}

/// Removes a card's binding (a lost card).
pub(crate) async fn unbind_card(
    State(s): State<AppState>,
    Traveler(me): Traveler,
    Path(id): Path<u64>,
    Form(f): Form<CardForm>,
) -> Result<Response, AppError> {
    own_ticket(&s, me, id).await?;
    let card_key = kippu_domain::card::parse_card_key(&f.card)
        .ok_or_else(|| AppError::BadRequest(crate::i18n::t("card.err.not_card").into()))?;
    if !s.store.unbind_card(&card_key, &me).await? {
        return Err(AppError::NotFound(crate::i18n::t("card.err.none").into()));
    }
    s.platform.card_unbound(card_key).await;
    Ok(Redirect::to(&format!("/tickets/{id}/pass#cards")).into_response())
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

pub(crate) struct GateView {
    key: String,
    station: String,
    state: String,
    last: String,
    did: String,
}

#[derive(Template)]
#[template(path = "gates.html")]
struct GatesPage {
    gates: Vec<GateView>,
    chain_id: u64,
}

/// The gate fleet: staff only (it shows where every gate stands and what it last decided).
pub(crate) async fn gates(_staff: Staff, State(s): State<AppState>) -> Page {
    let gates = s
        .platform
        .gates()
        .await
        .into_iter()
        .map(|g| GateView { key: g.key, station: g.station, state: g.state, last: g.last, did: g.did })
        .collect();
    html(GatesPage { gates, chain_id: s.chain.chain_id() })
}

pub(crate) struct ReportRowView {
    id: u32,
    slug: String,
    name: String,
    kind: String,
    legs: i64,
    revenue: String,
    rides: i64,
    vouchers: String,
    paid: String,
}

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage {
    rows: Vec<ReportRowView>,
    chart: String,
    escrow: String,
    /// The newest reconciliation with the contracts: `(block, differences as text)`.
    reconciled: Option<(u64, Vec<String>)>,
    chain_id: u64,
}

/// The newest reconciliation, its differences worded for people.
async fn reconciliation(s: &AppState) -> Result<Option<(u64, Vec<String>)>, AppError> {
    let Some((_, block, json)) = s.store.latest_reconciliation().await? else { return Ok(None) };
    let diffs: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap_or_default();
    let words = diffs
        .iter()
        .map(|d| {
            let fare = |k: &str| {
                let v = d[k].as_i64().or_else(|| d[k].as_str().and_then(|s| s.parse().ok())).unwrap_or(0);
                format_fare(i128::from(v))
            };
            format!(
                "{}: ledger {} FARE, chain {} FARE",
                d["what"].as_str().unwrap_or("?"),
                fare("ledger"),
                fare("chain")
            )
        })
        .collect();
    Ok(Some((block, words)))
}

/// The consortium's report across operators: staff only.
pub(crate) async fn report(_staff: Staff, State(s): State<AppState>) -> Page {
    let rows = s.store.operator_report().await?;
    let chart = chart::bars(&rows.iter().map(|r| (r.name.clone(), r.revenue)).collect::<Vec<_>>());
    let escrow = s.chain.escrow_balance().await?;
    let slugs: HashMap<u32, String> = s.store.operators().await?.into_iter().map(|o| (o.id, o.slug)).collect();
    let rows = rows
        .into_iter()
        .map(|r| ReportRowView {
            slug: slugs.get(&r.operator_id).cloned().unwrap_or_default(),
            id: r.operator_id,
            name: r.name,
            kind: r.kind,
            legs: r.legs,
            revenue: format_fare(i128::from(r.revenue)),
            rides: r.rides,
            vouchers: format_fare(i128::from(r.vouchers_redeemed)),
            paid: format_fare(i128::from(r.paid_out)),
        })
        .collect();
    let reconciled = reconciliation(&s).await?;
    html(ReportPage { rows, chart, escrow: format_fare(escrow as i128), reconciled, chain_id: s.chain.chain_id() })
}

#[derive(Template)]
#[template(path = "insurance.html")]
struct InsurancePage {
    delays_chart: String,
    vouchers_chart: String,
    routes: Vec<kippu_domain::model::RouteDelays>,
    vouchers: Vec<(String, i64, String, i64, String)>,
    terms: Vec<TermsView>,
    claims: Vec<(String, String, i64)>,
    alerts: Vec<kippu_gtfs::ServiceAlert>,
    chain_id: u64,
}

/// An insured product's terms, as people read them.
pub(crate) struct TermsView {
    product: String,
    threshold: u32,
    voucher: String,
    caps: String,
}

/// The service alerts stored from the newest feed message that are active at `now`.
async fn active_alerts(s: &AppState, now: u64) -> Result<Vec<kippu_gtfs::ServiceAlert>, AppError> {
    Ok(s.store
        .alerts()
        .await?
        .iter()
        .filter_map(|body| serde_json::from_str::<kippu_gtfs::ServiceAlert>(body).ok())
        .filter(|a| a.active_at(now))
        .collect())
}

/// Human wording of a claim's reason and outcome.
fn claim_words(reason: &str, status: &str) -> (String, String) {
    let why = match reason {
        "tapped" => "rode the late run",
        "not_carried" => "left waiting (run cancelled or stop skipped)",
        other => other,
    };
    let outcome = match status {
        "voucher" => "voucher issued",
        "capped" => "stopped by a cap",
        "voted" => "vote recorded, awaiting quorum",
        "refused" => "refused on chain",
        "pending" => "pending (will be retried)",
        other => other,
    };
    (why.into(), outcome.into())
}

/// The delay-insurance dashboard for operators and the insurer: late runs per
/// route (from the GTFS-Realtime feed) and vouchers issued and redeemed. Staff only.
pub(crate) async fn insurance(_staff: Staff, State(s): State<AppState>) -> Page {
    let routes = s.store.delays_per_route().await?;
    let cat = Catalogue::load(&s).await?;
    let delays_chart = chart::bars_with(
        &routes.iter().map(|r| (format!("route {}", r.route_id), r.runs)).collect::<Vec<_>>(),
        "Late trip runs per route",
        |n| format!("{n} late"),
    );
    let stats = s.store.voucher_stats().await?;
    let mut bars = Vec::new();
    for v in &stats {
        let name = cat.operator(v.operator_id);
        bars.push((format!("{name}: issued"), v.issued_value));
        bars.push((format!("{name}: redeemed"), v.redeemed_value));
    }
    let vouchers_chart = chart::bars_with(&bars, "Voucher value issued and redeemed", |v| {
        format!("{} FARE", format_fare(i128::from(v)))
    });
    let vouchers = stats
        .into_iter()
        .map(|v| {
            (
                cat.operator(v.operator_id),
                v.issued,
                format_fare(i128::from(v.issued_value)),
                v.redeemed,
                format_fare(i128::from(v.redeemed_value)),
            )
        })
        .collect();
    let terms = s
        .store
        .cover_terms()
        .await?
        .into_iter()
        .map(|t| TermsView {
            product: cat.product_name(t.product_id),
            threshold: t.threshold_minutes,
            voucher: format!(
                "{} FARE {} voucher, valid {} days, at {}{}",
                format_fare(i128::from(t.voucher_value)),
                t.voucher_kind,
                t.voucher_lifetime_secs / 86_400,
                cat.operator(t.voucher_operator_id),
                if t.voucher_kind.is_empty() { String::new() } else { format!(" or any {} operator", t.voucher_kind) }
            ),
            caps: format!(
                "{} per run · {} per traveler a day",
                if t.max_per_trip == 0 { "no cap".to_string() } else { t.max_per_trip.to_string() },
                if t.max_per_day == 0 { "no cap".to_string() } else { t.max_per_day.to_string() }
            ),
        })
        .collect();
    let claims = s
        .store
        .claim_counts()
        .await?
        .into_iter()
        .map(|(reason, status, n)| {
            let (why, outcome) = claim_words(&reason, &status);
            (why, outcome, n)
        })
        .collect();
    let alerts = active_alerts(&s, now() as u64).await?;
    html(InsurancePage {
        delays_chart,
        vouchers_chart,
        routes,
        vouchers,
        terms,
        claims,
        alerts,
        chain_id: s.chain.chain_id(),
    })
}

#[derive(Template)]
#[template(path = "voucher.html")]
struct VoucherPage {
    id: u64,
    value: String,
    operator: String,
    state: String,
    chain_id: u64,
}

async fn own_voucher(s: &AppState, me: Address, id: u64) -> Result<kippu_domain::model::VoucherRow, AppError> {
    match s.store.voucher(id).await? {
        Some(v) if v.holder == me => Ok(v),
        _ => Err(AppError::NotFound(crate::i18n::tf("voucher.not_yours", id))),
    }
}

/// A voucher's redemption code page.
pub(crate) async fn voucher_page(State(s): State<AppState>, Traveler(me): Traveler, Path(id): Path<u64>) -> Page {
    let v = own_voucher(&s, me, id).await?;
    let cat = Catalogue::load(&s).await?;
    html(VoucherPage {
        id,
        value: format_fare(i128::from(v.value)),
        operator: cat.operator(v.operator_id),
        state: voucher_state(&v),
        chain_id: s.chain.chain_id(),
    })
}

/// The voucher's redemption code as a QR PNG, signed now by the holder's key.
pub(crate) async fn voucher_code(
    State(s): State<AppState>,
    Traveler(me): Traveler,
    Path(id): Path<u64>,
) -> Result<Response, AppError> {
    own_voucher(&s, me, id).await?;
    let signer = custodial_signer(&s, me, "sign voucher codes in their wallet").await?;
    let window = kippu_domain::voucher::voucher_window(now() as u64);
    let digest = kippu_domain::voucher::VoucherCode::digest(id, window);
    let sig = signer.sign_hash_sync(&digest).map_err(|e| AppError::Internal(e.to_string()))?;
    let code = kippu_domain::voucher::VoucherCode { voucher_id: id, window, signature: sig.as_bytes() };
    let png = qr::qr_png(&code.encode()).map_err(AppError::Internal)?;
    Ok(([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "no-store")], png).into_response())
}

#[derive(serde::Deserialize)]
pub(crate) struct RedeemRequest {
    code: String,
}

/// A taxi operator's scanner redeems a voucher code: checked against the
/// voucher's holder, operator, expiry and state, then redeemed on chain
/// (the insurer's pool owes the operator its value in settlement).
pub(crate) async fn redeem_voucher(
    _scanner: crate::portal::Scanner,
    State(s): State<AppState>,
    Path(slug): Path<String>,
    Json(r): Json<RedeemRequest>,
) -> Result<Response, AppError> {
    use kippu_domain::voucher::{check_redemption, RedeemDeny, VoucherCode, VoucherState};
    let operator = s
        .store
        .operators()
        .await?
        .into_iter()
        .find(|o| o.slug == slug)
        .ok_or_else(|| AppError::NotFound(format!("No operator {slug:?}.")))?;
    let deny = |reason: RedeemDeny| {
        metrics::counter!("kippu_voucher_redemptions_refused_total").increment(1);
        Ok((
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({"redeemed": false, "reason": reason, "message": reason.message()})),
        )
            .into_response())
    };
    let code = match VoucherCode::decode(&r.code) {
        Ok(c) => c,
        Err(e) => return deny(e),
    };
    let state = s.store.voucher(code.voucher_id).await?.map(|v| VoucherState {
        holder: v.holder,
        operator_id: v.operator_id,
        expiry: v.expiry.max(0) as u64,
        redeemed: v.redeemed_by.is_some(),
    });
    if let Err(reason) = check_redemption(&code, state.as_ref(), operator.id, now() as u64) {
        return deny(reason);
    }
    match s.chain.redeem_voucher(code.voucher_id, operator.id).await {
        Ok(tx) => {
            s.platform.catch_up().await;
            tracing::info!(voucher = code.voucher_id, operator = %slug, %tx, "voucher redeemed");
            Ok(Json(serde_json::json!({"redeemed": true, "voucher": code.voucher_id, "tx": format!("{tx:#x}")}))
                .into_response())
        }
        // The chain is the authority: a redemption that raced another one loses there.
        Err(kippu_app::ChainFailure::Rejected(kippu_domain::ContractRejection::UnknownVoucher { .. })) => {
            deny(RedeemDeny::AlreadyRedeemed)
        }
        Err(e) => Err(e.into()),
    }
}
