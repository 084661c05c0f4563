//! The audit log table: appending an entry chained to the last one, reading it back in pages
//! for `kippu audit verify`, and searching it for the portal.

use kippu_domain::audit::{chain, AuditAction, AuditEntry, AuditRecord};
use sqlx::Row;

use crate::{Result, Store, StoreError};

/// How many times an append retries after losing a race for the next `seq` to another process.
const APPEND_ATTEMPTS: usize = 8;

pub use kippu_domain::audit::AuditFilter;

fn hex32(s: &str) -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| StoreError::Corrupt("audit_log hash"))?;
    Ok(out)
}

fn entry(r: &sqlx::any::AnyRow) -> Result<AuditEntry> {
    let action: String = r.try_get("action")?;
    Ok(AuditEntry {
        seq: r.try_get("seq")?,
        record: AuditRecord {
            at: r.try_get("at")?,
            actor: r.try_get("actor")?,
            organisation: r.try_get("organisation")?,
            action: AuditAction::parse(&action).ok_or(StoreError::Corrupt("audit_log.action"))?,
            target: r.try_get("target")?,
            client: r.try_get("client")?,
        },
        prev_hash: hex32(&r.try_get::<String, _>("prev_hash")?)?,
        hash: hex32(&r.try_get::<String, _>("hash")?)?,
    })
}

const COLUMNS: &str = "seq, at, actor, organisation, action, target, client, prev_hash, hash";

impl Store {
    /// Appends `record` after the newest entry, in one transaction. Appends from several
    /// processes take turns; should two ever read the same head, the second insert fails on
    /// `seq` and is retried on the new head, so the chain never forks.
    pub async fn append_audit(&self, record: &AuditRecord) -> Result<AuditEntry> {
        let mut last_err = None;
        for _ in 0..APPEND_ATTEMPTS {
            let mut tx = self.pool.begin().await?;
            // Appends take turns, so the head read is the head written after: on PostgreSQL
            // under a transaction-scoped advisory lock, on SQLite under its write lock.
            if self.batching != crate::ingest::Batching::SQLITE {
                sqlx::query("SELECT pg_advisory_xact_lock(7262001)").execute(&mut *tx).await?;
            } else {
                // Write first, so this transaction takes SQLite's write lock (waiting its busy
                // timeout) before it reads the head: two readers that both then try to write
                // would have one of them refused at once ("database is locked").
                sqlx::query("UPDATE audit_log SET seq = seq WHERE seq < 0").execute(&mut *tx).await?;
            }
            let head = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| Ok::<_, StoreError>((r.try_get::<i64, _>(0)?, hex32(&r.try_get::<String, _>(1)?)?)))
                .transpose()?;
            let e = chain(head, record.clone());
            let inserted =
                sqlx::query(&format!("INSERT INTO audit_log ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"))
                    .bind(e.seq)
                    .bind(e.record.at)
                    .bind(&e.record.actor)
                    .bind(&e.record.organisation)
                    .bind(e.record.action.as_str())
                    .bind(&e.record.target)
                    .bind(&e.record.client)
                    .bind(hex::encode(e.prev_hash))
                    .bind(hex::encode(e.hash))
                    .execute(&mut *tx)
                    .await;
            match inserted {
                Ok(_) => {
                    tx.commit().await?;
                    return Ok(e);
                }
                Err(err) => {
                    last_err = Some(err);
                    tx.rollback().await.ok();
                }
            }
        }
        Err(last_err.map(StoreError::Db).unwrap_or(StoreError::Corrupt("audit_log append")))
    }

    /// Up to `limit` entries after `after_seq`, oldest first (for verifying in pages).
    pub async fn audit_page(&self, after_seq: i64, limit: i64) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"))
            .bind(after_seq)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(entry).collect()
    }

    /// The newest `limit` entries matching `f`, newest first.
    pub async fn audit_search(&self, f: &AuditFilter, limit: i64) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_log
             WHERE ($1 = '' OR organisation = $1) AND ($2 = '' OR action = $2)
               AND ($3 = '' OR actor LIKE '%' || $3 || '%') AND at >= $4 AND at < $5
             ORDER BY seq DESC LIMIT $6"
        ))
        .bind(f.organisation.clone().unwrap_or_default())
        .bind(f.action.map(|a| a.as_str()).unwrap_or_default())
        .bind(f.actor.clone().unwrap_or_default())
        .bind(f.since.unwrap_or(i64::MIN))
        .bind(f.until.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry).collect()
    }
}
