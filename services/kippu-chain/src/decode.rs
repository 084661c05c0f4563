//! Turns raw logs into domain events. Only logs of Kippu's own contracts are
//! decoded; anything else (or an amount that would not fit the ledger) is
//! skipped with an error log rather than booked wrongly.

use alloy::primitives::U256;
use alloy::rpc::types::Log;
use alloy::sol_types::SolEvent;
use kippu_domain::events::{ChainEvent, EventMeta};

use crate::bindings::{Clearing, DelayInsurance, FareToken, PlanMarket, Ticket};
use crate::Deployment;

fn amount(v: U256) -> Option<i64> {
    let r = u64::try_from(v).ok().and_then(|x| i64::try_from(x).ok());
    if r.is_none() {
        tracing::error!(%v, "amount does not fit the ledger's i64; event skipped");
    }
    r
}

fn id(v: U256) -> Option<u64> {
    u64::try_from(v).ok()
}

/// Decodes one log of a Kippu contract, or `None` if it is not one Kippu books.
pub fn decode_log(d: &Deployment, log: &Log) -> Option<(EventMeta, ChainEvent)> {
    let meta = EventMeta {
        block_number: log.block_number?,
        block_hash: log.block_hash?,
        log_index: log.log_index?,
        tx_hash: log.transaction_hash?,
    };
    let topic0 = *log.topic0()?;
    let data = log.data();
    let addr = log.address();
    let ev = if addr == d.fare {
        match topic0 {
            FareToken::FareMinted::SIGNATURE_HASH => {
                let e = FareToken::FareMinted::decode_log_data(data).ok()?;
                ChainEvent::FareMinted { to: e.to, amount: amount(e.amount)?, payment_ref: e.paymentRef }
            }
            _ => return None,
        }
    } else if addr == d.market {
        match topic0 {
            PlanMarket::PlanPurchased::SIGNATURE_HASH => {
                let e = PlanMarket::PlanPurchased::decode_log_data(data).ok()?;
                ChainEvent::PlanPurchased {
                    plan_id: e.planId,
                    traveler: e.traveler,
                    bundle_id: e.bundleId,
                    price: amount(e.price)?,
                    valid_from: e.validFrom,
                }
            }
            PlanMarket::TicketRefunded::SIGNATURE_HASH => {
                let e = PlanMarket::TicketRefunded::decode_log_data(data).ok()?;
                ChainEvent::TicketRefunded {
                    ticket_id: id(e.ticketId)?,
                    traveler: e.traveler,
                    operator_id: e.operatorId,
                    amount: amount(e.amount)?,
                }
            }
            PlanMarket::LegSold::SIGNATURE_HASH => {
                let e = PlanMarket::LegSold::decode_log_data(data).ok()?;
                ChainEvent::LegSold {
                    plan_id: e.planId,
                    ticket_id: id(e.ticketId)?,
                    operator_id: e.operatorId,
                    product_id: e.productId,
                    share: amount(e.share)?,
                }
            }
            _ => return None,
        }
    } else if addr == d.ticket {
        match topic0 {
            Ticket::TicketIssued::SIGNATURE_HASH => {
                let e = Ticket::TicketIssued::decode_log_data(data).ok()?;
                ChainEvent::TicketIssued {
                    ticket_id: id(e.tokenId)?,
                    holder: e.holder,
                    plan_id: e.planId,
                    operator_id: e.operatorId,
                    product_id: e.productId,
                    valid_from: e.validFrom,
                    valid_until: e.validUntil,
                    rides: e.rides,
                }
            }
            Ticket::TicketActivated::SIGNATURE_HASH => {
                let e = Ticket::TicketActivated::decode_log_data(data).ok()?;
                ChainEvent::TicketActivated {
                    ticket_id: id(e.tokenId)?,
                    valid_from: e.validFrom,
                    valid_until: e.validUntil,
                }
            }
            _ => return None,
        }
    } else if addr == d.insurance {
        match topic0 {
            DelayInsurance::PolicyOpened::SIGNATURE_HASH => {
                let e = DelayInsurance::PolicyOpened::decode_log_data(data).ok()?;
                ChainEvent::PolicyOpened {
                    policy_id: id(e.policyId)?,
                    holder: e.holder,
                    valid_from: e.validFrom,
                    valid_until: e.validUntil,
                }
            }
            DelayInsurance::VoucherIssued::SIGNATURE_HASH => {
                let e = DelayInsurance::VoucherIssued::decode_log_data(data).ok()?;
                ChainEvent::VoucherIssued {
                    voucher_id: id(e.voucherId)?,
                    policy_id: id(e.policyId)?,
                    holder: e.holder,
                    value: i64::try_from(e.value).ok()?,
                    operator_id: e.operatorId,
                    expiry: e.expiry,
                    delay_id: e.delayId,
                }
            }
            DelayInsurance::VoucherRedeemed::SIGNATURE_HASH => {
                let e = DelayInsurance::VoucherRedeemed::decode_log_data(data).ok()?;
                ChainEvent::VoucherRedeemed {
                    voucher_id: id(e.voucherId)?,
                    operator_id: e.operatorId,
                    value: i64::try_from(e.value).ok()?,
                }
            }
            _ => return None,
        }
    } else if addr == d.clearing {
        match topic0 {
            Clearing::Payout::SIGNATURE_HASH => {
                let e = Clearing::Payout::decode_log_data(data).ok()?;
                ChainEvent::Payout {
                    period_id: e.periodId,
                    operator_id: e.operatorId,
                    payee: e.payee,
                    amount: amount(e.amount)?,
                }
            }
            Clearing::VoucherSettled::SIGNATURE_HASH => {
                let e = Clearing::VoucherSettled::decode_log_data(data).ok()?;
                ChainEvent::VoucherSettled {
                    period_id: e.periodId,
                    insurer_id: e.insurerId,
                    operator_id: e.operatorId,
                    amount: amount(e.amount)?,
                }
            }
            Clearing::ClaimMoved::SIGNATURE_HASH => {
                let e = Clearing::ClaimMoved::decode_log_data(data).ok()?;
                ChainEvent::ClaimMoved {
                    period_id: e.periodId,
                    from_operator: e.fromOperator,
                    to_operator: e.toOperator,
                    amount: amount(e.amount)?,
                }
            }
            Clearing::PeriodClosed::SIGNATURE_HASH => {
                let e = Clearing::PeriodClosed::decode_log_data(data).ok()?;
                ChainEvent::PeriodClosed { period_id: e.periodId, total_paid: amount(e.totalPaid)? }
            }
            Clearing::TapBatchAnchored::SIGNATURE_HASH => {
                let e = Clearing::TapBatchAnchored::decode_log_data(data).ok()?;
                ChainEvent::TapBatchAnchored { batch_id: e.batchId, root: e.merkleRoot, tap_count: e.tapCount }
            }
            _ => return None,
        }
    } else {
        return None;
    };
    Some((meta, ev))
}
