//! The gate validator as the platform runs it: its state loaded from the database, tickets it
//! has not seen looked up there, and every accepted tap recorded there before its verdict leaves.
//!
//! `kippu serve` and `kippu dev` run one inside the platform's process. `kippu validator` runs more beside it,
//! each its own process: they split the scans through `$share/validators/...`, tell each other
//! their entries, and share the database, so killing one at any moment loses no tap (see
//! [`kippu_mqtt::TapRecorder`]) and the next one starts from what is on record.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use kippu_domain::validation::Tap;
use kippu_domain::{GateInfo, TicketState, Validator, ValidatorConfig};
use kippu_mqtt::{CardRecord, MqttUrl, TapRecorder, TicketLookup, ValidatorHandle, ValidatorOptions, ValidatorService};
use kippu_store::Store;
use tokio::sync::Mutex;

/// Tickets and card bindings the validator has not seen, from the database.
pub struct StoreLookup(pub Store);

#[async_trait]
impl TicketLookup for StoreLookup {
    async fn ticket(&self, id: u64) -> Option<TicketState> {
        match self.0.ticket(id).await {
            Ok(t) => t.map(|t| t.state()),
            Err(e) => {
                tracing::error!(error = %e, id, "ticket lookup failed");
                None
            }
        }
    }

    async fn gate(&self, gate_key: &str) -> Option<GateInfo> {
        match self.0.gate(gate_key).await {
            Ok(g) => g.map(|g| GateInfo { operator_id: g.operator_id }),
            Err(e) => {
                tracing::error!(error = %e, gate = gate_key, "gate lookup failed");
                None
            }
        }
    }

    async fn card(&self, card_key: [u8; 32]) -> Option<CardRecord> {
        match self.0.card_binding(&card_key).await {
            Ok(b) => b.map(|b| CardRecord { ticket_id: b.ticket_id, sig: b.sig }),
            Err(e) => {
                tracing::error!(error = %e, "card lookup failed");
                None
            }
        }
    }
}

/// Records a validator's taps in the `taps` table, a batch per transaction.
pub struct StoreTaps(pub Store);

#[async_trait]
impl TapRecorder for StoreTaps {
    async fn record(&self, taps: &[Tap]) -> Result<(), String> {
        let new = self.0.record_taps(taps).await.map_err(|e| e.to_string())?;
        metrics::counter!("kippu_taps_recorded_total").increment(new);
        if new < taps.len() as u64 {
            tracing::info!(resent = taps.len() as u64 - new, "re-sent taps already on record");
        }
        Ok(())
    }
}

/// A validator's state from what the database holds: gates, tickets (rides left = issued minus
/// recorded taps), revoked account keys and devices, card bindings.
pub async fn load_state(store: &Store, chain_id: u64) -> anyhow::Result<Validator> {
    let mut v = Validator::new(ValidatorConfig { chain_id, ..Default::default() });
    for g in store.gates().await? {
        v.add_gate(&g.gate_key, GateInfo { operator_id: g.operator_id });
    }
    Stored::fetch(store).await?.apply(&mut v);
    Ok(v)
}

/// What the database holds of a validator's state, read without holding the validator's lock.
pub struct Stored {
    tickets: Vec<TicketState>,
    revoked_keys: Vec<alloy::primitives::Address>,
    revoked_devices: Vec<[u8; 32]>,
    cards: Vec<kippu_store::CardBindingRow>,
}

impl Stored {
    /// Reads it.
    pub async fn fetch(store: &Store) -> anyhow::Result<Self> {
        Ok(Self {
            tickets: store.ticket_states().await?,
            revoked_keys: store.revoked_keys().await?,
            revoked_devices: store.revoked_devices().await?,
            cards: store.card_bindings().await?,
        })
    }

    /// Brings `v` up to it, keeping `v`'s replay and passback memory: tickets new, changed or
    /// gone (a reorg), revocations, card bindings made or dropped.
    pub fn apply(self, v: &mut Validator) {
        let live: HashSet<u64> = self.tickets.iter().map(|t| t.id).collect();
        v.retain_tickets(|id| live.contains(&id));
        for mut t in self.tickets {
            // Read before a ride this validator has just counted was recorded, the row may show
            // one ride too many; rides only go down, so the lower count is the true one.
            if let (Some(known), Some(stored)) = (v.ticket(t.id).and_then(|k| k.rides_left), t.rides_left) {
                t.rides_left = Some(known.min(stored));
            }
            v.upsert_ticket(t);
        }
        for holder in self.revoked_keys {
            v.revoke_key(holder);
        }
        for device in self.revoked_devices {
            v.revoke_device(device);
        }
        let bound: HashSet<[u8; 32]> = self.cards.iter().map(|c| c.card_key).collect();
        v.retain_cards(|k| bound.contains(k));
        for c in self.cards {
            if v.card(&c.card_key).is_some_and(|b| b.ticket_id == c.ticket_id) {
                continue;
            }
            if let Err(e) = v.bind_card(c.card_key, c.ticket_id, &c.sig) {
                tracing::error!(error = %e, ticket = c.ticket_id, "stored card binding does not verify; not loaded");
            }
        }
    }
}

/// Starts a validator on `mqtt` serving `state`, recording into `store`.
pub async fn spawn(
    store: &Store,
    mqtt: &MqttUrl,
    client_id: &str,
    opts: ValidatorOptions,
    state: Arc<Mutex<Validator>>,
) -> kippu_mqtt::Result<ValidatorHandle> {
    ValidatorService::spawn_with(
        mqtt,
        client_id,
        opts,
        state,
        Arc::new(StoreLookup(store.clone())),
        Arc::new(StoreTaps(store.clone())),
    )
    .await
}
