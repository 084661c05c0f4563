//! Contract events as the rest of Kippu sees them, decoupled from ABI types so
//! the ledger and read models do not depend on the chain adapter.

use alloy_primitives::{Address, B256};

/// Where an event sits on chain; `(block_hash, log_index)` identifies it, which
/// is what makes booking idempotent across restarts and re-deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMeta {
    /// Block height.
    pub block_number: u64,
    /// Block hash (reorgs change it).
    pub block_hash: B256,
    /// Index of the log within the block.
    pub log_index: u64,
    /// Transaction that emitted it.
    pub tx_hash: B256,
}

impl EventMeta {
    /// Stable key of the event: `0x<block hash>:<log index>`.
    pub fn key(&self) -> String {
        format!("{}:{}", self.block_hash, self.log_index)
    }
}

/// A decoded contract event Kippu acts on. Amounts are FARE minor units.
/// Stored with the event (JSON) so read models can be rebuilt after a reorg.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind")]
pub enum ChainEvent {
    /// FareToken minted for a card payment.
    FareMinted { to: Address, amount: i64, payment_ref: B256 },
    /// PlanMarket sold a bundle.
    PlanPurchased { plan_id: u64, traveler: Address, bundle_id: u32, price: i64, valid_from: u64 },
    /// One leg of a plan and its revenue share.
    LegSold { plan_id: u64, ticket_id: u64, operator_id: u32, product_id: u32, share: i64 },
    /// Ticket minted.
    TicketIssued {
        ticket_id: u64,
        holder: Address,
        plan_id: u64,
        operator_id: u32,
        product_id: u32,
        valid_from: u64,
        valid_until: u64,
        rides: u32,
    },
    /// A delay-insurance policy opened (policy id = insurance leg ticket id).
    PolicyOpened { policy_id: u64, holder: Address, valid_from: u64, valid_until: u64 },
    /// A voucher issued for a reported delay.
    VoucherIssued {
        voucher_id: u64,
        policy_id: u64,
        holder: Address,
        value: i64,
        operator_id: u32,
        expiry: u64,
        delay_id: B256,
    },
    /// A voucher redeemed (burned) by an operator.
    VoucherRedeemed { voucher_id: u64, operator_id: u32, value: i64 },
    /// Clearing paid an operator.
    Payout { period_id: u64, operator_id: u32, payee: Address, amount: i64 },
    /// At a period's close, vouchers an operator redeemed were paid out of the insurer's claim.
    VoucherSettled { period_id: u64, insurer_id: u32, operator_id: u32, amount: i64 },
    /// At a period's close, a netted apportionment difference moved between two operators' claims.
    ClaimMoved { period_id: u64, from_operator: u32, to_operator: u32, amount: i64 },
    /// A clearing period closed (also when nothing was owed).
    PeriodClosed { period_id: u64, total_paid: i64 },
    /// A batch of taps anchored by its Merkle root.
    TapBatchAnchored { batch_id: u64, root: B256, tap_count: u32 },
    /// An unused ticket refunded from escrow to its holder.
    TicketRefunded { ticket_id: u64, traveler: Address, operator_id: u32, amount: i64 },
    /// A rolling ticket's window started at its first ride.
    TicketActivated { ticket_id: u64, valid_from: u64, valid_until: u64 },
}

impl ChainEvent {
    /// Short name for logs and the event table.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::FareMinted { .. } => "FareMinted",
            Self::PlanPurchased { .. } => "PlanPurchased",
            Self::LegSold { .. } => "LegSold",
            Self::TicketIssued { .. } => "TicketIssued",
            Self::PolicyOpened { .. } => "PolicyOpened",
            Self::VoucherIssued { .. } => "VoucherIssued",
            Self::VoucherRedeemed { .. } => "VoucherRedeemed",
            Self::Payout { .. } => "Payout",
            Self::VoucherSettled { .. } => "VoucherSettled",
            Self::ClaimMoved { .. } => "ClaimMoved",
            Self::PeriodClosed { .. } => "PeriodClosed",
            Self::TapBatchAnchored { .. } => "TapBatchAnchored",
            Self::TicketRefunded { .. } => "TicketRefunded",
            Self::TicketActivated { .. } => "TicketActivated",
        }
    }

    /// Double-entry postings this event books: `(account, amount)` with debits
    /// positive and credits negative, always summing to zero. Keeping the rule
    /// here (not in SQL) lets it be tested without a database.
    pub fn postings(&self) -> Vec<(String, i64)> {
        match self {
            Self::FareMinted { to, amount, .. } => {
                vec![("card_clearing".into(), *amount), (format!("traveler:{to:#x}"), -amount)]
            }
            Self::PlanPurchased { traveler, price, .. } => {
                vec![(format!("traveler:{traveler:#x}"), *price), ("escrow".into(), -price)]
            }
            Self::LegSold { operator_id, share, .. } => {
                vec![("escrow".into(), *share), (format!("operator:{operator_id}"), -share)]
            }
            Self::VoucherRedeemed { operator_id, value, .. } => {
                vec![("insurer_pool".into(), *value), (format!("operator:{operator_id}"), -value)]
            }
            Self::Payout { operator_id, amount, .. } => {
                vec![(format!("operator:{operator_id}"), *amount), ("paid_out".into(), -amount)]
            }
            // The insurer's claim pays what the pool owed the redeeming operator.
            Self::VoucherSettled { insurer_id, amount, .. } => {
                vec![(format!("operator:{insurer_id}"), *amount), ("insurer_pool".into(), -amount)]
            }
            Self::ClaimMoved { from_operator, to_operator, amount, .. } => {
                vec![(format!("operator:{from_operator}"), *amount), (format!("operator:{to_operator}"), -amount)]
            }
            // The operator's claim shrinks; the traveler holds the FARE again.
            Self::TicketRefunded { traveler, operator_id, amount, .. } => {
                vec![(format!("operator:{operator_id}"), *amount), (format!("traveler:{traveler:#x}"), -amount)]
            }
            Self::TicketIssued { .. }
            | Self::TicketActivated { .. }
            | Self::PolicyOpened { .. }
            | Self::VoucherIssued { .. }
            | Self::TapBatchAnchored { .. }
            | Self::PeriodClosed { .. } => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postings_balance() {
        let events = [
            ChainEvent::FareMinted { to: Address::ZERO, amount: 500, payment_ref: B256::ZERO },
            ChainEvent::PlanPurchased { plan_id: 1, traveler: Address::ZERO, bundle_id: 1, price: 300, valid_from: 0 },
            ChainEvent::LegSold { plan_id: 1, ticket_id: 1, operator_id: 2, product_id: 3, share: 100 },
            ChainEvent::VoucherRedeemed { voucher_id: 1, operator_id: 3, value: 1500 },
            ChainEvent::Payout { period_id: 1, operator_id: 2, payee: Address::ZERO, amount: 100 },
            ChainEvent::TicketRefunded { ticket_id: 1, traveler: Address::ZERO, operator_id: 2, amount: 80 },
            ChainEvent::VoucherSettled { period_id: 1, insurer_id: 4, operator_id: 3, amount: 1500 },
            ChainEvent::ClaimMoved { period_id: 1, from_operator: 1, to_operator: 2, amount: 7 },
        ];
        for e in events {
            let p = e.postings();
            assert_eq!(p.len(), 2, "{}", e.kind());
            assert_eq!(p.iter().map(|(_, a)| a).sum::<i64>(), 0, "{}", e.kind());
        }
    }
}
