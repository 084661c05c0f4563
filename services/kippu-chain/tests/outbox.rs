//! The chain-write outbox against faults of a real anvil mining a block a second (not
//! automine) with gas that costs nothing (`--gas-price 0 --base-fee 0`, as a consortium chain):
//! a mint reorganised away at depth 1 and 3, transactions dropped from the node's
//! pool, the node restarted from its saved state with its pool lost, and the sender itself
//! stopped between "sent" and "receipt" and replaced by a fresh one (a process restart). After
//! each, the payment is minted exactly once, and the figures (attempts, seconds to
//! re-confirm) are printed for BENCHMARKS.md. `outbox_hardhat.rs` runs the faults Hardhat's
//! node supports on it; the rig is shared (`support/`).

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use alloy::primitives::{keccak256, Address};
use kippu_chain::anvil::AnvilProcess;
use kippu_chain::hardhat::NodeKind;
use kippu_domain::outbox::Stage;
use support::{anvil_bin, mint_key, Rig, BLOCK_TIME, CHAIN_ID};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mint_reorganised_away_at_depth_one_and_three_is_sent_again_and_minted_once() {
    let rig = Rig::start(NodeKind::Anvil, "reorg").await;
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
        rig.report(&fault, &key, secs, w.write.attempts).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mint_dropped_from_the_pool_is_sent_again_and_minted_once() {
    let rig = Rig::start(NodeKind::Anvil, "drop").await;
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
    rig.report("dropAllTransactions", &key, secs, w.write.attempts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_from_saved_state_loses_its_pool_and_the_mint_is_sent_again_once() {
    let mut rig = Rig::start(NodeKind::Anvil, "restart").await;
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
    rig.node.take().unwrap().stop().await;
    let at = Instant::now();
    let anvil =
        AnvilProcess::spawn_free_gas(&anvil_bin(), rig.port, CHAIN_ID, Some(BLOCK_TIME), Some(&path)).await.unwrap();
    rig.node = Some(anvil.into());
    waiting.await.unwrap().expect("the request gets its receipt from the restarted node");
    let secs = rig.confirmed(&key, at).await;
    let w = rig.store.recorded_write(&key).await.unwrap().unwrap();
    assert_eq!(rig.minted(who).await, 1_200, "both mints, each exactly once");
    rig.report("node restart (pool lost)", &key, secs, w.write.attempts).await;
    std::fs::remove_file(path).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_stopped_between_sent_and_receipt_is_replaced_and_the_mint_lands_once() {
    let mut rig = Rig::start(NodeKind::Anvil, "kill").await;
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
    rig.report("sender restarted after sent (lease expiry)", &key, secs, w.write.attempts).await;
}
