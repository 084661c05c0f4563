//! Period close on chain: the plans whose validity began since the last close's window are
//! re-apportioned under their bundles' rules (`Store::close_period_books`), the positions
//! (plus any carried from before) net into transfers, and one `Clearing.settlePeriod` moves
//! those claims, pays redeemed vouchers out of the insurer's claim and pays every operator.
//!
//! A transfer can only move what its paying operator has unpaid on chain (its sales may have
//! been paid out at an earlier close). What cannot move now is carried, as a position, into
//! the next close: never dropped.

use std::collections::BTreeMap;

use kippu_domain::model::PeriodCloseRow;
use kippu_domain::settlement::net;
use serde::Serialize;

use crate::ports::{Clearing, Clock, Ledger, LedgerFailure, Store};
use crate::{ChainFailure, PortError};

/// What a close did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Closed {
    /// Clearing's period id.
    pub period_id: u64,
    /// The close's transaction.
    pub tx: String,
    /// Plans valid from in `[from, to)` were re-apportioned.
    pub window: (i64, i64),
    /// Plans re-apportioned.
    pub plans: u64,
    /// Rides counted.
    pub taps: u64,
    /// Claims moved `(from, to, amount)`.
    pub transfers: Vec<(u32, u32, i64)>,
    /// Carried to the next close `(from, to, amount)`.
    pub carried: Vec<(u32, u32, i64)>,
}

/// A transfer between operators' claims: `(from, to, amount)`.
pub type Transfer = (u32, u32, i64);

/// Why a period was not closed. Nothing is recorded unless the chain closed the period.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClosePeriodError {
    /// The block the ledger booked last is gone from the chain (a reorg in progress).
    #[error("the ledger's last block {block} is not on the chain (a reorg in progress); retry")]
    LedgerBlockMissing {
        /// The block.
        block: u64,
    },
    /// The ledger could not catch up.
    #[error(transparent)]
    Ledger(#[from] LedgerFailure),
    /// The chain failed or refused (`WrongPeriod`: the period was closed already, by an earlier
    /// send or another closer).
    #[error(transparent)]
    Chain(#[from] ChainFailure),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
}

/// Caps each transfer at what its payer can pay on chain when the adjustments run
/// (`available`, updated as transfers land); returns `(moved, carried positions)`.
pub fn fit_transfers(
    transfers: &[Transfer],
    available: &mut BTreeMap<u32, i64>,
) -> (Vec<Transfer>, BTreeMap<u32, i64>) {
    let mut moved = Vec::new();
    let mut carry: BTreeMap<u32, i64> = BTreeMap::new();
    for &(from, to, amount) in transfers {
        let can = available.get(&from).copied().unwrap_or(0).clamp(0, amount);
        if can > 0 {
            moved.push((from, to, can));
            *available.entry(from).or_default() -= can;
            *available.entry(to).or_default() += can;
        }
        if can < amount {
            *carry.entry(from).or_default() -= amount - can;
            *carry.entry(to).or_default() += amount - can;
        }
    }
    carry.retain(|_, v| *v != 0);
    (moved, carry)
}

/// Closes the current period. The ledger is caught up first, so the window ends at the time
/// of the last block it booked and every plan in it is known.
pub async fn close_period(
    chain: &dyn Clearing,
    store: &dyn Store,
    ledger: &dyn Ledger,
    clock: &dyn Clock,
) -> Result<Closed, ClosePeriodError> {
    let now = clock.now();
    // The period this close is for, read before its books: the contract takes a close only for
    // the period still open, so a close re-sent, or run at once from two places (the schedule and
    // `kippu close-period`), settles once and the other reverts with nothing recorded.
    let period = chain.current_period().await?;
    ledger.catch_up().await?;
    let booked_to = ledger.next_block().await?.and_then(|n| n.checked_sub(1)).unwrap_or(0);
    let Some((_, _, to)) = chain.block_header(booked_to).await? else {
        return Err(ClosePeriodError::LedgerBlockMissing { block: booked_to });
    };
    // Windows follow on exactly from Kippu's own record of the last close (not the close's block
    // time: a plan bought in the second of the close would fall in both windows).
    let from = store.last_period_close().await?.map_or(0, |c| c.window_to);
    let to = to as i64 + 1;
    let books = store.close_period_books(from, to).await?;
    let mut positions = books.positions.clone();
    for (op, v) in store.settlement_carry().await? {
        *positions.entry(op).or_default() += v;
    }
    positions.retain(|_, v| *v != 0);
    let transfers = net(&positions);

    // What each operator will hold when the adjustments run: its unpaid claim, plus the
    // vouchers the close pays it, minus (for the insurer) what those vouchers cost.
    let operators: Vec<u32> = store.operators().await?.iter().map(|o| o.id).collect();
    let head = chain.block_number().await?;
    let state = chain.settlement_state(head, &operators).await?;
    let mut available: BTreeMap<u32, i64> =
        state.unpaid.iter().map(|(op, v)| (*op, i64::try_from(*v).unwrap_or(i64::MAX))).collect();
    if let Some(insurer) = chain.insurer().await? {
        let mut cover = available.get(&insurer).copied().unwrap_or(0);
        for (op, owed) in &state.payable {
            if *op == insurer {
                continue;
            }
            let paid = cover.min(i64::try_from(*owed).unwrap_or(i64::MAX));
            cover -= paid;
            *available.entry(*op).or_default() += paid;
        }
        available.insert(insurer, cover);
    }
    let (moved, carry) = fit_transfers(&transfers, &mut available);
    let carried = net(&carry);

    let (tx, period_id) = chain.settle_period(period, &moved).await?;
    let row = PeriodCloseRow {
        period_id,
        window_from: from,
        window_to: to,
        plans: books.plans,
        taps: books.taps,
        transfers: moved.clone(),
        carried: carried.clone(),
        tx_hash: format!("{tx:#x}"),
        closed_at: now,
    };
    store.record_period_close(&row, &carry).await?;
    ledger.catch_up().await?;
    metrics::counter!("kippu_periods_closed_total").increment(1);
    tracing::info!(period_id, plans = books.plans, moved = moved.len(), carried = carried.len(), "period closed");
    Ok(Closed {
        period_id,
        tx: row.tx_hash,
        window: (from, to),
        plans: books.plans,
        taps: books.taps,
        transfers: moved,
        carried,
    })
}
