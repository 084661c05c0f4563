//! Card top-ups: a payment page opened for a traveler, and the completed payment credited as
//! FARE.
//!
//! Exactly-once minting rests on three guards, outermost first: the webhook signature (only
//! the payment provider can trigger a credit; the web layer checks it), the payment row's
//! `open → paid` transition, and the FareToken's own refusal to mint one payment reference
//! twice. The last one holds even when two deliveries race, or the database and chain disagree
//! after a crash, so a retry is always safe.

use alloy_primitives::{keccak256, Address, B256};

use crate::ports::{Chain, CheckoutPage, CheckoutRequest, Clock, PaymentFailure, Payments, Store};
use crate::{ChainFailure, PortError};

/// Smallest top-up, in minor units.
pub const MIN_TOPUP: i64 = 100;
/// Largest top-up, in minor units.
pub const MAX_TOPUP: i64 = 50_000;

/// A traveler asking to top up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenTopUp {
    /// Whom to credit.
    pub traveler: Address,
    /// How much, in minor units.
    pub amount_minor: i64,
    /// Where the provider sends the browser after payment (may hold `{CHECKOUT_SESSION_ID}`).
    pub success_url: String,
    /// Where the provider sends the browser if the traveler backs out.
    pub cancel_url: String,
}

/// Why no payment page was opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenTopUpError {
    /// The amount is outside `[min, max]`.
    #[error("a top-up is between {min} and {max} minor units")]
    AmountOutOfRange {
        /// [`MIN_TOPUP`].
        min: i64,
        /// [`MAX_TOPUP`].
        max: i64,
    },
    /// The payment provider refused or failed.
    #[error(transparent)]
    Payments(#[from] PaymentFailure),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
}

/// Opens a payment page for a top-up and records the payment as open, keyed by the
/// provider's session id (the reference the completed payment comes back with).
pub async fn open_top_up(
    payments: &dyn Payments,
    store: &dyn Store,
    clock: &dyn Clock,
    req: OpenTopUp,
) -> Result<CheckoutPage, OpenTopUpError> {
    if !(MIN_TOPUP..=MAX_TOPUP).contains(&req.amount_minor) {
        return Err(OpenTopUpError::AmountOutOfRange { min: MIN_TOPUP, max: MAX_TOPUP });
    }
    let checkout = CheckoutRequest {
        traveler: req.traveler,
        amount_minor: req.amount_minor,
        success_url: req.success_url,
        cancel_url: req.cancel_url,
    };
    let page = payments.open_checkout(&checkout).await?;
    store.create_payment(&page.id, &req.traveler, req.amount_minor, clock.now()).await?;
    Ok(page)
}

/// A payment the provider reports completed and paid (from its signed webhook).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPayment {
    /// The provider's session id.
    pub session_id: String,
    /// The amount charged, minor units.
    pub amount: i64,
    /// The traveler the session was opened for, as the provider echoes it (`0x…` address).
    pub traveler: String,
}

/// What crediting a payment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credited {
    /// The FARE is minted now. `tx` is `None` when the chain had minted it already (an earlier
    /// delivery whose bookkeeping did not finish): only the bookkeeping was done now.
    Minted {
        /// The mint transaction.
        tx: Option<B256>,
    },
    /// The payment was credited before: nothing done.
    AlreadyMinted,
}

/// Why a payment was not credited. A provider retries on anything but success, so the
/// transient ones (store, chain) must not be answered as done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditPaymentError {
    /// No top-up was opened with this session.
    #[error("unknown checkout session")]
    UnknownSession,
    /// The amount or traveler differs from the top-up recorded.
    #[error("session does not match the recorded top-up")]
    Mismatch,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
    /// The chain failed or refused the mint.
    #[error(transparent)]
    Chain(#[from] ChainFailure),
}

/// The on-chain payment reference of a provider session: the FareToken mints once per reference.
pub fn payment_ref(session_id: &str) -> B256 {
    keccak256(session_id.as_bytes())
}

/// Credits a completed payment: checks it against the top-up recorded, marks it paid, mints
/// its FARE once per payment reference (a mint the chain already made counts as done) and
/// marks it minted. With the chain's outbox, the mint is recorded in the same database
/// transaction as the payment marked paid, so a crash anywhere after it leaves a mint the
/// sender will make, and a crash before it leaves nothing half-done (the provider retries).
pub async fn credit_payment(
    store: &dyn Store,
    chain: &dyn Chain,
    clock: &dyn Clock,
    paid: &CompletedPayment,
) -> Result<Credited, CreditPaymentError> {
    let Some(p) = store.payment(&paid.session_id).await? else {
        return Err(CreditPaymentError::UnknownSession);
    };
    if p.amount != paid.amount || !paid.traveler.eq_ignore_ascii_case(&format!("{:#x}", p.traveler)) {
        return Err(CreditPaymentError::Mismatch);
    }
    if p.status == "minted" {
        return Ok(Credited::AlreadyMinted);
    }
    let reference = payment_ref(&paid.session_id);
    let minted = match chain.prepare_mint(p.traveler, p.amount as u128, reference)? {
        Some(mint) => {
            store.mark_paid_recording(&paid.session_id, &mint, clock.now()).await?;
            chain.await_mint(&mint.key).await
        }
        None => {
            store.mark_paid(&paid.session_id).await?;
            chain.mint_fare(p.traveler, p.amount as u128, reference).await
        }
    };
    let (tx, recorded) = match minted {
        Ok(tx) => (Some(tx), format!("{tx:#x}")),
        // minted by an earlier delivery of this payment whose bookkeeping did not finish
        Err(ChainFailure::Rejected(kippu_domain::ContractRejection::PaymentAlreadyMinted { .. })) => {
            (None, "already-minted".to_owned())
        }
        Err(e) => return Err(e.into()),
    };
    store.mark_minted(&paid.session_id, &recorded).await?;
    Ok(Credited::Minted { tx })
}
