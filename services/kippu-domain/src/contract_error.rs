//! Why a Kippu contract refused a call, as a value: the custom errors of FareToken,
//! Ticket, PlanMarket, DelayInsurance and Clearing, and the OpenZeppelin errors they
//! raise, decoded from revert data by the chain adapter (`kippu-chain`). Callers match
//! on a variant instead of searching an error's text, so renaming or adding a Solidity
//! error breaks the build where it is decoded rather than silently changing behaviour.
//!
//! A variant is named after its error, not after the contract that raised it: revert data
//! carries only the error's selector and arguments, a nested call's revert reaches the
//! caller unchanged (a purchase on PlanMarket fails with FareToken's
//! `ERC20InsufficientBalance`), and errors of the same signature in two contracts
//! (`ZeroAddress`, `InvalidWindow`, …) cannot be told apart.
//!
//! Ids Kippu passes as `uint256` (tickets, policies, vouchers) are `u64` here, as in the
//! rest of Kippu: every such id in an error is one Kippu sent. Amounts stay [`U256`], as
//! the contract reported them. `Display` starts with the Solidity error's name, so logs
//! read as before.

use alloy_primitives::{Address, B256, U256};

/// A contract's refusal of a call (a decoded custom error).
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ContractRejection {
    // ---- access control and pausing (OpenZeppelin)
    /// `AccessControlUnauthorizedAccount`: the sender lacks the role the function needs.
    #[error("AccessControlUnauthorizedAccount: {account} lacks role {role}")]
    Unauthorized {
        /// The sender.
        account: Address,
        /// The role it needs (keccak256 of its name, zero for the admin role).
        role: B256,
    },
    /// `EnforcedPause`: PlanMarket is paused (no purchases or refunds).
    #[error("EnforcedPause: the market is paused")]
    Paused,
    /// `ExpectedPause`: unpausing a market that is not paused.
    #[error("ExpectedPause: the market is not paused")]
    NotPaused,

    // ---- FARE (FareToken, OpenZeppelin ERC-20 and ERC-2612)
    /// `ERC20InsufficientBalance`: the payer holds less FARE than the transfer.
    #[error("ERC20InsufficientBalance: {account} holds {balance}, needs {needed}")]
    InsufficientBalance {
        /// The payer.
        account: Address,
        /// Its balance.
        balance: U256,
        /// The amount transferred.
        needed: U256,
    },
    /// `ERC20InsufficientAllowance`: the spender (PlanMarket) may take less than the price;
    /// the traveler's permit was missing, expired or for less.
    #[error("ERC20InsufficientAllowance: {spender} may spend {allowance}, needs {needed}")]
    InsufficientAllowance {
        /// The spender.
        spender: Address,
        /// What it may spend.
        allowance: U256,
        /// The amount transferred.
        needed: U256,
    },
    /// `ERC2612ExpiredSignature`: a permit past its deadline.
    #[error("ERC2612ExpiredSignature: the permit expired at {deadline}")]
    PermitExpired {
        /// The permit's deadline (unix seconds).
        deadline: U256,
    },
    /// `ERC2612InvalidSigner`: a permit not signed by the owner it names.
    #[error("ERC2612InvalidSigner: signed by {signer}, not by {owner}")]
    PermitInvalidSigner {
        /// Who signed.
        signer: Address,
        /// The owner the permit names.
        owner: Address,
    },
    /// `PaymentAlreadyMinted`: FARE for this card payment was minted before.
    #[error("PaymentAlreadyMinted: payment {payment_ref} was minted already")]
    PaymentAlreadyMinted {
        /// The payment reference.
        payment_ref: B256,
    },
    /// `ZeroAmount`: a mint of no FARE, or a claim adjustment of nothing.
    #[error("ZeroAmount: the amount is zero")]
    ZeroAmount,

    // ---- tickets (Ticket, OpenZeppelin ERC-721)
    /// `ERC721NonexistentToken`: no such ticket or voucher (never minted, or burnt).
    #[error("ERC721NonexistentToken: no token {token}")]
    NonexistentToken {
        /// The ticket or voucher id.
        token: u64,
    },
    /// `UnknownTicket`: no such ticket, or it was burnt (refunded).
    #[error("UnknownTicket: no ticket {ticket}")]
    UnknownTicket {
        /// The ticket.
        ticket: u64,
    },
    /// `NonTransferable`: the ticket may not change hands (its product, or a concession).
    #[error("NonTransferable: ticket {ticket} cannot be transferred")]
    NonTransferable {
        /// The ticket.
        ticket: u64,
    },
    /// `InvalidWindow`: a validity window that ends before it starts or overflows.
    #[error("InvalidWindow: the validity window is invalid")]
    InvalidWindow,
    /// `InvalidTicket`: ticket data the Ticket contract does not accept.
    #[error("InvalidTicket: the ticket data is invalid")]
    InvalidTicket,
    /// `InvalidBatch`: a mint or ride batch that is empty, too large or has a zero key.
    #[error("InvalidBatch: the batch is empty, too large or unkeyed")]
    InvalidBatch,
    /// `RidesAlreadyRecorded`: this ride batch was recorded before (nothing changed).
    #[error("RidesAlreadyRecorded: batch {batch_key} was recorded already")]
    RidesAlreadyRecorded {
        /// The batch key (Kippu uses the tap batch's Merkle root).
        batch_key: B256,
    },

    // ---- catalogue and purchases (PlanMarket)
    /// `ZeroAddress`: an address argument is zero.
    #[error("ZeroAddress: an address is zero")]
    ZeroAddress,
    /// `InvalidDuration`: a product with no or an overlong validity.
    #[error("InvalidDuration: the product's duration is invalid")]
    InvalidDuration,
    /// `InvalidProduct`: a product configuration the market does not accept.
    #[error("InvalidProduct: the product configuration is invalid")]
    InvalidProduct,
    /// `EmptyBundle`: a bundle of no products.
    #[error("EmptyBundle: the bundle has no products")]
    EmptyBundle,
    /// `UnknownProduct`: a bundle names a product that is not listed.
    #[error("UnknownProduct: product {product} is not listed")]
    UnknownProduct {
        /// The product.
        product: u32,
    },
    /// `DiscountTooHigh`: a bundle discount (or maximum concession) above the contract's limit.
    #[error("DiscountTooHigh: {discount_bps} bps is above the limit")]
    DiscountTooHigh {
        /// The discount, in basis points.
        discount_bps: u16,
    },
    /// `UnknownBundle`: no such bundle is on sale.
    #[error("UnknownBundle: bundle {bundle} is not on sale")]
    UnknownBundle {
        /// The bundle.
        bundle: u32,
    },
    /// `PriceAboveMax`: the price is above what the traveler agreed to pay (it changed).
    #[error("PriceAboveMax: the price {price} is above the agreed {max_price}")]
    PriceAboveMax {
        /// The price now.
        price: U256,
        /// The most the traveler agreed to.
        max_price: U256,
    },
    /// `ValidityOverflow`: a ticket's validity would end past the contract's time range.
    #[error("ValidityOverflow: the ticket's validity overflows")]
    ValidityOverflow,

    // ---- concessions (PlanMarket)
    /// `ConcessionAboveMax`: the attested discount is above the market's maximum.
    #[error("ConcessionAboveMax: {discount_bps} bps is above the maximum {max_bps} bps")]
    ConcessionAboveMax {
        /// The attested discount, in basis points.
        discount_bps: u16,
        /// The market's maximum.
        max_bps: u16,
    },
    /// `ConcessionExpired`: the attestation expired before the purchase was mined.
    #[error("ConcessionExpired: the attestation expired at {expiry}")]
    ConcessionExpired {
        /// Its expiry (unix seconds).
        expiry: u64,
    },
    /// `ZeroRequestId`: a purchase without a purchase request id.
    #[error("ZeroRequestId: a purchase needs a request id")]
    ZeroRequestId,
    /// `PurchaseAlreadyMade`: this purchase request bought its plan before (nothing was bought
    /// again): a purchase sent again after a drop or a reorganisation.
    #[error("PurchaseAlreadyMade: request {request_id} bought plan {plan} already")]
    PurchaseAlreadyMade {
        /// The purchase request id Kippu chose.
        request_id: B256,
        /// The plan it bought.
        plan: u64,
    },
    /// `ConcessionReplayed`: the attestation's nonce was used before.
    #[error("ConcessionReplayed: nonce {nonce} was used already")]
    ConcessionReplayed {
        /// The nonce.
        nonce: B256,
    },
    /// `ConcessionWrongHolder`: the attestation names another traveler.
    #[error("ConcessionWrongHolder: the attestation is for {holder}, not {traveler}")]
    ConcessionWrongHolder {
        /// The traveler the attestation names.
        holder: Address,
        /// The buyer.
        traveler: Address,
    },
    /// `UntrustedConcessionIssuer`: the attestation's signer is not a concession issuer.
    #[error("UntrustedConcessionIssuer: {signer} may not attest concessions")]
    UntrustedConcessionIssuer {
        /// The recovered signer (zero for an unreadable signature).
        signer: Address,
    },
    /// `InvalidConcession`: a concession kind the market does not know.
    #[error("InvalidConcession: unknown concession kind")]
    InvalidConcession,

    // ---- refunds (PlanMarket)
    /// `NotTicketHolder`: only the holder or a relayer may refund.
    #[error("NotTicketHolder: {caller} does not hold ticket {ticket}")]
    NotTicketHolder {
        /// The ticket.
        ticket: u64,
        /// The caller.
        caller: Address,
    },
    /// `NotRefundable`: the ticket's product is not refundable, or it was refunded.
    #[error("NotRefundable: ticket {ticket} is not refundable")]
    NotRefundable {
        /// The ticket.
        ticket: u64,
    },
    /// `RefundWindowClosed`: the refund period has ended.
    #[error("RefundWindowClosed: the refund period of ticket {ticket} has ended")]
    RefundWindowClosed {
        /// The ticket.
        ticket: u64,
    },
    /// `TicketAlreadyUsed`: the ticket has a ride on chain, so it keeps its fare.
    #[error("TicketAlreadyUsed: ticket {ticket} has been ridden")]
    TicketAlreadyUsed {
        /// The ticket.
        ticket: u64,
    },
    /// `RefundNeedsRelayer`: from its validity on, only a relayer (which checks the taps) may
    /// refund a ticket.
    #[error("RefundNeedsRelayer: ticket {ticket} is valid since {valid_from}, only a relayer may refund it")]
    RefundNeedsRelayer {
        /// The ticket.
        ticket: u64,
        /// Start of its validity (unix seconds).
        valid_from: u64,
    },

    // ---- delay cover (DelayInsurance)
    /// `InvalidTerms`: cover terms the insurer does not accept.
    #[error("InvalidTerms: the cover terms are invalid")]
    InvalidTerms,
    /// `InvalidQuorum`: a reporting quorum of zero.
    #[error("InvalidQuorum: the quorum must be at least 1")]
    InvalidQuorum,
    /// `PolicyExists`: a policy with this id is open already.
    #[error("PolicyExists: policy {policy} exists already")]
    PolicyExists {
        /// The policy.
        policy: u64,
    },
    /// `UnknownPolicy`: no such policy (or it was cancelled by a refund).
    #[error("UnknownPolicy: no policy {policy}")]
    UnknownPolicy {
        /// The policy.
        policy: u64,
    },
    /// `NotCovered`: the policy is not valid now.
    #[error("NotCovered: policy {policy} is not in force")]
    NotCovered {
        /// The policy.
        policy: u64,
    },
    /// `BelowThreshold`: the delay is shorter than the product's threshold.
    #[error("BelowThreshold: a delay of {delay_minutes} min is below the threshold of {threshold_minutes} min")]
    BelowThreshold {
        /// The reported delay.
        delay_minutes: u32,
        /// The threshold.
        threshold_minutes: u32,
    },
    /// `AlreadyCompensated`: the policy was paid for this delay already.
    #[error("AlreadyCompensated: policy {policy} was compensated for delay {delay_id}")]
    AlreadyCompensated {
        /// The policy.
        policy: u64,
        /// The delay.
        delay_id: B256,
    },
    /// `AlreadyVoted`: this reporter's vote on this delay is counted already.
    #[error("AlreadyVoted: {reporter} has reported delay {delay_id} of policy {policy}")]
    AlreadyVoted {
        /// The policy.
        policy: u64,
        /// The delay.
        delay_id: B256,
        /// The oracle.
        reporter: Address,
    },
    /// `PoolCapReached`: the insurer's voucher budget for the period is spent.
    #[error("PoolCapReached: {issued} issued against a cap of {cap}")]
    PoolCapReached {
        /// Voucher value issued in the period.
        issued: U256,
        /// The period's cap.
        cap: U256,
    },
    /// `TripCapReached`: the product paid its most vouchers for this run.
    #[error("TripCapReached: product {product} paid its {cap} vouchers for delay {delay_id}")]
    TripCapReached {
        /// The product.
        product: u32,
        /// The delay (run).
        delay_id: B256,
        /// Vouchers per run.
        cap: u16,
    },
    /// `DailyCapReached`: the policy received its most vouchers for the day.
    #[error("DailyCapReached: policy {policy} received its {cap} vouchers on day {day}")]
    DailyCapReached {
        /// The policy.
        policy: u64,
        /// The UTC day (days since the epoch).
        day: u64,
        /// Vouchers per day.
        cap: u16,
    },
    /// `UnknownVoucher`: no such voucher, or it was redeemed (burnt).
    #[error("UnknownVoucher: no voucher {voucher}")]
    UnknownVoucher {
        /// The voucher.
        voucher: u64,
    },
    /// `WrongOperator`: the voucher is not accepted by this operator.
    #[error("WrongOperator: voucher {voucher} is not accepted by operator {operator}")]
    WrongOperator {
        /// The voucher.
        voucher: u64,
        /// The redeeming operator.
        operator: u32,
    },
    /// `VoucherExpired`: the voucher is past its expiry.
    #[error("VoucherExpired: voucher {voucher} has expired")]
    VoucherExpired {
        /// The voucher.
        voucher: u64,
    },
    /// `InsufficientPayable`: settling more voucher value than the insurer owes an operator.
    #[error("InsufficientPayable: operator {operator} is owed {payable}, not {amount}")]
    InsufficientPayable {
        /// The operator.
        operator: u32,
        /// What it is owed.
        payable: U256,
        /// The amount settled.
        amount: U256,
    },

    // ---- settlement (Clearing)
    /// `UnknownOperator`: no operator with this id is registered.
    #[error("UnknownOperator: no operator {operator}")]
    UnknownOperator {
        /// The operator.
        operator: u32,
    },
    /// `InsufficientEscrow`: Clearing holds less FARE than it must pay.
    #[error("InsufficientEscrow: the escrow holds {balance}, {required} is required")]
    InsufficientEscrow {
        /// FARE held.
        balance: U256,
        /// FARE needed.
        required: U256,
    },
    /// `InsufficientUnpaid`: an operator's unpaid claim is smaller than a refund or adjustment.
    #[error("InsufficientUnpaid: operator {operator} has {unpaid} unpaid, {required} is required")]
    InsufficientUnpaid {
        /// The operator.
        operator: u32,
        /// Its unpaid claim.
        unpaid: U256,
        /// The amount needed.
        required: U256,
    },
    /// `LengthMismatch`: parallel arrays of different lengths.
    #[error("LengthMismatch: the arrays differ in length")]
    LengthMismatch,
    /// `BatchAlreadyAnchored`: this tap batch root was anchored before, as `batch`.
    #[error("BatchAlreadyAnchored: root {root} is batch {batch} already")]
    BatchAlreadyAnchored {
        /// The batch's Merkle root.
        root: B256,
        /// The batch id it was anchored as.
        batch: u64,
    },
    /// `ZeroRoot`: a tap batch anchored with a zero Merkle root.
    #[error("ZeroRoot: the Merkle root is zero")]
    ZeroRoot,
    /// `SelfTransfer`: a claim adjustment from an operator to itself.
    #[error("SelfTransfer: operator {operator} transfers to itself")]
    SelfTransfer {
        /// The operator.
        operator: u32,
    },
    /// `UnknownInsurance`: Clearing was pointed at another insurance contract than its own.
    #[error("UnknownInsurance: {insurance} is not this deployment's insurance")]
    UnknownInsurance {
        /// The address given.
        insurance: Address,
    },
    /// `WrongPeriod`: a close named another period than the current one. `given < current`:
    /// the period it meant was closed already (by an earlier send or another closer).
    #[error("WrongPeriod: period {given} is not the current period {current}")]
    WrongPeriod {
        /// The period the close named.
        given: u64,
        /// Clearing's current period.
        current: u64,
    },

    // ---- the rest
    /// An error no Kippu path acts on: OpenZeppelin internals that Kippu's own calls cannot
    /// trigger (ERC-20/721 zero-address and approval checks, ECDSA, SafeCast, SafeERC20,
    /// nonces, role-renounce confirmation, constructor string checks).
    #[error("{detail}")]
    Other {
        /// The Solidity error's name (e.g. `ERC721InvalidReceiver`).
        name: &'static str,
        /// The error with its arguments as the bindings print it (starts with the name).
        detail: String,
    },
}

impl ContractRejection {
    /// Whether this is one of the delay-cover caps (per run, per day, per period): the
    /// contract is working as configured and the report pays nothing, rather than being wrong.
    pub fn is_voucher_cap(&self) -> bool {
        matches!(self, Self::TripCapReached { .. } | Self::DailyCapReached { .. } | Self::PoolCapReached { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_solidity_error() {
        let r = ContractRejection::TicketAlreadyUsed { ticket: 7 };
        assert_eq!(r.to_string(), "TicketAlreadyUsed: ticket 7 has been ridden");
        let r = ContractRejection::WrongPeriod { given: 1, current: 2 };
        assert_eq!(r.to_string(), "WrongPeriod: period 1 is not the current period 2");
        let r = ContractRejection::Other { name: "ZeroRoot", detail: "ZeroRoot".into() };
        assert_eq!(r.to_string(), "ZeroRoot");
    }

    #[test]
    fn the_caps_are_the_three_cover_limits() {
        let d = B256::repeat_byte(1);
        assert!(ContractRejection::TripCapReached { product: 1, delay_id: d, cap: 2 }.is_voucher_cap());
        assert!(ContractRejection::DailyCapReached { policy: 1, day: 2, cap: 3 }.is_voucher_cap());
        assert!(ContractRejection::PoolCapReached { issued: U256::from(9), cap: U256::from(8) }.is_voucher_cap());
        assert!(!ContractRejection::AlreadyCompensated { policy: 1, delay_id: d }.is_voucher_cap());
        assert!(!ContractRejection::BelowThreshold { delay_minutes: 3, threshold_minutes: 15 }.is_voucher_cap());
    }
}
