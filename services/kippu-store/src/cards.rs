//! Contactless cards bound to tickets.

use alloy_primitives::Address;
use sqlx::Row;

use crate::{addr, parse_addr, Result, Store, StoreError};

pub use kippu_domain::model::CardBindingRow;

const COLUMNS: &str = "card_key, ticket_id, holder, sig, bound_at";

fn from_row(r: &sqlx::any::AnyRow) -> Result<CardBindingRow> {
    let key: String = r.try_get(0)?;
    let card_key = alloy_primitives::hex::decode(&key)
        .ok()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or(StoreError::Corrupt("card key"))?;
    let sig: String = r.try_get(3)?;
    Ok(CardBindingRow {
        card_key,
        ticket_id: r.try_get::<i64, _>(1)? as u64,
        holder: parse_addr(&r.try_get::<String, _>(2)?)?,
        sig: alloy_primitives::hex::decode(sig).map_err(|_| StoreError::Corrupt("card binding signature"))?,
        bound_at: r.try_get(4)?,
    })
}

impl Store {
    /// Binds a card to a ticket; a card bound before is moved (one ticket per card).
    pub async fn bind_card(&self, b: &CardBindingRow) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO card_bindings ({COLUMNS}) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (card_key) DO UPDATE SET ticket_id = excluded.ticket_id, holder = excluded.holder, \
             sig = excluded.sig, bound_at = excluded.bound_at"
        ))
        .bind(alloy_primitives::hex::encode(b.card_key))
        .bind(b.ticket_id as i64)
        .bind(addr(&b.holder))
        .bind(alloy_primitives::hex::encode(&b.sig))
        .bind(b.bound_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A card's binding.
    pub async fn card_binding(&self, card_key: &[u8; 32]) -> Result<Option<CardBindingRow>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM card_bindings WHERE card_key = $1"))
            .bind(alloy_primitives::hex::encode(card_key))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Every binding (for the validator at start-up).
    pub async fn card_bindings(&self) -> Result<Vec<CardBindingRow>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM card_bindings")).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    /// The cards an account bound, newest first.
    pub async fn cards_of(&self, holder: &Address) -> Result<Vec<CardBindingRow>> {
        let rows =
            sqlx::query(&format!("SELECT {COLUMNS} FROM card_bindings WHERE holder = $1 ORDER BY bound_at DESC"))
                .bind(addr(holder))
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(from_row).collect()
    }

    /// Removes a card's binding if `holder` made it; returns whether one was removed.
    pub async fn unbind_card(&self, card_key: &[u8; 32], holder: &Address) -> Result<bool> {
        let done = sqlx::query("DELETE FROM card_bindings WHERE card_key = $1 AND holder = $2")
            .bind(alloy_primitives::hex::encode(card_key))
            .bind(addr(holder))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
