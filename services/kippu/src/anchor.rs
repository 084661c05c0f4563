//! Anchors recorded taps on chain in batches: one Merkle root per batch, never
//! one transaction per tap, so anchoring costs the same for 10 or 10,000 taps.

use kippu_chain::Chain;
use kippu_domain::merkle::{tap_leaf, MerkleTree};
use kippu_store::{Store, TapRow};

/// Largest batch per anchor.
pub const MAX_BATCH: i64 = 10_000;

/// The leaf of a recorded tap.
pub fn leaf_of(t: &TapRow) -> alloy::primitives::B256 {
    tap_leaf(&t.scan_id, t.ticket_id, t.operator_id, t.at.max(0) as u64)
}

/// Anchors the taps not yet anchored; returns `(batch id, taps)` when there were any.
pub async fn anchor_pending(chain: &Chain, store: &Store) -> anyhow::Result<Option<(u64, usize)>> {
    let taps = store.unanchored_taps(MAX_BATCH).await?;
    let Some(tree) = MerkleTree::new(taps.iter().map(leaf_of).collect()) else { return Ok(None) };
    // If the process dies between the anchor and the mark, these taps are anchored
    // again in the next batch; usage apportionment must count a scan id once.
    let batch = chain.anchor_taps(tree.root(), taps.len() as u32).await?;
    let ids: Vec<String> = taps.iter().map(|t| t.scan_id.clone()).collect();
    store.mark_anchored(&ids, batch).await?;
    tracing::info!(batch, taps = taps.len(), root = %tree.root(), "tap batch anchored");
    Ok(Some((batch, taps.len())))
}
