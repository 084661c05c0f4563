//! Delay cover: policies, their terms, the vouchers they pay, and the delays and taps behind them.

use alloy_primitives::Address;

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

/// Terms of one insured product (mirrored on chain by `DelayInsurance.setProductTerms`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoverTerms {
    /// The insured product.
    pub product_id: u32,
    /// Minutes late that make a rider affected.
    pub threshold_minutes: u32,
    /// What the voucher is for (e.g. `taxi`): operators of that kind accept it.
    pub voucher_kind: String,
    /// Operator that issues and always accepts the voucher.
    pub voucher_operator_id: u32,
    /// Voucher value, FARE minor units.
    pub voucher_value: i64,
    /// Voucher lifetime after issue.
    pub voucher_lifetime_secs: i64,
    /// Vouchers this product pays for one delayed run, all travelers together (0 = no cap).
    pub max_per_trip: u16,
    /// Vouchers one policy receives per UTC day (0 = no cap).
    pub max_per_day: u16,
}

/// An active insurance policy and the plan it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsuredPlan {
    /// Policy (the insured ticket's id).
    pub policy_id: u64,
    /// Plan whose legs it covers.
    pub plan_id: u64,
    /// The insurance product, whose terms apply.
    pub product_id: u32,
}

/// A tap by a ticket of a plan, for deciding who rode or waited for a late run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanTap {
    /// Plan of the ticket tapped.
    pub plan_id: u64,
    /// Ticket tapped.
    pub ticket_id: u64,
    /// Its product.
    pub product_id: u32,
    /// Its operator.
    pub operator_id: u32,
    /// Unix seconds.
    pub at: i64,
    /// Run named by an on-board validator.
    pub trip_id: Option<String>,
    /// That run's service day.
    pub trip_date: Option<String>,
    /// GTFS stop of the stop gate.
    pub stop_id: Option<String>,
}

/// Late runs per route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDelays {
    /// GTFS route id.
    pub route_id: String,
    /// Late trip runs.
    pub runs: i64,
    /// Worst delay, minutes.
    pub worst_minutes: i64,
    /// Runs cancelled.
    pub cancelled: i64,
}

/// Vouchers per redeeming operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoucherStats {
    /// Operator the vouchers are redeemable at.
    pub operator_id: u32,
    /// Issued (count).
    pub issued: i64,
    /// Issued value, FARE minor units.
    pub issued_value: i64,
    /// Redeemed (count).
    pub redeemed: i64,
    /// Redeemed value, FARE minor units.
    pub redeemed_value: i64,
}
