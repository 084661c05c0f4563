//! Ledger ingest speed: contract events into the double-entry ledger and read models,
//! through `Store::apply_events` exactly as the follower books them (batches of one
//! block range, checkpoint and block hashes in the same transaction).
//!
//! The events are a realistic mix: each purchase is a PlanPurchased, four TicketIssued,
//! four LegSold and a PolicyOpened (10 events), plus FareMinted top-ups, vouchers and
//! redemptions. Runs on SQLite (a temporary file) and, when `KIPPU_BENCH_POSTGRES` (or
//! `KIPPU_TEST_POSTGRES`) names a server, on a fresh PostgreSQL database.
//! Run: `cargo bench -p kippu-store --bench ingest` (`KIPPU_BENCH_EVENTS` to resize).

use std::time::Instant;

use alloy_primitives::{Address, B256};
use kippu_domain::events::{ChainEvent, EventMeta};
use kippu_store::Store;

const PER_BATCH: usize = 10_000;

fn events(n: usize) -> Vec<(EventMeta, ChainEvent)> {
    let mut out = Vec::with_capacity(n);
    let mut ticket = 0u64;
    let mut plan = 0u64;
    let mut voucher = 0u64;
    let mut i = 0usize;
    while out.len() < n {
        let push = |ev: ChainEvent, out: &mut Vec<(EventMeta, ChainEvent)>| {
            let block = 100 + (out.len() / 50) as u64;
            let meta = EventMeta {
                block_number: block,
                block_hash: B256::from(alloy_primitives::U256::from(block)),
                log_index: (out.len() % 50) as u64,
                tx_hash: B256::from(alloy_primitives::U256::from(out.len())),
            };
            out.push((meta, ev));
        };
        let traveler = Address::from(alloy_primitives::U160::from(1_000 + i % 5_000));
        i += 1;
        match i % 12 {
            0 => push(
                ChainEvent::FareMinted { to: traveler, amount: 5_000, payment_ref: B256::repeat_byte(1) },
                &mut out,
            ),
            1 if voucher > 0 => {
                push(ChainEvent::VoucherRedeemed { voucher_id: voucher, operator_id: 3, value: 1_500 }, &mut out)
            }
            2 => {
                voucher += 1;
                push(
                    ChainEvent::VoucherIssued {
                        voucher_id: voucher,
                        policy_id: ticket.max(1),
                        holder: traveler,
                        value: 1_500,
                        operator_id: 3,
                        expiry: 1_900_000_000,
                        delay_id: B256::repeat_byte(2),
                    },
                    &mut out,
                )
            }
            _ => {
                plan += 1;
                push(
                    ChainEvent::PlanPurchased {
                        plan_id: plan,
                        traveler,
                        bundle_id: 1,
                        price: 3_570,
                        valid_from: 1_800_000_000,
                    },
                    &mut out,
                );
                for (leg, (operator, share)) in
                    [(1u32, 1_530i64), (2, 510), (3, 1_275), (4, 255)].into_iter().enumerate()
                {
                    ticket += 1;
                    push(
                        ChainEvent::TicketIssued {
                            ticket_id: ticket,
                            holder: traveler,
                            plan_id: plan,
                            operator_id: operator,
                            product_id: operator * 100 + 1,
                            valid_from: 1_800_000_000,
                            valid_until: 1_800_259_200,
                            rides: u32::MAX,
                        },
                        &mut out,
                    );
                    push(
                        ChainEvent::LegSold {
                            plan_id: plan,
                            ticket_id: ticket,
                            operator_id: operator,
                            product_id: 0,
                            share,
                        },
                        &mut out,
                    );
                    if leg == 3 {
                        push(
                            ChainEvent::PolicyOpened {
                                policy_id: ticket,
                                holder: traveler,
                                valid_from: 1_800_000_000,
                                valid_until: 1_800_259_200,
                            },
                            &mut out,
                        );
                    }
                }
            }
        }
    }
    out.truncate(n);
    out
}

async fn run(label: &str, store: &Store, evs: &[(EventMeta, ChainEvent)]) {
    let start = Instant::now();
    let mut booked = 0;
    let mut worst = std::time::Duration::ZERO;
    for chunk in evs.chunks(PER_BATCH) {
        let t = Instant::now();
        let first = chunk[0].0.block_number;
        let last = chunk[chunk.len() - 1].0.block_number;
        let blocks: Vec<(u64, B256, i64)> = (first..=last)
            .map(|b| (b, B256::from(alloy_primitives::U256::from(b)), 1_800_000_000 + b as i64))
            .collect();
        booked += store.apply_events("bench", last + 1, chunk, &blocks).await.expect("booked");
        worst = worst.max(t.elapsed());
    }
    let total = start.elapsed();
    assert_eq!(booked, evs.len(), "every event booked once");
    assert_eq!(store.ledger_imbalance().await.unwrap(), 0, "the ledger balances");
    // Re-delivery of the first batch books nothing.
    let again = store.apply_events("bench", 0, &evs[..PER_BATCH.min(evs.len())], &[]).await.unwrap();
    assert_eq!(again, 0);
    println!(
        "  {label:<10} {} events in {:.2} s: {:.0} events/s (batches of {PER_BATCH}: worst {:.0} ms)",
        evs.len(),
        total.as_secs_f64(),
        evs.len() as f64 / total.as_secs_f64(),
        worst.as_secs_f64() * 1e3
    );
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("KIPPU_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let evs = events(n);
    println!("ledger ingest, {n} events (purchases as 10 events each, top-ups, vouchers, redemptions), release build");

    let dir = std::env::temp_dir().join(format!("kippu-ingest-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.join("bench.db").display())).await.unwrap();
    run("SQLite", &store, &evs).await;
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);

    let pg = ["KIPPU_BENCH_POSTGRES", "KIPPU_TEST_POSTGRES"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
    let Some(pg) = pg else {
        println!("  PostgreSQL skipped: set KIPPU_BENCH_POSTGRES=postgres://127.0.0.1:5432/test");
        return;
    };
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&pg).await.expect("postgres reachable");
    let name = format!("kippu_bench_{}", rand::random::<u32>());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
    let url = match pg.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => unreachable!("a postgres URL has a path"),
    };
    let store = Store::connect(&url).await.unwrap();
    run("PostgreSQL", &store, &evs).await;
    store.pool().close().await;
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)")).execute(&admin).await.unwrap();
}
