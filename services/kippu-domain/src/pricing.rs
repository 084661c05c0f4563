//! Bundle pricing and list-price apportionment. Mirrors `PlanMarket.quote` on
//! chain exactly (same floor divisions, remainder to the last leg) so the web
//! app can show a price the chain will accept and the ledger can check shares.

/// Price of a bundle and each leg's share of it, in FARE minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// Sum of the legs' list prices.
    pub list_total: u128,
    /// What the traveler pays after the bundle discount.
    pub price: u128,
    /// Each leg's revenue share; sums exactly to `price`.
    pub leg_shares: Vec<u128>,
}

impl Quote {
    /// The traveler's saving against buying each leg alone.
    pub fn saving(&self) -> u128 {
        self.list_total - self.price
    }
}

/// Quotes a bundle of legs with the given list prices and discount in basis
/// points. Returns `None` for an empty bundle or a discount above 100 %.
pub fn quote(list_prices: &[u128], discount_bps: u16) -> Option<Quote> {
    if list_prices.is_empty() || discount_bps > 10_000 {
        return None;
    }
    let list_total: u128 = list_prices.iter().sum();
    let price = list_total * u128::from(10_000 - discount_bps) / 10_000;
    let mut leg_shares = Vec::with_capacity(list_prices.len());
    let mut allotted = 0u128;
    for (i, p) in list_prices.iter().enumerate() {
        // The last leg takes the rounding remainder so no unit is lost or made up.
        let share = if i + 1 == list_prices.len() {
            price - allotted
        } else {
            (price * p).checked_div(list_total).unwrap_or(0)
        };
        allotted += share;
        leg_shares.push(share);
    }
    Some(Quote { list_total, price, leg_shares })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn example_bundle() {
        let q = quote(&[1800, 600, 4500, 300], 1500).unwrap();
        assert_eq!(q.list_total, 7200);
        assert_eq!(q.price, 6120);
        assert_eq!(q.leg_shares, vec![1530, 510, 3825, 255]);
        assert_eq!(q.saving(), 1080);
    }

    #[test]
    fn shares_always_sum_to_price() {
        let mut rng = rand::thread_rng();
        for _ in 0..10_000 {
            let n = rng.gen_range(1..6);
            let prices: Vec<u128> = (0..n).map(|_| rng.gen_range(0..1_000_000)).collect();
            let q = quote(&prices, rng.gen_range(0..=10_000)).unwrap();
            assert_eq!(q.leg_shares.iter().sum::<u128>(), q.price);
            assert!(q.price <= q.list_total);
        }
    }

    #[test]
    fn rejects_bad_bundles() {
        assert!(quote(&[], 0).is_none());
        assert!(quote(&[100], 10_001).is_none());
    }
}
