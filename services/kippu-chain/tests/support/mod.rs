//! The rig of the chain-write outbox's fault tests (`outbox.rs` on anvil, `outbox_hardhat.rs` on
//! Hardhat's node): a node mining a block a second with gas that costs nothing, Kippu deployed
//! on it, and a chain connection whose writes go through an outbox on a fresh SQLite database,
//! its sender running.

// Each test binary uses its part of the rig.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{keccak256, Address};
use alloy::providers::Provider;
use kippu_chain::anvil::DEV_ADMIN_KEY;
use kippu_chain::hardhat::{LocalNode, NodeKind};
use kippu_chain::{deploy_single_key, Chain, ChainConfig, InsuranceTerms, Outbox};
use kippu_domain::outbox::{Policy, Stage, WriteKey, WriteKind};
use kippu_store::Store;

pub(crate) const CHAIN_ID: u64 = 31337;
pub(crate) const CONFIRMATIONS: u64 = 2;
/// Seconds between blocks.
pub(crate) const BLOCK_TIME: u64 = 1;

pub(crate) fn anvil_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../contracts/node_modules/.bin/anvil")
}

fn terms() -> InsuranceTerms {
    InsuranceTerms { threshold_minutes: 15, voucher_value: 500, voucher_operator_id: 1, voucher_lifetime: 30 * 86_400 }
}

pub(crate) async fn store(tag: &str) -> Store {
    sqlx::any::install_default_drivers();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let dir = std::env::temp_dir().join(format!("kippu-outbox-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    Store::connect(&format!("sqlite://{}", dir.join("kippu.db").display())).await.unwrap()
}

/// A node mining every second with free gas, Kippu deployed on it, and a chain connection whose
/// writes go through an outbox on a fresh database, its sender running.
pub(crate) struct Rig {
    pub(crate) node: Option<LocalNode>,
    pub(crate) kind: NodeKind,
    pub(crate) port: u16,
    pub(crate) chain: Chain,
    pub(crate) store: Store,
    pub(crate) outbox: Arc<Outbox>,
    sender: tokio::task::JoinHandle<()>,
}

impl Rig {
    pub(crate) async fn start(kind: NodeKind, tag: &str) -> Self {
        let node = LocalNode::spawn(kind, &anvil_bin(), 0, CHAIN_ID, BLOCK_TIME)
            .await
            .unwrap_or_else(|e| panic!("{} ({e}); npm ci in contracts/ and tests/hardhat/", kind.name()));
        let port = node.port();
        let cfg = ChainConfig { rpc_url: node.url(), admin_key: DEV_ADMIN_KEY.into() };
        let bare = deploy_single_key(&cfg, &terms(), 5000).await.unwrap();
        let store = store(&format!("{}-{tag}", kind.name())).await;
        let (outbox, chain, sender) = Self::sender(&bare, &store);
        Self { node: Some(node), kind, port, chain, store, outbox, sender }
    }

    /// An outbox on `store` for `bare`'s connection, its sender running.
    pub(crate) fn sender(bare: &Chain, store: &Store) -> (Arc<Outbox>, Chain, tokio::task::JoinHandle<()>) {
        let policy = Policy { confirmations: CONFIRMATIONS, resend_after_secs: 2, stuck_after_attempts: 5 };
        let outbox = Arc::new(Outbox::new(Arc::new(store.clone()), Arc::new(store.clone()), policy));
        let chain = bare.clone().with_outbox(outbox.clone());
        let c = chain.clone();
        let sender = tokio::spawn(async move { c.run_outbox(Duration::from_millis(200)).await });
        (outbox, chain, sender)
    }

    /// A process restart: the sender stops wherever it is, a new one starts on the same
    /// database with nothing in memory (and waits for the dead one's lease to expire).
    pub(crate) fn restart_sender(&mut self) {
        self.sender.abort();
        let (outbox, chain, sender) = Self::sender(&self.chain, &self.store);
        (self.outbox, self.chain, self.sender) = (outbox, chain, sender);
    }

    pub(crate) async fn rpc(&self, method: &'static str, params: serde_json::Value) -> serde_json::Value {
        self.chain.provider().raw_request(method.into(), params).await.unwrap()
    }

    /// Stops interval mining: blocks only on `evm_mine`.
    pub(crate) async fn pause_mining(&self) {
        self.rpc("evm_setIntervalMining", serde_json::json!([0])).await;
    }

    /// Mines a block every [`BLOCK_TIME`] again (anvil takes seconds, Hardhat milliseconds).
    pub(crate) async fn resume_mining(&self) {
        let interval = match self.kind {
            NodeKind::Anvil => BLOCK_TIME,
            NodeKind::Hardhat => BLOCK_TIME * 1000,
        };
        self.rpc("evm_setIntervalMining", serde_json::json!([interval])).await;
    }

    /// The write's stage, `Recorded` until the request has recorded it.
    pub(crate) async fn stage(&self, key: &WriteKey) -> Stage {
        self.store.recorded_write(key).await.unwrap().map_or(Stage::Recorded, |w| w.write.stage)
    }

    /// Waits until `key` is sent (its transaction in the node's pool); the transaction's hash.
    pub(crate) async fn sent(&self, key: &WriteKey) -> [u8; 32] {
        let at = Instant::now();
        loop {
            if let Stage::Sent { tx, .. } = self.stage(key).await {
                return tx;
            }
            assert!(at.elapsed() < Duration::from_secs(60), "{key} not sent: {:?}", self.stage(key).await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `key` is confirmed at depth again; the seconds it took.
    pub(crate) async fn confirmed(&self, key: &WriteKey, since: Instant) -> f64 {
        loop {
            if matches!(self.stage(key).await, Stage::Confirmed { .. }) {
                return since.elapsed().as_secs_f64();
            }
            assert!(since.elapsed() < Duration::from_secs(60), "{key} not re-confirmed: {:?}", self.stage(key).await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn minted(&self, who: Address) -> u128 {
        self.chain.fare_balance(who).await.unwrap()
    }

    /// Prints the figures of a fault for BENCHMARKS.md, with the gas price the write's
    /// confirmed transaction paid.
    pub(crate) async fn report(&self, fault: &str, key: &WriteKey, secs: f64, attempts: u32) {
        let Stage::Confirmed { tx, .. } = self.stage(key).await else { panic!("{key} is not confirmed") };
        let receipt = self.chain.provider().get_transaction_receipt(tx.into()).await.unwrap().expect("its receipt");
        println!(
            "outbox fault {fault:<40} re-confirmed in {secs:>5.1} s, attempts of the write {attempts} ({}, block time {BLOCK_TIME} s, {CONFIRMATIONS} confirmations, paid {} wei/gas)",
            self.kind.name(),
            receipt.effective_gas_price,
        );
    }
}

pub(crate) fn mint_key(payment: &str) -> WriteKey {
    WriteKey { kind: WriteKind::Mint, id: format!("{:#x}", keccak256(payment)) }
}
