//! The chain-write outbox's table (issue 20): writes recorded once per business key, their
//! stage as the sender follows them, and the open ones the sender works through. The rules
//! are `kippu_domain::outbox`'s; this only stores them.

use kippu_app::ports::{WriteCounts, WriteState};
use kippu_domain::outbox::{PreparedWrite, RecordedWrite, Stage, StageChange, Write, WriteKey, WriteKind};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Result, Store, StoreError};

const COLUMNS: &str = "kind, business_id, call, sender, stage, nonce, tx_hash, sent_at, block, block_hash, attempts, \
                       confirmed_once, reason, raw_tx, revert_data, created_at, updated_at";

fn h32(s: Option<String>, what: &'static str) -> Result<[u8; 32]> {
    let s = s.ok_or(StoreError::Corrupt(what))?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(s.trim_start_matches("0x"), &mut out).map_err(|_| StoreError::Corrupt(what))?;
    Ok(out)
}

fn u(v: Option<i64>, what: &'static str) -> Result<u64> {
    v.and_then(|v| u64::try_from(v).ok()).ok_or(StoreError::Corrupt(what))
}

fn recorded(r: &AnyRow) -> Result<RecordedWrite> {
    let kind: String = r.try_get(0)?;
    let stage: String = r.try_get(4)?;
    let tx: Option<String> = r.try_get(6)?;
    let block: Option<i64> = r.try_get(8)?;
    let stage = match stage.as_str() {
        "recorded" => Stage::Recorded,
        "sent" => Stage::Sent {
            tx: h32(tx, "chain_writes.tx_hash")?,
            at: r.try_get::<Option<i64>, _>(7)?.ok_or(StoreError::Corrupt("chain_writes.sent_at"))?,
        },
        "included" => Stage::Included {
            tx: h32(tx, "chain_writes.tx_hash")?,
            block: u(block, "chain_writes.block")?,
            block_hash: h32(r.try_get(9)?, "chain_writes.block_hash")?,
        },
        "confirmed" => {
            Stage::Confirmed { tx: h32(tx, "chain_writes.tx_hash")?, block: u(block, "chain_writes.block")? }
        }
        "failed" => Stage::Failed { reason: r.try_get::<Option<String>, _>(12)?.unwrap_or_default() },
        _ => return Err(StoreError::Corrupt("chain_writes.stage")),
    };
    let attempts: i64 = r.try_get(10)?;
    let confirmed_once: i64 = r.try_get(11)?;
    Ok(RecordedWrite {
        write: Write {
            key: WriteKey {
                kind: kind.parse::<WriteKind>().map_err(|_| StoreError::Corrupt("chain_writes.kind"))?,
                id: r.try_get(1)?,
            },
            stage,
            attempts: u32::try_from(attempts).map_err(|_| StoreError::Corrupt("chain_writes.attempts"))?,
            confirmed_once: confirmed_once != 0,
        },
        call: r.try_get(2)?,
        sender: r.try_get(3)?,
        nonce: r.try_get::<Option<i64>, _>(5)?.and_then(|n| u64::try_from(n).ok()),
        raw_tx: r.try_get(13)?,
        revert_data: r.try_get(14)?,
        created_at: r.try_get(15)?,
        updated_at: r.try_get(16)?,
    })
}

fn hex32(b: &[u8; 32]) -> String {
    format!("0x{}", hex::encode(b))
}

/// Records a write once per key; a `failed` one is re-opened with the new call (see
/// [`Store::record_write`]). Binds: kind, business id, call, sender, now.
const RECORD_WRITE: &str =
    "INSERT INTO chain_writes (kind, business_id, call, sender, stage, attempts, confirmed_once, created_at, updated_at)
     VALUES ($1, $2, $3, $4, 'recorded', 0, 0, $5, $5)
     ON CONFLICT (kind, business_id) DO UPDATE SET call = excluded.call, sender = excluded.sender,
         stage = 'recorded', reason = NULL, revert_data = NULL, raw_tx = NULL, nonce = NULL, tx_hash = NULL,
         updated_at = excluded.updated_at
     WHERE chain_writes.stage = 'failed'";

impl Store {
    /// Records a write for `key`, once: `false` (nothing changed) if the key has one already,
    /// so a business fact retried records no second write. A write the contract refused
    /// (`failed`) is the exception: the fact retried (a webhook delivered again, the traveler
    /// trying again once the reason is gone) re-opens it with the new call, as a fresh write.
    pub async fn record_write(&self, key: &WriteKey, call: &str, sender: &str, now: i64) -> Result<bool> {
        let done = sqlx::query(RECORD_WRITE)
            .bind(key.kind.as_str())
            .bind(&key.id)
            .bind(call)
            .bind(sender)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks a payment paid and records its mint, in one transaction (see
    /// [`kippu_app::ports::Store::mark_paid_recording`]).
    pub async fn mark_paid_recording(&self, session_id: &str, mint: &PreparedWrite, now: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE payments SET status = 'paid' WHERE session_id = $1 AND status = 'open'")
            .bind(session_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(RECORD_WRITE)
            .bind(mint.key.kind.as_str())
            .bind(&mint.key.id)
            .bind(&mint.call)
            .bind(&mint.sender)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The writes a `WHERE … ORDER BY … ` clause with one integer parameter selects.
    async fn writes_where(&self, clause: &str, param: i64) -> Result<Vec<RecordedWrite>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM chain_writes {clause}"))
            .bind(param)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(recorded).collect()
    }

    /// One write by key.
    pub async fn recorded_write(&self, key: &WriteKey) -> Result<Option<RecordedWrite>> {
        sqlx::query(&format!("SELECT {COLUMNS} FROM chain_writes WHERE kind = $1 AND business_id = $2"))
            .bind(key.kind.as_str())
            .bind(&key.id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(recorded)
            .transpose()
    }

    /// Writes not yet confirmed nor failed, least recently touched first: what the sender
    /// follows. Confirmed ones are followed by reconciliation instead.
    pub async fn open_writes(&self, limit: i64) -> Result<Vec<RecordedWrite>> {
        self.writes_where(
            "WHERE stage IN ('recorded', 'sent', 'included') ORDER BY updated_at, kind, business_id LIMIT $1",
            limit,
        )
        .await
    }

    /// Writes that were confirmed in block `from_block` or later: reconciliation checks they
    /// are still on the chain.
    pub async fn confirmed_writes_since(&self, from_block: u64) -> Result<Vec<RecordedWrite>> {
        let from_block = i64::try_from(from_block).unwrap_or(i64::MAX);
        self.writes_where("WHERE stage = 'confirmed' AND block >= $1 ORDER BY block, kind, business_id", from_block)
            .await
    }

    /// The admin page's list: every write not confirmed (pending, stuck, failed, gone) and the
    /// latest confirmed ones, most recently changed first.
    pub async fn recent_writes(&self, limit: i64) -> Result<Vec<RecordedWrite>> {
        self.writes_where(
            "ORDER BY CASE WHEN stage = 'confirmed' THEN 1 ELSE 0 END, updated_at DESC, kind, business_id LIMIT $1",
            limit,
        )
        .await
    }

    /// How many writes stand where: the open ones by stage, of them the stuck (`stuck_after`
    /// attempts or more) and the gone (confirmed once, open again), the failed, and those
    /// confirmed at `confirmed_since` or later. Reads only the open, failed and recently
    /// confirmed rows (the `(stage, updated_at)` index), not the whole history.
    pub async fn write_counts(&self, stuck_after: u32, confirmed_since: i64) -> Result<WriteCounts> {
        let rows = sqlx::query(
            "SELECT stage, COUNT(*), COUNT(CASE WHEN attempts >= $1 THEN 1 END),
                 COUNT(CASE WHEN confirmed_once <> 0 THEN 1 END)
             FROM chain_writes
             WHERE stage IN ('recorded', 'sent', 'included', 'failed') OR (stage = 'confirmed' AND updated_at >= $2)
             GROUP BY stage",
        )
        .bind(i64::from(stuck_after))
        .bind(confirmed_since)
        .fetch_all(&self.pool)
        .await?;
        let mut c = WriteCounts::default();
        for r in &rows {
            let stage: String = r.try_get(0)?;
            let n = |i: usize| -> Result<u64> {
                u64::try_from(r.try_get::<i64, _>(i)?).map_err(|_| StoreError::Corrupt("chain_writes: a count"))
            };
            let open = match stage.as_str() {
                "recorded" => &mut c.recorded,
                "sent" => &mut c.sent,
                "included" => &mut c.included,
                "failed" => {
                    c.failed = n(1)?;
                    continue;
                }
                "confirmed" => {
                    c.confirmed = n(1)?;
                    continue;
                }
                _ => return Err(StoreError::Corrupt("chain_writes.stage")),
            };
            *open = n(1)?;
            c.stuck += n(2)?;
            c.gone += n(3)?;
        }
        Ok(c)
    }

    /// The writes in `state` (stuck: `stuck_after` attempts or more), most recently changed
    /// first, at most `limit`; [`WriteState::All`] lists as [`Store::recent_writes`] does.
    pub async fn writes_in_state(&self, state: WriteState, stuck_after: u32, limit: i64) -> Result<Vec<RecordedWrite>> {
        const OPEN: &str = "stage IN ('recorded', 'sent', 'included')";
        let clause = match state {
            WriteState::All => return self.recent_writes(limit).await,
            WriteState::Pending => format!("WHERE {OPEN}"),
            WriteState::Stuck => format!("WHERE {OPEN} AND attempts >= {}", i64::from(stuck_after)),
            WriteState::Gone => format!("WHERE {OPEN} AND confirmed_once <> 0"),
            WriteState::Failed => "WHERE stage = 'failed'".to_owned(),
            WriteState::Confirmed => "WHERE stage = 'confirmed'".to_owned(),
        };
        self.writes_where(&format!("{clause} ORDER BY updated_at DESC, kind, business_id LIMIT $1"), limit).await
    }

    /// Records a write's new stage (and, for a new attempt, its nonce, signed transaction and
    /// count). Once confirmed, a write stays marked as having been confirmed, whatever happens
    /// after.
    pub async fn set_write_stage(&self, key: &WriteKey, change: &StageChange, now: i64) -> Result<()> {
        let (name, tx, sent_at, block, block_hash, reason) = match &change.stage {
            Stage::Recorded => ("recorded", None, None, None, None, None),
            Stage::Sent { tx, at } => ("sent", Some(hex32(tx)), Some(*at), None, None, None),
            Stage::Included { tx, block, block_hash } => {
                ("included", Some(hex32(tx)), None, Some(*block), Some(hex32(block_hash)), None)
            }
            Stage::Confirmed { tx, block } => ("confirmed", Some(hex32(tx)), None, Some(*block), None, None),
            Stage::Failed { reason } => ("failed", None, None, None, None, Some(reason.clone())),
        };
        let block = block.map(|b| i64::try_from(b).unwrap_or(i64::MAX));
        let nonce = change.nonce.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        let done = sqlx::query(
            "UPDATE chain_writes SET stage = $3, tx_hash = COALESCE($4, tx_hash), sent_at = COALESCE($5, sent_at),
                 block = $6, block_hash = $7, reason = $8, attempts = $9, nonce = COALESCE($10, nonce),
                 raw_tx = COALESCE($12, raw_tx), revert_data = $13,
                 confirmed_once = CASE WHEN $3 = 'confirmed' THEN 1 ELSE confirmed_once END, updated_at = $11
             WHERE kind = $1 AND business_id = $2",
        )
        .bind(key.kind.as_str())
        .bind(&key.id)
        .bind(name)
        .bind(tx)
        .bind(sent_at)
        .bind(block)
        .bind(block_hash)
        .bind(reason)
        .bind(i64::from(change.attempts))
        .bind(nonce)
        .bind(now)
        .bind(change.raw_tx.clone())
        .bind(change.revert_data.clone())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Corrupt("chain_writes: no such write"));
        }
        Ok(())
    }
}
