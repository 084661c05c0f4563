//! Follows Kippu's contract events into the ledger, reorg-safe.
//!
//! Each step reads a bounded block range at or below the confirmation depth and
//! books it with the checkpoint and the hashes of the blocks read, in one database
//! transaction: a crash repeats at most one range, and repeating it books nothing
//! twice (events are keyed by block hash and log index). Before reading on, the
//! follower checks that the next block's parent is the block it read last; if not,
//! the chain reorganised: it walks back through the hashes it kept to the newest
//! block still on the chain and rolls back everything booked above it, then reads
//! the new branch. A range whose logs come from a block the chain no longer has
//! (a reorg during the read) is not booked; the step is simply repeated.

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::B256;
use kippu_chain::Chain;
use kippu_store::Store;
use tokio::sync::Mutex;

/// Name of this follower's checkpoint.
pub const CURSOR: &str = "ledger";
/// Largest block range per `eth_getLogs`.
pub const MAX_RANGE: u64 = 2_000;
/// How many remembered block hashes a reorg search looks through before giving up.
const REORG_SEARCH: i64 = 4_096;

/// The event follower.
#[derive(Clone)]
pub struct Indexer {
    chain: Chain,
    store: Store,
    confirmations: u64,
    // One step at a time, whether from the poll loop or a caller's catch_up.
    step_lock: Arc<Mutex<()>>,
    /// Counts rollbacks, so holders of state derived from events (the validator) can refresh.
    rollbacks: Arc<tokio::sync::watch::Sender<u64>>,
}

/// What one step did.
enum Step {
    /// Booked a range: events new to the ledger.
    Booked(usize),
    /// Nothing confirmed to read.
    UpToDate,
    /// Rolled back a reorganised branch, or met one mid-read; read again.
    Again,
}

impl Indexer {
    /// A follower of `chain` into `store`.
    pub fn new(chain: Chain, store: Store, confirmations: u64) -> Self {
        Self {
            chain,
            store,
            confirmations,
            step_lock: Arc::new(Mutex::new(())),
            rollbacks: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }

    /// Changes after every rollback (its value counts them).
    pub fn rollbacks(&self) -> tokio::sync::watch::Receiver<u64> {
        self.rollbacks.subscribe()
    }

    /// Books everything up to the confirmed head; returns events booked.
    pub async fn catch_up(&self) -> anyhow::Result<usize> {
        let _g = self.step_lock.lock().await;
        let mut total = 0;
        loop {
            match self.step().await? {
                Step::Booked(n) => total += n,
                Step::Again => {}
                Step::UpToDate => return Ok(total),
            }
        }
    }

    async fn step(&self) -> anyhow::Result<Step> {
        let head = self.chain.block_number().await?.saturating_sub(self.confirmations);
        let from = match self.store.cursor(CURSOR).await? {
            Some(n) => n,
            None => self.chain.deployment().deploy_block,
        };
        // Checked even with nothing new to read: the branch read last may have been replaced.
        if self.reorged_below(from).await? {
            return Ok(Step::Again);
        }
        if from > head {
            return Ok(Step::UpToDate);
        }
        let to = head.min(from + MAX_RANGE - 1);
        let events = self.chain.events(from, to).await?;
        // The hashes kept: the range's last block and every block with events, checked
        // against the logs so a reorg during the read cannot slip a stale log in.
        let mut blocks: Vec<(u64, B256, i64)> = Vec::new();
        let mut numbers: Vec<u64> = events.iter().map(|(m, _)| m.block_number).collect();
        numbers.push(to);
        numbers.dedup();
        // Fetched concurrently: a backfill range can hold events in many of its blocks.
        let headers = futures::future::try_join_all(numbers.iter().map(|&n| self.chain.block_header(n))).await?;
        for (n, header) in numbers.into_iter().zip(headers) {
            let Some((hash, _, time)) = header else { return Ok(Step::Again) };
            if events.iter().any(|(m, _)| m.block_number == n && m.block_hash != hash) {
                tracing::warn!(block = n, "logs from a block no longer on the chain; reading again");
                return Ok(Step::Again);
            }
            blocks.push((n, hash, time as i64));
        }
        let booked = self.store.apply_events(CURSOR, to + 1, &events, &blocks).await?;
        metrics::counter!("kippu_ledger_events_booked_total").increment(booked as u64);
        metrics::gauge!("kippu_indexer_next_block").set((to + 1) as f64);
        Ok(Step::Booked(booked))
    }

    /// Whether the block read last (below `next`) is still on the chain; if not, rolls
    /// back to the newest remembered block that is, and says so.
    async fn reorged_below(&self, next: u64) -> anyhow::Result<bool> {
        let kept = self.store.indexed_blocks(CURSOR, 1).await?;
        let Some(&(last, last_hash)) = kept.first() else { return Ok(false) };
        if last + 1 != next {
            // Ranges end on a kept block, so this only happens with a checkpoint older than the hashes.
            tracing::debug!(last, next, "checkpoint and kept hashes disagree");
        }
        // The parent of the next block must be the block read last; past the head, ask for that block itself.
        let still_there = match self.chain.block_header(last + 1).await? {
            Some((_, parent, _)) => parent == last_hash,
            None => self.chain.block_header(last).await?.is_some_and(|(h, _, _)| h == last_hash),
        };
        if still_there {
            return Ok(false);
        }
        let mut fork = None;
        for (n, hash) in self.store.indexed_blocks(CURSOR, REORG_SEARCH).await? {
            if self.chain.block_header(n).await?.is_some_and(|(h, _, _)| h == hash) {
                fork = Some(n);
                break;
            }
        }
        // Nothing remembered survives: start over from the deployment.
        let fork = fork.unwrap_or_else(|| self.chain.deployment().deploy_block.saturating_sub(1));
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let removed = self.store.roll_back(CURSOR, fork, now).await?;
        metrics::counter!("kippu_indexer_reorgs_total").increment(1);
        self.rollbacks.send_modify(|n| *n += 1);
        metrics::counter!("kippu_ledger_events_rolled_back_total").increment(removed as u64);
        tracing::warn!(last_read = last, fork_block = fork, removed_events = removed, "chain reorganised: rolled back");
        Ok(true)
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

/// The indexer as kippu-app's ledger port (the period close catches it up and reads how far
/// it booked).
#[async_trait::async_trait]
impl kippu_app::ports::Ledger for Indexer {
    async fn catch_up(&self) -> Result<usize, kippu_app::ports::LedgerFailure> {
        Indexer::catch_up(self).await.map_err(|e| kippu_app::ports::LedgerFailure(format!("{e:#}")))
    }

    async fn next_block(&self) -> kippu_app::PortResult<Option<u64>> {
        self.store.cursor(CURSOR).await.map_err(|e| kippu_app::PortError::Unavailable(e.to_string()))
    }
}
