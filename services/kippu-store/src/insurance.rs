//! Read models of the delay dashboard.

use sqlx::Row;

use crate::{Result, Store};

pub use kippu_domain::model::{CoverTerms, InsuredPlan, PlanTap, RouteDelays, TimetableRow, VoucherStats};

impl Store {
    /// Records (or raises) the delay of one late trip run.
    pub async fn record_delay(
        &self,
        delay_id: &str,
        trip_id: &str,
        route_id: &str,
        minutes: u32,
        cancelled: bool,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO delays (delay_id, trip_id, route_id, max_minutes, first_seen, last_seen, cancelled) VALUES ($1, $2, $3, $4, $5, $5, $6)
             ON CONFLICT (delay_id) DO UPDATE SET
               max_minutes = CASE WHEN excluded.max_minutes > delays.max_minutes THEN excluded.max_minutes ELSE delays.max_minutes END,
               last_seen = excluded.last_seen,
               cancelled = CASE WHEN excluded.cancelled > delays.cancelled THEN excluded.cancelled ELSE delays.cancelled END",
        )
        .bind(delay_id)
        .bind(trip_id)
        .bind(route_id)
        .bind(i64::from(minutes))
        .bind(now)
        .bind(i64::from(cancelled))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sets an insured product's terms.
    pub async fn upsert_cover_terms(&self, t: &CoverTerms) -> Result<()> {
        sqlx::query(
            "INSERT INTO cover_terms (product_id, threshold_minutes, voucher_kind, voucher_operator_id, voucher_value,
                                      voucher_lifetime_secs, max_per_trip, max_per_day)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (product_id) DO UPDATE SET threshold_minutes = excluded.threshold_minutes,
               voucher_kind = excluded.voucher_kind, voucher_operator_id = excluded.voucher_operator_id,
               voucher_value = excluded.voucher_value, voucher_lifetime_secs = excluded.voucher_lifetime_secs,
               max_per_trip = excluded.max_per_trip, max_per_day = excluded.max_per_day",
        )
        .bind(i64::from(t.product_id))
        .bind(i64::from(t.threshold_minutes))
        .bind(&t.voucher_kind)
        .bind(i64::from(t.voucher_operator_id))
        .bind(t.voucher_value)
        .bind(t.voucher_lifetime_secs)
        .bind(i64::from(t.max_per_trip))
        .bind(i64::from(t.max_per_day))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every insured product's terms, by product id.
    pub async fn cover_terms(&self) -> Result<Vec<CoverTerms>> {
        let rows = sqlx::query(
            "SELECT product_id, threshold_minutes, voucher_kind, voucher_operator_id, voucher_value, voucher_lifetime_secs,
                    max_per_trip, max_per_day FROM cover_terms ORDER BY product_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CoverTerms {
                    product_id: r.try_get::<i64, _>(0)? as u32,
                    threshold_minutes: r.try_get::<i64, _>(1)? as u32,
                    voucher_kind: r.try_get(2)?,
                    voucher_operator_id: r.try_get::<i64, _>(3)? as u32,
                    voucher_value: r.try_get(4)?,
                    voucher_lifetime_secs: r.try_get(5)?,
                    max_per_trip: r.try_get::<i64, _>(6)? as u16,
                    max_per_day: r.try_get::<i64, _>(7)? as u16,
                })
            })
            .collect()
    }

    /// Taps since `since` with the plan and product of the ticket and the stop of the gate.
    pub async fn plan_taps_since(&self, since: i64) -> Result<Vec<PlanTap>> {
        let rows = sqlx::query(
            "SELECT t.plan_id, x.ticket_id, t.product_id, x.operator_id, x.at, x.trip_id, x.trip_date, g.stop_id
             FROM taps x JOIN tickets t ON t.id = x.ticket_id LEFT JOIN gates g ON g.gate_key = x.gate_key
             WHERE x.at >= $1 ORDER BY x.at",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PlanTap {
                    plan_id: r.try_get::<i64, _>(0)? as u64,
                    ticket_id: r.try_get::<i64, _>(1)? as u64,
                    product_id: r.try_get::<i64, _>(2)? as u32,
                    operator_id: r.try_get::<i64, _>(3)? as u32,
                    at: r.try_get(4)?,
                    trip_id: r.try_get(5)?,
                    trip_date: r.try_get(6)?,
                    stop_id: r.try_get(7)?,
                })
            })
            .collect()
    }

    /// Policies in force at `now` with the plan each covers.
    pub async fn insured_plans(&self, now: i64) -> Result<Vec<InsuredPlan>> {
        let rows = sqlx::query(
            "SELECT p.policy_id, t.plan_id, t.product_id FROM policies p JOIN tickets t ON t.id = p.policy_id
             WHERE p.valid_from <= $1 AND p.valid_until > $1 ORDER BY p.policy_id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(InsuredPlan {
                    policy_id: r.try_get::<i64, _>(0)? as u64,
                    plan_id: r.try_get::<i64, _>(1)? as u64,
                    product_id: r.try_get::<i64, _>(2)? as u32,
                })
            })
            .collect()
    }

    /// Replaces the service alerts with those of the newest accepted feed message
    /// (`(id, JSON body)`); one transaction, so readers never see half a set.
    pub async fn replace_alerts(&self, alerts: &[(String, String)], now: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM service_alerts").execute(&mut *tx).await?;
        for (id, body) in alerts {
            sqlx::query(
                "INSERT INTO service_alerts (alert_id, body, received_at) VALUES ($1, $2, $3)
                 ON CONFLICT (alert_id) DO UPDATE SET body = excluded.body",
            )
            .bind(id)
            .bind(body)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Current service alerts as stored JSON bodies, by id.
    pub async fn alerts(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT body FROM service_alerts ORDER BY alert_id").fetch_all(&self.pool).await?)
    }

    /// Claims per reason and outcome: `(reason, status, count)`.
    pub async fn claim_counts(&self) -> Result<Vec<(String, String, i64)>> {
        let rows = sqlx::query(
            "SELECT reason, status, CAST(COUNT(*) AS BIGINT) FROM delay_claims GROUP BY reason, status ORDER BY reason, status",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
    }

    /// Late runs per route, most first.
    pub async fn delays_per_route(&self) -> Result<Vec<RouteDelays>> {
        let rows = sqlx::query(
            "SELECT route_id, CAST(COUNT(*) AS BIGINT) AS runs, MAX(max_minutes) AS worst, CAST(SUM(cancelled) AS BIGINT)
             FROM delays GROUP BY route_id ORDER BY runs DESC, route_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RouteDelays {
                    route_id: r.try_get(0)?,
                    runs: r.try_get(1)?,
                    worst_minutes: r.try_get(2)?,
                    cancelled: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Vouchers issued and redeemed, per operator they are redeemable at.
    pub async fn voucher_stats(&self) -> Result<Vec<VoucherStats>> {
        let rows = sqlx::query(
            // PostgreSQL's SUM(BIGINT) is NUMERIC, which sqlx's Any driver cannot read: cast back.
            "SELECT operator_id, COUNT(*), CAST(COALESCE(SUM(value), 0) AS BIGINT),
                    CAST(SUM(CASE WHEN redeemed_by IS NULL THEN 0 ELSE 1 END) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN redeemed_by IS NULL THEN 0 ELSE value END), 0) AS BIGINT)
             FROM vouchers GROUP BY operator_id ORDER BY operator_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(VoucherStats {
                    operator_id: r.try_get::<i64, _>(0)? as u32,
                    issued: r.try_get(1)?,
                    issued_value: r.try_get(2)?,
                    redeemed: r.try_get(3)?,
                    redeemed_value: r.try_get(4)?,
                })
            })
            .collect()
    }
}

impl Store {
    /// Stores a newly accepted timetable as the operator's next version; returns the version.
    pub async fn save_timetable(&self, slug: &str, summary: &str, feed_b64: &str, now: i64) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM timetables WHERE operator_slug = $1")
            .bind(slug)
            .fetch_one(&mut *tx)
            .await?;
        let version = row.try_get::<i64, _>(0)? + 1;
        sqlx::query(
            "INSERT INTO timetables (operator_slug, version, imported_at, summary, feed) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(slug)
        .bind(version)
        .bind(now)
        .bind(summary)
        .bind(feed_b64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(version)
    }

    /// Each operator's current (newest) timetable.
    pub async fn current_timetables(&self) -> Result<Vec<TimetableRow>> {
        let rows = sqlx::query(
            "SELECT t.operator_slug, t.version, t.imported_at, t.summary, t.feed FROM timetables t
             WHERE t.version = (SELECT MAX(version) FROM timetables u WHERE u.operator_slug = t.operator_slug)
             ORDER BY t.operator_slug",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TimetableRow {
                    operator_slug: r.try_get(0)?,
                    version: r.try_get(1)?,
                    imported_at: r.try_get(2)?,
                    summary: r.try_get(3)?,
                    feed: r.try_get(4)?,
                })
            })
            .collect()
    }
}
