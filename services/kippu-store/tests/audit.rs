//! The audit log on a real database: appends from two handles at once (as two processes do)
//! make one chain with no gaps, and a row changed or deleted in the database is found. On
//! SQLite always; on PostgreSQL when `KIPPU_TEST_POSTGRES` names a server (`make test` does).

mod support;

use kippu_domain::audit::{verify, AuditAction, AuditBreak, AuditRecord};
use kippu_store::{AuditFilter, Store};

fn record(i: usize, org: &str) -> AuditRecord {
    AuditRecord {
        at: 1_800_000_000 + i as i64,
        actor: format!("staff:ops{i}@{org}.example"),
        organisation: org.into(),
        action: if i.is_multiple_of(2) { AuditAction::TimetableImported } else { AuditAction::CredentialIssued },
        target: format!("t{i}"),
        client: "127.0.0.1".into(),
    }
}

async fn verify_all(store: &Store) -> Result<Option<(i64, [u8; 32])>, AuditBreak> {
    let mut head = None;
    loop {
        let after = head.map_or(0, |(seq, _)| seq);
        let page = store.audit_page(after, 7).await.unwrap();
        if page.is_empty() {
            return Ok(head);
        }
        head = verify(head, &page)?;
    }
}

async fn two_writers_one_chain_and_tampering_found(url: &str) {
    let a = Store::connect(url).await.unwrap();
    let b = Store::connect(url).await.unwrap();
    let writer = |s: Store, org: &'static str| async move {
        for i in 0..20 {
            s.append_audit(&record(i, org)).await.unwrap();
        }
    };
    tokio::join!(writer(a.clone(), "metro"), writer(b.clone(), "bus"));
    let head = verify_all(&a).await.expect("the chain holds").expect("entries");
    assert_eq!(head.0, 40, "every append kept, no gap");

    let metro = a.audit_search(&AuditFilter { organisation: Some("metro".into()), ..Default::default() }, 100).await;
    assert_eq!(metro.unwrap().len(), 20);
    let imports = AuditFilter { action: Some(AuditAction::TimetableImported), ..Default::default() };
    assert_eq!(a.audit_search(&imports, 100).await.unwrap().len(), 20);
    let one = AuditFilter { actor: Some("ops3@bus".into()), ..Default::default() };
    assert_eq!(a.audit_search(&one, 100).await.unwrap().len(), 1);

    // Someone with database access rewrites who did entry 7.
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    sqlx::query("UPDATE audit_log SET actor = 'staff:nobody' WHERE seq = 7").execute(&pool).await.unwrap();
    assert_eq!(verify_all(&a).await, Err(AuditBreak::Edited { seq: 7 }));
    sqlx::query("DELETE FROM audit_log WHERE seq = 7").execute(&pool).await.unwrap();
    assert_eq!(verify_all(&a).await, Err(AuditBreak::Gap { after: 6, found: 8 }));
    pool.close().await;
}

support::on_sqlite_and_postgres!("audit", two_writers_one_chain_and_tampering_found);
