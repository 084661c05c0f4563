//! Redeeming a delay voucher at an operator's scanner.

use crate::session::now;
use crate::{AppError, AppState};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(serde::Deserialize)]
pub(crate) struct RedeemRequest {
    code: String,
}

/// A taxi operator's scanner redeems a voucher code: checked against the
/// voucher's holder, operator, expiry and state, then redeemed on chain
/// (the insurer's pool owes the operator its value in settlement).
pub(crate) async fn redeem_voucher(
    _scanner: crate::scanner::Scanner,
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
