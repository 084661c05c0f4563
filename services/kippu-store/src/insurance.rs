//! Read models of the delay dashboard.

use sqlx::Row;

use crate::{Result, Store};

/// Late runs per route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDelays {
    /// GTFS route id.
    pub route_id: String,
    /// Late trip runs.
    pub runs: i64,
    /// Worst delay, minutes.
    pub worst_minutes: i64,
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

impl Store {
    /// Records (or raises) the delay of one late trip run.
    pub async fn record_delay(
        &self,
        delay_id: &str,
        trip_id: &str,
        route_id: &str,
        minutes: u32,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO delays (delay_id, trip_id, route_id, max_minutes, first_seen, last_seen) VALUES ($1, $2, $3, $4, $5, $5)
             ON CONFLICT (delay_id) DO UPDATE SET
               max_minutes = CASE WHEN excluded.max_minutes > delays.max_minutes THEN excluded.max_minutes ELSE delays.max_minutes END,
               last_seen = excluded.last_seen",
        )
        .bind(delay_id)
        .bind(trip_id)
        .bind(route_id)
        .bind(i64::from(minutes))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Late runs per route, most first.
    pub async fn delays_per_route(&self) -> Result<Vec<RouteDelays>> {
        let rows = sqlx::query(
            "SELECT route_id, COUNT(*) AS runs, MAX(max_minutes) AS worst FROM delays GROUP BY route_id ORDER BY runs DESC, route_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(RouteDelays { route_id: r.try_get(0)?, runs: r.try_get(1)?, worst_minutes: r.try_get(2)? }))
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
