//! Period close speed: 1,000,000 plans (4,000,000 tickets) and 10,000,000 taps in the
//! database, then `Store::close_period_books`: every plan re-apportioned under its
//! bundle's rule (half by usage, half as booked) from the rides tapped in the period,
//! operators' positions computed and netted into transfers. The data is generated
//! straight into the tables first (not timed).
//! Run: `cargo bench -p kippu-store --bench close` (`KIPPU_BENCH_PLANS` to resize;
//! `KIPPU_BENCH_POSTGRES` adds a PostgreSQL run).

use std::time::Instant;

use kippu_store::Store;

const FROM: i64 = 1_800_000_000;
const TO: i64 = FROM + 30 * 86_400;

async fn fill(store: &Store, plans: u64, positional: bool) {
    let pool = store.pool();
    let ph = |n: usize, width: usize| -> String {
        (0..n)
            .map(|r| {
                let cols: Vec<String> = (0..width)
                    .map(|c| if positional { "?".into() } else { format!("${}", r * width + c + 1) })
                    .collect();
                format!("({})", cols.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    sqlx::query("INSERT INTO bundles (id, name, description, discount_bps, product_ids, settle_by) VALUES (1, 'usage', '', 1500, '', 'usage'), (2, 'list', '', 1500, '', 'list')")
        .execute(pool)
        .await
        .unwrap();
    // Four operators with a product each; the fourth is the delay insurance, kept out of usage shares.
    sqlx::query("INSERT INTO operators (id, slug, name, kind, payee) VALUES (1, 'm', 'm', 'rail', '0x0'), (2, 'b', 'b', 'bus', '0x0'), (3, 't', 't', 'taxi', '0x0'), (4, 'i', 'i', 'insurer', '0x0')")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO products (id, operator_id, name, price, duration_secs, rides, insurance) VALUES (1, 1, 'm', 1800, 86400, -1, 0), (2, 2, 'b', 600, 86400, -1, 0), (3, 3, 't', 1500, 86400, 1, 0), (4, 4, 'i', 300, 86400, 1, 1)")
        .execute(pool)
        .await
        .unwrap();
    const CHUNK: u64 = 500;
    let mut tx = pool.begin().await.unwrap();
    for start in (0..plans).step_by(CHUNK as usize) {
        let n = CHUNK.min(plans - start);
        let sql = format!(
            "INSERT INTO plans (plan_id, traveler, bundle_id, price, valid_from, event_key) VALUES {}",
            ph(n as usize, 6)
        );
        let mut q = sqlx::query(&sql);
        for p in start..start + n {
            q = q
                .bind(p as i64)
                .bind("0x00")
                .bind(1 + (p % 2) as i64)
                .bind(3_570i64)
                .bind(FROM + (p % 86_400) as i64)
                .bind("k");
        }
        q.execute(&mut *tx).await.unwrap();
        let sql = format!(
            "INSERT INTO tickets (id, holder, plan_id, operator_id, product_id, valid_from, valid_until, rides, share) VALUES {}",
            ph(4 * n as usize, 9)
        );
        let mut q = sqlx::query(&sql);
        for p in start..start + n {
            for (leg, share) in [1_530i64, 510, 1_275, 255].into_iter().enumerate() {
                q = q
                    .bind((p * 4 + leg as u64) as i64)
                    .bind("0x00")
                    .bind(p as i64)
                    .bind(leg as i64 + 1)
                    .bind(leg as i64 + 1)
                    .bind(FROM)
                    .bind(TO)
                    .bind(-1i64)
                    .bind(share);
            }
        }
        q.execute(&mut *tx).await.unwrap();
    }
    // 10 taps per plan, on the metro and bus legs mostly.
    let taps = plans * 10;
    for start in (0..taps).step_by(CHUNK as usize * 8) {
        let n = (CHUNK * 8).min(taps - start);
        let sql =
            format!("INSERT INTO taps (scan_id, ticket_id, operator_id, gate_key, at) VALUES {}", ph(n as usize, 5));
        let mut q = sqlx::query(&sql);
        for i in start..start + n {
            let plan = i / 10;
            let leg = [0u64, 0, 0, 0, 0, 1, 1, 1, 2, 0][(i % 10) as usize];
            q = q
                .bind(i.to_string())
                .bind((plan * 4 + leg) as i64)
                .bind(leg as i64 + 1)
                .bind("g")
                .bind(FROM + (i % 2_000_000) as i64);
        }
        q.execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
}

async fn run(label: &str, store: &Store, plans: u64, positional: bool) {
    let t = Instant::now();
    fill(store, plans, positional).await;
    let filled = t.elapsed();
    let t = Instant::now();
    let close = store.close_period_books(FROM, TO).await.unwrap();
    let took = t.elapsed();
    assert_eq!(close.plans, plans);
    assert_eq!(close.taps, plans * 10);
    let booked: i64 = close.operators.values().map(|o| o.booked).sum();
    let due: i64 = close.operators.values().map(|o| o.due).sum();
    assert_eq!(booked, due, "re-apportioning never creates or loses FARE");
    assert_eq!(close.operators[&4].due, close.operators[&4].booked, "the insurance leg keeps its premium");
    println!(
        "  {label:<10} close of {plans} plans / {} tickets / {} taps: {:.2} s (data generated in {:.1} s); {} transfers",
        plans * 4,
        plans * 10,
        took.as_secs_f64(),
        filled.as_secs_f64(),
        close.transfers.len()
    );
    for (op, o) in &close.operators {
        println!("      operator {op}: booked {} due {} rides {}", o.booked, o.due, o.rides);
    }
}

#[tokio::main]
async fn main() {
    let plans: u64 = std::env::var("KIPPU_BENCH_PLANS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    println!("period close, release build");
    let dir = std::env::temp_dir().join(format!("kippu-close-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.join("close.db").display())).await.unwrap();
    run("SQLite", &store, plans, true).await;
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);

    let Some(pg) = ["KIPPU_BENCH_POSTGRES", "KIPPU_TEST_POSTGRES"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    else {
        println!("  PostgreSQL skipped: set KIPPU_BENCH_POSTGRES=postgres://127.0.0.1:5432/test");
        return;
    };
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&pg).await.expect("postgres reachable");
    let name = format!("kippu_close_{}", rand::random::<u32>());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
    let url = format!("{}/{name}", pg.rsplit_once('/').expect("a postgres URL has a path").0);
    let store = Store::connect(&url).await.unwrap();
    run("PostgreSQL", &store, plans, false).await;
    store.pool().close().await;
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)")).execute(&admin).await.unwrap();
}
