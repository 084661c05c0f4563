//! Reconciliation: the ledger against the contracts, at the block the ledger has
//! booked up to. Any difference is logged as an error, exported as metrics
//! (`kippu_reconciliation_ok`, `kippu_reconciliation_difference{what}`) and kept in
//! the `reconciliations` table, which the operator report flags.

use std::time::Duration;

use kippu_chain::Chain;
use kippu_store::Store;
use serde::Serialize;

use crate::indexer::CURSOR;

/// One figure on which the ledger and the chain disagree (FARE minor units).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// What was compared, e.g. `operator:2 owed` or `escrow`.
    pub what: String,
    /// The ledger's figure.
    pub ledger: i128,
    /// The contracts' figure.
    pub chain: i128,
}

/// Compares once; `None` before the ledger has booked anything.
pub async fn reconcile(chain: &Chain, store: &Store, now: i64) -> anyhow::Result<Option<(u64, Vec<Difference>)>> {
    let operators: Vec<u32> = store.operators().await?.iter().map(|o| o.id).collect();
    let mut accounts: Vec<String> = operators.iter().map(|o| format!("operator:{o}")).collect();
    accounts.push("insurer_pool".into());
    let (next, balances) = store.ledger_snapshot(CURSOR, &accounts).await?;
    let Some(block) = next.and_then(|n| n.checked_sub(1)) else { return Ok(None) };
    let balance = |a: &str| i128::from(balances.iter().find(|(acc, _)| acc == a).map_or(0, |(_, b)| *b));
    let state = chain.settlement_state(block, &operators).await?;
    let mut diffs = Vec::new();
    let mut check = |what: String, ledger: i128, chain: i128| {
        if ledger != chain {
            diffs.push(Difference { what, ledger, chain });
        }
    };
    let mut owed_total = 0i128;
    for op in &operators {
        // The ledger credits an operator with its sales and redeemed vouchers; the chain
        // holds the first in Clearing and the second as DelayInsurance's payable.
        let owed = -balance(&format!("operator:{op}"));
        owed_total += owed;
        let unpaid = state.unpaid.iter().find(|(o, _)| o == op).map_or(0, |(_, v)| *v as i128);
        let payable = state.payable.iter().find(|(o, _)| o == op).map_or(0, |(_, v)| *v as i128);
        check(format!("operator:{op} owed"), owed, unpaid + payable);
    }
    let insurer = balance("insurer_pool");
    check("insurer payable".into(), insurer, state.total_payable as i128);
    check("escrow".into(), owed_total - insurer, state.escrow as i128);
    check("escrow vs Clearing.totalUnpaid".into(), state.total_unpaid as i128, state.escrow as i128);

    store.record_reconciliation(now, block, &serde_json::to_string(&diffs)?).await?;
    metrics::gauge!("kippu_reconciliation_ok").set(if diffs.is_empty() { 1.0 } else { 0.0 });
    metrics::gauge!("kippu_reconciliation_block").set(block as f64);
    for d in &diffs {
        metrics::gauge!("kippu_reconciliation_difference", "what" => d.what.clone()).set((d.ledger - d.chain) as f64);
        tracing::error!(what = %d.what, ledger = %d.ledger, chain = %d.chain, block, "ledger does not reconcile with the chain");
    }
    if !diffs.is_empty() {
        metrics::counter!("kippu_reconciliation_failures_total").increment(1);
    }
    Ok(Some((block, diffs)))
}

/// Reconciles every `every`.
pub async fn run(chain: Chain, store: Store, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        if let Err(e) = reconcile(&chain, &store, now).await {
            tracing::warn!(error = %e, "reconciliation could not run; retrying");
        }
    }
}
