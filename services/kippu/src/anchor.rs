//! Tap batches to the chain: every ride recorded on its ticket (`Ticket.recordRides`, so a
//! ridden ticket is `used` on chain and a refund of it is refused there), and one Merkle root
//! per batch anchored (`Clearing.anchorTapBatch`), never one transaction per tap.
//!
//! A batch is fixed in the database before anything is sent (its taps get the batch key, the
//! Merkle root of their leaves). After a crash the same batch is sent again with the same key,
//! which the contract records once (`RidesAlreadyRecorded`), so no ride is counted twice.

use std::collections::HashMap;

use alloy::primitives::B256;
use kippu_chain::Chain;
use kippu_domain::merkle::{tap_leaf, MerkleTree};
use kippu_store::{OpenBatch, Store, TapRow};

/// Largest batch: its rides go on chain in one transaction, which the contract bounds (about
/// 2M gas at the limit).
pub const MAX_BATCH: i64 = kippu_chain::MAX_RIDES_PER_TX as i64;

/// The leaf of a recorded tap.
pub fn leaf_of(t: &TapRow) -> B256 {
    tap_leaf(&t.scan_id, t.ticket_id, t.operator_id, t.at.max(0) as u64)
}

/// What one round did with one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchored {
    /// Clearing's batch id.
    pub batch_id: u64,
    /// Taps in the batch.
    pub taps: usize,
    /// Rides the contract refused (e.g. a ticket refunded meanwhile): `(scan id, reason)`.
    pub refused: Vec<(String, String)>,
}

/// Sends the oldest batch not yet on chain, first fixing a new one from unbatched taps when
/// none is open. `None` when there was nothing to send.
pub async fn anchor_pending(chain: &Chain, store: &Store) -> anyhow::Result<Option<Anchored>> {
    let batch = match store.open_batch_pending().await? {
        Some(b) => b,
        None => {
            let taps = store.unbatched_taps(MAX_BATCH).await?;
            let Some(tree) = MerkleTree::new(taps.iter().map(leaf_of).collect()) else { return Ok(None) };
            let key = format!("{:#x}", tree.root());
            let ids: Vec<String> = taps.iter().map(|t| t.scan_id.clone()).collect();
            store.open_batch(&key, &ids, now()).await?;
            OpenBatch { batch_key: key, rides_recorded: false, taps }
        }
    };
    send(chain, store, batch).await.map(Some)
}

async fn send(chain: &Chain, store: &Store, batch: OpenBatch) -> anyhow::Result<Anchored> {
    let key: B256 = batch.batch_key.parse()?;
    let mut refused = Vec::new();
    if !batch.rides_recorded {
        let rides: Vec<(u64, u64)> = batch.taps.iter().map(|t| (t.ticket_id, t.at.max(0) as u64)).collect();
        let out = chain.record_rides(key, &rides).await?;
        refused = refused_scans(&batch.taps, &out.refused);
        for (scan, reason) in &refused {
            metrics::counter!("kippu_rides_refused_total", "reason" => reason.clone()).increment(1);
            tracing::warn!(scan = %scan, %reason, "the contract refused to record a ride");
        }
        // No transaction when an earlier attempt already recorded the batch (the contract said so).
        let tx = out.tx.map_or_else(|| "already recorded".to_owned(), |t| format!("{t:#x}"));
        store.rides_recorded(&batch.batch_key, &tx, u64::from(out.recorded), &refused).await?;
    }
    let tree = MerkleTree::new(batch.taps.iter().map(leaf_of).collect())
        .ok_or_else(|| anyhow::anyhow!("batch {} has no taps", batch.batch_key))?;
    anyhow::ensure!(tree.root() == key, "batch {} does not hash to its key", batch.batch_key);
    let batch_id = chain.anchor_taps(key, batch.taps.len() as u32).await?;
    store.batch_anchored(&batch.batch_key, batch_id, now()).await?;
    metrics::gauge!("kippu_tap_batch_last_success_seconds").set(now() as f64);
    tracing::info!(batch_id, taps = batch.taps.len(), refused = refused.len(), root = %key, "tap batch on chain");
    Ok(Anchored { batch_id, taps: batch.taps.len(), refused })
}

/// The contract reports refusals by ticket; a ticket may ride several times in one batch. A tap
/// before the ticket's validity is one of its first; every other refusal (rides run out, it
/// expired, it was refunded) falls on its last.
fn refused_scans(taps: &[TapRow], refused: &[(u64, kippu_chain::RideRefusal)]) -> Vec<(String, String)> {
    let mut per_ticket: HashMap<u64, Vec<&TapRow>> = HashMap::new();
    for t in taps {
        per_ticket.entry(t.ticket_id).or_default().push(t);
    }
    let mut out = Vec::new();
    for (ticket, reason) in refused {
        if let Some(list) = per_ticket.get_mut(ticket) {
            let t = if matches!(reason, kippu_chain::RideRefusal::NotYetValid) && !list.is_empty() {
                Some(list.remove(0))
            } else {
                list.pop()
            };
            if let Some(t) = t {
                out.push((t.scan_id.clone(), reason.to_string()));
            }
        }
    }
    out
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tap(scan: &str, ticket: u64, at: i64) -> TapRow {
        TapRow { scan_id: scan.into(), ticket_id: ticket, operator_id: 1, gate_key: "m/s/g".into(), at }
    }

    #[test]
    fn a_refusal_falls_on_the_tickets_latest_tap_in_the_batch() {
        let taps = [tap("a", 1, 10), tap("b", 2, 11), tap("c", 1, 12)];
        let r = refused_scans(&taps, &[(1, kippu_chain::RideRefusal::NoRidesLeft)]);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0, "c");
        let r = refused_scans(&taps, &[(1, kippu_chain::RideRefusal::NotYetValid)]);
        assert_eq!(r[0].0, "a");
    }
}
