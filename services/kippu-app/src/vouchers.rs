//! Redeeming a delay voucher at an operator (a taxi's scanner reads the traveler's code).
//!
//! The code is the voucher id and a time window signed by the holder's key, so a screenshot
//! goes stale within minutes. It is checked against the voucher's holder, operator, expiry and
//! state, then redeemed on chain, where the insurer's pool comes to owe the operator its value
//! at the next settlement.

use alloy_primitives::B256;
use kippu_domain::voucher::{check_redemption, voucher_category, RedeemDeny, Redeemer, VoucherCode, VoucherState};

use crate::ports::{Chain, Clock, Store};
use crate::{ChainFailure, PortError};

/// A voucher redeemed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redeemed {
    /// The voucher.
    pub voucher_id: u64,
    /// The operator it was redeemed at.
    pub operator_id: u32,
    /// The redemption transaction.
    pub tx: B256,
}

/// Why a voucher was not redeemed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedeemVoucherError {
    /// No such operator.
    #[error("No operator {slug:?}.")]
    UnknownOperator {
        /// The slug asked for.
        slug: String,
    },
    /// The code or the voucher does not allow it: the driver's screen says why.
    #[error("{}", .0.message())]
    Denied(RedeemDeny),
    /// The chain failed.
    #[error(transparent)]
    Chain(#[from] ChainFailure),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
}

/// Redeems the voucher a code names at the operator `operator_slug`. The chain is the
/// authority: a redemption that raced another one loses there and reads as already redeemed.
pub async fn redeem_voucher(
    store: &dyn Store,
    chain: &dyn Chain,
    clock: &dyn Clock,
    operator_slug: &str,
    code: &str,
) -> Result<Redeemed, RedeemVoucherError> {
    let operator = store
        .operators()
        .await?
        .into_iter()
        .find(|o| o.slug == operator_slug)
        .ok_or_else(|| RedeemVoucherError::UnknownOperator { slug: operator_slug.to_owned() })?;
    let deny = |reason: RedeemDeny| {
        metrics::counter!("kippu_voucher_redemptions_refused_total").increment(1);
        RedeemVoucherError::Denied(reason)
    };
    let code = VoucherCode::decode(code).map_err(deny)?;
    let state = match store.voucher(code.voucher_id).await? {
        Some(v) => Some(VoucherState {
            holder: v.holder,
            operator_id: v.operator_id,
            category: voucher_kind(store, v.policy_id).await?.as_deref().and_then(voucher_category),
            expiry: v.expiry.max(0) as u64,
            redeemed: v.redeemed_by.is_some(),
        }),
        None => None,
    };
    let at = Redeemer { id: operator.id, kind: &operator.kind };
    check_redemption(&code, state.as_ref(), at, clock.now() as u64).map_err(deny)?;
    match chain.redeem_voucher(code.voucher_id, operator.id).await {
        Ok(tx) => {
            tracing::info!(voucher = code.voucher_id, operator = %operator_slug, %tx, "voucher redeemed");
            Ok(Redeemed { voucher_id: code.voucher_id, operator_id: operator.id, tx })
        }
        Err(ChainFailure::Rejected(kippu_domain::ContractRejection::UnknownVoucher { .. })) => {
            Err(deny(RedeemDeny::AlreadyRedeemed))
        }
        Err(e) => Err(e.into()),
    }
}

/// The kind of operator a voucher paid under `policy_id` is accepted by: the voucher kind of
/// its cover's terms (the contract stamped the same category on the voucher when it paid).
async fn voucher_kind(store: &dyn Store, policy_id: u64) -> Result<Option<String>, PortError> {
    let Some(policy) = store.ticket(policy_id).await? else { return Ok(None) };
    let terms = store.cover_terms().await?;
    Ok(terms.into_iter().find(|t| t.product_id == policy.product_id).map(|t| t.voucher_kind))
}
