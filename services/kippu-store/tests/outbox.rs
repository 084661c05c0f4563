//! The chain-write outbox's table on a real database: one write per business key however
//! often the fact is retried, stages stored and read back, open writes listed for the sender,
//! and a write once confirmed stays marked so when it is reorganised away. On SQLite always;
//! on PostgreSQL when `KIPPU_TEST_POSTGRES` is set.

mod support;

use kippu_domain::outbox::{Stage, WriteKey, WriteKind};
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
    a.set_write_stage(&mint, &sent, 1, Some(5), NOW + 2).await.unwrap();
    let w = b.recorded_write(&mint).await.unwrap().unwrap();
    assert_eq!((w.write.stage, w.write.attempts, w.nonce), (sent, 1, Some(5)));
    let included = Stage::Included { tx, block: 40, block_hash: [0xbb; 32] };
    a.set_write_stage(&mint, &included, 1, None, NOW + 3).await.unwrap();
    assert_eq!(b.recorded_write(&mint).await.unwrap().unwrap().write.stage, included);
    let confirmed = Stage::Confirmed { tx, block: 40 };
    a.set_write_stage(&mint, &confirmed, 1, None, NOW + 4).await.unwrap();
    let w = b.recorded_write(&mint).await.unwrap().unwrap();
    assert_eq!((w.write.stage, w.write.confirmed_once, w.nonce), (confirmed, true, Some(5)));
    let open = a.open_writes(10).await.unwrap();
    assert_eq!(
        open.iter().map(|w| w.write.key.clone()).collect::<Vec<_>>(),
        vec![close.clone()],
        "confirmed leaves the sender's list"
    );

    // Reorganised away and sent again: open once more, and still known to have been confirmed.
    let again = Stage::Sent { tx: [0xcc; 32], at: NOW + 9 };
    a.set_write_stage(&mint, &again, 2, Some(9), NOW + 9).await.unwrap();
    let w = b.recorded_write(&mint).await.unwrap().unwrap();
    assert_eq!((w.write.stage, w.write.attempts, w.write.confirmed_once, w.nonce), (again, 2, true, Some(9)));
    // Failed: the contract's reason kept.
    let failed = Stage::Failed { reason: "PeriodNotOver(7)".into() };
    b.set_write_stage(&close, &failed, 1, Some(1), NOW + 10).await.unwrap();
    assert_eq!(a.recorded_write(&close).await.unwrap().unwrap().write.stage, failed);
    assert!(a
        .set_write_stage(&WriteKey { kind: WriteKind::Role, id: "x".into() }, &Stage::Recorded, 0, None, NOW)
        .await
        .is_err());
}

support::on_sqlite_and_postgres!("outbox", outbox_round_trip);
