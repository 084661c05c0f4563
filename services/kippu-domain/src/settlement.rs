//! Period settlement rules, pure: how a bundle's price is apportioned among its
//! legs' operators, and how operators' positions net into the fewest transfers.
//!
//! At sale, each leg is credited its list-price share (the `LegSold` event), which
//! is what Clearing escrows and pays out. A bundle may instead be settled by usage
//! (rides tapped in the period) or by distance travelled; the difference between
//! what an operator was credited and what it is due under the bundle's rule is a
//! position between operators, which [`net`] turns into transfers.

use std::collections::BTreeMap;

/// How a bundle's price is split among its legs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// In proportion to the legs' list prices (the default, and what is booked at sale).
    ListPrice,
    /// In proportion to the rides each leg's ticket was tapped for.
    Usage,
    /// In proportion to the distance travelled on each leg (metres, from GTFS shapes).
    Distance,
}

/// One leg of a sold bundle, as settlement sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leg {
    /// Operator of the leg.
    pub operator_id: u32,
    /// The share credited at sale (`LegSold`: the list-price split `PlanMarket.quote` made).
    pub booked: i64,
    /// Rides tapped with the leg's ticket in the period.
    pub rides: u64,
    /// Metres travelled on the leg in the period.
    pub distance_m: u64,
    /// Whether the leg is travelled (its rides count): transit and taxi legs are; a
    /// delay-insurance leg is not, and always keeps what it was booked.
    pub metered: bool,
}

/// Splits `amount` in proportion to `weights`, exactly: the parts sum to `amount`
/// (largest remainders get the leftover units, earlier parts first on ties). All-zero
/// weights split nothing (every part 0) unless `amount` is 0.
pub fn split(amount: i64, weights: &[u128]) -> Vec<i64> {
    let total: u128 = weights.iter().sum();
    if total == 0 || amount <= 0 {
        return vec![0; weights.len()];
    }
    let amount_u = amount as u128;
    let mut parts: Vec<i64> = weights.iter().map(|w| (amount_u * w / total) as i64).collect();
    let mut left = amount - parts.iter().sum::<i64>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    // Largest remainder first; the stable sort keeps earlier legs first on ties.
    order.sort_by_key(|&i| std::cmp::Reverse(amount_u * weights[i] % total));
    for i in order {
        if left == 0 {
            break;
        }
        if weights[i] > 0 {
            parts[i] += 1;
            left -= 1;
        }
    }
    parts
}

/// Apportions a sold bundle among its (unrefunded) `legs` under `rule`. The list-price
/// split is what was booked at sale (the chain's own rounding, kept as is). Under usage
/// or distance, what the metered legs were booked together is split again among them by
/// rides or metres; unmetered legs (insurance) keep their share, and with nothing
/// travelled every leg keeps its share (nobody rode: the operators keep what they were
/// promised). The parts always sum to what was booked.
pub fn apportion(legs: &[Leg], rule: Rule) -> Vec<i64> {
    let weights: Vec<u128> = legs
        .iter()
        .map(|l| match rule {
            _ if !l.metered => 0,
            Rule::ListPrice => 0,
            Rule::Usage => u128::from(l.rides),
            Rule::Distance => u128::from(l.distance_m),
        })
        .collect();
    if weights.iter().all(|w| *w == 0) {
        return legs.iter().map(|l| l.booked).collect();
    }
    let pool: i64 = legs.iter().filter(|l| l.metered).map(|l| l.booked).sum();
    let parts = split(pool, &weights);
    legs.iter().zip(parts).map(|(l, part)| if l.metered { part } else { l.booked }).collect()
}

/// Nets operators' positions (positive = owed to the operator, negative = it owes;
/// they sum to zero) into transfers `(from, to, amount)`: each step pays the largest
/// creditor from the largest debtor, so there are at most n − 1 transfers.
///
/// # Panics
///
/// If the positions do not sum to zero (a ledger bug, never rounded away).
pub fn net(positions: &BTreeMap<u32, i64>) -> Vec<(u32, u32, i64)> {
    assert_eq!(positions.values().sum::<i64>(), 0, "positions must balance");
    let mut creditors: Vec<(u32, i64)> = positions.iter().filter(|(_, v)| **v > 0).map(|(k, v)| (*k, *v)).collect();
    let mut debtors: Vec<(u32, i64)> = positions.iter().filter(|(_, v)| **v < 0).map(|(k, v)| (*k, -*v)).collect();
    let mut out = Vec::new();
    loop {
        creditors.sort_by_key(|(id, v)| (std::cmp::Reverse(*v), *id));
        debtors.sort_by_key(|(id, v)| (std::cmp::Reverse(*v), *id));
        let (Some(c), Some(d)) = (creditors.first().copied(), debtors.first().copied()) else { break };
        let amount = c.1.min(d.1);
        out.push((d.0, c.0, amount));
        creditors[0].1 -= amount;
        debtors[0].1 -= amount;
        creditors.retain(|(_, v)| *v > 0);
        debtors.retain(|(_, v)| *v > 0);
    }
    out
}

/// The positions between operators when bundles booked at list price are settled
/// under their own rules: for each sale `(legs, rule)`, what each operator is due minus
/// what it was credited.
pub fn positions<'a>(sales: impl IntoIterator<Item = (&'a [Leg], Rule)>) -> BTreeMap<u32, i64> {
    let mut pos: BTreeMap<u32, i64> = BTreeMap::new();
    for (legs, rule) in sales {
        if rule == Rule::ListPrice {
            continue;
        }
        for (leg, due) in legs.iter().zip(apportion(legs, rule)) {
            *pos.entry(leg.operator_id).or_default() += due - leg.booked;
        }
    }
    pos.retain(|_, v| *v != 0);
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(operator_id: u32, booked: i64, rides: u64) -> Leg {
        Leg { operator_id, booked, rides, distance_m: rides * 1_000, metered: operator_id != 4 }
    }

    #[test]
    fn split_is_exact_and_proportional() {
        assert_eq!(split(100, &[1, 1, 1]), [34, 33, 33]);
        assert_eq!(split(3_570, &[1_800, 600, 1_500, 300]), [1_530, 510, 1_275, 255]);
        assert_eq!(split(10, &[0, 5, 0]), [0, 10, 0], "zero weights get nothing, not a rounding unit");
        assert_eq!(split(7, &[0, 0]), [0, 0]);
        for amount in [1i64, 2, 99, 1_000_003, i64::MAX / 4] {
            for w in [&[3u128, 7, 11][..], &[1, 0, 1, 0, 1], &[u64::MAX as u128, 1]] {
                assert_eq!(split(amount, w).iter().sum::<i64>(), amount, "{amount} by {w:?}");
            }
        }
    }

    #[test]
    fn usage_and_distance_follow_the_rides_and_fall_back_to_list_price() {
        // The Explorer bundle as sold (3,570 after discount, booked by list price); operator 4
        // is the insurer, whose premium is not travelled and stays as booked.
        let legs = [leg(1, 1_530, 6), leg(2, 510, 2), leg(3, 1_275, 0), leg(4, 255, 0)];
        assert_eq!(apportion(&legs, Rule::ListPrice), [1_530, 510, 1_275, 255]);
        assert_eq!(apportion(&legs, Rule::Usage), [2_486, 829, 0, 255]);
        assert_eq!(apportion(&legs, Rule::Distance), [2_486, 829, 0, 255]);
        let idle = [leg(1, 1_500, 0), leg(2, 500, 0)];
        assert_eq!(apportion(&idle, Rule::Usage), [1_500, 500]);
        // A refunded leg is not there: the others share what they were booked.
        let after_refund = [leg(1, 1_530, 1), leg(2, 510, 1), leg(4, 255, 0)];
        assert_eq!(apportion(&after_refund, Rule::Usage), [1_020, 1_020, 255]);
        for rule in [Rule::ListPrice, Rule::Usage, Rule::Distance] {
            assert_eq!(apportion(&legs, rule).iter().sum::<i64>(), 3_570, "{rule:?}");
        }
    }

    #[test]
    fn positions_net_into_fewest_transfers_that_settle_everything() {
        let a = [leg(1, 1_530, 6), leg(2, 510, 2), leg(3, 1_275, 0), leg(4, 255, 0)];
        let b = [leg(1, 1_500, 0), leg(2, 500, 10)];
        let pos = positions([(&a[..], Rule::Usage), (&b[..], Rule::Usage), (&b[..], Rule::ListPrice)]);
        assert_eq!(pos.values().sum::<i64>(), 0);
        let transfers = net(&pos);
        assert!(transfers.len() < pos.len().max(1), "{transfers:?}");
        let mut settled = pos.clone();
        for (from, to, amount) in &transfers {
            assert!(*amount > 0);
            *settled.get_mut(from).unwrap() += amount;
            *settled.get_mut(to).unwrap() -= amount;
        }
        assert!(settled.values().all(|v| *v == 0), "{settled:?}");
        assert!(net(&BTreeMap::new()).is_empty());
    }

    #[test]
    #[should_panic(expected = "positions must balance")]
    fn unbalanced_positions_are_a_bug() {
        net(&BTreeMap::from([(1, 5)]));
    }
}
