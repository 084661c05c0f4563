//! Password logins and certified devices.

use alloy_primitives::Address;
use kippu_domain::events::ChainEvent;
use sqlx::Row;

use crate::{addr, parse_addr, Result, Store, StoreError};

pub use kippu_domain::model::{DeviceRow, PasskeyRow, PlanReceipt};

fn key32(text: &str, what: &'static str) -> Result<[u8; 32]> {
    alloy_primitives::hex::decode(text).ok().and_then(|k| <[u8; 32]>::try_from(k).ok()).ok_or(StoreError::Corrupt(what))
}

fn device_from_row(r: &sqlx::any::AnyRow) -> Result<DeviceRow> {
    Ok(DeviceRow {
        device_key: key32(&r.try_get::<String, _>(0)?, "device key")?,
        holder: parse_addr(&r.try_get::<String, _>(1)?)?,
        cert_expiry: r.try_get(2)?,
        label: r.try_get(3)?,
        created_at: r.try_get(4)?,
        revoked_at: r.try_get(5)?,
    })
}

const DEVICE_COLUMNS: &str = "device_key, holder, cert_expiry, label, created_at, revoked_at";

impl Store {
    /// Creates an account: the traveler and its password login together, so a sign-up that
    /// loses a race for its e-mail leaves no traveler behind. `false` if the e-mail is taken.
    pub async fn create_account(&self, t: &crate::Traveler, email: &str, hash: &str, now: i64) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let login = sqlx::query(
            "INSERT INTO password_logins (email, address, password_hash, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(email)
        .bind(addr(&t.address))
        .bind(hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if login.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO travelers (address, did, display_name, sealed_key, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(addr(&t.address))
        .bind(&t.did)
        .bind(&t.display_name)
        .bind(t.sealed_key.clone())
        .bind(t.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records a password login for an account; `false` if the e-mail is taken.
    pub async fn create_password_login(&self, email: &str, address: &Address, hash: &str, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO password_logins (email, address, password_hash, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(email)
        .bind(addr(address))
        .bind(hash)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The account and password hash for an e-mail.
    pub async fn password_login(&self, email: &str) -> Result<Option<(Address, String)>> {
        let row = sqlx::query("SELECT address, password_hash FROM password_logins WHERE email = $1")
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((parse_addr(&r.try_get::<String, _>(0)?)?, r.try_get(1)?))).transpose()
    }

    /// The e-mail an account signs in with, if it has a password login.
    pub async fn email_of(&self, address: &Address) -> Result<Option<String>> {
        let row = sqlx::query("SELECT email FROM password_logins WHERE address = $1")
            .bind(addr(address))
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get(0).map_err(StoreError::from)).transpose()
    }

    /// Records (or re-certifies) a device.
    pub async fn upsert_device(&self, d: &DeviceRow) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO devices ({DEVICE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, NULL) \
             ON CONFLICT (device_key) DO UPDATE SET cert_expiry = excluded.cert_expiry, label = excluded.label"
        ))
        .bind(alloy_primitives::hex::encode(d.device_key))
        .bind(addr(&d.holder))
        .bind(d.cert_expiry)
        .bind(&d.label)
        .bind(d.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A device by key.
    pub async fn device(&self, key: &[u8; 32]) -> Result<Option<DeviceRow>> {
        let row = sqlx::query(&format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE device_key = $1"))
            .bind(alloy_primitives::hex::encode(key))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(device_from_row).transpose()
    }

    /// An account's devices, newest first.
    pub async fn devices_of(&self, holder: &Address) -> Result<Vec<DeviceRow>> {
        let rows =
            sqlx::query(&format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE holder = $1 ORDER BY created_at DESC"))
                .bind(addr(holder))
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(device_from_row).collect()
    }

    /// Revokes one of `holder`'s devices and ends every session of the account but
    /// `keep_session` (the one revoking); `false`, changing nothing, if it has no such device.
    /// A lost phone is usually still signed in: left so, it would just have a new key certified.
    pub async fn revoke_device(&self, key: &[u8; 32], holder: &Address, now: i64, keep_session: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE devices SET revoked_at = COALESCE(revoked_at, $3) WHERE device_key = $1 AND holder = $2",
        )
        .bind(alloy_primitives::hex::encode(key))
        .bind(addr(holder))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("DELETE FROM sessions WHERE address = $1 AND token <> $2")
            .bind(addr(holder))
            .bind(keep_session)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Every revoked device key (for the validator at start-up).
    pub async fn revoked_devices(&self) -> Result<Vec<[u8; 32]>> {
        let rows =
            sqlx::query("SELECT device_key FROM devices WHERE revoked_at IS NOT NULL").fetch_all(&self.pool).await?;
        rows.iter().map(|r| key32(&r.try_get::<String, _>(0)?, "device key")).collect()
    }
}

impl Store {
    /// A plan with the transaction that bought it.
    pub async fn plan_receipt(&self, plan_id: u64) -> Result<Option<PlanReceipt>> {
        let row = sqlx::query(
            "SELECT p.plan_id, p.traveler, p.bundle_id, p.price, p.valid_from, e.tx_hash, e.block_number \
             FROM plans p JOIN chain_events e ON e.event_key = p.event_key WHERE p.plan_id = $1",
        )
        .bind(plan_id as i64)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let mut receipt = PlanReceipt {
            plan_id: r.try_get::<i64, _>(0)? as u64,
            traveler: parse_addr(&r.try_get::<String, _>(1)?)?,
            bundle_id: r.try_get::<i64, _>(2)? as u32,
            price: r.try_get(3)?,
            valid_from: r.try_get(4)?,
            tx_hash: r.try_get(5)?,
            block_number: r.try_get(6)?,
            legs: vec![],
        };
        // The legs were sold in the purchase's own transaction; payloads are JSON, read here
        // rather than in SQL (SQLite and PostgreSQL read JSON differently).
        let sold = sqlx::query(
            "SELECT payload FROM chain_events WHERE block_number = $1 AND tx_hash = $2 AND kind = 'LegSold' \
             ORDER BY log_index",
        )
        .bind(receipt.block_number)
        .bind(&receipt.tx_hash)
        .fetch_all(&self.pool)
        .await?;
        for r in &sold {
            match serde_json::from_str(&r.try_get::<String, _>(0)?) {
                Ok(ChainEvent::LegSold { plan_id: p, ticket_id, operator_id, product_id, share }) if p == plan_id => {
                    receipt.legs.push((ticket_id, operator_id, product_id, share))
                }
                Ok(_) => {}
                Err(_) => return Err(StoreError::Corrupt("LegSold payload")),
            }
        }
        Ok(Some(receipt))
    }

    /// What ticket `ticket_id` of `traveler` was refunded (`TicketRefunded`), if it was.
    pub async fn refund_of(&self, ticket_id: u64, traveler: &Address) -> Result<Option<i64>> {
        // Only the traveler's own refunds: their account is credited by each.
        let rows = sqlx::query(
            "SELECT e.payload FROM ledger_postings p JOIN chain_events e ON e.event_key = p.event_key \
             WHERE p.account = $1 AND e.kind = 'TicketRefunded'",
        )
        .bind(format!("traveler:{}", addr(traveler)))
        .fetch_all(&self.pool)
        .await?;
        for r in &rows {
            if let Ok(ChainEvent::TicketRefunded { ticket_id: t, traveler: who, amount, .. }) =
                serde_json::from_str(&r.try_get::<String, _>(0)?)
            {
                if t == ticket_id && who == *traveler {
                    return Ok(Some(amount));
                }
            }
        }
        Ok(None)
    }
}

fn unhex(text: &str, what: &'static str) -> Result<Vec<u8>> {
    alloy_primitives::hex::decode(text).map_err(|_| StoreError::Corrupt(what))
}

fn passkey_from_row(r: &sqlx::any::AnyRow) -> Result<PasskeyRow> {
    Ok(PasskeyRow {
        credential_id: unhex(&r.try_get::<String, _>(0)?, "passkey id")?,
        holder: parse_addr(&r.try_get::<String, _>(1)?)?,
        user_handle: unhex(&r.try_get::<String, _>(2)?, "passkey user handle")?,
        static_state: unhex(&r.try_get::<String, _>(3)?, "passkey static state")?,
        dynamic_state: unhex(&r.try_get::<String, _>(4)?, "passkey dynamic state")?,
        created_at: r.try_get(5)?,
        last_used: r.try_get(6)?,
    })
}

const PASSKEY_COLUMNS: &str = "credential_id, holder, user_handle, static_state, dynamic_state, created_at, last_used";

impl Store {
    /// Stores a new passkey; `false` if its credential id is taken.
    pub async fn insert_passkey(&self, p: &PasskeyRow) -> Result<bool> {
        let done = sqlx::query(&format!(
            "INSERT INTO passkeys ({PASSKEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, NULL) ON CONFLICT (credential_id) DO NOTHING"
        ))
        .bind(alloy_primitives::hex::encode(&p.credential_id))
        .bind(addr(&p.holder))
        .bind(alloy_primitives::hex::encode(&p.user_handle))
        .bind(alloy_primitives::hex::encode(&p.static_state))
        .bind(alloy_primitives::hex::encode(&p.dynamic_state))
        .bind(p.created_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A passkey by credential id.
    pub async fn passkey(&self, credential_id: &[u8]) -> Result<Option<PasskeyRow>> {
        let row = sqlx::query(&format!("SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE credential_id = $1"))
            .bind(alloy_primitives::hex::encode(credential_id))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(passkey_from_row).transpose()
    }

    /// An account's passkeys, oldest first.
    pub async fn passkeys_of(&self, holder: &Address) -> Result<Vec<PasskeyRow>> {
        let rows =
            sqlx::query(&format!("SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE holder = $1 ORDER BY created_at"))
                .bind(addr(holder))
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(passkey_from_row).collect()
    }

    /// Records a sign-in with a passkey: its new counter and flags.
    pub async fn passkey_used(&self, credential_id: &[u8], dynamic_state: &[u8], now: i64) -> Result<()> {
        sqlx::query("UPDATE passkeys SET dynamic_state = $2, last_used = $3 WHERE credential_id = $1")
            .bind(alloy_primitives::hex::encode(credential_id))
            .bind(alloy_primitives::hex::encode(dynamic_state))
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
