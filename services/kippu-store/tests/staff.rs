//! Organisations, staff accounts, invitations, sessions, API tokens and staff passkeys on a
//! real database: an invitation is used once (of two simultaneous uses, one wins), a disabled
//! account's sessions end, a revoked token stays revoked. On SQLite always; on PostgreSQL when
//! `KIPPU_TEST_POSTGRES` is set.

mod support;

use kippu_domain::model::{ApiToken, Organisation, StaffAccount, StaffPasskeyRow};
use kippu_domain::staff::{OrgKind, Permission, Role};
use kippu_store::Store;

const NOW: i64 = 1_800_000_000;

async fn staff_round_trip(url: &str) {
    let a = Store::connect(url).await.unwrap();
    let b = Store::connect(url).await.unwrap();
    let bus = Organisation { slug: "bus".into(), name: "Bus".into(), kind: OrgKind::Operator, created_at: NOW };
    assert!(a.add_organisation(&bus).await.unwrap());
    assert!(!b.add_organisation(&bus).await.unwrap(), "a slug is taken once");
    assert_eq!(b.organisation("bus").await.unwrap(), Some(bus.clone()));
    let ops = StaffAccount {
        id: "a1".into(),
        email: "ops@bus.example".into(),
        organisation: "bus".into(),
        role: Role::Staff,
        password_hash: None,
        created_at: NOW,
        created_by: "cli".into(),
        disabled_at: None,
    };
    assert!(a.add_staff(&ops, "inv-hash", NOW + 60).await.unwrap());
    let twin = StaffAccount { id: "a2".into(), ..ops.clone() };
    assert!(!b.add_staff(&twin, "other-hash", NOW + 60).await.unwrap(), "an e-mail has one account");
    assert!(b.staff_account("a2").await.unwrap().is_none(), "nothing half-written");
    assert_eq!(a.invitation("inv-hash", NOW).await.unwrap().map(|x| x.id), Some("a1".into()));
    assert!(a.invitation("inv-hash", NOW + 60).await.unwrap().is_none(), "expired");
    // Two simultaneous uses of one link: one sets the password.
    let (x, y) = tokio::join!(
        a.accept_invitation("inv-hash", "$argon2id$x", NOW),
        b.accept_invitation("inv-hash", "$argon2id$y", NOW)
    );
    let won: Vec<_> = [x.unwrap(), y.unwrap()].into_iter().flatten().collect();
    assert_eq!(won.len(), 1, "{won:?}");
    assert!(a.staff_by_email("ops@bus.example").await.unwrap().unwrap().password_hash.is_some());
    // Sessions, shared by both handles; disabling ends them.
    a.open_staff_session("s-hash", "a1", NOW + 100).await.unwrap();
    assert_eq!(b.staff_session("s-hash", NOW).await.unwrap().map(|x| x.id), Some("a1".into()));
    assert!(b.staff_session("s-hash", NOW + 100).await.unwrap().is_none(), "expired");
    assert!(a.set_staff_role("bus", "a1", Role::Auditor).await.unwrap());
    assert!(!a.set_staff_role("rail", "a1", Role::Staff).await.unwrap(), "not rail's account");
    assert!(b.disable_staff("bus", "a1", NOW).await.unwrap());
    assert!(!b.disable_staff("bus", "a1", NOW).await.unwrap(), "once");
    assert!(a.staff_session("s-hash", NOW).await.unwrap().is_none(), "signed out at once");
    // Tokens.
    let t = ApiToken {
        id: "t1".into(),
        organisation: "bus".into(),
        name: "scanner".into(),
        scopes: vec![Permission::VouchersRedeem, Permission::ReportsRead],
        token_hash: "t-hash".into(),
        created_by: "cli".into(),
        created_at: NOW,
        expires_at: NOW + 86_400,
        revoked_at: None,
        last_used_at: None,
    };
    a.issue_token(&t).await.unwrap();
    let back = b.api_token("t1").await.unwrap().unwrap();
    assert_eq!(back.scopes, vec![Permission::ReportsRead, Permission::VouchersRedeem]);
    b.token_used("t1", NOW + 5).await.unwrap();
    assert_eq!(a.api_token("t1").await.unwrap().unwrap().last_used_at, Some(NOW + 5));
    assert!(!a.revoke_token("rail", "t1", NOW).await.unwrap(), "not rail's token");
    assert!(a.revoke_token("bus", "t1", NOW).await.unwrap());
    assert!(!b.revoke_token("bus", "t1", NOW + 1).await.unwrap(), "once");
    assert_eq!(b.tokens_of("bus").await.unwrap()[0].revoked_at, Some(NOW));
    // Staff passkeys.
    let p = StaffPasskeyRow {
        credential_id: vec![1, 2, 3],
        account_id: "a1".into(),
        user_handle: vec![9; 64],
        static_state: vec![4; 10],
        dynamic_state: vec![0; 7],
        created_at: NOW,
        last_used: None,
    };
    assert!(a.insert_staff_passkey(&p).await.unwrap());
    assert!(!b.insert_staff_passkey(&p).await.unwrap());
    b.staff_passkey_used(&[1, 2, 3], &[1; 7], NOW + 9).await.unwrap();
    let got = a.staff_passkey(&[1, 2, 3]).await.unwrap().unwrap();
    assert_eq!((got.dynamic_state, got.last_used), (vec![1; 7], Some(NOW + 9)));
    assert_eq!(a.staff_passkeys_of("a1").await.unwrap().len(), 1);
}

support::on_sqlite_and_postgres!("staff", staff_round_trip);
