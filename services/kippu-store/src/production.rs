//! What the production runtime keeps besides the ledger: MQTT credentials (hashes only), tap
//! batches on their way to the chain, and the sealed columns `kippu rotate-master-key` re-wraps.

use alloy_primitives::Address;
use sqlx::Row;

use crate::{addr, parse_addr, tap_from_row, Result, Store, StoreError, TapRow};

pub use kippu_domain::model::{CredentialRow, OpenBatch};

fn credential_from_row(r: &sqlx::any::AnyRow) -> Result<CredentialRow> {
    Ok(CredentialRow {
        username: r.try_get(0)?,
        kind: r.try_get(1)?,
        secret_sha256: r.try_get(2)?,
        mosquitto_line: r.try_get(3)?,
        issued_at: r.try_get(4)?,
        revoked_at: r.try_get(5)?,
    })
}

const CREDENTIAL_COLUMNS: &str = "username, kind, secret_sha256, mosquitto_line, issued_at, revoked_at";

impl Store {
    // ---- MQTT credentials ------------------------------------------------

    /// Issues (or replaces) `username`'s credential: the previous one stops working at once.
    pub async fn put_credential(
        &self,
        username: &str,
        kind: &str,
        secret_sha256: &str,
        mosquitto_line: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO mqtt_credentials (username, kind, secret_sha256, mosquitto_line, issued_at, revoked_at)
             VALUES ($1, $2, $3, $4, $5, NULL)
             ON CONFLICT (username) DO UPDATE SET kind = excluded.kind, secret_sha256 = excluded.secret_sha256,
                 mosquitto_line = excluded.mosquitto_line, issued_at = excluded.issued_at, revoked_at = NULL",
        )
        .bind(username)
        .bind(kind)
        .bind(secret_sha256)
        .bind(mosquitto_line)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Revokes `username`'s credential; false when it has none or it is revoked already.
    pub async fn revoke_credential(&self, username: &str, now: i64) -> Result<bool> {
        let r = sqlx::query("UPDATE mqtt_credentials SET revoked_at = $2 WHERE username = $1 AND revoked_at IS NULL")
            .bind(username)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// `username`'s credential, revoked or not.
    pub async fn credential(&self, username: &str) -> Result<Option<CredentialRow>> {
        let row = sqlx::query(&format!("SELECT {CREDENTIAL_COLUMNS} FROM mqtt_credentials WHERE username = $1"))
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(credential_from_row).transpose()
    }

    /// Every credential that is not revoked, by username.
    pub async fn active_credentials(&self) -> Result<Vec<CredentialRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM mqtt_credentials WHERE revoked_at IS NULL ORDER BY username"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(credential_from_row).collect()
    }

    // ---- tap batches -------------------------------------------------------

    /// Taps in no batch yet whose ticket the ledger holds, oldest first (a tap of a ticket the
    /// ledger does not hold — its purchase reorged away or not yet booked — waits).
    pub async fn unbatched_taps(&self, limit: i64) -> Result<Vec<TapRow>> {
        let rows = sqlx::query(
            "SELECT scan_id, ticket_id, operator_id, gate_key, at FROM taps
             WHERE batch_key IS NULL AND batch_id IS NULL AND EXISTS (SELECT 1 FROM tickets k WHERE k.id = taps.ticket_id)
             ORDER BY at, scan_id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(tap_from_row).collect()
    }

    /// Fixes a batch: its row and its taps' key, in one transaction, before anything is sent.
    /// Fails (and changes nothing) if one of the taps was batched meanwhile.
    pub async fn open_batch(&self, batch_key: &str, scan_ids: &[String], now: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO ride_batches (batch_key, tap_count, created_at) VALUES ($1, $2, $3)")
            .bind(batch_key)
            .bind(scan_ids.len() as i64)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        for id in scan_ids {
            let r = sqlx::query("UPDATE taps SET batch_key = $2 WHERE scan_id = $1 AND batch_key IS NULL")
                .bind(id)
                .bind(batch_key)
                .execute(&mut *tx)
                .await?;
            if r.rows_affected() != 1 {
                return Err(StoreError::Corrupt("taps.batch_key (a tap joined two batches)"));
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The oldest batch not fully on chain, with its taps in batch order.
    pub async fn open_batch_pending(&self) -> Result<Option<OpenBatch>> {
        let Some(row) = sqlx::query(
            "SELECT batch_key, rides_tx FROM ride_batches WHERE anchored_at IS NULL ORDER BY created_at, batch_key LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let batch_key: String = row.try_get(0)?;
        let rides_tx: Option<String> = row.try_get(1)?;
        let taps = sqlx::query(
            "SELECT scan_id, ticket_id, operator_id, gate_key, at FROM taps WHERE batch_key = $1 ORDER BY at, scan_id",
        )
        .bind(&batch_key)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(tap_from_row)
        .collect::<Result<_>>()?;
        Ok(Some(OpenBatch { batch_key, rides_recorded: rides_tx.is_some(), taps }))
    }

    /// Records that a batch's rides are on chain, and which the contract refused
    /// (`(scan id, reason)`).
    pub async fn rides_recorded(
        &self,
        batch_key: &str,
        tx_hash: &str,
        recorded: u64,
        refused: &[(String, String)],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE ride_batches SET rides_tx = $2, rides_recorded = $3, rides_refused = $4 WHERE batch_key = $1",
        )
        .bind(batch_key)
        .bind(tx_hash)
        .bind(recorded as i64)
        .bind(refused.len() as i64)
        .execute(&mut *tx)
        .await?;
        for (scan_id, reason) in refused {
            sqlx::query("UPDATE taps SET ride_refusal = $2 WHERE scan_id = $1")
                .bind(scan_id)
                .bind(reason)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records that a batch is anchored on chain as `batch_id`.
    pub async fn batch_anchored(&self, batch_key: &str, batch_id: u64, now: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE taps SET batch_id = $2 WHERE batch_key = $1")
            .bind(batch_key)
            .bind(batch_id as i64)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE ride_batches SET anchored_at = $2 WHERE batch_key = $1")
            .bind(batch_key)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Taps whose ride the contract refused: `(scan id, ticket, reason)`.
    pub async fn refused_rides(&self) -> Result<Vec<(String, u64, String)>> {
        let rows = sqlx::query(
            "SELECT scan_id, ticket_id, ride_refusal FROM taps WHERE ride_refusal IS NOT NULL ORDER BY at, scan_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get::<i64, _>(1)? as u64, r.try_get(2)?))).collect()
    }

    // ---- sealed columns ----------------------------------------------------

    /// Every value sealed under the master key: travelers' custodial keys `(address, sealed)` and
    /// hosted issuers' seeds `(did, sealed)`.
    pub async fn sealed_values(&self) -> Result<(Vec<(Address, String)>, Vec<(String, String)>)> {
        let travelers = sqlx::query("SELECT address, sealed_key FROM travelers WHERE sealed_key IS NOT NULL")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((parse_addr(&r.try_get::<String, _>(0)?)?, r.try_get(1)?)))
            .collect::<Result<_>>()?;
        let issuers = sqlx::query("SELECT did, sealed_seed FROM issuers")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_>>()?;
        Ok((travelers, issuers))
    }

    /// Replaces sealed values (after re-sealing under a new master key), all in one transaction.
    pub async fn replace_sealed_values(
        &self,
        travelers: &[(Address, String)],
        issuers: &[(String, String)],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (address, sealed) in travelers {
            sqlx::query("UPDATE travelers SET sealed_key = $2 WHERE address = $1")
                .bind(addr(address))
                .bind(sealed)
                .execute(&mut *tx)
                .await?;
        }
        for (did, sealed) in issuers {
            sqlx::query("UPDATE issuers SET sealed_seed = $2 WHERE did = $1")
                .bind(did)
                .bind(sealed)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
