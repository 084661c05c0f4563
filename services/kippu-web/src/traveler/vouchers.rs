//! A traveler's delay vouchers and their codes.

use crate::custody::custodial_signer;
use crate::session::now;
use crate::session::Traveler;
use crate::views::html;
use crate::views::Page;
use crate::views::{voucher_state, Catalogue};
use crate::{qr, AppError, AppState};
use alloy::primitives::Address;
use alloy::signers::SignerSync;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use kippu_domain::money::format_fare;

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
