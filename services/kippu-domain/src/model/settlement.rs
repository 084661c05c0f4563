//! Period close, off chain: what each operator was booked and is due, and the transfers that settle it.

use std::collections::BTreeMap;

/// One operator's figures for a period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorClose {
    /// Shares booked at sale for plans settled in the period.
    pub booked: i64,
    /// What it is due under each bundle's rule.
    pub due: i64,
    /// Rides tapped with its legs in the period.
    pub rides: u64,
}

/// The outcome of closing a period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeriodClose {
    /// Plans settled.
    pub plans: u64,
    /// Taps counted.
    pub taps: u64,
    /// Per operator.
    pub operators: BTreeMap<u32, OperatorClose>,
    /// What each operator is due minus what it was booked (non-zero only; they sum to zero).
    pub positions: BTreeMap<u32, i64>,
    /// Net transfers between operators `(from, to, amount)` that settle the differences.
    pub transfers: Vec<(u32, u32, i64)>,
}

/// A period Kippu closed on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodCloseRow {
    /// Clearing's period id.
    pub period_id: u64,
    /// Plans valid from in `[window_from, window_to)` (POSIX seconds) were re-apportioned.
    pub window_from: i64,
    /// End of the window.
    pub window_to: i64,
    /// Plans re-apportioned.
    pub plans: u64,
    /// Rides counted.
    pub taps: u64,
    /// Claims moved on chain `(from, to, amount)`.
    pub transfers: Vec<(u32, u32, i64)>,
    /// Positions netted but not movable yet `(from, to, amount)`, carried to the next close.
    pub carried: Vec<(u32, u32, i64)>,
    /// The close's transaction.
    pub tx_hash: String,
    /// Wall-clock time of the close.
    pub closed_at: i64,
}
