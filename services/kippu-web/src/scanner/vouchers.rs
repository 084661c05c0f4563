//! Redeeming a delay voucher at an operator's scanner.

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
    scanner: crate::scanner::Scanner,
    State(s): State<AppState>,
    client: crate::audit::ClientAddr,
    Path(slug): Path<String>,
    Json(r): Json<RedeemRequest>,
) -> Result<Response, AppError> {
    use kippu_app::vouchers::{redeem_voucher as redeem, RedeemVoucherError};
    use kippu_domain::staff::{Permission, Target};
    // Scanners read JSON: the refusal says why in it.
    if let Err(AppError::Forbidden(why)) = scanner.may(Permission::VouchersRedeem, Target::Org(&slug)) {
        let body = Json(serde_json::json!({"redeemed": false, "error": why}));
        return Ok((axum::http::StatusCode::FORBIDDEN, body).into_response());
    }
    match redeem(&*s.store, &*s.chain, &crate::CLOCK, &slug, &r.code).await {
        Ok(done) => {
            let target = format!("voucher {}", done.voucher_id);
            use kippu_domain::audit::AuditAction::VoucherRedeemed;
            crate::audit::record(&s, &scanner.actor, &slug, VoucherRedeemed, &target, &client).await;
            s.platform.catch_up().await;
            Ok(Json(serde_json::json!({"redeemed": true, "voucher": done.voucher_id, "tx": format!("{:#x}", done.tx)}))
                .into_response())
        }
        Err(RedeemVoucherError::Denied(reason)) => Ok((
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({"redeemed": false, "reason": reason, "message": reason.message()})),
        )
            .into_response()),
        Err(e @ RedeemVoucherError::UnknownOperator { .. }) => Err(AppError::NotFound(e.to_string())),
        Err(RedeemVoucherError::Chain(e)) => Err(e.into()),
        Err(RedeemVoucherError::Store(e)) => Err(e.into()),
    }
}
