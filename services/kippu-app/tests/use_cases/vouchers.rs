//! Redeeming a delay voucher at an operator.

use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use kippu_app::vouchers::*;
use kippu_app::ChainFailure;
use kippu_domain::model::VoucherRow;
use kippu_domain::voucher::{voucher_window, RedeemDeny, VoucherCode};

use crate::support::*;

fn code(key: &PrivateKeySigner, voucher_id: u64, at: i64) -> String {
    let window = voucher_window(at as u64);
    let sig = key.sign_hash_sync(&VoucherCode::digest(voucher_id, window)).unwrap();
    VoucherCode { voucher_id, window, signature: sig.as_bytes() }.encode()
}

/// Ada holds voucher 5, redeemable at the taxi operator (3) until NOW + 1 day.
fn world() -> (FakeStore, FakeChain, PrivateKeySigner) {
    let (store, chain) = (FakeStore::default(), FakeChain::default());
    let ada = PrivateKeySigner::random();
    store.state().operators.extend([operator(1, "metro"), operator(3, "taxi")]);
    store.state().vouchers.insert(
        5,
        VoucherRow {
            id: 5,
            policy_id: 1,
            holder: ada.address(),
            value: 500,
            operator_id: 3,
            expiry: NOW + 86_400,
            delay_id: "0x01".into(),
            redeemed_by: None,
        },
    );
    (store, chain, ada)
}

#[tokio::test]
async fn a_fresh_code_of_the_holder_redeems_the_voucher_on_chain() {
    let (store, chain, ada) = world();
    let r = redeem_voucher(&store, &chain, &CLOCK, "taxi", &code(&ada, 5, NOW)).await.unwrap();
    assert_eq!((r.voucher_id, r.operator_id), (5, 3));
    assert_eq!(chain.state().redeemed, [(5, 3)]);
}

#[tokio::test]
async fn a_redemption_is_denied_for_each_reason() {
    let (store, chain, ada) = world();
    let redeem = |slug: &'static str, c: String| {
        let (store, chain) = (&store, &chain);
        async move { redeem_voucher(store, chain, &CLOCK, slug, &c).await }
    };
    let denied = |r| Err(RedeemVoucherError::Denied(r));
    let err = redeem("bus", code(&ada, 5, NOW)).await.unwrap_err();
    assert_eq!(err.to_string(), "No operator \"bus\".");
    assert_eq!(redeem("taxi", "KV1.garbage".into()).await, denied(RedeemDeny::Malformed));
    assert_eq!(redeem("taxi", code(&ada, 5, NOW - 3_600)).await, denied(RedeemDeny::StaleCode));
    assert_eq!(redeem("taxi", code(&ada, 6, NOW)).await, denied(RedeemDeny::UnknownVoucher));
    assert_eq!(redeem("taxi", code(&PrivateKeySigner::random(), 5, NOW)).await, denied(RedeemDeny::NotHolder));
    assert_eq!(redeem("metro", code(&ada, 5, NOW)).await, denied(RedeemDeny::WrongOperator));
    let err = redeem("metro", code(&ada, 5, NOW)).await.unwrap_err();
    assert_eq!(err.to_string(), "voucher not valid with this operator", "what the driver's screen says");
    store.state().vouchers.get_mut(&5).unwrap().expiry = NOW;
    assert_eq!(redeem("taxi", code(&ada, 5, NOW)).await, denied(RedeemDeny::Expired));
    store.state().vouchers.get_mut(&5).unwrap().redeemed_by = Some(3);
    assert_eq!(redeem("taxi", code(&ada, 5, NOW)).await, denied(RedeemDeny::AlreadyRedeemed));
    assert!(chain.calls().is_empty(), "nothing denied reached the chain");
}

#[tokio::test]
async fn the_chain_has_the_last_word() {
    let (store, chain, ada) = world();
    // Another scanner redeemed it first; the ledger has not booked that yet.
    chain.state().redeemed.push((5, 3));
    let r = redeem_voucher(&store, &chain, &CLOCK, "taxi", &code(&ada, 5, NOW)).await;
    assert_eq!(r, Err(RedeemVoucherError::Denied(RedeemDeny::AlreadyRedeemed)));
    chain.fail("redeem_voucher", ChainFailure::Unavailable("timeout".into()));
    let r = redeem_voucher(&store, &chain, &CLOCK, "taxi", &code(&ada, 5, NOW)).await;
    assert_eq!(r, Err(RedeemVoucherError::Chain(ChainFailure::Unavailable("timeout".into()))));
    store.fail("voucher");
    let r = redeem_voucher(&store, &chain, &CLOCK, "taxi", &code(&ada, 5, NOW)).await;
    assert!(matches!(r, Err(RedeemVoucherError::Store(_))));
}
