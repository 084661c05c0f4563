//! Issuers, the trust list, issued and held credentials, key revocations, and
//! a traveler's personal-data export and erasure.

use alloy_primitives::Address;
use sqlx::Row;

use crate::{addr, Result, Store, StoreError};

pub use kippu_domain::model::{IssuedCredential, IssuerRow, WalletCredential};

fn issued_from_row(r: &sqlx::any::AnyRow) -> Result<IssuedCredential> {
    Ok(IssuedCredential {
        id: r.try_get(0)?,
        issuer_slug: r.try_get(1)?,
        holder_did: r.try_get(2)?,
        concession: r.try_get(3)?,
        status_index: r.try_get(4)?,
        issued_at: r.try_get(5)?,
        valid_until: r.try_get(6)?,
        revoked_at: r.try_get(7)?,
    })
}

const ISSUED_COLUMNS: &str =
    "id, issuer_slug, holder_did, concession, status_index, issued_at, valid_until, revoked_at";

impl Store {
    /// Adds an issuer, keeping an existing one's key (its DID document must not change under it).
    pub async fn insert_issuer(&self, i: &IssuerRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO issuers (slug, did, name, sealed_seed) VALUES ($1, $2, $3, $4)
             ON CONFLICT (slug) DO UPDATE SET name = excluded.name",
        )
        .bind(&i.slug)
        .bind(&i.did)
        .bind(&i.name)
        .bind(&i.sealed_seed)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// All hosted issuers.
    pub async fn issuers(&self) -> Result<Vec<IssuerRow>> {
        let rows =
            sqlx::query("SELECT slug, did, name, sealed_seed FROM issuers ORDER BY slug").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(IssuerRow {
                    slug: r.try_get(0)?,
                    did: r.try_get(1)?,
                    name: r.try_get(2)?,
                    sealed_seed: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Puts `issuer_did` on the trust list for `concession`.
    pub async fn trust(&self, issuer_did: &str, concession: &str) -> Result<()> {
        sqlx::query("INSERT INTO trust_list (issuer_did, concession) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(issuer_did)
            .bind(concession)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The whole trust list as (issuer DID, concession) pairs.
    pub async fn trust_list(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT issuer_did, concession FROM trust_list ORDER BY issuer_did, concession")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Records an issued credential at a free, randomly drawn status index.
    /// Returns the index.
    pub async fn record_issued(&self, c: &IssuedCredential, list_len: i64) -> Result<i64> {
        for _ in 0..32 {
            let index = rand::random::<u32>() as i64 % list_len;
            let r = sqlx::query(&format!(
                "INSERT INTO issued_credentials ({ISSUED_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)
                 ON CONFLICT (issuer_slug, status_index) DO NOTHING"
            ))
            .bind(&c.id)
            .bind(&c.issuer_slug)
            .bind(&c.holder_did)
            .bind(&c.concession)
            .bind(index)
            .bind(c.issued_at)
            .bind(c.valid_until)
            .execute(&self.pool)
            .await?;
            if r.rows_affected() == 1 {
                return Ok(index);
            }
        }
        Err(StoreError::Corrupt("status list full"))
    }

    /// An issuer's register, newest first.
    pub async fn issued_by(&self, issuer_slug: &str) -> Result<Vec<IssuedCredential>> {
        let rows = sqlx::query(&format!(
            "SELECT {ISSUED_COLUMNS} FROM issued_credentials WHERE issuer_slug = $1 ORDER BY issued_at DESC, id"
        ))
        .bind(issuer_slug)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(issued_from_row).collect()
    }

    /// Revokes an issued credential; `false` if it was unknown or already revoked.
    pub async fn revoke_issued(&self, issuer_slug: &str, id: &str, now: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE issued_credentials SET revoked_at = $3 WHERE issuer_slug = $1 AND id = $2 AND revoked_at IS NULL",
        )
        .bind(issuer_slug)
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Status indices an issuer has revoked: its status list's set bits.
    pub async fn revoked_indices(&self, issuer_slug: &str) -> Result<Vec<u64>> {
        let rows = sqlx::query(
            "SELECT status_index FROM issued_credentials WHERE issuer_slug = $1 AND revoked_at IS NOT NULL",
        )
        .bind(issuer_slug)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get::<i64, _>(0)? as u64)).collect()
    }

    /// Puts a credential in a traveler's wallet (replacing a copy with the same id).
    pub async fn add_to_wallet(&self, holder: &Address, id: &str, body: &str, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO wallet_credentials (id, holder, body, added_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (holder, id) DO UPDATE SET body = excluded.body",
        )
        .bind(id)
        .bind(addr(holder))
        .bind(body)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A traveler's wallet.
    pub async fn wallet(&self, holder: &Address) -> Result<Vec<WalletCredential>> {
        let rows =
            sqlx::query("SELECT id, body, added_at FROM wallet_credentials WHERE holder = $1 ORDER BY added_at, id")
                .bind(addr(holder))
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok(WalletCredential { id: r.try_get(0)?, body: r.try_get(1)?, added_at: r.try_get(2)? }))
            .collect()
    }

    /// Removes a credential from a traveler's wallet.
    pub async fn remove_from_wallet(&self, holder: &Address, id: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM wallet_credentials WHERE holder = $1 AND id = $2")
            .bind(addr(holder))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Revokes an account key: it can no longer sign in or sign passes, and its sessions end.
    pub async fn revoke_key(&self, address: &Address, reason: &str, now: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO key_revocations (address, revoked_at, reason) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(addr(address))
        .bind(now)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM sessions WHERE address = $1").bind(addr(address)).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// When and why an account key was revoked, if it was.
    pub async fn key_revocation(&self, address: &Address) -> Result<Option<(i64, String)>> {
        let row = sqlx::query("SELECT revoked_at, reason FROM key_revocations WHERE address = $1")
            .bind(addr(address))
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// Every revoked account, for the validators' deny-list.
    pub async fn revoked_keys(&self) -> Result<Vec<Address>> {
        let rows = sqlx::query("SELECT address FROM key_revocations").fetch_all(&self.pool).await?;
        rows.iter().map(|r| crate::parse_addr(&r.try_get::<String, _>(0)?)).collect()
    }

    /// Everything Kippu holds about a traveler (GDPR article 15), as JSON.
    pub async fn export_personal_data(&self, address: &Address, did: &str) -> Result<serde_json::Value> {
        use serde_json::json;
        let a = addr(address);
        let profile = self.traveler(address).await?.map(|t| {
            json!({"address": a, "did": t.did, "display_name": t.display_name,
                   "custodial_key": t.sealed_key.is_some(), "created_at": t.created_at})
        });
        let wallet: Vec<serde_json::Value> = self
            .wallet(address)
            .await?
            .into_iter()
            .map(|w| json!({"id": w.id, "added_at": w.added_at, "credential": serde_json::from_str::<serde_json::Value>(&w.body).unwrap_or(serde_json::Value::String(w.body))}))
            .collect();
        let issued = sqlx::query(&format!("SELECT {ISSUED_COLUMNS} FROM issued_credentials WHERE holder_did = $1"))
            .bind(did)
            .fetch_all(&self.pool)
            .await?;
        let issued: Vec<serde_json::Value> = issued
            .iter()
            .map(issued_from_row)
            .map(|c| c.map(|c| json!({"id": c.id, "issuer": c.issuer_slug, "concession": c.concession, "issued_at": c.issued_at, "valid_until": c.valid_until, "revoked_at": c.revoked_at})))
            .collect::<Result<_>>()?;
        let payments =
            sqlx::query("SELECT session_id, amount, status, tx_hash, created_at FROM payments WHERE traveler = $1")
                .bind(&a)
                .fetch_all(&self.pool)
                .await?;
        let payments: Vec<serde_json::Value> = payments
            .iter()
            .map(|r| Ok(json!({"checkout_session": r.try_get::<String, _>(0)?, "amount": r.try_get::<i64, _>(1)?, "status": r.try_get::<String, _>(2)?, "tx_hash": r.try_get::<Option<String>, _>(3)?, "created_at": r.try_get::<i64, _>(4)?})))
            .collect::<Result<_>>()?;
        let tickets: Vec<serde_json::Value> = self
            .tickets_of(address)
            .await?
            .iter()
            .map(|t| json!({"id": t.id, "plan_id": t.plan_id, "operator_id": t.operator_id, "product_id": t.product_id, "valid_from": t.valid_from, "valid_until": t.valid_until}))
            .collect();
        let taps = sqlx::query(
            "SELECT t.scan_id, t.ticket_id, t.gate_key, t.at FROM taps t JOIN tickets k ON k.id = t.ticket_id WHERE k.holder = $1 ORDER BY t.at",
        )
        .bind(&a)
        .fetch_all(&self.pool)
        .await?;
        let taps: Vec<serde_json::Value> = taps
            .iter()
            .map(|r| Ok(json!({"scan_id": r.try_get::<String, _>(0)?, "ticket_id": r.try_get::<i64, _>(1)?, "gate": r.try_get::<String, _>(2)?, "at": r.try_get::<i64, _>(3)?})))
            .collect::<Result<_>>()?;
        let cards: Vec<serde_json::Value> = self
            .cards_of(address)
            .await?
            .iter()
            .map(|c| json!({"card": alloy_primitives::hex::encode(c.card_key), "ticket_id": c.ticket_id, "bound_at": c.bound_at}))
            .collect();
        let devices: Vec<serde_json::Value> = self
            .devices_of(address)
            .await?
            .iter()
            .map(|d| json!({"public_key": alloy_primitives::hex::encode(d.device_key), "label": d.label, "certified_at": d.created_at, "certificate_expiry": d.cert_expiry, "revoked_at": d.revoked_at}))
            .collect();
        // The credential id names the passkey; its stored state (public key, counter) is the
        // authenticator's bookkeeping, and the private key never leaves the authenticator.
        let passkeys: Vec<serde_json::Value> = self
            .passkeys_of(address)
            .await?
            .iter()
            .map(|p| json!({"credential_id": alloy_primitives::hex::encode(&p.credential_id), "created_at": p.created_at, "last_used": p.last_used}))
            .collect();
        // The password hash stays out: it is a secret, not data about the traveler.
        let login = sqlx::query("SELECT email, created_at FROM password_logins WHERE address = $1")
            .bind(&a)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| {
                Ok::<_, StoreError>(json!({"email": r.try_get::<String, _>(0)?, "created_at": r.try_get::<i64, _>(1)?}))
            })
            .transpose()?;
        Ok(json!({
            "profile": profile,
            "password_login": login,
            "devices": devices,
            "passkeys": passkeys,
            "wallet_credentials": wallet,
            "credentials_issued_to_you": issued,
            "card_top_ups": payments,
            "tickets": tickets,
            "taps": taps,
            "contactless_cards": cards,
            "on_chain": format!("Your tickets, plans and FARE are recorded on the consortium chain under the pseudonymous address {a}; Kippu's ledger keeps only that address."),
        }))
    }

    /// Erases a traveler's personal data (GDPR article 17): profile, custodial
    /// key, sessions and wallet; credentials issued to them are revoked and
    /// their register entries pseudonymized. What the chain and the ledger
    /// hold is keyed by the pseudonymous address only and stays, so
    /// settlement still balances; top-up records are kept for accounting law
    /// but no longer link to a name. The address is left revoked, so nobody
    /// can sign in as it again.
    pub async fn erase_personal_data(&self, address: &Address, did: &str, now: i64) -> Result<()> {
        let a = addr(address);
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE address = $1").bind(&a).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM wallet_credentials WHERE holder = $1").bind(&a).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM card_bindings WHERE holder = $1").bind(&a).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM password_logins WHERE address = $1").bind(&a).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM passkeys WHERE holder = $1").bind(&a).execute(&mut *tx).await?;
        sqlx::query("UPDATE devices SET revoked_at = COALESCE(revoked_at, $2), label = 'erased' WHERE holder = $1")
            .bind(&a)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE issued_credentials SET revoked_at = COALESCE(revoked_at, $2), holder_did = 'erased' WHERE holder_did = $1",
        )
        .bind(did)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO key_revocations (address, revoked_at, reason) VALUES ($1, $2, 'erased at the traveler''s request') ON CONFLICT (address) DO UPDATE SET reason = excluded.reason")
            .bind(&a)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM travelers WHERE address = $1").bind(&a).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
