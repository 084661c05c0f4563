//! Leases on a real database through two handles (two processes): one holder at a time, the
//! holder renews, and another takes over only once the lease expired. On SQLite always; on
//! PostgreSQL when `KIPPU_TEST_POSTGRES` is set.

mod support;

use kippu_store::Store;

const NOW: i64 = 1_800_000_000;

async fn one_holder_at_a_time(url: &str) {
    let a = Store::connect(url).await.unwrap();
    let b = Store::connect(url).await.unwrap();
    let (x, y) = tokio::join!(a.lead("outbox", "a", NOW, 10), b.lead("outbox", "b", NOW, 10));
    let (x, y) = (x.unwrap(), y.unwrap());
    assert!(x ^ y, "exactly one of two processes asking at once wins: {x} {y}");
    let (winner, loser, w, l) = if x { (&a, &b, "a", "b") } else { (&b, &a, "b", "a") };
    assert!(winner.lead("outbox", w, NOW + 5, 10).await.unwrap(), "the holder renews");
    assert!(!loser.lead("outbox", l, NOW + 14, 10).await.unwrap(), "renewed until NOW + 15");
    assert!(loser.lead("outbox", l, NOW + 15, 10).await.unwrap(), "expired: taken over");
    assert!(!winner.lead("outbox", w, NOW + 16, 10).await.unwrap(), "the old holder has lost it");
    assert!(winner.lead("anchorer", w, NOW + 16, 10).await.unwrap(), "each lease on its own");
}

support::on_sqlite_and_postgres!("leases", one_holder_at_a_time);
