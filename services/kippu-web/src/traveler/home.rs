//! The home page, sign-in page and sign-out.

use crate::session::now;
use crate::session::MaybeTraveler;
use crate::session::COOKIE;
use crate::views::html;
use crate::views::Page;
use crate::views::TicketView;
use crate::views::TravelerCard;
use crate::views::VoucherView;
use crate::views::{active_alerts, voucher_state, Catalogue};
use crate::{AppError, AppState};
use askama::Template;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use kippu_domain::money::format_fare;

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
    let travelers = crate::demo::demo_travelers(s).await?;
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
