//! The chain-write outbox against faults of a real anvil mining a block a second (not
//! automine): a mint reorganised away at depth 1 and 3, transactions dropped from the node's
//! pool, the node restarted from its saved state with its pool lost, and the sender itself
//! stopped between "sent" and "receipt" and replaced by a fresh one (a process restart). After
//! each, the payment is minted exactly once, and the figures (attempts, seconds to
//! re-confirm) are printed for BENCHMARKS.md.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{keccak256, Address};
use alloy::providers::Provider;
use kippu_chain::anvil::{AnvilProcess, DEV_ADMIN_KEY};
use kippu_chain::{deploy_single_key, Chain, ChainConfig, InsuranceTerms, Outbox};
use kippu_domain::outbox::{Policy, Stage, WriteKey, WriteKind};
use kippu_store::Store;

const CHAIN_ID: u64 = 31337;
const CONFIRMATIONS: u64 = 2;

fn anvil_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../contracts/node_modules/.bin/anvil")
}

fn terms() -> InsuranceTerms {
    InsuranceTerms { threshold_minutes: 15, voucher_value: 500, voucher_operator_id: 1, voucher_lifetime: 30 * 86_400 }
}

async fn store(tag: &str) -> Store {
    sqlx::any::install_default_drivers();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let dir = std::env::temp_dir().join(format!("kippu-outbox-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    Store::connect(&format!("sqlite://{}", dir.join("kippu.db").display())).await.unwrap()
}

/// anvil mining every second, Kippu deployed on it, and a chain connection whose writes go
/// through an outbox on a fresh database, its sender running.
struct Rig {
    anvil: Option<AnvilProcess>,
    port: u16,
    chain: Chain,
    store: Store,
    outbox: Arc<Outbox>,
    sender: tokio::task::JoinHandle<()>,
}

impl Rig {
    async fn start(tag: &str) -> Self {
        let anvil =
            AnvilProcess::spawn(&anvil_bin(), 0, CHAIN_ID, Some(1)).await.expect("anvil (npm ci in contracts/)");
        let port = anvil.url().rsplit(':').next().unwrap().trim_end_matches('/').parse().unwrap();
        let cfg = ChainConfig { rpc_url: anvil.url(), admin_key: DEV_ADMIN_KEY.into() };
        let bare = deploy_single_key(&cfg, &terms(), 5000).await.unwrap();
        let store = store(tag).await;
        let (outbox, chain, sender) = Self::sender(&bare, &store);
        Self { anvil: Some(anvil), port, chain, store, outbox, sender }
    }

    fn sender(bare: &Chain, store: &Store) -> (Arc<Outbox>, Chain, tokio::task::JoinHandle<()>) {
        let policy = Policy { confirmations: CONFIRMATIONS, resend_after_secs: 2, stuck_after_attempts: 5 };
        let outbox = Arc::new(Outbox::new(Arc::new(store.clone()), Arc::new(store.clone()), policy));
        let chain = bare.clone().with_outbox(outbox.clone());
        let c = chain.clone();
        let sender = tokio::spawn(async move { c.run_outbox(Duration::from_millis(200)).await });
        (outbox, chain, sender)
    }

    /// A process restart: the sender stops wherever it is, a new one starts on the same
    /// database with nothing in memory (and waits for the dead one's lease to expire).
    fn restart_sender(&mut self) {
        self.sender.abort();
        let (outbox, chain, sender) = Self::sender(&self.chain, &self.store);
        (self.outbox, self.chain, self.sender) = (outbox, chain, sender);
    }

    async fn rpc(&self, method: &'static str, params: serde_json::Value) {
        let _: serde_json::Value = self.chain.provider().raw_request(method.into(), params).await.unwrap();
    }

    /// The write's stage, `Recorded` until the request has recorded it.
    async fn stage(&self, key: &WriteKey) -> Stage {
        self.store.recorded_write(key).await.unwrap().map_or(Stage::Recorded, |w| w.write.stage)
    }

    /// Waits until `key` is confirmed at depth again; the seconds it took.
    async fn confirmed(&self, key: &WriteKey, since: Instant) -> f64 {
        loop {
            if matches!(self.stage(key).await, Stage::Confirmed { .. }) {
                return since.elapsed().as_secs_f64();
            }
            assert!(since.elapsed() < Duration::from_secs(60), "{key} not re-confirmed: {:?}", self.stage(key).await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn minted(&self, who: Address) -> u128 {
        self.chain.fare_balance(who).await.unwrap()
    }
}

fn mint_key(payment: &str) -> WriteKey {
    WriteKey { kind: WriteKind::Mint, id: format!("{:#x}", keccak256(payment)) }
}

fn report(fault: &str, secs: f64, attempts: u32) {
    println!(
        "outbox fault {fault:<40} re-confirmed in {secs:>5.1} s, attempts of the write {attempts} (block time 1 s, {CONFIRMATIONS} confirmations)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mint_reorganised_away_at_depth_one_and_three_is_sent_again_and_minted_once() {
    let rig = Rig::start("reorg").await;
    for (depth, payment, who, wait_confirmed) in
        [(1u64, "cs_reorg_1", Address::repeat_byte(0x11), false), (3, "cs_reorg_3", Address::repeat_byte(0x33), true)]
    {
        let key = mint_key(payment);
        // Blocks mined by hand until the reorganisation, so it replaces exactly the mint's
        // block and the `depth - 1` on top of it.
        rig.rpc("evm_setIntervalMining", serde_json::json!([0])).await;
        let c = rig.chain.clone();
        let waiting = tokio::spawn(async move { c.mint_fare(who, 700, keccak256(payment)).await });
        while !matches!(rig.stage(&key).await, Stage::Sent { .. }) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        rig.rpc("evm_mine", serde_json::json!([])).await;
        waiting.await.unwrap().expect("in a block when mint_fare returns");
        assert_eq!(rig.minted(who).await, 700);
        let block = rig.chain.block_number().await.unwrap();
        for _ in 1..depth {
            rig.rpc("evm_mine", serde_json::json!([])).await;
        }
        if wait_confirmed {
            // confirmed at depth first: its disappearance is then the alert
            rig.confirmed(&key, Instant::now()).await;
        }
        assert_eq!(rig.chain.block_number().await.unwrap(), block + depth - 1);
        let gone_before = rig.outbox.stats.gone.load(Ordering::Relaxed);
        // The mint's block and the ones after replaced by empty ones: the mint is gone.
        let at = Instant::now();
        rig.rpc("anvil_reorg", serde_json::json!([depth, []])).await;
        assert_eq!(rig.minted(who).await, 0, "the reorganisation took the mint away");
        rig.rpc("evm_setIntervalMining", serde_json::json!([1])).await;
        if wait_confirmed {
            // still marked confirmed until the sender sees it gone: wait for the alert first
            while rig.outbox.stats.gone.load(Ordering::Relaxed) == gone_before {
                assert!(at.elapsed() < Duration::from_secs(30), "the vanished confirmed mint was not noticed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let secs = rig.confirmed(&key, at).await;
        let w = rig.store.recorded_write(&key).await.unwrap().unwrap();
        assert_eq!(rig.minted(who).await, 700, "minted exactly once after the reorganisation");
        assert!(w.write.attempts >= 2, "the mint was sent again: {w:?}");
        let gone = rig.outbox.stats.gone.load(Ordering::Relaxed) - gone_before;
        assert_eq!(gone > 0, wait_confirmed, "a confirmed write that vanished is an alert, an included one is not");
        let fault = format!("reorg depth {depth}{}", if wait_confirmed { " after confirmation" } else { "" });
        report(&fault, secs, w.write.attempts);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mint_dropped_from_the_pool_is_sent_again_and_minted_once() {
    let rig = Rig::start("drop").await;
    let who = Address::repeat_byte(0x44);
    let key = mint_key("cs_drop");
    // Mining paused, so the mint waits in the pool when it is dropped.
    rig.rpc("evm_setIntervalMining", serde_json::json!([0])).await;
    let c = rig.chain.clone();
    let waiting = tokio::spawn(async move { c.mint_fare(who, 900, keccak256("cs_drop")).await });
    while !matches!(rig.stage(&key).await, Stage::Sent { .. }) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let at = Instant::now();
    rig.rpc("anvil_dropAllTransactions", serde_json::json!([])).await;
    rig.rpc("evm_setIntervalMining", serde_json::json!([1])).await;
    waiting.await.unwrap().expect("the request gets its receipt once the re-sent mint is in a block");
    let secs = rig.confirmed(&key, at).await;
    let w = rig.store.recorded_write(&key).await.unwrap().unwrap();
    assert_eq!(rig.minted(who).await, 900, "minted exactly once");
    assert!(w.write.attempts >= 2, "sent again after the drop: {w:?}");
    report("dropAllTransactions", secs, w.write.attempts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_from_saved_state_loses_its_pool_and_the_mint_is_sent_again_once() {
    let mut rig = Rig::start("restart").await;
    let who = Address::repeat_byte(0x55);
    rig.chain.mint_fare(who, 100, keccak256("cs_before")).await.unwrap();
    let key = mint_key("cs_restart");
    rig.rpc("evm_setIntervalMining", serde_json::json!([0])).await;
    let c = rig.chain.clone();
    let waiting = tokio::spawn(async move { c.mint_fare(who, 1_100, keccak256("cs_restart")).await });
    while !matches!(rig.stage(&key).await, Stage::Sent { .. }) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Saved without the pending mint's effect, then the node restarted from it.
    let state = rig.chain.dump_state().await.unwrap();
    let path = std::env::temp_dir().join(format!("kippu-outbox-state-{}.json", std::process::id()));
    std::fs::write(&path, state).unwrap();
    rig.anvil.take().unwrap().stop().await;
    let at = Instant::now();
    let anvil = AnvilProcess::spawn_with(&anvil_bin(), rig.port, CHAIN_ID, Some(1), Some(&path)).await.unwrap();
    rig.anvil = Some(anvil);
    waiting.await.unwrap().expect("the request gets its receipt from the restarted node");
    let secs = rig.confirmed(&key, at).await;
    let w = rig.store.recorded_write(&key).await.unwrap().unwrap();
    assert_eq!(rig.minted(who).await, 1_200, "both mints, each exactly once");
    report("node restart (pool lost)", secs, w.write.attempts);
    std::fs::remove_file(path).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_stopped_between_sent_and_receipt_is_replaced_and_the_mint_lands_once() {
    let mut rig = Rig::start("kill").await;
    let who = Address::repeat_byte(0x66);
    let key = mint_key("cs_kill");
    rig.rpc("evm_setIntervalMining", serde_json::json!([0])).await;
    let c = rig.chain.clone();
    let waiting = tokio::spawn(async move { c.mint_fare(who, 1_300, keccak256("cs_kill")).await });
    while !matches!(rig.stage(&key).await, Stage::Sent { .. }) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Stopped with the mint sent and no receipt; its pool entry lost too, so the new sender
    // has only the database to go on.
    waiting.abort();
    let at = Instant::now();
    rig.rpc("anvil_dropAllTransactions", serde_json::json!([])).await;
    rig.restart_sender();
    rig.rpc("evm_setIntervalMining", serde_json::json!([1])).await;
    let secs = rig.confirmed(&key, at).await;
    // A retried business fact (the provider's webhook again) waits for the same write.
    rig.chain.mint_fare(who, 1_300, keccak256("cs_kill")).await.unwrap();
    let w = rig.store.recorded_write(&key).await.unwrap().unwrap();
    assert_eq!(rig.minted(who).await, 1_300, "minted exactly once");
    report("sender restarted after sent (lease expiry)", secs, w.write.attempts);
}
