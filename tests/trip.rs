//! The whole trip, end to end, on real parts: anvil (child process), a real
//! MQTT broker (embedded rumqttd, or Mosquitto), a real database (SQLite, or
//! PostgreSQL), the loopback Stripe that speaks Stripe's wire format, and the
//! web app over HTTP. The production variant runs when
//! `KIPPU_TEST_POSTGRES` and `KIPPU_TEST_MOSQUITTO` are set (`make test` sets them).
//! The scenario itself is `scenario/trip.rs`, shared with `trip_hardhat.rs`.

#[path = "scenario/trip.rs"]
mod scenario;

use kippu_chain::hardhat::NodeKind;
use kippu_e2e::{config, production_parts};
use scenario::{run_trip, trip_on_consortium_node};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trip_on_embedded_default() {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
    run_trip(config("embedded", None, None)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trip_on_postgres_and_mosquitto() {
    let Some((db, mqtt, guard)) = production_parts().await else { return };
    run_trip(config("prod", Some(db), Some(mqtt))).await;
    guard.drop_now().await;
}

/// anvil as a consortium chain is configured (1 s blocks, not automine; gas price 0), the
/// platform pointed at it as at an external node. `trip_hardhat.rs` does the same on Hardhat's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trip_on_anvil_at_one_second_blocks_and_gas_price_zero() {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
    trip_on_consortium_node(NodeKind::Anvil).await;
}
