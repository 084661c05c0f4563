//! Plans as bought, their tickets, and the taps (rides) made with them.

use alloy_primitives::Address;

use crate::TicketState;

/// A plan as bought, for its receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanReceipt {
    /// Plan id.
    pub plan_id: u64,
    /// The buyer.
    pub traveler: Address,
    /// Bundle bought.
    pub bundle_id: u32,
    /// FARE paid, minor units.
    pub price: i64,
    /// Validity start, unix seconds.
    pub valid_from: i64,
    /// The purchase transaction.
    pub tx_hash: String,
    /// Its block.
    pub block_number: i64,
    /// The legs as sold (`LegSold`): `(ticket id, operator id, product id, share)`, in sale
    /// order, refunded legs included, so the receipt never changes after the sale.
    pub legs: Vec<(u64, u32, u32, i64)>,
}

/// A ticket with its usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRow {
    /// ERC721 id.
    pub id: u64,
    /// Holder.
    pub holder: Address,
    /// Plan it belongs to.
    pub plan_id: u64,
    /// Operator.
    pub operator_id: u32,
    /// Product.
    pub product_id: u32,
    /// Validity start, unix seconds.
    pub valid_from: i64,
    /// Validity end, unix seconds.
    pub valid_until: i64,
    /// Rides issued (`u32::MAX` = unlimited).
    pub rides: u32,
    /// Revenue share of this leg.
    pub share: i64,
    /// Taps recorded.
    pub taps: i64,
}

impl TicketRow {
    /// Rides left, `None` when unlimited.
    pub fn rides_left(&self) -> Option<u32> {
        (self.rides != u32::MAX).then(|| self.rides.saturating_sub(self.taps.clamp(0, i64::from(u32::MAX)) as u32))
    }

    /// The validator's view of this ticket.
    pub fn state(&self) -> TicketState {
        TicketState {
            id: self.id,
            holder: self.holder,
            operator_id: self.operator_id,
            product_id: self.product_id,
            valid_from: self.valid_from.max(0) as u64,
            valid_until: self.valid_until.max(0) as u64,
            rides_left: self.rides_left(),
        }
    }
}

/// A recorded tap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapRow {
    /// Gate's scan id.
    pub scan_id: String,
    /// Ticket.
    pub ticket_id: u64,
    /// Operator.
    pub operator_id: u32,
    /// Gate.
    pub gate_key: String,
    /// Unix seconds.
    pub at: i64,
}

/// A tap batch not yet fully on chain: its key and its taps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenBatch {
    /// The batch key (Merkle root of its taps, hex).
    pub batch_key: String,
    /// Whether its rides are recorded on chain already (only the anchor is left).
    pub rides_recorded: bool,
    /// Its taps, in batch order.
    pub taps: Vec<TapRow>,
}
