//! Period close, off chain: each plan sold is re-apportioned under its bundle's rule
//! with the rides its tickets were tapped for in the period, the differences from
//! what was booked at sale become positions between operators, and those net into
//! transfers. Streams the plans, so memory stays flat however many were sold.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use kippu_domain::settlement::{net, Leg, Rule};
use sqlx::Row;

use crate::{Result, Store, StoreError};

pub use kippu_domain::model::{OperatorClose, PeriodClose, PeriodCloseRow};

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
            "SELECT t.plan_id, p.price, b.settle_by, t.operator_id, t.share, COALESCE(u.n, 0), COALESCE(pr.insurance, 0)
             FROM plans p
             JOIN bundles b ON b.id = p.bundle_id
             JOIN tickets t ON t.plan_id = p.plan_id
             LEFT JOIN products pr ON pr.id = t.product_id
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
            if let Some((_, _price, rule)) = plan {
                out.plans += 1;
                let due = kippu_domain::settlement::apportion(legs, rule);
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
                // An insurance leg is not travelled.
                metered: r.try_get::<i64, _>(6)? == 0,
            });
        }
        settle(plan, &mut legs, &mut out);
        positions.retain(|_, v| *v != 0);
        out.transfers = net(&positions);
        out.positions = positions;
        Ok(out)
    }

    /// Positions a previous close could not move yet, to add to the next one.
    pub async fn settlement_carry(&self) -> Result<BTreeMap<u32, i64>> {
        let rows = sqlx::query("SELECT operator_id, amount FROM settlement_carry").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get::<i64, _>(0)? as u32, r.try_get(1)?))).collect()
    }

    /// Records a period Kippu closed and replaces the carried positions, in one transaction.
    pub async fn record_period_close(&self, c: &PeriodCloseRow, carry: &BTreeMap<u32, i64>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO period_closes (period_id, window_from, window_to, plans, taps, transfers, carried, tx_hash, closed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(c.period_id as i64)
        .bind(c.window_from)
        .bind(c.window_to)
        .bind(c.plans as i64)
        .bind(c.taps as i64)
        .bind(serde_json::to_string(&c.transfers).map_err(|_| StoreError::Corrupt("period_closes.transfers"))?)
        .bind(serde_json::to_string(&c.carried).map_err(|_| StoreError::Corrupt("period_closes.carried"))?)
        .bind(&c.tx_hash)
        .bind(c.closed_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM settlement_carry").execute(&mut *tx).await?;
        for (op, amount) in carry.iter().filter(|(_, a)| **a != 0) {
            sqlx::query("INSERT INTO settlement_carry (operator_id, amount) VALUES ($1, $2)")
                .bind(i64::from(*op))
                .bind(*amount)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The close Kippu made of `period_id`, if it made one.
    pub async fn period_close(&self, period_id: u64) -> Result<Option<PeriodCloseRow>> {
        self.period_close_where("WHERE period_id = $1", Some(period_id as i64)).await
    }

    /// The latest close Kippu made: the next window starts where its window ended.
    pub async fn last_period_close(&self) -> Result<Option<PeriodCloseRow>> {
        self.period_close_where("ORDER BY period_id DESC LIMIT 1", None).await
    }

    async fn period_close_where(&self, cond: &str, arg: Option<i64>) -> Result<Option<PeriodCloseRow>> {
        let sql = format!(
            "SELECT period_id, window_from, window_to, plans, taps, transfers, carried, tx_hash, closed_at
             FROM period_closes {cond}"
        );
        let mut q = sqlx::query(&sql);
        if let Some(a) = arg {
            q = q.bind(a);
        }
        let Some(r) = q.fetch_optional(&self.pool).await? else {
            return Ok(None);
        };
        let json = |i: usize| -> Result<Vec<(u32, u32, i64)>> {
            serde_json::from_str(&r.try_get::<String, _>(i)?).map_err(|_| StoreError::Corrupt("period_closes"))
        };
        Ok(Some(PeriodCloseRow {
            period_id: r.try_get::<i64, _>(0)? as u64,
            window_from: r.try_get(1)?,
            window_to: r.try_get(2)?,
            plans: r.try_get::<i64, _>(3)? as u64,
            taps: r.try_get::<i64, _>(4)? as u64,
            transfers: json(5)?,
            carried: json(6)?,
            tx_hash: r.try_get(7)?,
            closed_at: r.try_get(8)?,
        }))
    }
}
