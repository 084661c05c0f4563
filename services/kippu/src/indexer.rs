//! Follows Kippu's contract events into the ledger. Each step reads a bounded
//! block range below the confirmation depth and books it with the checkpoint
//! in one database transaction, so a crash repeats at most one range, and
//! repeating it books nothing twice (events are keyed by block hash and log index).

use std::sync::Arc;
use std::time::Duration;

use kippu_chain::Chain;
use kippu_store::Store;
use tokio::sync::Mutex;

/// Name of this follower's checkpoint.
pub const CURSOR: &str = "ledger";
/// Largest block range per `eth_getLogs`.
pub const MAX_RANGE: u64 = 2_000;

/// The event follower.
#[derive(Clone)]
pub struct Indexer {
    chain: Chain,
    store: Store,
    confirmations: u64,
    // One step at a time, whether from the poll loop or a caller's catch_up.
    step_lock: Arc<Mutex<()>>,
}

impl Indexer {
    /// A follower of `chain` into `store`.
    pub fn new(chain: Chain, store: Store, confirmations: u64) -> Self {
        Self { chain, store, confirmations, step_lock: Arc::new(Mutex::new(())) }
    }

    /// Books everything up to the confirmed head; returns events booked.
    pub async fn catch_up(&self) -> anyhow::Result<usize> {
        let _g = self.step_lock.lock().await;
        let mut total = 0;
        loop {
            let head = self.chain.block_number().await?.saturating_sub(self.confirmations);
            let from = match self.store.cursor(CURSOR).await? {
                Some(n) => n,
                None => self.chain.deployment().deploy_block,
            };
            if from > head {
                return Ok(total);
            }
            let to = head.min(from + MAX_RANGE - 1);
            let events = self.chain.events(from, to).await?;
            let booked = self.store.apply_events(CURSOR, to + 1, &events).await?;
            metrics::counter!("kippu_ledger_events_booked_total").increment(booked as u64);
            metrics::gauge!("kippu_indexer_next_block").set((to + 1) as f64);
            total += booked;
        }
    }

    /// Polls forever.
    pub async fn run(self, every: Duration) {
        loop {
            if let Err(e) = self.catch_up().await {
                tracing::warn!(error = %e, "indexer step failed; retrying");
            }
            tokio::time::sleep(every).await;
        }
    }
}
