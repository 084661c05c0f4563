//! The outbox and the contracts' business keys together (issue 20), on a real anvil mining a
//! block a second with free gas: a purchase, a tap anchor and a delay voucher reorganised away
//! (depth 1 and 3) are sent again and take effect once — one plan per purchase request, one
//! batch per root, one voucher per delay and policy —
//! and a purchase request another sender already made answers with that plan, from the
//! contract's own refusal (`PurchaseAlreadyMade`), buying nothing twice. Figures printed for
//! BENCHMARKS.md as in `outbox.rs`.

mod support;

use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use kippu_chain::bindings::{Clearing, PlanMarket};
use kippu_chain::hardhat::NodeKind;
use kippu_chain::{BundleSpec, Chain, OperatorSpec, ProductSpec, Validity};
use kippu_domain::outbox::{Stage, WriteKey, WriteKind};
use support::Rig;

const OPERATOR: u32 = 1;
const PRODUCT: u32 = 10;
const BUNDLE: u32 = 100;
const PRICE: u128 = 300;

/// A day ticket of two rides at [`PRICE`], with delay cover or without.
fn product(id: u32, insurance: bool) -> ProductSpec {
    ProductSpec {
        id,
        operator_id: OPERATOR,
        zone: 0,
        price: PRICE,
        validity: Validity::Fixed,
        duration: 86_400,
        activation_window: 0,
        rides: 2,
        insurance,
        transferable: !insurance,
        refund_bps: 0,
        refund_window: 0,
    }
}

/// An operator and a one-product bundle, through the outbox like every other write.
async fn list(chain: &Chain) {
    chain.set_operator(&OperatorSpec { id: OPERATOR, payee: Address::repeat_byte(0x0b) }).await.unwrap();
    chain.list_product(&product(PRODUCT, false)).await.unwrap();
    chain.list_bundle(&BundleSpec { id: BUNDLE, product_ids: vec![PRODUCT], discount_bps: 0 }).await.unwrap();
}

fn purchase_key(request: B256) -> WriteKey {
    WriteKey { kind: WriteKind::Purchase, id: format!("{request:#x}") }
}

/// Plans bought on chain so far (PlanMarket counts them from 1).
async fn plans(rig: &Rig, request: B256) -> u64 {
    let m = PlanMarket::new(rig.chain.deployment().market, rig.chain.provider());
    m.purchaseOf(request).call().await.unwrap()
}

/// Mines by hand until the write is in a block and `depth - 1` more, then replaces those blocks
/// with empty ones; returns when the reorganisation happened.
async fn reorganise_after(rig: &Rig, key: &WriteKey, depth: u64) -> Instant {
    while !matches!(rig.stage(key).await, Stage::Sent { .. }) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rig.rpc("evm_mine", serde_json::json!([])).await;
    for _ in 1..depth {
        rig.rpc("evm_mine", serde_json::json!([])).await;
    }
    let at = Instant::now();
    rig.rpc("anvil_reorg", serde_json::json!([depth, []])).await;
    at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_reorganised_away_is_sent_again_and_buys_one_plan() {
    let rig = Rig::start(NodeKind::Anvil, "purchase-reorg").await;
    list(&rig.chain).await;
    for depth in [1u64, 3] {
        let traveler = PrivateKeySigner::random();
        rig.chain.mint_fare(traveler.address(), 2 * PRICE, B256::random()).await.unwrap();
        let request = B256::random();
        let key = purchase_key(request);
        rig.pause_mining().await;
        let c = rig.chain.clone();
        let t = traveler.clone();
        // the permit allows twice the price: only the request id stops a second purchase
        let buying = tokio::spawn(async move { c.buy_with_permit(request, &t, BUNDLE, 2 * PRICE, 0).await });
        let at = reorganise_after(&rig, &key, depth).await;
        assert_eq!(plans(&rig, request).await, 0, "the reorganisation took the purchase away");
        rig.resume_mining().await;
        let (plan, _) = buying.await.unwrap().expect("the request gets its plan");
        let secs = rig.confirmed(&key, at).await;
        assert_eq!(plans(&rig, request).await, plan, "the request's plan is on chain");
        assert_eq!(rig.chain.fare_balance(traveler.address()).await.unwrap(), PRICE, "paid once");
        // the same request again (a form submitted twice): the same plan, nothing bought
        let (again, _) = rig.chain.buy_with_permit(request, &traveler, BUNDLE, 2 * PRICE, 0).await.unwrap();
        assert_eq!(again, plan);
        assert_eq!(rig.chain.fare_balance(traveler.address()).await.unwrap(), PRICE);
        let w = rig.store.recorded_write(&key).await.unwrap().unwrap();
        rig.report(&format!("purchase, reorg depth {depth}"), &key, secs, w.write.attempts).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tap_anchor_reorganised_away_is_sent_again_and_anchored_once() {
    let rig = Rig::start(NodeKind::Anvil, "anchor-reorg").await;
    let clearing = Clearing::new(rig.chain.deployment().clearing, rig.chain.provider());
    for depth in [1u64, 3] {
        let root = B256::random();
        let key = WriteKey { kind: WriteKind::Anchor, id: format!("{root:#x}") };
        rig.pause_mining().await;
        let c = rig.chain.clone();
        let anchoring = tokio::spawn(async move { c.anchor_taps(root, 12).await });
        let at = reorganise_after(&rig, &key, depth).await;
        assert_eq!(clearing.batchOf(root).call().await.unwrap(), 0, "the reorganisation took the anchor away");
        rig.resume_mining().await;
        let batch = anchoring.await.unwrap().expect("the anchor lands");
        let secs = rig.confirmed(&key, at).await;
        assert_eq!(clearing.batchOf(root).call().await.unwrap(), batch);
        assert_eq!(clearing.batchRoot(batch + 1).call().await.unwrap(), B256::ZERO, "no second batch");
        // anchored again (a retried round): the same batch
        assert_eq!(rig.chain.anchor_taps(root, 12).await.unwrap(), batch);
        let w = rig.store.recorded_write(&key).await.unwrap().unwrap();
        rig.report(&format!("tap anchor, reorg depth {depth}"), &key, secs, w.write.attempts).await;
    }
}

/// Another sender (another database's outbox, as a process that lost its record) sends a
/// purchase request that was already made: the contract refuses it on its key before any
/// nonce is spent, and the request is answered with the plan it bought.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_request_made_elsewhere_answers_with_its_plan_and_buys_nothing() {
    let rig = Rig::start(NodeKind::Anvil, "purchase-elsewhere").await;
    list(&rig.chain).await;
    let traveler = PrivateKeySigner::random();
    rig.chain.mint_fare(traveler.address(), 2 * PRICE, B256::random()).await.unwrap();
    let request = B256::random();
    let (plan, tx) = rig.chain.buy_with_permit(request, &traveler, BUNDLE, 2 * PRICE, 0).await.unwrap();

    let other = support::store("purchase-elsewhere-2").await;
    let (_outbox, elsewhere, sender) = Rig::sender(&rig.chain, &other);
    let (again, again_tx) = elsewhere.buy_with_permit(request, &traveler, BUNDLE, 2 * PRICE, 0).await.unwrap();
    assert_eq!((again, again_tx), (plan, tx), "the plan and the transaction that bought it");
    assert_eq!(rig.chain.fare_balance(traveler.address()).await.unwrap(), PRICE, "paid once");
    let w = other.recorded_write(&purchase_key(request)).await.unwrap().unwrap();
    assert!(matches!(w.write.stage, Stage::Failed { .. }), "refused on its key: {w:?}");
    assert_eq!(w.write.attempts, 0, "judged before any nonce was spent");
    let m = PlanMarket::new(rig.chain.deployment().market, rig.chain.provider());
    assert_eq!(m.purchaseOf(request).call().await.unwrap(), plan);
    sender.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_voucher_reorganised_away_is_sent_again_and_issued_once() {
    use kippu_chain::bindings::{DelayInsurance, Ticket};
    let rig = Rig::start(NodeKind::Anvil, "voucher-reorg").await;
    list(&rig.chain).await;
    // an insured product of its own, in a bundle of its own
    let insured = product(PRODUCT + 1, true);
    rig.chain.list_product(&insured).await.unwrap();
    let bundle = BundleSpec { id: BUNDLE + 1, product_ids: vec![PRODUCT + 1], discount_bps: 0 };
    rig.chain.list_bundle(&bundle).await.unwrap();
    let insurance = DelayInsurance::new(rig.chain.deployment().insurance, rig.chain.provider());
    let tickets = Ticket::new(rig.chain.deployment().ticket, rig.chain.provider());
    for depth in [1u64, 3] {
        let traveler = PrivateKeySigner::random();
        rig.chain.mint_fare(traveler.address(), PRICE, B256::random()).await.unwrap();
        let ticket: u64 = tickets.nextTicketId().call().await.unwrap().try_into().unwrap();
        rig.chain.buy_with_permit(B256::random(), &traveler, BUNDLE + 1, PRICE, 0).await.unwrap();
        let delay = B256::random();
        let key = WriteKey {
            kind: WriteKind::Voucher,
            id: format!("{delay:#x}:{ticket}:{:#x}", rig.chain.deployment().roles.settler),
        };
        rig.pause_mining().await;
        let c = rig.chain.clone();
        let reporting = tokio::spawn(async move { c.report_delay(delay, ticket, 30).await });
        let at = reorganise_after(&rig, &key, depth).await;
        assert_eq!(insurance.balanceOf(traveler.address()).call().await.unwrap(), U256::ZERO, "the voucher is gone");
        rig.resume_mining().await;
        let voucher = reporting.await.unwrap().expect("the report lands");
        assert!(voucher.is_some(), "quorum 1: the report issues the voucher");
        let secs = rig.confirmed(&key, at).await;
        assert_eq!(insurance.balanceOf(traveler.address()).call().await.unwrap(), U256::from(1), "one voucher");
        let w = rig.store.recorded_write(&key).await.unwrap().unwrap();
        rig.report(&format!("delay voucher, reorg depth {depth}"), &key, secs, w.write.attempts).await;
    }
}
