//! The chain-write outbox against faults of Hardhat's node (EDR, `tests/hardhat`), the second
//! EVM implementation beside anvil (`outbox.rs`): interval mining at a block a second (not
//! automine) and gas that costs nothing (base fee 0), as a consortium chain is configured.
//! The faults Hardhat offers: a mint reorganised away (Hardhat has no `anvil_reorg`: the chain
//! reverted to an `evm_snapshot` taken before the mint's block, then mined on, at depth 1 and 3),
//! a mint dropped from the pool (`hardhat_dropTransaction`), and the sender stopped between
//! "sent" and "receipt" and replaced by a fresh one. Hardhat cannot save and reload its chain,
//! so the node restart of `outbox.rs` has no counterpart here. After each, the payment is
//! minted exactly once, and the figures (attempts, seconds to re-confirm) are printed.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{keccak256, Address, B256, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use kippu_chain::anvil::DEV_ADMIN_KEY;
use kippu_chain::hardhat::NodeKind;
use support::{mint_key, Rig, CHAIN_ID};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mint_reverted_away_at_depth_one_and_three_is_sent_again_and_minted_once() {
    let rig = Rig::start(NodeKind::Hardhat, "reorg").await;
    for (depth, payment, who, wait_confirmed) in
        [(1u64, "cs_reorg_1", Address::repeat_byte(0x11), false), (3, "cs_reorg_3", Address::repeat_byte(0x33), true)]
    {
        let key = mint_key(payment);
        // Blocks mined by hand until the reorganisation; the snapshot is of the chain (and its
        // empty pool) before the mint is sent.
        rig.pause_mining().await;
        // (`Chain::evm_snapshot` sends `"params": null`, which anvil takes and EDR refuses as
        // an invalid request: `[]` here.)
        let snapshot = rig.rpc("evm_snapshot", serde_json::json!([])).await;
        let before = rig.chain.block_number().await.unwrap();
        let c = rig.chain.clone();
        let waiting = tokio::spawn(async move { c.mint_fare(who, 700, keccak256(payment)).await });
        rig.sent(&key).await;
        rig.rpc("evm_mine", serde_json::json!([])).await;
        waiting.await.unwrap().expect("in a block when mint_fare returns");
        assert_eq!(rig.minted(who).await, 700);
        let block = rig.chain.block_number().await.unwrap();
        assert_eq!(block, before + 1, "the mint's block");
        for _ in 1..depth {
            rig.rpc("evm_mine", serde_json::json!([])).await;
        }
        if wait_confirmed {
            // confirmed at depth first: its disappearance is then the alert
            rig.confirmed(&key, Instant::now()).await;
        }
        assert_eq!(rig.chain.block_number().await.unwrap(), block + depth - 1);
        let gone_before = rig.outbox.stats.gone.load(Ordering::Relaxed);
        // Back to the snapshot: the mint's block and the ones after are gone, and new blocks
        // (other hashes) are mined at their heights.
        let at = Instant::now();
        assert_eq!(rig.rpc("evm_revert", serde_json::json!([snapshot])).await, true, "evm_revert");
        assert_eq!(rig.chain.block_number().await.unwrap(), before, "the chain is back before the mint's block");
        assert_eq!(rig.minted(who).await, 0, "the reorganisation took the mint away");
        rig.resume_mining().await;
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
        let fault = format!("evm_revert depth {depth}{}", if wait_confirmed { " after confirmation" } else { "" });
        rig.report(&fault, &key, secs, w.write.attempts).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mint_dropped_from_the_pool_is_sent_again_and_minted_once() {
    let rig = Rig::start(NodeKind::Hardhat, "drop").await;
    let who = Address::repeat_byte(0x44);
    let key = mint_key("cs_drop");
    // Mining paused, so the mint waits in the pool when it is dropped.
    rig.pause_mining().await;
    let c = rig.chain.clone();
    let waiting = tokio::spawn(async move { c.mint_fare(who, 900, keccak256("cs_drop")).await });
    let tx = rig.sent(&key).await;
    let at = Instant::now();
    let dropped = rig.rpc("hardhat_dropTransaction", serde_json::json!([B256::from(tx)])).await;
    assert_eq!(dropped, serde_json::json!(true), "the mint was in the pool");
    rig.resume_mining().await;
    waiting.await.unwrap().expect("the request gets its receipt once the re-sent mint is in a block");
    let secs = rig.confirmed(&key, at).await;
    let w = rig.store.recorded_write(&key).await.unwrap().unwrap();
    assert_eq!(rig.minted(who).await, 900, "minted exactly once");
    assert!(w.write.attempts >= 2, "sent again after the drop: {w:?}");
    rig.report("hardhat_dropTransaction", &key, secs, w.write.attempts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_stopped_between_sent_and_receipt_is_replaced_and_the_mint_lands_once() {
    let mut rig = Rig::start(NodeKind::Hardhat, "kill").await;
    let who = Address::repeat_byte(0x66);
    let key = mint_key("cs_kill");
    rig.pause_mining().await;
    let c = rig.chain.clone();
    let waiting = tokio::spawn(async move { c.mint_fare(who, 1_300, keccak256("cs_kill")).await });
    let tx = rig.sent(&key).await;
    // Stopped with the mint sent and no receipt; its pool entry lost too, so the new sender
    // has only the database to go on.
    waiting.abort();
    let at = Instant::now();
    rig.rpc("hardhat_dropTransaction", serde_json::json!([B256::from(tx)])).await;
    rig.restart_sender();
    rig.resume_mining().await;
    let secs = rig.confirmed(&key, at).await;
    // A retried business fact (the provider's webhook again) waits for the same write.
    rig.chain.mint_fare(who, 1_300, keccak256("cs_kill")).await.unwrap();
    let w = rig.store.recorded_write(&key).await.unwrap().unwrap();
    assert_eq!(rig.minted(who).await, 1_300, "minted exactly once");
    rig.report("sender restarted after sent (lease expiry)", &key, secs, w.write.attempts).await;
}

/// Gas costs nothing, as on a consortium chain with Besu's `min-gas-price=0`: the base fee is
/// 0 and stays 0, and a transaction priced 0 is taken and mined on the block timer. (EDR still
/// suggests 1 gwei on `eth_gasPrice`, a priority fee nobody has to pay, and has no setting for
/// it; the outbox pays twice what the node suggests, so on Hardhat its writes pay 2 gwei, which
/// the dev keys' balances cover. anvil with `--disable-min-priority-fee` suggests 0.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_priced_zero_is_mined_on_the_block_timer() {
    let rig = Rig::start(NodeKind::Hardhat, "free-gas").await;
    let url = rig.node.as_ref().unwrap().url();
    let key: PrivateKeySigner = DEV_ADMIN_KEY.parse().unwrap();
    let from = key.address();
    let provider = ProviderBuilder::new()
        .disable_recommended_fillers()
        .wallet(EthereumWallet::from(key))
        .connect_http(url.parse().unwrap());
    let latest = provider.get_block_by_number(alloy::eips::BlockNumberOrTag::Latest).await.unwrap().unwrap();
    assert_eq!(latest.header.base_fee_per_gas, Some(0), "base fee 0 after the deployment's blocks");
    let balance = provider.get_balance(from).await.unwrap();
    let nonce = provider.get_transaction_count(from).pending().await.unwrap();
    let to = Address::repeat_byte(0x77);
    let tx = TransactionRequest::default()
        .with_from(from)
        .with_to(to)
        .with_value(U256::from(1))
        .with_nonce(nonce)
        .with_chain_id(CHAIN_ID)
        .with_gas_limit(21_000)
        .with_gas_price(0);
    let at = Instant::now();
    let receipt = provider.send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
    let secs = at.elapsed().as_secs_f64();
    assert!(receipt.status());
    assert_eq!(receipt.effective_gas_price, 0);
    assert_eq!(provider.get_balance(from).await.unwrap(), balance - U256::from(1), "no gas paid");
    assert!(secs < 3.0, "mined on the 1 s timer, not waited out: {secs:.1} s");
    let suggested = provider.get_gas_price().await.unwrap();
    println!("hardhat: a zero-priced transfer mined in {secs:.1} s; eth_gasPrice suggests {suggested} wei");
}
