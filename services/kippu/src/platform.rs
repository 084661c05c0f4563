//! The platform's core as the web layer and the demo reach it ([`Platform`]): the ledger
//! follower, the in-process validator's state, the delay insurer, the period close.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use kippu_chain::Chain;
use kippu_domain::Validator;
use kippu_mqtt::{FleetWatcher, GateStatus as MqttGateStatus};
use kippu_store::Store;
use kippu_web::{GateStatus, Platform};
use tokio::sync::Mutex;

use crate::clock::now;
use crate::indexer::Indexer;
use crate::insurance::DelayInsurer;
use crate::telemetry::prometheus;

/// What the platform's core runs: what the web layer and the demo reach through [`Platform`].
pub struct Core {
    pub(crate) indexer: Indexer,
    pub(crate) fleet: FleetWatcher,
    /// The in-process validator's state (revocations reach it at once).
    pub(crate) validator_state: Arc<Mutex<Validator>>,
    pub(crate) insurer: DelayInsurer,
    pub(crate) chain: Chain,
    pub(crate) store: Store,
    /// When the outbox's sender re-sends and reports a write stuck.
    pub(crate) outbox_policy: kippu_domain::outbox::Policy,
    /// One close at a time in this process: each reads and replaces the carried positions.
    pub(crate) closing: Mutex<()>,
}

impl Core {
    /// Closes the clearing period on chain (one close at a time in this process; the contract
    /// refuses a second close of the same period from anywhere).
    pub async fn close_period(&self) -> anyhow::Result<crate::settle::Closed> {
        let _one = self.closing.lock().await;
        crate::settle::close_period(&self.chain, &self.store, &self.indexer, now()).await
    }

    /// Brings the metrics that are not counted as things happen up to date before a scrape:
    /// what the outbox's sender did (in the process holding its lease), and how its writes
    /// stand now, read from the database (so every process reports the same).
    pub(crate) async fn refresh_metrics(&self) {
        if let Some(o) = self.chain.outbox() {
            use std::sync::atomic::Ordering::Relaxed;
            let s = &o.stats;
            for (what, n) in [
                ("sent", &s.sent),
                ("resent", &s.resent),
                ("confirmed", &s.confirmed),
                ("failed", &s.failed),
                ("gone", &s.gone),
            ] {
                metrics::counter!("kippu_chain_writes_total", "what" => what).absolute(n.load(Relaxed));
            }
        }
        let window = kippu_app::chain_writes::CONFIRMED_WINDOW_SECS;
        match self.store.write_counts(self.outbox_policy.stuck_after_attempts, now() - window).await {
            Ok(c) => {
                for (stage, n) in [("recorded", c.recorded), ("sent", c.sent), ("included", c.included)] {
                    metrics::gauge!("kippu_chain_writes_open", "stage" => stage).set(n as f64);
                }
                // Confirmed once, and not on the chain now: each is an alert until it is confirmed again.
                metrics::gauge!("kippu_chain_writes_gone").set(c.gone as f64);
                metrics::gauge!("kippu_chain_writes_stuck").set(c.stuck as f64);
            }
            // The last figures stay; the scrape still answers.
            Err(e) => tracing::warn!(error = %e, "the outbox's writes not counted for the metrics"),
        }
    }
}

/// The production side of the web layer's [`Platform`].
pub(crate) struct Services(pub(crate) Arc<Core>);

#[async_trait]
impl Platform for Services {
    async fn catch_up(&self) {
        if let Err(e) = self.0.indexer.catch_up().await {
            tracing::warn!(error = %e, "catch-up failed");
        }
    }

    async fn gates(&self) -> Vec<GateStatus> {
        let fleet = self.0.fleet.snapshot();
        // Registered gates (read each time: `kippu gate add` runs in another process) plus any
        // gate the broker reports, registered or not.
        let stations: HashMap<String, String> = match self.0.store.gates().await {
            Ok(rows) => rows.into_iter().map(|g| (g.gate_key, g.station)).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "gates not read for the fleet page");
                HashMap::new()
            }
        };
        let mut keys: Vec<&String> = stations.keys().chain(fleet.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .map(|k| GateStatus {
                key: k.clone(),
                station: stations.get(k).cloned().unwrap_or_else(|| "not registered".into()),
                state: match fleet.get(k) {
                    Some(MqttGateStatus::Online) => "online",
                    Some(MqttGateStatus::Offline) => "offline",
                    None => "never seen",
                }
                .into(),
                last: String::new(),
                did: String::new(),
            })
            .collect()
    }

    async fn timetable_imported(&self, operator_id: u32, timetable: kippu_gtfs::Timetable) {
        self.0.insurer.add_timetable(operator_id, timetable);
    }

    async fn key_revoked(&self, holder: alloy::primitives::Address) {
        self.0.validator_state.lock().await.revoke_key(holder);
    }

    async fn card_bound(&self, card_key: [u8; 32], ticket_id: u64, sig: Vec<u8>) {
        if let Err(e) = self.0.validator_state.lock().await.bind_card(card_key, ticket_id, &sig) {
            tracing::error!(error = %e, ticket_id, "card binding does not verify; not loaded");
        }
    }

    async fn device_revoked(&self, device_key: [u8; 32]) {
        self.0.validator_state.lock().await.revoke_device(device_key);
    }

    async fn card_unbound(&self, card_key: [u8; 32]) {
        self.0.validator_state.lock().await.unbind_card(&card_key);
    }

    async fn metrics(&self) -> String {
        self.0.refresh_metrics().await;
        prometheus().render()
    }
}
