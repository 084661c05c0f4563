//! Leases: a job that must run in one process at a time runs where its lease is held.

use crate::{Result, Store};

impl Store {
    /// Takes or renews lease `name` for `holder` until `now + ttl_secs`: `true` when `holder`
    /// holds it now (it held it already, or the last holder let it expire), `false` when
    /// another holder's lease is still running. One statement, so two processes asking at once
    /// cannot both win.
    pub async fn lead(&self, name: &str, holder: &str, now: i64, ttl_secs: i64) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = $2, expires_at = $3
             WHERE leases.holder = $2 OR leases.expires_at <= $4",
        )
        .bind(name)
        .bind(holder)
        .bind(now + ttl_secs)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
