//! The catalogue: operators, what they sell, the bundles that combine it, and their timetables.

use alloy_primitives::Address;

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

/// An operator's imported timetable version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimetableRow {
    /// Operator slug.
    pub operator_slug: String,
    /// 1, 2, …
    pub version: i64,
    /// Unix seconds.
    pub imported_at: i64,
    /// The import summary, JSON.
    pub summary: String,
    /// The GTFS zip, base64.
    pub feed: String,
}
