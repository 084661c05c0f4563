//! Failed-attempt counts on a real database: failures counted at once from two handles (two
//! processes) all count, the policy's maximum locks the key, an old window starts again, and a
//! success forgets the failures. On SQLite always; on PostgreSQL when `KIPPU_TEST_POSTGRES` is set.

mod support;

use kippu_domain::throttle::{Policy, Verdict};
use kippu_store::Store;

const P: Policy = Policy { max_failures: 10, window_secs: 60, lock_secs: 300 };
const NOW: i64 = 1_800_000_000;

async fn counts_hold_across_handles(url: &str) {
    let a = Store::connect(url).await.unwrap();
    let b = Store::connect(url).await.unwrap();
    let fail = |s: Store| async move {
        let mut last = Verdict::Open;
        for _ in 0..5 {
            last = s.throttle_failure("client", "192.0.2.1", NOW, &P).await.unwrap();
        }
        last
    };
    let (x, y) = tokio::join!(fail(a.clone()), fail(b.clone()));
    assert!([x, y].contains(&Verdict::Locked { until: NOW + 300 }), "the tenth failure locks: {x:?} {y:?}");
    assert_eq!(b.throttle_verdict("client", "192.0.2.1", NOW + 1).await.unwrap(), Verdict::Locked { until: NOW + 300 });
    assert_eq!(a.throttle_verdict("client", "192.0.2.2", NOW).await.unwrap(), Verdict::Open, "per key");
    assert_eq!(a.throttle_verdict("client", "192.0.2.1", NOW + 300).await.unwrap(), Verdict::Open, "the lock ends");

    // Nine failures, then the window passes: counting starts again.
    for _ in 0..9 {
        a.throttle_failure("account", "ops@metro", NOW, &P).await.unwrap();
    }
    assert_eq!(a.throttle_failure("account", "ops@metro", NOW + 61, &P).await.unwrap(), Verdict::Open);
    // A success forgets the failures.
    for _ in 0..8 {
        a.throttle_failure("account", "ops@bus", NOW, &P).await.unwrap();
    }
    a.throttle_success("account", "ops@bus", NOW).await.unwrap();
    assert_eq!(a.throttle_failure("account", "ops@bus", NOW, &P).await.unwrap(), Verdict::Open);
    travelers_wrong_passwords_lock_the_account_through_every_handle(&a, &b).await;
}

/// A traveler's password sign-in (the use case over this store): ten wrong passwords through
/// two handles lock the account, and then the right password is refused too, until the lock
/// ends; another account from another address is not affected.
async fn travelers_wrong_passwords_lock_the_account_through_every_handle(a: &Store, b: &Store) {
    use kippu_app::accounts::{hash_password, sign_in_throttled, PasswordSignInError};
    let t = kippu_domain::model::Traveler {
        address: alloy_primitives::Address::repeat_byte(7),
        did: "did:pkh:eip155:31337:0x0707070707070707070707070707070707070707".into(),
        display_name: "Ada".into(),
        sealed_key: None,
        created_at: 0,
    };
    let hash = hash_password("analytical engine").unwrap();
    assert!(a.create_account(&t, "ada@example.org", &hash, NOW).await.unwrap());
    for i in 0..10 {
        let via = if i % 2 == 0 { a } else { b };
        let r = sign_in_throttled(via, "ADA@example.org", "wrong", &format!("198.51.100.{i}"), NOW).await;
        let want = if i < 9 {
            PasswordSignInError::Wrong
        } else {
            PasswordSignInError::Locked { until: NOW + Policy::ACCOUNT.lock_secs }
        };
        assert_eq!(r, Err(want), "attempt {i}");
    }
    let right = sign_in_throttled(b, "ada@example.org", "analytical engine", "203.0.113.9", NOW + 1).await;
    assert!(matches!(right, Err(PasswordSignInError::Locked { .. })), "{right:?}");
    let later = NOW + Policy::ACCOUNT.lock_secs;
    assert_eq!(sign_in_throttled(a, "ada@example.org", "analytical engine", "203.0.113.9", later).await, Ok(t.address));
}

support::on_sqlite_and_postgres!("throttle", counts_hold_across_handles);
