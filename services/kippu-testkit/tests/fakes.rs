//! The fake chain behaves as the contracts do for the application: what it accepts, what it
//! refuses and with which error, and what the ledger and read models show afterwards.

use alloy_primitives::{keccak256, Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use kippu_app::ports::{Chain as _, ChainFailure};
use kippu_domain::ContractRejection as R;
use kippu_identity::Keystore;
use kippu_testkit::catalogue::*;
use kippu_testkit::{memory_store, Catalogue, FakeChain, Store, Tx};

const DAY: u64 = 86_400;

async fn setup() -> (Store, FakeChain) {
    let store = memory_store().await.unwrap();
    let chain = FakeChain::new(store.clone());
    Catalogue::demo().apply(&store, &chain, &Keystore::new([7; 32]), "kippu.test").await.unwrap();
    (store, chain)
}

fn rejection(r: Result<impl std::fmt::Debug, ChainFailure>) -> R {
    match r {
        Err(ChainFailure::Rejected(r)) => r,
        other => panic!("expected a contract refusal, got {other:?}"),
    }
}

/// A traveler holding `fare`, and the plan it bought of `bundle` (the Explorer: tickets 1..4).
async fn buyer(chain: &FakeChain, fare: u128, bundle: u32) -> (PrivateKeySigner, u64) {
    let t = PrivateKeySigner::random();
    chain.fund(t.address(), fare).await.unwrap();
    let (price, _) = chain.quote(bundle).await.unwrap();
    let (plan, _) = chain.buy_with_permit(B256::random(), &t, bundle, price, 0).await.unwrap();
    (t, plan)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_store_is_one_database_for_every_pooled_connection() {
    let (store, _) = setup().await;
    // Concurrent reads take several connections from the pool: each sees the migrated, seeded database.
    let mut reads = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let store = store.clone();
        reads.spawn(async move { store.operators().await.unwrap().len() });
    }
    while let Some(n) = reads.join_next().await {
        assert_eq!(n.unwrap(), 4);
    }
    // Writers at once wait for each other (shared-cache table locks) rather than fail.
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..16u8 {
        let store = store.clone();
        writes.spawn(async move {
            let first = store.first_webhook_delivery(&format!("evt_{i}"), 0).await.unwrap();
            let again = store.first_webhook_delivery(&format!("evt_{i}"), 0).await.unwrap();
            (first, again)
        });
    }
    while let Some(delivered) = writes.join_next().await {
        assert_eq!(delivered.unwrap(), (true, false));
    }
    let other = memory_store().await.unwrap();
    assert!(other.operators().await.unwrap().is_empty(), "each call opens a database of its own");
}

#[tokio::test]
async fn minting_is_once_per_payment_and_is_booked() {
    let (store, chain) = setup().await;
    let who = Address::repeat_byte(0xaa);
    let payment = keccak256("cs_test_1");
    assert!(!chain.payment_minted(payment).await.unwrap());
    let tx = chain.mint_fare(who, 2_500, payment).await.unwrap();
    assert!(chain.payment_minted(payment).await.unwrap());
    assert_eq!(chain.fare_balance(who).await.unwrap(), 2_500);
    assert_eq!(rejection(chain.mint_fare(who, 2_500, payment).await), R::PaymentAlreadyMinted { payment_ref: payment });
    assert_eq!(rejection(chain.mint_fare(who, 0, keccak256("other")).await), R::ZeroAmount);
    assert_eq!(chain.fare_balance(who).await.unwrap(), 2_500, "refused mints change nothing");
    // The ledger follower's view: card clearing debited, the traveler credited, under the cursor.
    assert_eq!(store.account_balance(&format!("traveler:{who:#x}")).await.unwrap(), -2_500);
    assert_eq!(store.account_balance("card_clearing").await.unwrap(), 2_500);
    assert_eq!(store.cursor("ledger").await.unwrap(), Some(2));
    assert_eq!(chain.mined().await[0].hash, tx);
}

#[tokio::test]
async fn quotes_price_the_stores_catalogue() {
    let (_, chain) = setup().await;
    let (price, shares) = chain.quote(EXPLORER).await.unwrap();
    assert_eq!(price, EXPLORER_PRICE);
    assert_eq!(shares, vec![1_530, 510, 1_275, 255]);
    assert_eq!(chain.quote(COMMUTER).await.unwrap().0, COMMUTER_PRICE);
    assert_eq!(chain.quote_with_concession(EXPLORER, 5_000).await.unwrap(), 1_785);
    assert_eq!(rejection(chain.quote(99).await), R::UnknownBundle { bundle: 99 });
    assert!(matches!(chain.quote_with_concession(EXPLORER, 10_001).await, Err(ChainFailure::Reverted(_))));
}

#[tokio::test]
async fn a_purchase_takes_the_price_into_escrow_and_books_plan_tickets_legs_and_cover() {
    let (store, chain) = setup().await;
    let t = PrivateKeySigner::random();
    let me = t.address();
    assert_eq!(
        rejection(chain.buy_with_permit(B256::random(), &t, EXPLORER, EXPLORER_PRICE, 0).await),
        R::InsufficientBalance { account: me, balance: U256::ZERO, needed: U256::from(EXPLORER_PRICE) }
    );
    chain.fund(me, 5_000).await.unwrap();
    assert_eq!(
        rejection(chain.buy_with_permit(B256::random(), &t, EXPLORER, EXPLORER_PRICE - 1, 0).await),
        R::PriceAboveMax { price: U256::from(EXPLORER_PRICE), max_price: U256::from(EXPLORER_PRICE - 1) }
    );
    assert_eq!(
        rejection(chain.buy_with_permit(B256::random(), &t, 42, 10_000, 0).await),
        R::UnknownBundle { bundle: 42 }
    );
    let (plan, tx) = chain.buy_with_permit(B256::random(), &t, EXPLORER, EXPLORER_PRICE, 0).await.unwrap();
    assert_eq!(plan, 1);
    assert_eq!(chain.fare_balance(me).await.unwrap(), 5_000 - EXPLORER_PRICE);
    assert_eq!(chain.escrow_balance().await.unwrap(), EXPLORER_PRICE);
    assert_eq!(chain.unpaid(METRO).await, 1_530);

    let receipt = store.plan_receipt(plan).await.unwrap().unwrap();
    assert_eq!((receipt.traveler, receipt.bundle_id, receipt.price), (me, EXPLORER, EXPLORER_PRICE as i64));
    assert_eq!(receipt.tx_hash, format!("{tx:#x}"));
    assert_eq!(
        receipt.legs,
        vec![
            (1, METRO, METRO_3_DAY, 1_530),
            (2, BUS, BUS_DAY, 510),
            (3, TAXI, TAXI_RIDE, 1_275),
            (4, INSURER, COVER_3_DAYS, 255)
        ]
    );
    let tickets = store.tickets_of(&me).await.unwrap();
    assert_eq!(tickets.len(), 4);
    let metro = tickets.iter().find(|t| t.id == 1).unwrap();
    assert_eq!(metro.valid_until - metro.valid_from, 3 * DAY as i64);
    assert_eq!(metro.share, 1_530);
    let policies = store.active_policies(chain.now().await as i64).await.unwrap();
    assert_eq!(policies.iter().map(|p| (p.policy_id, p.holder)).collect::<Vec<_>>(), [(4, me)]);
    let report = store.operator_report().await.unwrap();
    assert_eq!(report.iter().map(|r| r.revenue).collect::<Vec<_>>(), [1_530, 510, 1_275, 255]);
    assert_eq!(store.account_balance("escrow").await.unwrap(), 0, "every leg's share leaves escrow for its operator");
    assert_eq!(store.ledger_imbalance().await.unwrap(), 0);
}

#[tokio::test]
async fn refunds_follow_the_products_terms_and_the_tickets_use() {
    let (store, chain) = setup().await;
    let (t, _) = buyer(&chain, 5_000, EXPLORER).await;
    let me = t.address();
    // The taxi ride (ticket 3) refunds 80 % of its share within a day; the metro pass not at all.
    let (amount, deadline) = chain.refundable(3).await.unwrap();
    assert_eq!(amount, 1_020);
    assert_eq!(deadline, chain.ticket(3).await.unwrap().valid_from + DAY);
    assert_eq!(chain.refundable(1).await.unwrap(), (0, 0));
    assert_eq!(rejection(chain.refund(1).await), R::NotRefundable { ticket: 1 });
    assert_eq!(chain.refund(3).await.unwrap(), 1_020);
    assert_eq!(chain.fare_balance(me).await.unwrap(), 5_000 - EXPLORER_PRICE + 1_020);
    assert_eq!(store.refund_of(3, &me).await.unwrap(), Some(1_020));
    assert!(store.ticket(3).await.unwrap().is_none(), "a refunded ticket is burnt");
    assert_eq!(rejection(chain.refund(3).await), R::NonexistentToken { token: 3 });
    assert_eq!(rejection(chain.refund(77).await), R::NonexistentToken { token: 77 });

    // A ridden ticket keeps its fare; a late refund is refused.
    let (_, _) = buyer(&chain, 5_000, EXPLORER).await; // tickets 5..8, taxi ride 7
    chain.record_ride(7).await.unwrap();
    assert_eq!(rejection(chain.refund(7).await), R::TicketAlreadyUsed { ticket: 7 });
    let (_, _) = buyer(&chain, 5_000, EXPLORER).await; // taxi ride 11
    chain.advance(DAY + 1).await;
    assert_eq!(rejection(chain.refund(11).await), R::RefundWindowClosed { ticket: 11 });
    assert_eq!(store.ledger_imbalance().await.unwrap(), 0);
}

#[tokio::test]
async fn vouchers_are_issued_under_the_cover_terms_and_redeemed_once_where_accepted() {
    let (store, chain) = setup().await;
    let (t, _) = buyer(&chain, 5_000, EXPLORER).await;
    let me = t.address();
    let run = keccak256("trip 1 2025-05-01");
    assert_eq!(
        rejection(chain.report_delay(run, 4, 10).await),
        R::BelowThreshold { delay_minutes: 10, threshold_minutes: 15 }
    );
    assert_eq!(rejection(chain.report_delay(run, 1, 30).await), R::UnknownPolicy { policy: 1 });
    let v = chain.report_delay(run, 4, 20).await.unwrap();
    assert_eq!(v, 1);
    assert_eq!(rejection(chain.report_delay(run, 4, 20).await), R::AlreadyCompensated { policy: 4, delay_id: run });
    let rows = store.vouchers_of(&me).await.unwrap();
    assert_eq!((rows[0].id, rows[0].value, rows[0].operator_id, rows[0].redeemed_by), (1, 1_500, TAXI, None));
    // The daily cap of the 3-day cover is 2.
    chain.report_delay(keccak256("run 2"), 4, 20).await.unwrap();
    let day = chain.now().await / DAY;
    assert_eq!(
        rejection(chain.report_delay(keccak256("run 3"), 4, 20).await),
        R::DailyCapReached { policy: 4, day, cap: 2 }
    );

    assert_eq!(rejection(chain.redeem_voucher(1, METRO).await), R::WrongOperator { voucher: 1, operator: METRO });
    assert_eq!(rejection(chain.redeem_voucher(1, INSURER).await), R::WrongOperator { voucher: 1, operator: INSURER });
    chain.redeem_voucher(1, TAXI).await.unwrap();
    assert_eq!(rejection(chain.redeem_voucher(1, TAXI).await), R::UnknownVoucher { voucher: 1 });
    assert_eq!(rejection(chain.redeem_voucher(99, TAXI).await), R::UnknownVoucher { voucher: 99 });
    assert_eq!(store.voucher(1).await.unwrap().unwrap().redeemed_by, Some(TAXI));
    assert_eq!(chain.payable(TAXI).await, 1_500);
    chain.advance(8 * DAY).await;
    assert_eq!(rejection(chain.redeem_voucher(2, TAXI).await), R::VoucherExpired { voucher: 2 });
    assert_eq!(rejection(chain.report_delay(keccak256("run 4"), 4, 20).await), R::NotCovered { policy: 4 });
}

#[tokio::test]
async fn concessions_need_a_trusted_attestor_and_stay_under_the_cap() {
    let (store, chain) = setup().await;
    let t = PrivateKeySigner::random();
    let attestor = PrivateKeySigner::random();
    chain.fund(t.address(), 5_000).await.unwrap();
    let price = chain.quote_with_concession(EXPLORER, 2_000).await.unwrap();
    assert_eq!(
        rejection(
            chain.buy_with_permit_and_concession(B256::random(), &t, &attestor, EXPLORER, price, 0, 1, 2_000).await
        ),
        R::UntrustedConcessionIssuer { signer: attestor.address() }
    );
    chain.trust_attestor(attestor.address()).await;
    assert_eq!(
        rejection(
            chain.buy_with_permit_and_concession(B256::random(), &t, &attestor, EXPLORER, price, 0, 0, 2_000).await
        ),
        R::InvalidConcession
    );
    assert_eq!(
        rejection(chain.buy_with_permit_and_concession(B256::random(), &t, &attestor, EXPLORER, 0, 0, 1, 6_000).await),
        R::ConcessionAboveMax { discount_bps: 6_000, max_bps: 5_000 }
    );
    let (plan, _) = chain
        .buy_with_permit_and_concession(B256::random(), &t, &attestor, EXPLORER, price, 0, 1, 2_000)
        .await
        .unwrap();
    assert_eq!(store.plan_receipt(plan).await.unwrap().unwrap().price, 2_856);
    assert!(!chain.ticket(1).await.unwrap().transferable, "concession tickets never change hands");
    assert!(matches!(chain.mined().await.last().unwrap().tx, Tx::Purchase { concession: Some((1, 2_000)), .. }));
}

#[tokio::test]
async fn failures_can_be_injected() {
    let (_, chain) = setup().await;
    let who = Address::repeat_byte(1);
    chain.fail_next("connection refused").await;
    assert_eq!(chain.fare_balance(who).await, Err(ChainFailure::Unavailable("connection refused".into())));
    assert_eq!(chain.fare_balance(who).await, Ok(0), "only the next call fails");
    chain.reject_next(R::Paused).await;
    assert_eq!(rejection(chain.quote(EXPLORER).await), R::Paused);
    chain.set_down(Some("node down")).await;
    assert!(matches!(chain.escrow_balance().await, Err(ChainFailure::Unavailable(_))));
    assert!(matches!(chain.fund(who, 1).await, Err(ChainFailure::Unavailable(_))));
    chain.set_down(None).await;
    chain.pause(true).await;
    let t = PrivateKeySigner::random();
    chain.fund(t.address(), 5_000).await.unwrap();
    assert_eq!(rejection(chain.buy_with_permit(B256::random(), &t, EXPLORER, EXPLORER_PRICE, 0).await), R::Paused);
    assert_eq!(rejection(chain.refund(1).await), R::Paused);
    chain.pause(false).await;
    chain.buy_with_permit(B256::random(), &t, EXPLORER, EXPLORER_PRICE, 0).await.unwrap();
    let calls = chain.calls().await;
    assert_eq!(&calls[..3], ["fare_balance", "fare_balance", "quote"]);
}

#[tokio::test]
async fn held_events_reach_the_store_only_when_booked() {
    let (store, chain) = setup().await;
    chain.hold_events(true).await;
    let (t, plan) = buyer(&chain, 5_000, EXPLORER).await;
    assert!(store.plan_receipt(plan).await.unwrap().is_none(), "the follower has not caught up");
    assert_eq!(chain.fare_balance(t.address()).await.unwrap(), 5_000 - EXPLORER_PRICE, "the chain has it");
    assert_eq!(chain.book_held().await, 1 + 1 + 4 + 4 + 1, "mint, plan, four tickets, four legs, one policy");
    assert!(store.plan_receipt(plan).await.unwrap().is_some());
    assert_eq!(store.cursor("ledger").await.unwrap(), Some(chain.block_number().await + 1));
}

#[tokio::test]
async fn closing_a_period_pays_vouchers_from_the_insurers_claim_then_every_operator() {
    let (store, chain) = setup().await;
    chain.set_time(Some(1_746_000_000)).await;
    let (_, _) = buyer(&chain, 5_000, EXPLORER).await;
    chain.report_delay(B256::repeat_byte(9), 4, 30).await.unwrap();
    chain.redeem_voucher(1, TAXI).await.unwrap();
    assert_eq!(rejection(chain.close_period(2).await), R::WrongPeriod { given: 2, current: 1 });
    chain.close_period(1).await.unwrap();
    // The insurer's claim (its 255 share) pays 255 of the taxi's 1,500 voucher; the rest stays payable.
    assert_eq!(chain.payable(TAXI).await, 1_245);
    assert_eq!(chain.escrow().await, 0);
    assert_eq!(chain.balance(payee("taxi")).await, 1_275 + 255);
    let periods = store.periods().await.unwrap();
    assert_eq!(periods.len(), 2);
    assert!(periods[0].closed() && !periods[1].closed());
    assert_eq!(periods[0].closed_at, Some(1_746_000_000));
    assert_eq!(rejection(chain.close_period(1).await), R::WrongPeriod { given: 1, current: 2 });
    assert_eq!(store.ledger_imbalance().await.unwrap(), 0);
}

#[tokio::test]
async fn a_voucher_is_redeemed_by_any_operator_of_its_kind_but_not_by_the_insurer() {
    let store = memory_store().await.unwrap();
    let chain = FakeChain::new(store.clone());
    let mut c = Catalogue::demo();
    c.operators.push(kippu_domain::model::Operator {
        id: 5,
        slug: "cab2".into(),
        name: "Second Cab Co".into(),
        kind: "taxi".into(),
        payee: payee("cab2"),
    });
    c.apply(&store, &chain, &Keystore::new([7; 32]), "kippu.test").await.unwrap();
    let (_, _) = buyer(&chain, 5_000, EXPLORER).await;
    let v = chain.report_delay(B256::repeat_byte(1), 4, 20).await.unwrap();
    assert_eq!(rejection(chain.redeem_voucher(v, BUS).await), R::WrongOperator { voucher: v, operator: BUS });
    chain.redeem_voucher(v, 5).await.unwrap();
    assert_eq!(store.voucher(v).await.unwrap().unwrap().redeemed_by, Some(5));
    assert_eq!(chain.payable(5).await, 1_500);
}
