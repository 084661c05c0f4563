//! Closing a clearing period.

use std::collections::BTreeMap;

use kippu_app::period::*;
use kippu_app::ports::LedgerFailure;
use kippu_app::ChainFailure;
use kippu_domain::model::PeriodClose;
use kippu_domain::ContractRejection;

use crate::support::*;

/// Operators 1 and 2; 1 was booked 50 more than it is due, so it owes 2 fifty. The ledger has
/// booked through block 10 (mined at NOW − 90).
fn world(unpaid_1: u128) -> (FakeClearing, FakeStore, FakeLedger) {
    let store = FakeStore::default();
    store.state().operators.extend([operator(1, "metro"), operator(2, "bus")]);
    store.state().books =
        PeriodClose { plans: 3, taps: 4, positions: BTreeMap::from([(1, -50), (2, 50)]), ..Default::default() };
    let clearing = FakeClearing::default();
    clearing.state().unpaid = vec![(1, unpaid_1), (2, 0)];
    (clearing, store, FakeLedger::at(Some(11)))
}

#[tokio::test]
async fn a_close_settles_the_window_the_ledger_booked_and_records_it() {
    let (clearing, store, ledger) = world(100);
    let closed = close_period(&clearing, &store, &ledger, &CLOCK).await.unwrap();
    let to = NOW - 90 + 1;
    assert_eq!(
        closed,
        Closed {
            period_id: 1,
            tx: format!("{:#x}", alloy_primitives::B256::with_last_byte(0xc1)),
            window: (0, to),
            plans: 3,
            taps: 4,
            transfers: vec![(1, 2, 50)],
            carried: vec![],
        }
    );
    assert_eq!(clearing.state().settled, [(1, vec![(1, 2, 50)])]);
    assert_eq!(store.state().books_asked, [(0, to)]);
    let row = store.state().closes[0].clone();
    assert_eq!((row.period_id, row.window_from, row.window_to, row.closed_at), (1, 0, to, NOW));
    assert_eq!(*ledger.catch_ups.lock().unwrap(), 2, "caught up before the books and after the close");

    // The next window starts where this one ended.
    ledger.next_block.lock().unwrap().replace(16);
    let next = close_period(&clearing, &store, &ledger, &CLOCK).await.unwrap();
    assert_eq!((next.period_id, next.window), (2, (to, NOW - 85 + 1)));
}

#[tokio::test]
async fn what_the_payer_cannot_pay_now_is_carried() {
    let (clearing, store, ledger) = world(30);
    let closed = close_period(&clearing, &store, &ledger, &CLOCK).await.unwrap();
    assert_eq!((closed.transfers, closed.carried), (vec![(1, 2, 30)], vec![(1, 2, 20)]));
    assert_eq!(store.state().carry, BTreeMap::from([(1, -20), (2, 20)]));

    // The carried position joins the next close's.
    store.state().books.positions.clear();
    clearing.state().unpaid = vec![(1, 100)];
    let next = close_period(&clearing, &store, &ledger, &CLOCK).await.unwrap();
    assert_eq!((next.transfers, next.carried), (vec![(1, 2, 20)], vec![]));
    assert!(store.state().carry.is_empty());
}

#[tokio::test]
async fn vouchers_are_paid_from_the_insurers_claim_before_transfers() {
    // Operator 1 holds nothing of its own but is owed 40 in vouchers by the insurer (9).
    let (clearing, store, ledger) = world(0);
    clearing.state().unpaid.push((9, 100));
    clearing.state().payable = vec![(1, 40)];
    clearing.state().insurer = Some(9);
    let closed = close_period(&clearing, &store, &ledger, &CLOCK).await.unwrap();
    assert_eq!((closed.transfers, closed.carried), (vec![(1, 2, 40)], vec![(1, 2, 10)]));
}

#[tokio::test]
async fn a_close_is_refused_and_records_nothing() {
    let (clearing, store, ledger) = world(100);
    ledger.next_block.lock().unwrap().replace(40);
    let err = close_period(&clearing, &store, &ledger, &CLOCK).await.unwrap_err();
    assert_eq!(err, ClosePeriodError::LedgerBlockMissing { block: 39 });
    assert_eq!(err.to_string(), "the ledger's last block 39 is not on the chain (a reorg in progress); retry");

    ledger.next_block.lock().unwrap().replace(11);
    // Another closer settled this period first.
    let wrong = ChainFailure::Rejected(ContractRejection::WrongPeriod { given: 1, current: 2 });
    clearing.state().fail.insert("settle_period", wrong.clone());
    assert_eq!(close_period(&clearing, &store, &ledger, &CLOCK).await, Err(ClosePeriodError::Chain(wrong)));

    clearing.state().fail.clear();
    *ledger.down.lock().unwrap() = Some("rpc error: connection refused".into());
    let err = close_period(&clearing, &store, &ledger, &CLOCK).await.unwrap_err();
    assert_eq!(err, ClosePeriodError::Ledger(LedgerFailure("rpc error: connection refused".into())));

    *ledger.down.lock().unwrap() = None;
    store.fail("close_period_books");
    assert!(matches!(close_period(&clearing, &store, &ledger, &CLOCK).await, Err(ClosePeriodError::Store(_))));
    assert!(store.state().closes.is_empty() && clearing.state().settled.is_empty());
}

#[test]
fn transfers_move_what_the_payer_holds_and_carry_the_rest() {
    let mut available = BTreeMap::from([(1, 100), (2, 0), (3, 50)]);
    let (moved, carry) = fit_transfers(&[(1, 2, 70), (3, 2, 80), (2, 1, 10)], &mut available);
    assert_eq!(moved, [(1, 2, 70), (3, 2, 50), (2, 1, 10)]);
    assert_eq!(carry, BTreeMap::from([(3, -30), (2, 30)]));
    assert_eq!(available, BTreeMap::from([(1, 40), (2, 110), (3, 0)]));
    assert_eq!(kippu_domain::settlement::net(&carry), [(3, 2, 30)]);
}
