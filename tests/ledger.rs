//! The ledger follows the chain exactly through reorganisations, re-deliveries and
//! restarts: anvil's `anvil_reorg` and `evm_snapshot`/`evm_revert` replace blocks
//! that were already booked, and the ledger, the read models and on-chain escrow
//! must agree afterwards. Runs on SQLite and, with `make test`, on PostgreSQL.

use kippu::Config;
use kippu_e2e::{config, production_parts, Client};
use kippu_identity::deterministic_demo_key;

/// `(escrow on chain, what the ledger owes operators, plans in the app, ledger imbalance)`.
async fn books(stack: &kippu::Stack) -> (i64, i64, usize, i64) {
    let escrow_on_chain = stack.chain.escrow_balance().await.unwrap() as i64;
    let mut owed = 0;
    for id in 1..=4 {
        owed -= stack.store.account_balance(&format!("operator:{id}")).await.unwrap();
    }
    let plans = stack.store.plans_count().await.unwrap();
    (escrow_on_chain, owed, plans, stack.store.ledger_imbalance().await.unwrap())
}

async fn buy(c: &Client) {
    let (_, url, body) = c.form("/plans/1/buy", &[]).await;
    assert!(url.contains("bought="), "{url} {body}");
}

/// Aiko, signed in on a fresh stack with 200.00 FARE.
async fn aiko_with_fare(stack: &kippu::Stack) -> (Client, alloy::signers::local::PrivateKeySigner) {
    let c = Client::new(&stack.web_url);
    let aiko = deterministic_demo_key("aiko");
    c.form("/signin", &[("address", &format!("{:#x}", aiko.address()))]).await;
    stack.chain.mint_fare(aiko.address(), 20_000, alloy::primitives::B256::repeat_byte(9)).await.unwrap();
    (c, aiko)
}

async fn run_ledger(mut cfg: Config) {
    // The blocks replaced here hold transactions as if another writer had sent them: nothing
    // sends them again, so the ledger's rollback is seen on its own. Kippu's own writes come
    // back after a reorganisation (the outbox), which the test after this one checks.
    cfg.chain.outbox = false;
    let stack = kippu::start(cfg).await.expect("stack starts");
    let (c, aiko) = aiko_with_fare(&stack).await;

    // One purchase, booked: escrow on chain equals what the ledger owes operators.
    buy(&c).await;
    stack.indexer.catch_up().await.unwrap();
    let (chain, owed, plans, imbalance) = books(&stack).await;
    assert_eq!((chain, owed, plans, imbalance), (3570, 3570, 1, 0));

    // A second purchase is booked, then anvil replaces the blocks since it (a 3-block reorg):
    // the purchase is gone from the chain, so it must be gone from the ledger and the app.
    let before = stack.chain.block_number().await.unwrap();
    buy(&c).await;
    stack.indexer.catch_up().await.unwrap();
    assert_eq!(books(&stack).await, (7140, 7140, 2, 0));
    // Its metro pass opens the gate (the validator now holds the ticket in memory).
    let me = c.me().await;
    let newest = me["tickets"].as_array().unwrap().iter().map(|t| t["plan_id"].as_u64().unwrap()).max().unwrap();
    let doomed = c.ticket_of(1, Some(newest)).await;
    assert_eq!(c.ride(&stack.store, doomed, "metro/central/g1", None).await["open"], true);
    stack.chain.mine(3).await.unwrap();
    stack.indexer.catch_up().await.unwrap();
    let depth = stack.chain.block_number().await.unwrap() - before;
    assert!(depth >= 4, "the purchase and three blocks on top: {depth}");
    stack.chain.reorg(depth).await.unwrap();
    stack.indexer.catch_up().await.unwrap();
    assert_eq!(books(&stack).await, (3570, 3570, 1, 0), "the reorganised purchase was rolled back");
    let reorgs = stack.store.reorgs(kippu::indexer::CURSOR).await.unwrap();
    assert_eq!(reorgs.len(), 1);
    assert!(reorgs[0].2 > 0, "events were removed: {reorgs:?}");
    assert_eq!(c.me().await["tickets"].as_array().unwrap().len(), 4, "the traveler's tickets follow the chain");
    // The gates stop honouring the ticket the reorg took away.
    let mut reason = String::new();
    for _ in 0..40 {
        // The app no longer shows that ticket; the traveler's phone still has a pass for it.
        let png = kippu_web::pass_png(&aiko, doomed, kippu_e2e::now()).unwrap();
        let r = c.http.post(format!("{}/gates/metro/central/g1/scan", c.base)).body(png).send().await.unwrap();
        let v: serde_json::Value = r.json().await.unwrap();
        reason = v["reason"].as_str().unwrap_or("OPEN").to_owned();
        if reason == "UNKNOWN_TICKET" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(reason, "UNKNOWN_TICKET");

    // Snapshot, buy, book, revert, and the chain grows past the old height on another branch.
    let snap = stack.chain.evm_snapshot().await.unwrap();
    buy(&c).await;
    stack.indexer.catch_up().await.unwrap();
    assert_eq!(books(&stack).await.2, 2);
    assert!(stack.chain.revert_to(snap).await.unwrap());
    stack.chain.mine(5).await.unwrap();
    stack.indexer.catch_up().await.unwrap();
    assert_eq!(books(&stack).await, (3570, 3570, 1, 0), "reverted purchase rolled back");
    assert_eq!(stack.store.reorgs(kippu::indexer::CURSOR).await.unwrap().len(), 2);

    // After all that, a new purchase books once.
    buy(&c).await;
    stack.indexer.catch_up().await.unwrap();
    assert_eq!(books(&stack).await, (7140, 7140, 2, 0));

    // Re-delivery (a follower that crashed after reading but before its checkpoint, or a
    // restarted process re-reading from the start): everything read again, nothing booked twice.
    stack.store.set_cursor(kippu::indexer::CURSOR, stack.chain.deployment().deploy_block).await.unwrap();
    let restarted = kippu::indexer::Indexer::new(stack.chain.clone(), stack.store.clone(), 0);
    assert_eq!(restarted.catch_up().await.unwrap(), 0, "re-read events are not booked again");
    assert_eq!(books(&stack).await, (7140, 7140, 2, 0));

    // Followers killed mid-batch, again and again, while re-reading everything: each
    // batch commits whole or not at all, so the survivor finishes with the same books.
    for i in 0..12u64 {
        stack.store.set_cursor(kippu::indexer::CURSOR, stack.chain.deployment().deploy_block).await.unwrap();
        let victim = kippu::indexer::Indexer::new(stack.chain.clone(), stack.store.clone(), 0);
        let task = tokio::spawn(async move { victim.catch_up().await });
        tokio::time::sleep(std::time::Duration::from_millis(i % 4)).await;
        task.abort();
        let _ = task.await;
    }
    restarted.catch_up().await.unwrap();
    assert_eq!(books(&stack).await, (7140, 7140, 2, 0));

    // Reconciliation agrees with the contracts at the booked block...
    let (block, diffs) = kippu::reconcile::reconcile(&stack.chain, &stack.store, 1).await.unwrap().unwrap();
    assert!(diffs.is_empty(), "{diffs:?}");
    assert_eq!(block + 1, stack.store.cursor(kippu::indexer::CURSOR).await.unwrap().unwrap());
    // ...and catches a ledger that balances but is wrong: 1.00 FARE moved from the bus to the metro.
    let pool = stack.store.pool();
    sqlx::query("INSERT INTO chain_events (event_key, block_number, block_hash, log_index, tx_hash, kind, payload) VALUES ('tampered', 1, '0x0', 0, '0x0', 'Tampered', '')")
        .execute(pool)
        .await
        .unwrap();
    for (account, amount) in [("operator:1", -100i64), ("operator:2", 100)] {
        sqlx::query("INSERT INTO ledger_postings (event_key, account, amount) VALUES ('tampered', $1, $2)")
            .bind(account)
            .bind(amount)
            .execute(pool)
            .await
            .unwrap();
    }
    // Stamped an hour ahead so it is the newest row whatever the background job wrote meanwhile.
    let later = kippu_e2e::now() as i64 + 3600;
    let (_, diffs) = kippu::reconcile::reconcile(&stack.chain, &stack.store, later).await.unwrap().unwrap();
    let what: Vec<&str> = diffs.iter().map(|d| d.what.as_str()).collect();
    assert_eq!(what, ["operator:1 owed", "operator:2 owed"], "{diffs:?}");
    assert_eq!((diffs[0].ledger - diffs[0].chain, diffs[1].ledger - diffs[1].chain), (100, -100));
    let (_, _, stored) = stack.store.latest_reconciliation().await.unwrap().unwrap();
    assert!(stored.contains("operator:1 owed"), "{stored}");
    // The portal flags it.
    c.staff_sign_in().await;
    let page = c.page("/operators/report").await;
    assert!(
        page.contains("does not reconcile") && page.contains("operator:1 owed: ledger 31.60 FARE, chain 30.60 FARE"),
        "{page}"
    );
    stack.shutdown().await;
}

/// With the outbox (the default), a purchase Kippu made and a reorganisation took away is
/// sent again: the ledger rolls it back, then books it once more, exactly once, and escrow on
/// chain equals what the ledger owes operators again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_purchase_reorganised_away_is_sent_again_and_booked_once() {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
    let cfg = config("ledger-outbox", None, None);
    assert!(cfg.chain.outbox, "the outbox is on by default");
    let stack = kippu::start(cfg).await.expect("stack starts");
    let (c, aiko) = aiko_with_fare(&stack).await;
    let funded = stack.chain.fare_balance(aiko.address()).await.unwrap();
    buy(&c).await;
    stack.indexer.catch_up().await.unwrap();
    assert_eq!(books(&stack).await, (3570, 3570, 1, 0));
    let price = funded - stack.chain.fare_balance(aiko.address()).await.unwrap();
    let before = stack.chain.block_number().await.unwrap();
    buy(&c).await;
    stack.chain.mine(3).await.unwrap();
    stack.indexer.catch_up().await.unwrap();
    assert_eq!(books(&stack).await, (7140, 7140, 2, 0));
    let depth = stack.chain.block_number().await.unwrap() - before;
    stack.chain.reorg(depth).await.unwrap();
    let started = std::time::Instant::now();
    loop {
        stack.indexer.catch_up().await.unwrap();
        let rolled_back = !stack.store.reorgs(kippu::indexer::CURSOR).await.unwrap().is_empty();
        if rolled_back && books(&stack).await == (7140, 7140, 2, 0) {
            break;
        }
        assert!(started.elapsed().as_secs() < 60, "not re-booked: {:?}", books(&stack).await);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let reorgs = stack.store.reorgs(kippu::indexer::CURSOR).await.unwrap();
    assert!(reorgs.iter().any(|r| r.2 > 0), "the purchase's events were rolled back first: {reorgs:?}");
    let purchases: Vec<_> = stack
        .store
        .recent_writes(100)
        .await
        .unwrap()
        .into_iter()
        .filter(|w| w.write.key.kind == kippu_domain::outbox::WriteKind::Purchase)
        .collect();
    assert_eq!(purchases.len(), 2, "{purchases:?}");
    assert!(purchases.iter().any(|w| w.write.attempts >= 2), "the reorganised purchase was sent again: {purchases:?}");
    assert_eq!(
        stack.chain.fare_balance(aiko.address()).await.unwrap(),
        funded - 2 * price,
        "paid for twice, not thrice"
    );
    let (_, diffs) = kippu::reconcile::reconcile(&stack.chain, &stack.store, 1).await.unwrap().unwrap();
    assert!(diffs.is_empty(), "{diffs:?}");
    stack.shutdown().await;
}

/// The node itself stops and comes back (same chain: anvil restarted from its dumped
/// state, on the same port). While it is down purchases fail with an error and the
/// follower retries; afterwards it resumes where it was, with no reorg seen, nothing
/// booked twice and the ledger reconciling with the contracts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ledger_exact_through_a_node_restart() {
    use kippu_chain::anvil::AnvilProcess;
    let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
    let bin = kippu_e2e::repo().join("contracts/node_modules/.bin/anvil");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let node = AnvilProcess::spawn(&bin, port, 31337, None).await.unwrap();
    let mut cfg = config("node-restart", None, None);
    cfg.chain.rpc_url = Some(node.url());
    let stack = kippu::start(cfg).await.expect("stack starts");
    let (c, _) = aiko_with_fare(&stack).await;
    buy(&c).await;
    buy(&c).await;
    stack.indexer.catch_up().await.unwrap();
    assert_eq!(books(&stack).await, (7140, 7140, 2, 0));

    let state = stack.chain.dump_state().await.unwrap();
    let state_file = std::env::temp_dir().join(format!("kippu-anvil-state-{}.json", std::process::id()));
    std::fs::write(&state_file, state).unwrap();
    node.stop().await;

    // Down: the follower cannot read, a purchase is refused, nothing is booked.
    assert!(stack.indexer.catch_up().await.is_err(), "the follower reports the node down");
    let (_, url, _) = c.form("/plans/1/buy", &[]).await;
    assert!(!url.contains("bought="), "no purchase without a node: {url}");
    assert_eq!(stack.store.plans_count().await.unwrap(), 2);

    let node = AnvilProcess::spawn_with(&bin, port, 31337, None, Some(&state_file)).await.unwrap();
    stack.indexer.catch_up().await.unwrap();
    assert_eq!(books(&stack).await, (7140, 7140, 2, 0), "the restarted node is the same chain");
    buy(&c).await;
    stack.indexer.catch_up().await.unwrap();
    assert_eq!(books(&stack).await, (10710, 10710, 3, 0));
    assert!(stack.store.reorgs(kippu::indexer::CURSOR).await.unwrap().is_empty(), "a restart is not a reorg");
    // Everything read again from the deployment block books nothing new.
    stack.store.set_cursor(kippu::indexer::CURSOR, stack.chain.deployment().deploy_block).await.unwrap();
    assert_eq!(stack.indexer.catch_up().await.unwrap(), 0);
    let (_, diffs) = kippu::reconcile::reconcile(&stack.chain, &stack.store, 1).await.unwrap().unwrap();
    assert!(diffs.is_empty(), "{diffs:?}");
    stack.shutdown().await;
    node.stop().await;
    let _ = std::fs::remove_file(state_file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ledger_exact_through_reorgs_on_sqlite() {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
    run_ledger(config("ledger", None, None)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ledger_exact_through_reorgs_on_postgres() {
    let Some((db, mqtt, guard)) = production_parts().await else { return };
    run_ledger(config("ledger-prod", Some(db), Some(mqtt))).await;
    guard.drop_now().await;
}
