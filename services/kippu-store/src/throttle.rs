//! Failed-attempt counts per key, in the database so a lock holds across processes.

use kippu_domain::throttle::{lock_after, verdict, Policy, Verdict};
use sqlx::Row;

use crate::{Result, Store};

impl Store {
    /// Whether `scope`/`key` may try now.
    pub async fn throttle_verdict(&self, scope: &str, key: &str, now: i64) -> Result<Verdict> {
        let locked_until = sqlx::query("SELECT locked_until FROM throttle WHERE scope = $1 AND key = $2")
            .bind(scope)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get::<i64, _>(0))
            .transpose()?
            .unwrap_or(0);
        Ok(verdict(locked_until, now))
    }

    /// Counts a failure of `scope`/`key` at `now` (one statement, so concurrent failures from
    /// several processes all count) and locks the key once the policy says so. Returns the
    /// verdict after it.
    pub async fn throttle_failure(&self, scope: &str, key: &str, now: i64, p: &Policy) -> Result<Verdict> {
        let window_open = now - p.window_secs;
        let row = sqlx::query(
            "INSERT INTO throttle (scope, key, failures, window_start, locked_until) VALUES ($1, $2, 1, $3, 0)
             ON CONFLICT (scope, key) DO UPDATE SET
                 failures = CASE WHEN throttle.window_start <= $4 THEN 1 ELSE throttle.failures + 1 END,
                 window_start = CASE WHEN throttle.window_start <= $4 THEN $3 ELSE throttle.window_start END
             RETURNING failures, locked_until",
        )
        .bind(scope)
        .bind(key)
        .bind(now)
        .bind(window_open)
        .fetch_one(&self.pool)
        .await?;
        let failures: i64 = row.try_get(0)?;
        let locked_until: i64 = row.try_get(1)?;
        match lock_after(failures.clamp(0, i64::from(u32::MAX)) as u32, now, p) {
            Some(until) if until > locked_until => {
                sqlx::query("UPDATE throttle SET locked_until = $3, failures = 0, window_start = $4 WHERE scope = $1 AND key = $2")
                    .bind(scope)
                    .bind(key)
                    .bind(until)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(verdict(until, now))
            }
            _ => Ok(verdict(locked_until, now)),
        }
    }

    /// Forgets `scope`/`key`'s failures (a successful sign-in); a lock in force stays.
    pub async fn throttle_success(&self, scope: &str, key: &str, now: i64) -> Result<()> {
        sqlx::query("DELETE FROM throttle WHERE scope = $1 AND key = $2 AND locked_until <= $3")
            .bind(scope)
            .bind(key)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
