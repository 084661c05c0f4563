//! Booking contract events: the ledger's write path, batched.
//!
//! A follower's range can hold thousands of events; one statement per event (and per
//! posting, and per read-model row) would be bound by round trips, so rows go in as
//! multi-row `INSERT`s sized under both engines' bound-parameter limits, and the
//! events actually new (not re-deliveries) are learnt from `RETURNING`.

use std::collections::HashMap;

use alloy_primitives::B256;
use kippu_domain::events::{ChainEvent, EventMeta};
use sqlx::{Any, Row, Transaction};

use crate::{addr, Result, Store, StoreError};

/// How multi-row statements are written for the database at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Batching {
    /// Bound parameters per statement: under SQLite's 32,766 and PostgreSQL's 65,535.
    pub(crate) max_params: usize,
    /// `?` placeholders (SQLite) rather than `$n` (PostgreSQL). SQLite's driver resolves
    /// `$n` by name, one lookup per parameter, which is quadratic in long statements.
    pub(crate) positional: bool,
}

impl Batching {
    /// SQLite: long statements with positional placeholders.
    pub(crate) const SQLITE: Self = Self { max_params: 30_000, positional: true };
    /// PostgreSQL: `$n` placeholders; the size matters little (measured 4,000 to 31,000).
    pub(crate) const POSTGRES: Self = Self { max_params: 16_000, positional: false };
}

/// One bound value.
pub(crate) enum Val {
    I(i64),
    OptI(Option<i64>),
    S(String),
    OptS(Option<String>),
}

/// `head` `($1, …), (…)` `tail` for every chunk of `rows`; returns the rows affected.
pub(crate) async fn insert_rows(
    tx: &mut Transaction<'_, Any>,
    b: Batching,
    head: &str,
    tail: &str,
    rows: Vec<Vec<Val>>,
) -> Result<u64> {
    let Some(width) = rows.first().map(Vec::len) else { return Ok(0) };
    let mut affected = 0;
    let per_chunk = (b.max_params / width).max(1);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Val>> = rows.by_ref().take(per_chunk).collect();
        let mut sql = String::with_capacity(head.len() + tail.len() + chunk.len() * width * 6);
        sql.push_str(head);
        let mut n = 0;
        for (i, _) in chunk.iter().enumerate() {
            sql.push_str(if i == 0 { " (" } else { ", (" });
            for c in 0..width {
                n += 1;
                if c > 0 {
                    sql.push_str(", ");
                }
                if b.positional {
                    sql.push('?');
                } else {
                    sql.push('$');
                    sql.push_str(&n.to_string());
                }
            }
            sql.push(')');
        }
        sql.push(' ');
        sql.push_str(tail);
        let mut q = sqlx::query(&sql);
        for row in chunk {
            for v in row {
                q = match v {
                    Val::I(i) => q.bind(i),
                    Val::OptI(i) => q.bind(i),
                    Val::S(s) => q.bind(s),
                    Val::OptS(s) => q.bind(s),
                };
            }
        }
        affected += q.execute(&mut **tx).await?.rows_affected();
    }
    Ok(affected)
}

impl Store {
    /// Books a batch of events and moves the checkpoint, in one transaction so
    /// a crash mid-batch leaves neither half-booked events nor a skipped range.
    /// Events already booked (same block hash and log index) are skipped.
    /// `blocks` are `(number, hash, timestamp)` of the blocks read: the hashes for reorg
    /// detection, the times for reports (an event's `block_time`).
    /// Returns how many events were new.
    pub async fn apply_events(
        &self,
        cursor: &str,
        next_block: u64,
        events: &[(EventMeta, ChainEvent)],
        blocks: &[(u64, B256, i64)],
    ) -> Result<usize> {
        let mut tx = self.pool.begin().await?;
        let block_rows = blocks
            .iter()
            .map(|(n, h, _)| vec![Val::S(cursor.to_owned()), Val::I(*n as i64), Val::S(format!("{h:#x}"))])
            .collect();
        insert_rows(
            &mut tx,
            self.batching,
            "INSERT INTO indexed_blocks (cursor, block_number, block_hash) VALUES",
            "ON CONFLICT (cursor, block_number) DO UPDATE SET block_hash = excluded.block_hash",
            block_rows,
        )
        .await?;
        let times: HashMap<u64, i64> = blocks.iter().map(|(n, _, t)| (*n, *t)).collect();
        // Events of these blocks already booked (a re-delivery) are learnt up front, so the new
        // ones go in with a plain INSERT: no per-row conflict handling, nothing sent back. A
        // concurrent writer booking the same event makes this insert fail on the key, and the
        // whole batch with it, rather than book it twice.
        let mut booked = std::collections::HashSet::new();
        if let (Some(lo), Some(hi)) =
            (events.iter().map(|(m, _)| m.block_number).min(), events.iter().map(|(m, _)| m.block_number).max())
        {
            let rows =
                sqlx::query("SELECT event_key FROM chain_events WHERE block_number >= $1 AND block_number <= $2")
                    .bind(lo as i64)
                    .bind(hi as i64)
                    .fetch_all(&mut *tx)
                    .await?;
            for r in rows {
                booked.insert(r.try_get::<String, _>(0)?);
            }
        }
        let mut fresh: Vec<(String, &ChainEvent)> = Vec::with_capacity(events.len());
        let mut event_rows = Vec::with_capacity(events.len());
        for (meta, ev) in events {
            let key = meta.key();
            if !booked.insert(key.clone()) {
                continue;
            }
            let payload = serde_json::to_string(ev).map_err(|_| StoreError::Corrupt("chain_events.payload"))?;
            event_rows.push(vec![
                Val::S(key.clone()),
                Val::I(meta.block_number as i64),
                Val::S(format!("{:#x}", meta.block_hash)),
                Val::I(meta.log_index as i64),
                Val::S(format!("{:#x}", meta.tx_hash)),
                Val::S(ev.kind().to_owned()),
                Val::S(payload),
                Val::OptI(times.get(&meta.block_number).copied()),
            ]);
            fresh.push((key, ev));
        }
        insert_rows(
            &mut tx,
            self.batching,
            "INSERT INTO chain_events (event_key, block_number, block_hash, log_index, tx_hash, kind, payload, block_time) VALUES",
            "",
            event_rows,
        )
        .await?;
        // Only what is new is booked: a re-delivered event was booked the first time.
        let fresh: Vec<(&str, &ChainEvent)> = fresh.iter().map(|(k, ev)| (k.as_str(), *ev)).collect();
        let postings = fresh
            .iter()
            .flat_map(|(k, ev)| {
                ev.postings()
                    .into_iter()
                    .map(|(account, amount)| vec![Val::S((*k).to_owned()), Val::S(account), Val::I(amount)])
            })
            .collect();
        insert_rows(
            &mut tx,
            self.batching,
            "INSERT INTO ledger_postings (event_key, account, amount) VALUES",
            "",
            postings,
        )
        .await?;
        book_read_models(&mut tx, self.batching, &fresh).await?;
        sqlx::query(
            "INSERT INTO chain_cursor (name, next_block) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET next_block = excluded.next_block",
        )
        .bind(cursor)
        .bind(next_block as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(fresh.len())
    }
}

/// Applies events, in chain order, to the read models (plans, tickets, policies,
/// vouchers): new rows in multi-row inserts first (a leg's share folded into its
/// ticket's row when both are in the batch), then the changes to existing rows in order.
pub(crate) async fn book_read_models(
    tx: &mut Transaction<'_, Any>,
    b: Batching,
    events: &[(&str, &ChainEvent)],
) -> Result<()> {
    let shares: HashMap<u64, i64> = events
        .iter()
        .filter_map(|(_, ev)| match ev {
            ChainEvent::LegSold { ticket_id, share, .. } => Some((*ticket_id, *share)),
            _ => None,
        })
        .collect();
    let (mut plans, mut tickets, mut policies, mut vouchers) = (vec![], vec![], vec![], vec![]);
    let mut issued = std::collections::HashSet::new();
    for (key, ev) in events {
        match ev {
            ChainEvent::PlanPurchased { plan_id, traveler, bundle_id, price, valid_from } => plans.push(vec![
                Val::I(*plan_id as i64),
                Val::S(addr(traveler)),
                Val::I(i64::from(*bundle_id)),
                Val::I(*price),
                Val::I(*valid_from as i64),
                Val::S((*key).to_owned()),
            ]),
            ChainEvent::TicketIssued {
                ticket_id,
                holder,
                plan_id,
                operator_id,
                product_id,
                valid_from,
                valid_until,
                rides,
            } => {
                issued.insert(*ticket_id);
                tickets.push(vec![
                    Val::I(*ticket_id as i64),
                    Val::S(addr(holder)),
                    Val::I(*plan_id as i64),
                    Val::I(i64::from(*operator_id)),
                    Val::I(i64::from(*product_id)),
                    Val::I(*valid_from as i64),
                    Val::I(*valid_until as i64),
                    Val::I(i64::from(*rides)),
                    Val::I(shares.get(ticket_id).copied().unwrap_or(0)),
                ])
            }
            ChainEvent::PolicyOpened { policy_id, holder, valid_from, valid_until } => policies.push(vec![
                Val::I(*policy_id as i64),
                Val::S(addr(holder)),
                Val::I(*valid_from as i64),
                Val::I(*valid_until as i64),
            ]),
            ChainEvent::VoucherIssued { voucher_id, policy_id, holder, value, operator_id, expiry, delay_id } => {
                vouchers.push(vec![
                    Val::I(*voucher_id as i64),
                    Val::I(*policy_id as i64),
                    Val::S(addr(holder)),
                    Val::I(*value),
                    Val::I(i64::from(*operator_id)),
                    Val::I(*expiry as i64),
                    Val::S(format!("{delay_id:#x}")),
                ])
            }
            _ => {}
        }
    }
    insert_rows(
        tx,
        b,
        "INSERT INTO plans (plan_id, traveler, bundle_id, price, valid_from, event_key) VALUES",
        "",
        plans,
    )
    .await?;
    insert_rows(
        tx,
        b,
        "INSERT INTO tickets (id, holder, plan_id, operator_id, product_id, valid_from, valid_until, rides, share) VALUES",
        "",
        tickets,
    )
    .await?;
    insert_rows(tx, b, "INSERT INTO policies (policy_id, holder, valid_from, valid_until) VALUES", "", policies)
        .await?;
    insert_rows(
        tx,
        b,
        "INSERT INTO vouchers (id, policy_id, holder, value, operator_id, expiry, delay_id) VALUES",
        "",
        vouchers,
    )
    .await?;
    for (_, ev) in events {
        match ev {
            // Its ticket was issued in an earlier batch.
            ChainEvent::LegSold { ticket_id, share, .. } if !issued.contains(ticket_id) => {
                sqlx::query("UPDATE tickets SET share = $2 WHERE id = $1")
                    .bind(*ticket_id as i64)
                    .bind(*share)
                    .execute(&mut **tx)
                    .await?;
            }
            ChainEvent::VoucherRedeemed { voucher_id, operator_id, .. } => {
                sqlx::query("UPDATE vouchers SET redeemed_by = $2 WHERE id = $1")
                    .bind(*voucher_id as i64)
                    .bind(i64::from(*operator_id))
                    .execute(&mut **tx)
                    .await?;
            }
            ChainEvent::TicketRefunded { ticket_id, .. } => {
                // A refunded ticket is burned: it leaves the holder's list and the validator's reach.
                sqlx::query("DELETE FROM tickets WHERE id = $1").bind(*ticket_id as i64).execute(&mut **tx).await?;
            }
            ChainEvent::TicketActivated { ticket_id, valid_from, valid_until } => {
                sqlx::query("UPDATE tickets SET valid_from = $2, valid_until = $3 WHERE id = $1")
                    .bind(*ticket_id as i64)
                    .bind(*valid_from as i64)
                    .bind(*valid_until as i64)
                    .execute(&mut **tx)
                    .await?;
            }
            _ => {}
        }
    }
    Ok(())
}
