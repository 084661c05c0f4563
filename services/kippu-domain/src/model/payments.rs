//! Card top-ups.

use alloy_primitives::Address;

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
