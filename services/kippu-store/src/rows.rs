//! Row types of the store.

use alloy_primitives::Address;
use kippu_domain::TicketState;

/// A transport operator or the insurer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// On-chain operator id.
    pub id: u32,
    /// Topic-safe slug (`metro`).
    pub slug: String,
    /// Display name.
    pub name: String,
    /// `rail`, `bus`, `taxi`, `insurer`.
    pub kind: String,
    /// Payout address.
    pub payee: Address,
}

/// A product an operator sells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// On-chain product id.
    pub id: u32,
    /// Selling operator.
    pub operator_id: u32,
    /// Display name.
    pub name: String,
    /// List price, FARE minor units.
    pub price: i64,
    /// Validity length.
    pub duration_secs: i64,
    /// Rides included (`u32::MAX` = unlimited).
    pub rides: u32,
    /// Whether this product is delay insurance.
    pub insurance: bool,
    /// GTFS route ids of the operator's timetable it is valid on; empty = all of them.
    pub routes: Vec<String>,
    /// GTFS fare zones it is valid in; empty = all of them.
    pub zones: Vec<String>,
}

impl Product {
    /// Whether a ticket of this product is valid on `route_id` (of its operator's timetable).
    pub fn covers_route(&self, route_id: &str) -> bool {
        self.routes.is_empty() || self.routes.iter().any(|r| r == route_id)
    }
}

/// A bundle of products sold at a discount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// On-chain bundle id.
    pub id: u32,
    /// Display name.
    pub name: String,
    /// One-line description.
    pub description: String,
    /// Discount in basis points.
    pub discount_bps: u16,
    /// Products in order.
    pub product_ids: Vec<u32>,
}

/// A registered gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateRow {
    /// `operator/station/gate`.
    pub gate_key: String,
    /// Operator the gate belongs to.
    pub operator_id: u32,
    /// Station name.
    pub station: String,
    /// The GTFS stop a stop gate stands at; `None` for on-board validators and non-GTFS stations.
    pub stop_id: Option<String>,
    /// An on-board validator: it rides a vehicle and names the run with each scan.
    pub on_board: bool,
}

/// A traveler account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traveler {
    /// Wallet address.
    pub address: Address,
    /// `did:pkh:eip155:...`.
    pub did: String,
    /// Display name.
    pub display_name: String,
    /// Custodial key sealed by the keystore; `None` for self-custodied wallets.
    pub sealed_key: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
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

/// A delay-insurance policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRow {
    /// Policy id (= the insurance leg's ticket id).
    pub policy_id: u64,
    /// Insured traveler.
    pub holder: Address,
    /// Cover start.
    pub valid_from: i64,
    /// Cover end.
    pub valid_until: i64,
}

/// A delay voucher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoucherRow {
    /// Voucher id.
    pub id: u64,
    /// Policy that paid it.
    pub policy_id: u64,
    /// Holder.
    pub holder: Address,
    /// Value, FARE minor units.
    pub value: i64,
    /// Operator that may redeem it.
    pub operator_id: u32,
    /// Expiry, unix seconds.
    pub expiry: i64,
    /// Delay event id.
    pub delay_id: String,
    /// Operator that redeemed it, once redeemed.
    pub redeemed_by: Option<u32>,
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

/// A card top-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// Stripe Checkout Session id.
    pub session_id: String,
    /// Traveler credited.
    pub traveler: Address,
    /// Amount, minor units.
    pub amount: i64,
    /// `open`, `paid`, `minted`.
    pub status: String,
    /// Mint transaction.
    pub tx_hash: Option<String>,
}

/// One operator's line of the settlement report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorReport {
    /// Operator id.
    pub operator_id: u32,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// Revenue share booked from bundle sales.
    pub revenue: i64,
    /// Legs (tickets) sold.
    pub legs: i64,
    /// Rides (taps) recorded.
    pub rides: i64,
    /// Voucher value redeemed at this operator (payable by the insurer).
    pub vouchers_redeemed: i64,
    /// Paid out through Clearing.
    pub paid_out: i64,
}
