//! Buying a plan, with and without a concession.

use alloy::signers::local::PrivateKeySigner;
use kippu_app::accounts::SignerError;
use kippu_app::ports::{ConcessionFailure, PresentedConcession};
use kippu_app::purchase::*;
use kippu_app::ChainFailure;
use kippu_domain::ContractRejection;

use crate::support::*;

struct World {
    store: FakeStore,
    chain: FakeChain,
    ks: kippu_identity::Keystore,
    attestor: PrivateKeySigner,
    ada: alloy_primitives::Address,
}

fn world(balance: u128) -> World {
    let (store, chain, ks) = (FakeStore::default(), FakeChain::default(), keystore());
    let ada = custodial_traveler(&store, &ks, "Ada");
    chain.state().bundles.insert(1, 1_000);
    chain.state().balances.insert(ada, balance);
    World { store, chain, ks, attestor: PrivateKeySigner::random(), ada }
}

impl World {
    async fn buy(&self, concessions: &FakeConcessions, bundle_id: u32) -> Result<Bought, BuyPlanError> {
        self.buy_as(concessions, bundle_id, alloy_primitives::B256::from(rand::random::<[u8; 32]>())).await
    }

    async fn buy_as(
        &self,
        concessions: &FakeConcessions,
        bundle_id: u32,
        request_id: alloy_primitives::B256,
    ) -> Result<Bought, BuyPlanError> {
        let req = BuyPlan { traveler: self.ada, bundle_id, request_id, attestor: &self.attestor };
        buy_plan(&self.store, &self.chain, &self.ks, concessions, req).await
    }
}

const STUDENT: PresentedConcession = PresentedConcession { kind: 1, discount_bps: 5_000 };

#[tokio::test]
async fn a_plan_is_bought_at_the_quoted_price() {
    let w = world(1_500);
    let none = FakeConcessions::none();
    let bought = w.buy(&none, 1).await.unwrap();
    assert_eq!((bought.plan_id, bought.price, bought.concession), (1, 1_000, None));
    assert_eq!(w.chain.state().balances[&w.ada], 500);
    let p = w.chain.state().purchases[0].clone();
    assert_eq!(
        (p.buyer, p.bundle_id, p.max_price, p.concession),
        (w.ada, 1, 1_000, None),
        "the permit is capped at the price"
    );
    assert_eq!(*none.presented_by.lock().unwrap(), [w.ada], "a held concession is looked for with the traveler's key");
    assert_eq!(w.chain.calls(), ["purchase_of", "quote", "fare_balance", "buy_with_permit"]);
}

/// Issue 20: a form submitted twice (the same request id) is one purchase; the second answer
/// is the first plan, even though the first spent the balance a second would need.
#[tokio::test]
async fn the_same_purchase_request_twice_buys_one_plan_and_answers_with_it() {
    let w = world(1_500);
    let none = FakeConcessions::none();
    let request = alloy_primitives::B256::repeat_byte(7);
    let first = w.buy_as(&none, 1, request).await.unwrap();
    let again = w.buy_as(&none, 1, request).await.unwrap();
    assert_eq!((again.plan_id, again.tx, again.price), (first.plan_id, first.tx, first.price));
    assert_eq!(w.chain.state().purchases.len(), 1);
    assert_eq!(w.chain.state().balances[&w.ada], 500, "paid once");
    // another request is another purchase (refused here only for the balance)
    let other = w.buy_as(&none, 1, alloy_primitives::B256::repeat_byte(8)).await.unwrap_err();
    assert_eq!(other, BuyPlanError::InsufficientFare { needed: 1_000, have: 500 });
}

#[tokio::test]
async fn a_concession_lowers_the_price_and_the_attestor_vouches_for_it() {
    let w = world(600);
    let bought = w.buy(&FakeConcessions::answering(Ok(Some(STUDENT))), 1).await.unwrap();
    assert_eq!((bought.price, bought.concession), (500, Some(STUDENT)));
    let p = w.chain.state().purchases[0].clone();
    assert_eq!((p.max_price, p.concession), (500, Some((w.attestor.address(), 1, 5_000))));
    assert_eq!(
        w.chain.calls(),
        ["purchase_of", "quote", "quote_with_concession", "fare_balance", "buy_with_permit_and_concession"]
    );
}

#[tokio::test]
async fn a_bundle_not_on_sale_is_refused_before_any_concession_is_presented() {
    let w = world(1_500);
    let none = FakeConcessions::none();
    assert_eq!(w.buy(&none, 9).await, Err(BuyPlanError::NotOnSale));
    assert!(none.presented_by.lock().unwrap().is_empty());
}

#[tokio::test]
async fn too_little_fare_buys_nothing() {
    let w = world(999);
    assert_eq!(
        w.buy(&FakeConcessions::none(), 1).await,
        Err(BuyPlanError::InsufficientFare { needed: 1_000, have: 999 })
    );
    let w = world(499);
    let err = w.buy(&FakeConcessions::answering(Ok(Some(STUDENT))), 1).await.unwrap_err();
    assert_eq!(err, BuyPlanError::InsufficientFare { needed: 500, have: 499 });
    assert!(w.chain.state().purchases.is_empty());
}

#[tokio::test]
async fn a_concession_that_does_not_verify_buys_nothing() {
    let w = world(1_500);
    let refused = ConcessionFailure::NotVerified("the credential was revoked".into());
    let err = w.buy(&FakeConcessions::answering(Err(refused.clone())), 1).await.unwrap_err();
    assert_eq!(err, BuyPlanError::Concession(refused));
    let busy = ConcessionFailure::Busy { retry_after_secs: 30 };
    assert_eq!(w.buy(&FakeConcessions::answering(Err(busy.clone())), 1).await, Err(BuyPlanError::Concession(busy)));
    assert!(w.chain.state().purchases.is_empty());
}

#[tokio::test]
async fn a_key_that_cannot_sign_buys_nothing_and_asks_the_chain_nothing() {
    let w = world(1_500);
    let wallet = wallet_traveler(&w.store);
    let req = BuyPlan {
        traveler: wallet.address(),
        bundle_id: 1,
        request_id: alloy_primitives::B256::from(rand::random::<[u8; 32]>()),
        attestor: &w.attestor,
    };
    let err = buy_plan(&w.store, &w.chain, &w.ks, &FakeConcessions::none(), req).await.unwrap_err();
    assert_eq!(err, BuyPlanError::Signer(SignerError::WalletAccount));
    w.store.state().revoked_keys.insert(w.ada, (NOW, "leaked".into()));
    let err = w.buy(&FakeConcessions::none(), 1).await.unwrap_err();
    assert_eq!(err, BuyPlanError::Signer(SignerError::KeyRevoked { at: NOW, reason: "leaked".into() }));
    assert!(w.chain.calls().is_empty());
}

#[tokio::test]
async fn the_chain_refusing_or_failing_is_passed_on_typed() {
    let w = world(1_500);
    w.chain.fail("buy_with_permit", ChainFailure::Rejected(ContractRejection::Paused));
    assert_eq!(
        w.buy(&FakeConcessions::none(), 1).await,
        Err(BuyPlanError::Chain(ChainFailure::Rejected(ContractRejection::Paused)))
    );
    w.chain.fail("quote", ChainFailure::Unavailable("timeout".into()));
    assert_eq!(
        w.buy(&FakeConcessions::none(), 1).await,
        Err(BuyPlanError::Chain(ChainFailure::Unavailable("timeout".into())))
    );
    assert!(w.chain.state().purchases.is_empty());
}
