//! The chain-write outbox's table on a real database: one write per business key however
//! often the fact is retried, stages stored and read back, open writes listed for the sender,
//! and a write once confirmed stays marked so when it is reorganised away. On SQLite always;
//! on PostgreSQL when `KIPPU_TEST_POSTGRES` is set.

mod support;

use kippu_domain::outbox::{Stage, StageChange, WriteKey, WriteKind};
use kippu_store::Store;

const NOW: i64 = 1_800_000_000;

async fn outbox_round_trip(url: &str) {
    let a = Store::connect(url).await.unwrap();
    let b = Store::connect(url).await.unwrap();
    let mint = WriteKey { kind: WriteKind::Mint, id: "cs_1".into() };
    let close = WriteKey { kind: WriteKind::PeriodClose, id: "7".into() };
    let call = r#"{"contract":"FareToken","fn":"mint","args":["0x01",100,"0xab"]}"#;
    // Recorded at once from two processes (a retried webhook): one write.
    let (x, y) = tokio::join!(a.record_write(&mint, call, "minter", NOW), b.record_write(&mint, call, "minter", NOW));
    assert_eq!([x.unwrap(), y.unwrap()].iter().filter(|r| **r).count(), 1);
    assert!(a.record_write(&close, "{}", "settler", NOW + 1).await.unwrap());
    let w = b.recorded_write(&mint).await.unwrap().unwrap();
    assert_eq!(
        (w.write.stage.clone(), w.write.attempts, w.call.as_str(), w.sender.as_str()),
        (Stage::Recorded, 0, call, "minter")
    );
    assert_eq!(a.open_writes(10).await.unwrap().len(), 2);

    // Sent, included, confirmed: each read back as written.
    let tx = [0xaa; 32];
    let sent = Stage::Sent { tx, at: NOW + 2 };
    let attempt = StageChange { nonce: Some(5), raw_tx: Some("0xf86b05".into()), ..StageChange::to(sent.clone(), 1) };
    a.set_write_stage(&mint, &attempt, NOW + 2).await.unwrap();
    let w = b.recorded_write(&mint).await.unwrap().unwrap();
    assert_eq!(
        (w.write.stage, w.write.attempts, w.nonce, w.raw_tx.as_deref(), w.created_at, w.updated_at),
        (sent, 1, Some(5), Some("0xf86b05"), NOW, NOW + 2)
    );
    let included = Stage::Included { tx, block: 40, block_hash: [0xbb; 32] };
    a.set_write_stage(&mint, &StageChange::to(included.clone(), 1), NOW + 3).await.unwrap();
    assert_eq!(b.recorded_write(&mint).await.unwrap().unwrap().write.stage, included);
    let confirmed = Stage::Confirmed { tx, block: 40 };
    a.set_write_stage(&mint, &StageChange::to(confirmed.clone(), 1), NOW + 4).await.unwrap();
    let w = b.recorded_write(&mint).await.unwrap().unwrap();
    assert_eq!(
        (w.write.stage, w.write.confirmed_once, w.nonce, w.raw_tx.as_deref()),
        (confirmed, true, Some(5), Some("0xf86b05")),
        "a stage without a new attempt keeps the last attempt's nonce and transaction"
    );
    assert_eq!(a.confirmed_writes_since(40).await.unwrap().len(), 1);
    assert!(a.confirmed_writes_since(41).await.unwrap().is_empty());
    let open = a.open_writes(10).await.unwrap();
    assert_eq!(
        open.iter().map(|w| w.write.key.clone()).collect::<Vec<_>>(),
        vec![close.clone()],
        "confirmed leaves the sender's list"
    );

    // Reorganised away and sent again: open once more, and still known to have been confirmed.
    let again = Stage::Sent { tx: [0xcc; 32], at: NOW + 9 };
    let resent = StageChange { nonce: Some(9), raw_tx: Some("0xf86b09".into()), ..StageChange::to(again.clone(), 2) };
    a.set_write_stage(&mint, &resent, NOW + 9).await.unwrap();
    let w = b.recorded_write(&mint).await.unwrap().unwrap();
    assert_eq!((w.write.stage, w.write.attempts, w.write.confirmed_once, w.nonce), (again, 2, true, Some(9)));
    // Failed: the contract's reason kept.
    let failed = Stage::Failed { reason: "PeriodNotOver(7)".into() };
    let refused = StageChange { revert_data: Some("0xdeadbeef".into()), ..StageChange::to(failed.clone(), 1) };
    b.set_write_stage(&close, &refused, NOW + 10).await.unwrap();
    let w = a.recorded_write(&close).await.unwrap().unwrap();
    assert_eq!((w.write.stage, w.revert_data.as_deref()), (failed, Some("0xdeadbeef")));
    // The fact retried after a refusal re-opens the write, with the new call; a confirmed or
    // open write is never re-opened.
    assert!(a.record_write(&close, r#"{"again":1}"#, "settler", NOW + 11).await.unwrap());
    let w = b.recorded_write(&close).await.unwrap().unwrap();
    assert_eq!(
        (w.write.stage, w.call.as_str(), w.revert_data, w.nonce),
        (Stage::Recorded, r#"{"again":1}"#, None, None)
    );
    assert!(!a.record_write(&close, "{}", "settler", NOW + 12).await.unwrap());
    assert!(!a.record_write(&mint, "{}", "minter", NOW + 12).await.unwrap());
    b.set_write_stage(&close, &refused, NOW + 13).await.unwrap();
    // The admin page's list: the failed and the re-sent first, newest change first.
    let listed: Vec<_> = a.recent_writes(10).await.unwrap().into_iter().map(|w| w.write.key).collect();
    assert_eq!(listed, vec![close.clone(), mint.clone()]);
    assert!(a
        .set_write_stage(&WriteKey { kind: WriteKind::Role, id: "x".into() }, &StageChange::to(Stage::Recorded, 0), NOW)
        .await
        .is_err());
}

support::on_sqlite_and_postgres!("outbox", outbox_round_trip);

/// The admin page's figures and filters: counts by state (stuck and gone among the open ones,
/// confirmed only within the window asked for) and the writes of each state, newest change
/// first, read from the open, failed and recent rows.
async fn counts_and_states(url: &str) {
    use kippu_app::ports::{WriteCounts, WriteState};
    let s = Store::connect(url).await.unwrap();
    assert_eq!(s.write_counts(5, NOW - 3_600).await.unwrap(), WriteCounts::default());
    for state in WriteState::ALL {
        assert!(s.writes_in_state(state, 5, 10).await.unwrap().is_empty(), "{state:?}");
    }
    let key = |kind, id: &str| WriteKey { kind, id: id.into() };
    let recorded = key(WriteKind::Mint, "a");
    let sent = key(WriteKind::Purchase, "b");
    let stuck = key(WriteKind::Voucher, "c");
    let included = key(WriteKind::Anchor, "d");
    let confirmed = key(WriteKind::Refund, "e");
    let old = key(WriteKind::Role, "f");
    let gone = key(WriteKind::Redemption, "g");
    let failed = key(WriteKind::PeriodClose, "h");
    for k in [&recorded, &sent, &stuck, &included, &confirmed, &gone, &failed] {
        assert!(s.record_write(k, "{}", "sender", NOW - 200).await.unwrap());
    }
    assert!(s.record_write(&old, "{}", "sender", NOW - 3 * 86_400).await.unwrap());
    let set = |k: &WriteKey, stage: Stage, attempts: u32, at: i64| {
        let (s, k) = (s.clone(), k.clone());
        async move { s.set_write_stage(&k, &StageChange::to(stage, attempts), at).await.unwrap() }
    };
    set(&sent, Stage::Sent { tx: [1; 32], at: NOW + 1 }, 1, NOW + 1).await;
    set(&stuck, Stage::Sent { tx: [2; 32], at: NOW + 2 }, 5, NOW + 2).await;
    set(&included, Stage::Included { tx: [3; 32], block: 9, block_hash: [4; 32] }, 1, NOW + 3).await;
    set(&confirmed, Stage::Confirmed { tx: [5; 32], block: 9 }, 1, NOW - 100).await;
    set(&old, Stage::Confirmed { tx: [6; 32], block: 2 }, 1, NOW - 2 * 86_400).await;
    set(&gone, Stage::Confirmed { tx: [7; 32], block: 8 }, 1, NOW + 4).await;
    set(&gone, Stage::Sent { tx: [8; 32], at: NOW + 5 }, 2, NOW + 5).await;
    set(&failed, Stage::Failed { reason: "PeriodNotOver(7)".into() }, 1, NOW + 6).await;

    let counts = s.write_counts(5, NOW - 3_600).await.unwrap();
    assert_eq!(
        counts,
        WriteCounts { recorded: 1, sent: 3, included: 1, stuck: 1, gone: 1, failed: 1, confirmed: 1 },
        "the write confirmed two days ago is outside the window; the gone one is open again"
    );
    assert_eq!(counts.pending(), 5);
    assert_eq!(s.write_counts(2, NOW - 3 * 86_400).await.unwrap().stuck, 2, "the threshold is the caller's");
    assert_eq!(s.write_counts(2, NOW - 3 * 86_400).await.unwrap().confirmed, 2);

    let listed = |state, stuck_after, limit| {
        let s = s.clone();
        async move {
            s.writes_in_state(state, stuck_after, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|w| w.write.key)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed(WriteState::Pending, 5, 10).await,
        [&gone, &included, &stuck, &sent, &recorded].map(Clone::clone)
    );
    assert_eq!(listed(WriteState::Pending, 5, 2).await, [&gone, &included].map(Clone::clone), "at most the limit");
    assert_eq!(listed(WriteState::Stuck, 5, 10).await, [&stuck].map(Clone::clone));
    assert_eq!(listed(WriteState::Stuck, 2, 10).await, [&gone, &stuck].map(Clone::clone));
    assert_eq!(listed(WriteState::Gone, 5, 10).await, [&gone].map(Clone::clone));
    assert_eq!(listed(WriteState::Failed, 5, 10).await, [&failed].map(Clone::clone));
    assert_eq!(listed(WriteState::Confirmed, 5, 10).await, [&confirmed, &old].map(Clone::clone));
    assert_eq!(
        listed(WriteState::All, 5, 10).await,
        [&failed, &gone, &included, &stuck, &sent, &recorded, &confirmed, &old].map(Clone::clone),
        "as the recent list: everything not confirmed, newest change first, then the confirmed"
    );
}

mod counts {
    crate::support::on_sqlite_and_postgres!("outbox_counts", super::counts_and_states);
}

/// A payment marked paid and its mint recorded in one transaction (issue 20): both appear
/// together, and a retried delivery changes neither (one write, still paid).
async fn paid_with_its_mint(url: &str) {
    use kippu_domain::outbox::PreparedWrite;
    let s = Store::connect(url).await.unwrap();
    let ada = alloy_primitives::Address::repeat_byte(0xad);
    s.create_payment("cs_paid", &ada, 2_000, NOW).await.unwrap();
    let mint = PreparedWrite {
        key: WriteKey { kind: WriteKind::Mint, id: "0xab".into() },
        call: r#"{"to":"0x01","data":"0x02"}"#.into(),
        sender: "0xminter".into(),
    };
    assert!(s.recorded_write(&mint.key).await.unwrap().is_none());
    s.mark_paid_recording("cs_paid", &mint, NOW + 1).await.unwrap();
    assert_eq!(s.payment("cs_paid").await.unwrap().unwrap().status, "paid");
    let w = s.recorded_write(&mint.key).await.unwrap().unwrap();
    assert_eq!(
        (w.write.stage, w.call.as_str(), w.sender.as_str(), w.created_at),
        (Stage::Recorded, mint.call.as_str(), "0xminter", NOW + 1)
    );
    // the delivery retried, with the write already on its way: nothing recorded again
    let sent = StageChange::to(Stage::Sent { tx: [1; 32], at: NOW + 2 }, 1);
    s.set_write_stage(&mint.key, &sent, NOW + 2).await.unwrap();
    s.mark_paid_recording("cs_paid", &mint, NOW + 3).await.unwrap();
    let again = s.recorded_write(&mint.key).await.unwrap().unwrap();
    assert_eq!((again.write.attempts, again.created_at), (1, NOW + 1), "still the first write, as sent");
    assert!(matches!(again.write.stage, Stage::Sent { .. }));
    assert_eq!(s.open_writes(10).await.unwrap().len(), 1);
    assert_eq!(s.payment("cs_paid").await.unwrap().unwrap().status, "paid");
}

mod paid {
    crate::support::on_sqlite_and_postgres!("outbox_paid", super::paid_with_its_mint);
}
