//! Period close, off chain: each plan sold is re-apportioned under its bundle's rule
//! with the rides its tickets were tapped for in the period, the differences from
//! what was booked at sale become positions between operators, and those net into
//! transfers. Streams the plans, so memory stays flat however many were sold.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use kippu_domain::settlement::{net, Leg, Rule};
use sqlx::Row;

use crate::{Result, Store, StoreError};

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
    /// Net transfers between operators `(from, to, amount)` that settle the differences.
    pub transfers: Vec<(u32, u32, i64)>,
}

fn rule_of(s: &str) -> Result<Rule> {
    match s {
        "list" => Ok(Rule::ListPrice),
        "usage" => Ok(Rule::Usage),
        "distance" => Ok(Rule::Distance),
        _ => Err(StoreError::Corrupt("bundles.settle_by")),
    }
}

impl Store {
    /// Closes the period `[from, to)` (POSIX seconds) for plans valid from within it.
    pub async fn close_period_books(&self, from: i64, to: i64) -> Result<PeriodClose> {
        let mut rows = sqlx::query(
            "SELECT t.plan_id, p.price, b.settle_by, t.operator_id, t.share, COALESCE(u.n, 0)
             FROM plans p
             JOIN bundles b ON b.id = p.bundle_id
             JOIN tickets t ON t.plan_id = p.plan_id
             LEFT JOIN (SELECT ticket_id, CAST(COUNT(*) AS BIGINT) AS n FROM taps WHERE at >= $1 AND at < $2 GROUP BY ticket_id) u
               ON u.ticket_id = t.id
             WHERE p.valid_from >= $1 AND p.valid_from < $2
             ORDER BY t.plan_id, t.id",
        )
        .bind(from)
        .bind(to)
        .fetch(&self.pool);
        let mut out = PeriodClose::default();
        let mut positions: BTreeMap<u32, i64> = BTreeMap::new();
        let mut plan: Option<(i64, i64, Rule)> = None;
        let mut legs: Vec<Leg> = Vec::with_capacity(8);
        let mut settle = |plan: Option<(i64, i64, Rule)>, legs: &mut Vec<Leg>, out: &mut PeriodClose| {
            if let Some((_, price, rule)) = plan {
                out.plans += 1;
                let due = kippu_domain::settlement::apportion(price, legs, rule);
                for (leg, due) in legs.iter().zip(due) {
                    let o = out.operators.entry(leg.operator_id).or_default();
                    o.booked += leg.booked;
                    o.due += due;
                    o.rides += leg.rides;
                    *positions.entry(leg.operator_id).or_default() += due - leg.booked;
                }
            }
            legs.clear();
        };
        while let Some(r) = rows.try_next().await? {
            let plan_id: i64 = r.try_get(0)?;
            if plan.map(|p| p.0) != Some(plan_id) {
                settle(plan, &mut legs, &mut out);
                let settle_by: String = r.try_get(2)?;
                plan = Some((plan_id, r.try_get(1)?, rule_of(&settle_by)?));
            }
            let rides = r.try_get::<i64, _>(5)? as u64;
            out.taps += rides;
            legs.push(Leg {
                operator_id: r.try_get::<i64, _>(3)? as u32,
                booked: r.try_get(4)?,
                rides,
                // Distance needs GTFS shapes per ride, which taps do not carry yet: rides stand in.
                distance_m: rides,
            });
        }
        settle(plan, &mut legs, &mut out);
        positions.retain(|_, v| *v != 0);
        out.transfers = net(&positions);
        Ok(out)
    }
}
