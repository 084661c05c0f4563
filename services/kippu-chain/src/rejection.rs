//! Revert data to [`ContractRejection`]. Each contract's `*Errors` interface enum (from the
//! committed ABIs) is matched exhaustively, so a Solidity error added, removed or changed
//! breaks the build here until it is mapped; an error no Kippu path acts on is mapped to
//! [`ContractRejection::Other`] by name.

use std::fmt::Debug;

use alloy::primitives::{Bytes, U256};
use alloy::sol_types::{GenericContractError, SolError, SolInterface};
use kippu_domain::ContractRejection as R;

use crate::bindings::{Clearing, DelayInsurance, FareToken, PlanMarket, Ticket};

/// The refusal `data` names, trying every Kippu contract's errors: a nested call's revert
/// reaches the caller unchanged (PlanMarket's purchase fails with FareToken's and Ticket's
/// errors), and an error of the same signature in two contracts decodes alike in both.
/// `None` when no Kippu contract defines the selector, or the arguments do not decode.
pub(crate) fn decode(data: &[u8]) -> Option<R> {
    if let Ok(e) = PlanMarket::PlanMarketErrors::abi_decode(data) {
        return Some(market(e));
    }
    if let Ok(e) = FareToken::FareTokenErrors::abi_decode(data) {
        return Some(fare(e));
    }
    if let Ok(e) = Ticket::TicketErrors::abi_decode(data) {
        return Some(ticket(e));
    }
    if let Ok(e) = DelayInsurance::DelayInsuranceErrors::abi_decode(data) {
        return Some(insurance(e));
    }
    if let Ok(e) = Clearing::ClearingErrors::abi_decode(data) {
        return Some(clearing(e));
    }
    None
}

/// What a revert that [`decode`] does not know says, for logs: a `require` message or a
/// panic when it is one of those, else the raw data in hex.
/// A revert's data as the adapter's error: the typed refusal when a Kippu contract's error
/// decodes it, the raw data otherwise.
pub(crate) fn classify(data: Bytes) -> crate::ChainError {
    match decode(&data) {
        Some(r) => crate::ChainError::Rejected(r),
        None => crate::ChainError::Reverted { data },
    }
}

pub(crate) fn describe_undecoded(data: &Bytes) -> String {
    match GenericContractError::abi_decode(data) {
        Ok(e) => e.to_string(),
        Err(_) if data.is_empty() => "no revert data".to_owned(),
        Err(_) => format!("undecoded revert data {data}"),
    }
}

/// A ticket, policy or voucher id. Kippu sends these as `u64` (and so every id a refusal
/// names is one it sent); a larger one could only come from a call Kippu did not make, and
/// saturates rather than hiding the refusal.
fn id(v: U256) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// An error no Kippu path acts on, kept by name and with its arguments for logs.
fn other<E: SolError + Debug>(e: E) -> R {
    let name = E::SIGNATURE.split_once('(').map_or(E::SIGNATURE, |(name, _)| name);
    R::Other { name, detail: format!("{e:?}") }
}

fn market(e: PlanMarket::PlanMarketErrors) -> R {
    use PlanMarket::PlanMarketErrors as E;
    match e {
        E::AccessControlUnauthorizedAccount(e) => R::Unauthorized { account: e.account, role: e.neededRole },
        E::AccessControlBadConfirmation(e) => other(e),
        E::ConcessionAboveMax(e) => R::ConcessionAboveMax { discount_bps: e.discountBps, max_bps: e.maxBps },
        E::ConcessionExpired(e) => R::ConcessionExpired { expiry: e.expiry },
        E::ConcessionReplayed(e) => R::ConcessionReplayed { nonce: e.nonce },
        E::ConcessionWrongHolder(e) => R::ConcessionWrongHolder { holder: e.holder, traveler: e.traveler },
        E::DiscountTooHigh(e) => R::DiscountTooHigh { discount_bps: e.discountBps },
        E::EmptyBundle(_) => R::EmptyBundle,
        E::EnforcedPause(_) => R::Paused,
        E::ExpectedPause(_) => R::NotPaused,
        E::InvalidConcession(_) => R::InvalidConcession,
        E::InvalidDuration(_) => R::InvalidDuration,
        E::InvalidProduct(_) => R::InvalidProduct,
        E::InvalidShortString(e) => other(e),
        E::NotRefundable(e) => R::NotRefundable { ticket: id(e.ticketId) },
        E::NotTicketHolder(e) => R::NotTicketHolder { ticket: id(e.ticketId), caller: e.caller },
        E::PriceAboveMax(e) => R::PriceAboveMax { price: e.price, max_price: e.maxPrice },
        E::PurchaseAlreadyMade(e) => R::PurchaseAlreadyMade { request_id: e.requestId, plan: e.planId },
        E::RefundNeedsRelayer(e) => R::RefundNeedsRelayer { ticket: id(e.ticketId), valid_from: e.validFrom },
        E::RefundWindowClosed(e) => R::RefundWindowClosed { ticket: id(e.ticketId) },
        E::SafeERC20FailedOperation(e) => other(e),
        E::StringTooLong(e) => other(e),
        E::TicketAlreadyUsed(e) => R::TicketAlreadyUsed { ticket: id(e.ticketId) },
        E::UnknownBundle(e) => R::UnknownBundle { bundle: e.bundleId },
        E::UnknownProduct(e) => R::UnknownProduct { product: e.productId },
        E::UntrustedConcessionIssuer(e) => R::UntrustedConcessionIssuer { signer: e.signer },
        E::ValidityOverflow(_) => R::ValidityOverflow,
        E::ZeroAddress(_) => R::ZeroAddress,
        E::ZeroRequestId(_) => R::ZeroRequestId,
    }
}

fn fare(e: FareToken::FareTokenErrors) -> R {
    use FareToken::FareTokenErrors as E;
    match e {
        E::AccessControlUnauthorizedAccount(e) => R::Unauthorized { account: e.account, role: e.neededRole },
        E::AccessControlBadConfirmation(e) => other(e),
        E::ECDSAInvalidSignature(e) => other(e),
        E::ECDSAInvalidSignatureLength(e) => other(e),
        E::ECDSAInvalidSignatureS(e) => other(e),
        E::ERC20InsufficientAllowance(e) => {
            R::InsufficientAllowance { spender: e.spender, allowance: e.allowance, needed: e.needed }
        }
        E::ERC20InsufficientBalance(e) => {
            R::InsufficientBalance { account: e.sender, balance: e.balance, needed: e.needed }
        }
        E::ERC20InvalidApprover(e) => other(e),
        E::ERC20InvalidReceiver(e) => other(e),
        E::ERC20InvalidSender(e) => other(e),
        E::ERC20InvalidSpender(e) => other(e),
        E::ERC2612ExpiredSignature(e) => R::PermitExpired { deadline: e.deadline },
        E::ERC2612InvalidSigner(e) => R::PermitInvalidSigner { signer: e.signer, owner: e.owner },
        E::InvalidAccountNonce(e) => other(e),
        E::InvalidShortString(e) => other(e),
        E::PaymentAlreadyMinted(e) => R::PaymentAlreadyMinted { payment_ref: e.paymentRef },
        E::StringTooLong(e) => other(e),
        E::ZeroAmount(_) => R::ZeroAmount,
    }
}

fn ticket(e: Ticket::TicketErrors) -> R {
    use Ticket::TicketErrors as E;
    match e {
        E::AccessControlUnauthorizedAccount(e) => R::Unauthorized { account: e.account, role: e.neededRole },
        E::AccessControlBadConfirmation(e) => other(e),
        E::ERC721IncorrectOwner(e) => other(e),
        E::ERC721InsufficientApproval(e) => other(e),
        E::ERC721InvalidApprover(e) => other(e),
        E::ERC721InvalidOperator(e) => other(e),
        E::ERC721InvalidOwner(e) => other(e),
        E::ERC721InvalidReceiver(e) => other(e),
        E::ERC721InvalidSender(e) => other(e),
        E::ERC721NonexistentToken(e) => R::NonexistentToken { token: id(e.tokenId) },
        E::InvalidBatch(_) => R::InvalidBatch,
        E::InvalidTicket(_) => R::InvalidTicket,
        E::InvalidWindow(_) => R::InvalidWindow,
        E::NonTransferable(e) => R::NonTransferable { ticket: id(e.tokenId) },
        E::RidesAlreadyRecorded(e) => R::RidesAlreadyRecorded { batch_key: e.batchKey },
        E::UnknownTicket(e) => R::UnknownTicket { ticket: id(e.tokenId) },
    }
}

fn insurance(e: DelayInsurance::DelayInsuranceErrors) -> R {
    use DelayInsurance::DelayInsuranceErrors as E;
    match e {
        E::AccessControlUnauthorizedAccount(e) => R::Unauthorized { account: e.account, role: e.neededRole },
        E::AccessControlBadConfirmation(e) => other(e),
        E::AlreadyCompensated(e) => R::AlreadyCompensated { policy: id(e.policyId), delay_id: e.delayId },
        E::AlreadyVoted(e) => R::AlreadyVoted { policy: id(e.policyId), delay_id: e.delayId, reporter: e.reporter },
        E::BelowThreshold(e) => {
            R::BelowThreshold { delay_minutes: e.delayMinutes, threshold_minutes: e.thresholdMinutes }
        }
        E::DailyCapReached(e) => R::DailyCapReached { policy: id(e.policyId), day: e.day, cap: e.cap },
        E::ERC721IncorrectOwner(e) => other(e),
        E::ERC721InsufficientApproval(e) => other(e),
        E::ERC721InvalidApprover(e) => other(e),
        E::ERC721InvalidOperator(e) => other(e),
        E::ERC721InvalidOwner(e) => other(e),
        E::ERC721InvalidReceiver(e) => other(e),
        E::ERC721InvalidSender(e) => other(e),
        E::ERC721NonexistentToken(e) => R::NonexistentToken { token: id(e.tokenId) },
        E::InsufficientPayable(e) => {
            R::InsufficientPayable { operator: e.operatorId, payable: e.payable_, amount: e.amount }
        }
        E::InvalidQuorum(_) => R::InvalidQuorum,
        E::InvalidTerms(_) => R::InvalidTerms,
        E::InvalidWindow(_) => R::InvalidWindow,
        E::NotCovered(e) => R::NotCovered { policy: id(e.policyId) },
        E::PolicyExists(e) => R::PolicyExists { policy: id(e.policyId) },
        E::PoolCapReached(e) => R::PoolCapReached { issued: e.issued, cap: e.cap },
        E::TripCapReached(e) => R::TripCapReached { product: e.productId, delay_id: e.delayId, cap: e.cap },
        E::UnknownPolicy(e) => R::UnknownPolicy { policy: id(e.policyId) },
        E::UnknownVoucher(e) => R::UnknownVoucher { voucher: id(e.voucherId) },
        E::VoucherExpired(e) => R::VoucherExpired { voucher: id(e.voucherId) },
        E::WrongOperator(e) => R::WrongOperator { voucher: id(e.voucherId), operator: e.operatorId },
        E::ZeroAddress(_) => R::ZeroAddress,
    }
}

fn clearing(e: Clearing::ClearingErrors) -> R {
    use Clearing::ClearingErrors as E;
    match e {
        E::AccessControlUnauthorizedAccount(e) => R::Unauthorized { account: e.account, role: e.neededRole },
        E::AccessControlBadConfirmation(e) => other(e),
        E::BatchAlreadyAnchored(e) => R::BatchAlreadyAnchored { root: e.merkleRoot, batch: e.batchId },
        E::InsufficientEscrow(e) => R::InsufficientEscrow { balance: e.balance, required: e.required },
        E::InsufficientUnpaid(e) => {
            R::InsufficientUnpaid { operator: e.operatorId, unpaid: e.unpaid, required: e.required }
        }
        E::LengthMismatch(_) => R::LengthMismatch,
        E::SafeCastOverflowedUintDowncast(e) => other(e),
        E::SafeERC20FailedOperation(e) => other(e),
        E::SelfTransfer(e) => R::SelfTransfer { operator: e.operatorId },
        E::UnknownInsurance(e) => R::UnknownInsurance { insurance: e.insurance },
        E::UnknownOperator(e) => R::UnknownOperator { operator: e.operatorId },
        E::WrongPeriod(e) => R::WrongPeriod { given: e.given, current: e.current },
        E::ZeroAddress(_) => R::ZeroAddress,
        E::ZeroAmount(_) => R::ZeroAmount,
        E::ZeroRoot(_) => R::ZeroRoot,
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, B256};
    use alloy::sol_types::{Revert, SolError};
    use kippu_domain::ContractRejection as R;

    use super::{decode, describe_undecoded};
    use crate::bindings::{Clearing, DelayInsurance, FareToken, PlanMarket, Ticket};

    /// Revert data as the node returns it: the error ABI-encoded with its selector.
    fn data(e: impl SolError) -> Vec<u8> {
        e.abi_encode()
    }

    #[test]
    fn custom_errors_decode_with_their_arguments() {
        let u = alloy::primitives::U256::from;
        let traveler = Address::repeat_byte(7);
        let cases = [
            (data(PlanMarket::TicketAlreadyUsed { ticketId: u(42) }), R::TicketAlreadyUsed { ticket: 42 }),
            (
                data(PlanMarket::PriceAboveMax { price: u(310), maxPrice: u(300) }),
                R::PriceAboveMax { price: u(310), max_price: u(300) },
            ),
            (
                data(PlanMarket::ConcessionAboveMax { discountBps: 5001, maxBps: 5000 }),
                R::ConcessionAboveMax { discount_bps: 5001, max_bps: 5000 },
            ),
            (data(PlanMarket::EnforcedPause {}), R::Paused),
            (data(PlanMarket::UnknownBundle { bundleId: 9 }), R::UnknownBundle { bundle: 9 }),
            (
                data(FareToken::ERC20InsufficientBalance { sender: traveler, balance: u(1), needed: u(300) }),
                R::InsufficientBalance { account: traveler, balance: u(1), needed: u(300) },
            ),
            (
                data(FareToken::PaymentAlreadyMinted { paymentRef: B256::repeat_byte(3) }),
                R::PaymentAlreadyMinted { payment_ref: B256::repeat_byte(3) },
            ),
            (
                data(Ticket::RidesAlreadyRecorded { batchKey: B256::repeat_byte(0xab) }),
                R::RidesAlreadyRecorded { batch_key: B256::repeat_byte(0xab) },
            ),
            (
                data(DelayInsurance::AlreadyCompensated { policyId: u(5), delayId: B256::repeat_byte(1) }),
                R::AlreadyCompensated { policy: 5, delay_id: B256::repeat_byte(1) },
            ),
            (
                data(DelayInsurance::DailyCapReached { policyId: u(5), day: 20_000, cap: 2 }),
                R::DailyCapReached { policy: 5, day: 20_000, cap: 2 },
            ),
            (data(Clearing::WrongPeriod { given: 1, current: 2 }), R::WrongPeriod { given: 1, current: 2 }),
            (
                data(PlanMarket::PurchaseAlreadyMade { requestId: B256::repeat_byte(7), planId: 42 }),
                R::PurchaseAlreadyMade { request_id: B256::repeat_byte(7), plan: 42 },
            ),
            (
                data(Clearing::BatchAlreadyAnchored { merkleRoot: B256::repeat_byte(9), batchId: 3 }),
                R::BatchAlreadyAnchored { root: B256::repeat_byte(9), batch: 3 },
            ),
            (
                data(Clearing::AccessControlUnauthorizedAccount { account: traveler, neededRole: B256::ZERO }),
                R::Unauthorized { account: traveler, role: B256::ZERO },
            ),
        ];
        for (data, want) in cases {
            assert_eq!(decode(&data).as_ref(), Some(&want), "{}", alloy::primitives::hex::encode(&data));
        }
    }

    #[test]
    fn an_id_beyond_u64_saturates() {
        let d = data(PlanMarket::NotRefundable { ticketId: alloy::primitives::U256::MAX });
        assert_eq!(decode(&d), Some(R::NotRefundable { ticket: u64::MAX }));
    }

    #[test]
    fn errors_kippu_does_not_act_on_keep_their_name() {
        let d = data(Ticket::ERC721InvalidReceiver { receiver: Address::ZERO });
        match decode(&d) {
            Some(R::Other { name, detail }) => {
                assert_eq!(name, "ERC721InvalidReceiver");
                assert!(detail.starts_with("ERC721InvalidReceiver"), "{detail}");
            }
            other => panic!("expected Other, got {other:?}"),
        }
    }

    /// Every error of every contract decodes, and its text starts with the Solidity name: a
    /// mapping arm that names the wrong variant (say `ZeroAmount` for `ZeroAddress`) fails here.
    #[test]
    fn every_error_decodes_under_its_own_name() {
        type Names = fn([u8; 4]) -> Option<&'static str>;
        let interfaces: [(&str, &[[u8; 4]], Names); 5] = [
            ("PlanMarket", PlanMarket::PlanMarketErrors::SELECTORS, PlanMarket::PlanMarketErrors::name_by_selector),
            ("FareToken", FareToken::FareTokenErrors::SELECTORS, FareToken::FareTokenErrors::name_by_selector),
            ("Ticket", Ticket::TicketErrors::SELECTORS, Ticket::TicketErrors::name_by_selector),
            (
                "DelayInsurance",
                DelayInsurance::DelayInsuranceErrors::SELECTORS,
                DelayInsurance::DelayInsuranceErrors::name_by_selector,
            ),
            ("Clearing", Clearing::ClearingErrors::SELECTORS, Clearing::ClearingErrors::name_by_selector),
        ];
        let mut n = 0;
        for (contract, selectors, name_of) in interfaces {
            for s in selectors {
                let name = name_of(*s).unwrap();
                // All-zero arguments decode for every static signature; StringTooLong carries
                // a string, which needs an offset (then a zero length).
                let mut d = s.to_vec();
                d.extend([0u8; 32 * 4]);
                if name == "StringTooLong" {
                    d[4 + 31] = 0x20;
                }
                let r = decode(&d).unwrap_or_else(|| panic!("{contract}.{name} does not decode"));
                assert!(r.to_string().starts_with(name), "{contract}.{name} reads {r}");
                n += 1;
            }
        }
        assert!(n > 90, "{n} errors");
    }

    #[test]
    fn reverts_no_kippu_contract_defines_stay_undecoded_but_readable() {
        let require = Revert::from("not today").abi_encode();
        assert_eq!(decode(&require), None);
        assert_eq!(describe_undecoded(&require.into()), "revert: not today");
        assert_eq!(decode(&[0xde, 0xad, 0xbe, 0xef]), None);
        assert_eq!(describe_undecoded(&vec![0xde, 0xad, 0xbe, 0xef].into()), "undecoded revert data 0xdeadbeef");
        assert_eq!(describe_undecoded(&Default::default()), "no revert data");
    }
}
