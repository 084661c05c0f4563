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
