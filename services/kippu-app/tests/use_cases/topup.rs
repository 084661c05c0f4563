//! Opening a top-up and crediting the completed payment, exactly once.

use kippu_app::ports::PaymentFailure;
use kippu_app::topup::*;
use kippu_app::ChainFailure;
use kippu_domain::model::Payment;

use crate::support::*;

fn open(traveler: alloy_primitives::Address, amount_minor: i64) -> OpenTopUp {
    OpenTopUp {
        traveler,
        amount_minor,
        success_url: "https://kippu.example/topup/done?session_id={CHECKOUT_SESSION_ID}".into(),
        cancel_url: "https://kippu.example/topup".into(),
    }
}

fn completed(session_id: &str, amount: i64, traveler: alloy_primitives::Address) -> CompletedPayment {
    CompletedPayment { session_id: session_id.into(), amount, traveler: format!("{traveler:#x}") }
}

#[tokio::test]
async fn a_top_up_opens_a_payment_page_and_records_the_payment() {
    let (store, payments, ks) = (FakeStore::default(), FakePayments::default(), keystore());
    let ada = custodial_traveler(&store, &ks, "Ada");
    let page = open_top_up(&payments, &store, &CLOCK, open(ada, 2_000)).await.unwrap();
    assert_eq!(page.id, "cs_test_1");
    let asked = payments.opened.lock().unwrap()[0].clone();
    assert_eq!((asked.traveler, asked.amount_minor), (ada, 2_000));
    assert!(asked.success_url.ends_with("{CHECKOUT_SESSION_ID}"));
    let p = store.state().payments["cs_test_1"].clone();
    assert_eq!((p.traveler, p.amount, p.status.as_str()), (ada, 2_000, "open"));
}

#[tokio::test]
async fn a_top_up_out_of_range_or_unopened_records_nothing() {
    let (store, payments, ks) = (FakeStore::default(), FakePayments::default(), keystore());
    let ada = custodial_traveler(&store, &ks, "Ada");
    for amount in [MIN_TOPUP - 1, MAX_TOPUP + 1, 0, -5] {
        let err = open_top_up(&payments, &store, &CLOCK, open(ada, amount)).await.unwrap_err();
        assert_eq!(err, OpenTopUpError::AmountOutOfRange { min: MIN_TOPUP, max: MAX_TOPUP });
    }
    for amount in [MIN_TOPUP, MAX_TOPUP] {
        open_top_up(&payments, &store, &CLOCK, open(ada, amount)).await.unwrap();
    }
    *payments.down.lock().unwrap() = Some("card network down".into());
    let err = open_top_up(&payments, &store, &CLOCK, open(ada, 500)).await.unwrap_err();
    assert_eq!(err, OpenTopUpError::Payments(PaymentFailure("card network down".into())));
    assert_eq!(store.state().payments.len(), 2, "only the two opened pages");

    *payments.down.lock().unwrap() = None;
    store.fail("create_payment");
    assert!(matches!(open_top_up(&payments, &store, &CLOCK, open(ada, 500)).await, Err(OpenTopUpError::Store(_))));
}

#[tokio::test]
async fn a_completed_payment_mints_once() {
    let (store, chain, payments, ks) =
        (FakeStore::default(), FakeChain::default(), FakePayments::default(), keystore());
    let ada = custodial_traveler(&store, &ks, "Ada");
    open_top_up(&payments, &store, &CLOCK, open(ada, 2_000)).await.unwrap();
    let paid = completed("cs_test_1", 2_000, ada);

    let first = credit_payment(&store, &chain, &CLOCK, &paid).await.unwrap();
    let Credited::Minted { tx: Some(tx) } = first else { panic!("{first:?}") };
    assert_eq!(chain.state().minted, [(ada, 2_000, payment_ref("cs_test_1"))]);
    assert_eq!(chain.state().balances[&ada], 2_000);
    let p = store.state().payments["cs_test_1"].clone();
    assert_eq!((p.status.as_str(), p.tx_hash), ("minted", Some(format!("{tx:#x}"))));
    assert_eq!(store.calls()[1..], ["payment", "mark_paid", "mark_minted"], "paid before the mint, minted after");

    // A second delivery (Stripe retries) finds it minted and does nothing.
    let mut upper = paid.clone();
    upper.traveler = upper.traveler.to_uppercase().replace("0X", "0x");
    assert_eq!(credit_payment(&store, &chain, &CLOCK, &upper).await, Ok(Credited::AlreadyMinted));
    assert_eq!(chain.state().minted.len(), 1);
}

/// Issue 20: with the outbox, the mint is recorded in the same store transaction as the
/// payment marked paid (never one without the other), then awaited. The wait failing (the
/// write still pending, the process dying) leaves the payment paid with its mint recorded;
/// the provider's retry records nothing new and finds the mint made once.
#[tokio::test]
async fn with_the_outbox_the_mint_is_recorded_with_the_payment_marked_paid() {
    let (store, chain, payments, ks) =
        (FakeStore::default(), FakeChain::default(), FakePayments::default(), keystore());
    chain.state().outbox = true;
    let ada = custodial_traveler(&store, &ks, "Ada");
    open_top_up(&payments, &store, &CLOCK, open(ada, 2_000)).await.unwrap();
    let paid = completed("cs_test_1", 2_000, ada);

    chain.fail("await_mint", ChainFailure::Pending("mint:0x…".into()));
    let err = credit_payment(&store, &chain, &CLOCK, &paid).await.unwrap_err();
    assert_eq!(err, CreditPaymentError::Chain(ChainFailure::Pending("mint:0x…".into())));
    assert_eq!(store.calls()[1..], ["payment", "mark_paid_recording"], "one store step: paid and the mint recorded");
    assert_eq!(store.state().payments["cs_test_1"].status, "paid");
    let recorded = store.state().writes.clone();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].key.id, format!("{:#x}", payment_ref("cs_test_1")));
    assert!(chain.state().minted.is_empty());

    chain.state().fail.clear();
    let again = credit_payment(&store, &chain, &CLOCK, &paid).await.unwrap();
    assert!(matches!(again, Credited::Minted { tx: Some(_) }), "{again:?}");
    assert_eq!(store.state().writes, recorded, "the retry recorded no second mint");
    assert_eq!(chain.state().minted, [(ada, 2_000, payment_ref("cs_test_1"))]);
    assert_eq!(store.state().payments["cs_test_1"].status, "minted");
    assert!(!chain.calls().contains(&"mint_fare"), "never sent around the outbox");
}

#[tokio::test]
async fn a_mint_the_chain_made_before_is_booked_not_repeated() {
    let (store, chain, ks) = (FakeStore::default(), FakeChain::default(), keystore());
    let ada = custodial_traveler(&store, &ks, "Ada");
    // An earlier delivery minted, then crashed before booking it.
    store.state().payments.insert(
        "cs_1".into(),
        Payment { session_id: "cs_1".into(), traveler: ada, amount: 700, status: "paid".into(), tx_hash: None },
    );
    chain.state().minted.push((ada, 700, payment_ref("cs_1")));
    assert_eq!(
        credit_payment(&store, &chain, &CLOCK, &completed("cs_1", 700, ada)).await,
        Ok(Credited::Minted { tx: None })
    );
    let p = store.state().payments["cs_1"].clone();
    assert_eq!((p.status.as_str(), p.tx_hash.as_deref()), ("minted", Some("already-minted")));
    assert_eq!(chain.state().minted.len(), 1);
}

#[tokio::test]
async fn a_payment_is_not_credited_for_each_reason() {
    let (store, chain, payments, ks) =
        (FakeStore::default(), FakeChain::default(), FakePayments::default(), keystore());
    let ada = custodial_traveler(&store, &ks, "Ada");
    let bob = custodial_traveler(&store, &ks, "Bob");
    open_top_up(&payments, &store, &CLOCK, open(ada, 2_000)).await.unwrap();

    let err = credit_payment(&store, &chain, &CLOCK, &completed("cs_nope", 2_000, ada)).await.unwrap_err();
    assert_eq!((err.clone(), err.to_string()), (CreditPaymentError::UnknownSession, "unknown checkout session".into()));
    let err = credit_payment(&store, &chain, &CLOCK, &completed("cs_test_1", 2_001, ada)).await.unwrap_err();
    assert_eq!(err.to_string(), "session does not match the recorded top-up");
    assert_eq!(
        credit_payment(&store, &chain, &CLOCK, &completed("cs_test_1", 2_000, bob)).await,
        Err(CreditPaymentError::Mismatch)
    );
    assert!(chain.state().minted.is_empty());

    // The chain is down: the payment stays paid, not minted, so the provider's retry mints.
    chain.fail("mint_fare", ChainFailure::Unavailable("connection refused".into()));
    let err = credit_payment(&store, &chain, &CLOCK, &completed("cs_test_1", 2_000, ada)).await.unwrap_err();
    assert_eq!(err, CreditPaymentError::Chain(ChainFailure::Unavailable("connection refused".into())));
    assert_eq!(err.to_string(), "chain unavailable: connection refused", "the chain's own words");
    assert_eq!(store.state().payments["cs_test_1"].status, "paid");
    chain.state().fail.clear();
    let retried = credit_payment(&store, &chain, &CLOCK, &completed("cs_test_1", 2_000, ada)).await;
    assert!(matches!(retried, Ok(Credited::Minted { tx: Some(_) })), "{retried:?}");

    store.fail("payment");
    let err = credit_payment(&store, &chain, &CLOCK, &completed("cs_test_1", 2_000, ada)).await.unwrap_err();
    assert!(matches!(err, CreditPaymentError::Store(_)));
}
