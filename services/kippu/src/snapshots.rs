//! Gate snapshots: each operator's gates get a fresh signed snapshot on their retained `config`
//! topic — the tickets valid with the operator, the revoked keys and devices, the bound cards
//! and the validator's key — so a gate that loses its network keeps deciding with today's data.
//! One broker connection serves every gate; one round publishes every operator's snapshot.

use std::sync::Arc;

use alloy::primitives::B256;
use kippu_domain::snapshot::{GateSnapshot, SnapshotCard, SnapshotTicket, SNAPSHOT_VERSION};
use kippu_domain::topics::GatePath;
use kippu_domain::{GateInfo, Validator};
use kippu_mqtt::{Bytes, ConfigPublisher};
use kippu_store::Store;
use tokio::sync::Mutex;

/// How long a snapshot is good for at a gate that hears nothing newer.
pub const SNAPSHOT_LIFETIME_SECS: u64 = 24 * 3600;

/// What the snapshot job needs.
pub struct Snapshots {
    /// One persistent broker connection.
    pub publisher: ConfigPublisher,
    /// Where tickets, gates, revocations and cards are read.
    pub store: Store,
    /// The in-process validator's state, refreshed from the database each round.
    pub state: Arc<Mutex<Validator>>,
    /// The verdict and snapshot signing key.
    pub key: Arc<ed25519_dalek::SigningKey>,
    /// Chain the passes name.
    pub chain_id: u64,
}

impl Snapshots {
    /// One round: refresh the validator from the database, then sign and publish each
    /// operator's snapshot to its gates. Fails (for the supervisor to retry) when nothing could
    /// be read or a gate's snapshot could not be published.
    pub async fn round(&self) -> anyhow::Result<()> {
        // What the database holds first: tickets bought since start-up (this validator otherwise
        // loads them on their first scan, too late for a gate that is already offline), gates
        // added by `kippu gate add`, and revocations or card changes made through another process.
        let gates = self.store.gates().await?;
        let stored = crate::validator::Stored::fetch(&self.store).await?;
        {
            let mut v = self.state.lock().await;
            for g in &gates {
                v.add_gate(&g.gate_key, GateInfo { operator_id: g.operator_id });
            }
            stored.apply(&mut v);
        }
        let now = crate::clock::now() as u64;
        let mut operators: Vec<u32> = gates.iter().map(|g| g.operator_id).collect();
        operators.sort_unstable();
        operators.dedup();
        let mut unpublished = 0;
        for op in operators {
            let (tickets, revoked_holders, revoked_devices, cards) = {
                let v = self.state.lock().await;
                let (t, h, d) = v.offline_view(op, now);
                (t, h, d, v.offline_cards(op, now))
            };
            let keys: Vec<String> = gates.iter().filter(|g| g.operator_id == op).map(|g| g.gate_key.clone()).collect();
            let snapshot = GateSnapshot {
                version: SNAPSHOT_VERSION,
                issued_at: now,
                valid_until: now + SNAPSHOT_LIFETIME_SECS,
                operator_id: op,
                gates: keys.clone(),
                chain_id: self.chain_id,
                validators: vec![B256::from(self.key.verifying_key().to_bytes())],
                revoked_holders,
                revoked_devices: revoked_devices.into_iter().map(B256::from).collect(),
                tickets: tickets.iter().map(SnapshotTicket::from).collect(),
                cards: cards
                    .into_iter()
                    .map(|(k, c)| SnapshotCard { card_key: B256::from(k), ticket_id: c.ticket_id, holder: c.holder })
                    .collect(),
            };
            let bytes = Bytes::from(snapshot.sign(&self.key).to_bytes());
            for gate_key in &keys {
                let Some(path) = GatePath::parse_key(gate_key) else { continue };
                if let Err(e) = self.publisher.publish(&path, bytes.clone()).await {
                    tracing::warn!(gate = %gate_key, error = %e, "gate snapshot not published");
                    unpublished += 1;
                }
            }
        }
        anyhow::ensure!(unpublished == 0, "{unpublished} gate snapshots not published");
        Ok(())
    }
}
