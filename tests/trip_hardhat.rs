//! The whole trip (`scenario/trip.rs`: deployment and seed, top-up, purchase, gates, vouchers,
//! settlement) on Hardhat's node (EDR, from npm: `tests/hardhat`), the second EVM
//! implementation beside anvil, configured as a consortium chain is (Besu with
//! `min-gas-price=0`): a block every second, never on each transaction, and a base fee of 0.
//! The platform knows nothing of Hardhat: it is pointed at the node's URL as at any external
//! node (`chain.rpc_url`). `trip.rs` runs the same on anvil.

#[path = "scenario/trip.rs"]
mod scenario;

use kippu_chain::hardhat::NodeKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trip_on_hardhat_node_at_one_second_blocks_and_gas_price_zero() {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
    scenario::trip_on_consortium_node(NodeKind::Hardhat).await;
}
