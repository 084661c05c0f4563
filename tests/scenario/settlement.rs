//! A settlement scenario shared by `reports.rs` and `browser.rs` (each includes this file with
//! `#[path]`): the demo traveler Aiko buys plans, rides, refunds unused legs and is paid delay
//! vouchers that the taxi redeems, over two UTC days of chain time and three clearing periods
//! (two closed, the last one open).

use alloy::network::EthereumWallet;
use alloy::primitives::{B256, U256};
use alloy::providers::ProviderBuilder;
use alloy::signers::local::PrivateKeySigner;
use kippu_chain::bindings::{FareToken, PlanMarket};
use kippu_domain::staff::Permission;
use kippu_e2e::{now, staff_token, Client};
use kippu_identity::deterministic_demo_key;
use serde_json::Value;

const DAY: i64 = 86_400;

/// Runs the scenario on a fresh stack and waits until the ledger has booked it all.
///
/// - Day 1, period 1: two Explorer plans (A, B) and two Commuter plans (settled by usage); the
///   metro and bus legs ridden (bus runs 1 and 2 on board, taps at a stop gate; the second
///   Commuter once on each); the first Commuter's metro rides and
///   plan B's taxi credit refunded; runs 1 and 2 reported 20 minutes late, so plans A and B are
///   paid a taxi voucher each; one voucher redeemed at the taxi; the period closed.
/// - Day 2 (the chain a day ahead of the wall clock), period 2: an Explorer plan, the other
///   voucher redeemed, the period closed.
/// - Period 3, open: a Commuter plan.
pub(crate) async fn two_days_of_settlement(stack: &kippu::Stack) {
    let c = Client::new(&stack.web_url);
    let aiko = deterministic_demo_key("aiko");
    let (status, _, _) = c.form("/signin", &[("address", &format!("{:#x}", aiko.address()))]).await;
    assert_eq!(status, 200);
    stack.chain.mint_fare(aiko.address(), 100_000, B256::repeat_byte(7)).await.unwrap();
    // The taxi's scanner holds the taxi's API token for redeeming vouchers.
    let scanner = staff_token(stack, "taxi", &[Permission::VouchersRedeem]).await;

    // ---- Day 1, period 1: two Explorer plans and a Commuter plan, rides, two refunds, vouchers.
    let (a, b, commuter) = (buy(&c, 1).await, buy(&c, 1).await, buy(&c, 2).await);
    let metro_a = c.ticket_of(1, Some(a)).await;
    assert_eq!(c.ride(&stack.store, metro_a, "metro/central/g1", None).await["open"], true);
    let bus_a = c.ticket_of(2, Some(a)).await;
    assert_eq!(c.ride(&stack.store, bus_a, "bus/bull-runner-7/onboard", Some("1")).await["open"], true);
    let bus_b = c.ticket_of(2, Some(b)).await;
    assert_eq!(c.ride(&stack.store, bus_b, "bus/bull-runner-7/onboard", Some("2")).await["open"], true);
    let bus_c = c.ticket_of(2, Some(commuter)).await;
    assert_eq!(c.ride(&stack.store, bus_c, "bus/usf-library/g1", None).await["open"], true);
    // A second Commuter, settled by usage: one metro ride and one bus ride, so at the close
    // metro and bus share its metro + bus price equally, whatever the list prices booked.
    let commuter2 = buy(&c, 2).await;
    let metro_d = c.ticket_of(1, Some(commuter2)).await;
    assert_eq!(c.ride(&stack.store, metro_d, "metro/central/g1", None).await["open"], true);
    let bus_d = c.ticket_of(2, Some(commuter2)).await;
    assert_eq!(c.ride(&stack.store, bus_d, "bus/usf-library/g1", None).await["open"], true);
    // Unused refundable legs: the Commuter's 10 metro rides and plan B's taxi credit (80 % back).
    stack.chain.refund(c.ticket_of(1, Some(commuter)).await).await.unwrap();
    stack.chain.refund(c.ticket_of(3, Some(b)).await).await.unwrap();
    // Runs 1 and 2 run 20 minutes late: plans A and B (who rode them) get a taxi voucher each.
    let feed = kippu_gtfs::encode_trip_updates(now() - 5, &[("1".into(), None, 20 * 60), ("2".into(), None, 20 * 60)]);
    let r = c.http.post(format!("{}/dev/gtfs-rt", c.base)).body(feed).send().await.unwrap();
    let out: Value = r.json().await.unwrap();
    assert_eq!(out["vouchers"].as_array().map(Vec::len), Some(2), "{out}");
    let vouchers: Vec<u64> =
        c.me().await["vouchers"].as_array().unwrap().iter().map(|v| v["id"].as_u64().unwrap()).collect();
    assert_eq!(vouchers.len(), 2);
    redeem_at_taxi(&c, &scanner, &aiko, vouchers[0]).await;
    close_period(&c).await;

    // ---- Day 2, period 2: another Explorer, the other voucher, a close.
    next_chain_day(stack).await;
    stack.chain.fund(aiko.address(), 10u128.pow(18)).await.unwrap();
    buy_directly(stack, &aiko, 1).await;
    redeem_at_taxi(&c, &scanner, &aiko, vouchers[1]).await;
    close_period(&c).await;
    // ---- Period 3 stays open: a Commuter plan.
    buy_directly(stack, &aiko, 2).await;
    stack.indexer.catch_up().await.unwrap();
}

async fn buy(c: &Client, bundle: u32) -> u64 {
    let (_, url, body) = c.form(&format!("/plans/{bundle}/buy"), &[]).await;
    let plan = url.split("bought=").nth(1).unwrap_or_else(|| panic!("{url} {body}"));
    plan.parse().unwrap()
}

async fn redeem_at_taxi(c: &Client, scanner: &str, aiko: &PrivateKeySigner, voucher: u64) {
    let window = kippu_domain::voucher::voucher_window(now());
    let digest = kippu_domain::voucher::VoucherCode::digest(voucher, window);
    let sig = alloy::signers::SignerSync::sign_hash_sync(aiko, &digest).unwrap();
    let code = kippu_domain::voucher::VoucherCode { voucher_id: voucher, window, signature: sig.as_bytes() }.encode();
    let r = c
        .http
        .post(format!("{}/operators/taxi/vouchers/redeem", c.base))
        .bearer_auth(scanner)
        .json(&serde_json::json!({ "code": code }))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["redeemed"], true, "{v}");
}

async fn close_period(c: &Client) {
    let r = c.http.post(format!("{}/dev/close-period", c.base)).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

/// Buys a bundle on chain as the traveler herself (approve + buy; no permit, whose
/// deadline follows the wall clock while this chain runs a day ahead).
async fn buy_directly(stack: &kippu::Stack, aiko: &PrivateKeySigner, bundle: u32) {
    let d = stack.chain.deployment();
    let provider =
        ProviderBuilder::new().wallet(EthereumWallet::from(aiko.clone())).connect_http(stack.rpc_url.parse().unwrap());
    let (price, _) = stack.chain.quote(bundle).await.unwrap();
    let fare = FareToken::new(d.fare, &provider);
    let r = fare.approve(d.market, U256::from(price)).send().await.unwrap().get_receipt().await.unwrap();
    assert!(r.status());
    let market = PlanMarket::new(d.market, &provider);
    let r = market
        .buy(alloy::primitives::B256::random(), bundle, 0, U256::from(price))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(r.status());
}

/// Runs the chain a day ahead of the wall clock (anvil), so the next blocks fall on the next UTC day.
async fn next_chain_day(stack: &kippu::Stack) {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "evm_increaseTime", "params": [DAY]});
    let r = reqwest::Client::new().post(&stack.rpc_url).json(&body).send().await.unwrap();
    assert!(r.status().is_success());
    stack.chain.mine(1).await.unwrap();
}
