//! The traveler's pages: signing up and in, topping up, plans, tickets and their passes,
//! vouchers, the credential wallet and their own data. Signed-in pages take
//! [`crate::session::Traveler`] (the session cookie; a browser without one is sent to sign in).

mod accounts;
mod home;
mod me;
mod passkeys;
mod plans;
mod tickets;
mod topup;
mod vouchers;
mod wallet;

use axum::routing::{get, post};
use axum::Router;

/// The demo's sign-in renders the traveler's sign-in page with its error.
#[cfg(feature = "dev")]
pub(crate) use home::signin_with;

use crate::AppState;

/// The traveler pages' routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home::home))
        .route("/signin", get(home::signin_page))
        .route("/signin/password", post(accounts::password_signin))
        .route("/signup", get(accounts::signup_page).post(accounts::signup))
        .route("/passkeys/register/start", post(passkeys::register_start))
        .route("/passkeys/register/finish", post(passkeys::register_finish))
        .route("/passkeys/signin/start", post(passkeys::signin_start))
        .route("/passkeys/signin/finish", post(passkeys::signin_finish))
        .route("/account", get(accounts::account))
        .route("/account/devices/revoke", post(accounts::revoke_device))
        .route("/signout", post(home::signout))
        .route("/signin/wallet/challenge", get(wallet::wallet_challenge))
        .route("/signin/wallet", post(wallet::wallet_signin))
        .route("/topup", get(topup::topup_page).post(topup::topup))
        .route("/topup/done", get(topup::topup_done))
        .route("/plans", get(plans::plans))
        .route("/plans/{id}/buy", post(plans::buy))
        .route("/plans/{id}/receipt", get(plans::receipt))
        .route("/tickets", get(tickets::tickets))
        .route("/tickets/{id}/pass", get(tickets::pass_page))
        .route("/tickets/{id}/pass.png", get(tickets::pass_image))
        .route("/tickets/{id}/cards", post(tickets::bind_card))
        .route("/tickets/{id}/refund", post(tickets::refund_ticket))
        .route("/tickets/{id}/cards/remove", post(tickets::unbind_card))
        .route("/vouchers/{id}", get(vouchers::voucher_page))
        .route("/vouchers/{id}/code.png", get(vouchers::voucher_code))
        .route("/credentials", get(wallet::wallet))
        .route("/credentials/import", post(wallet::wallet_import))
        .route("/credentials/download", get(wallet::wallet_download))
        .route("/me/data", get(me::export))
        .route("/me/erase", post(me::erase))
        .route("/me/revoke-key", post(me::revoke_key))
}
