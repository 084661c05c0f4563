//! Buying a plan: one gasless transaction in which the traveler's custodial key signs an
//! EIP-2612 permit for exactly the quoted price and Kippu relays it.

use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Address, B256};
use kippu_identity::Keystore;

use crate::accounts::{custodial_signer, SignerError};
use crate::ports::{Chain, ConcessionFailure, Concessions, PresentedConcession, Store};
use crate::ChainFailure;

/// A traveler buying a bundle.
#[derive(Clone, Copy)]
pub struct BuyPlan<'a> {
    /// The signed-in traveler.
    pub traveler: Address,
    /// The bundle.
    pub bundle_id: u32,
    /// The purchase's business key, chosen once per traveler intent (the page's form carries
    /// it, so a form submitted twice is one purchase): the same request buys one plan.
    pub request_id: B256,
    /// The consortium's concession attestor, which vouches on chain for a concession price.
    pub attestor: &'a PrivateKeySigner,
}

/// A plan bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bought {
    /// The new plan's id.
    pub plan_id: u64,
    /// The purchase transaction.
    pub tx: B256,
    /// What was paid (FARE minor units).
    pub price: u128,
    /// The concession the price was reduced by, if one was presented.
    pub concession: Option<PresentedConcession>,
}

/// Why nothing was bought.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuyPlanError {
    /// The account key cannot sign (a wallet account, a revoked key …).
    #[error(transparent)]
    Signer(SignerError),
    /// No such bundle is on sale.
    #[error("this bundle is not on sale")]
    NotOnSale,
    /// The concession the traveler holds could not be presented or did not verify.
    #[error(transparent)]
    Concession(ConcessionFailure),
    /// The traveler holds less FARE than the price.
    #[error("the plan costs {needed} FARE minor units; the traveler holds {have}")]
    InsufficientFare {
        /// The price.
        needed: u128,
        /// The traveler's balance.
        have: u128,
    },
    /// The chain failed, or refused a call (`ChainFailure::Rejected` holds the contract's reason).
    #[error(transparent)]
    Chain(#[from] ChainFailure),
}

/// Buys a bundle: the list price is quoted (an unknown bundle is not on sale), a concession
/// the traveler holds is presented and verified afresh (it may have been revoked since a page
/// showed it) and quoted, the balance must cover the price, and the purchase is relayed with
/// the permit capped at that price, so the chain can never charge more.
pub async fn buy_plan(
    store: &dyn Store,
    chain: &dyn Chain,
    keystore: &Keystore,
    concessions: &dyn Concessions,
    req: BuyPlan<'_>,
) -> Result<Bought, BuyPlanError> {
    let signer = custodial_signer(store, keystore, req.traveler).await.map_err(BuyPlanError::Signer)?;
    // The same request again (a form submitted twice, a reload after a slow answer): its plan,
    // not a second one, nor a refusal because the first already spent the balance.
    if let Some((plan_id, tx, price)) = chain.purchase_of(req.request_id).await? {
        return Ok(Bought { plan_id, tx, price, concession: None });
    }
    let (list_price, _) = match chain.quote(req.bundle_id).await {
        Ok(q) => q,
        Err(ChainFailure::Rejected(kippu_domain::ContractRejection::UnknownBundle { .. })) => {
            return Err(BuyPlanError::NotOnSale)
        }
        Err(e) => return Err(e.into()),
    };
    let concession = concessions.present_best(&signer).await.map_err(BuyPlanError::Concession)?;
    let price = match concession {
        Some(c) => chain.quote_with_concession(req.bundle_id, c.discount_bps).await?,
        None => list_price,
    };
    let balance = chain.fare_balance(req.traveler).await?;
    if balance < price {
        return Err(BuyPlanError::InsufficientFare { needed: price, have: balance });
    }
    let (plan_id, tx) = match concession {
        Some(c) => {
            chain
                .buy_with_permit_and_concession(
                    req.request_id,
                    &signer,
                    req.attestor,
                    req.bundle_id,
                    price,
                    0,
                    c.kind,
                    c.discount_bps,
                )
                .await?
        }
        None => chain.buy_with_permit(req.request_id, &signer, req.bundle_id, price, 0).await?,
    };
    tracing::info!(plan_id, %tx, "plan bought");
    metrics::counter!("kippu_plans_bought_total").increment(1);
    Ok(Bought { plan_id, tx, price, concession })
}
