//! Kippu's security promises, one test each. `cargo test -p kippu-e2e --test security -- --list`
//! reads as the list of them; `make test` runs them all.
//!
//! They run the production runtime (`kippu serve` after `kippu init`) against real parts: anvil,
//! the embedded broker and Mosquitto over TLS, SQLite, the `kippu` binary itself where its exit
//! code or its ports matter. The demo's routes are checked from the demo where that is where
//! they live.

mod audit;
mod backup;
mod chain;
mod gates;
#[path = "../../services/kippu-mqtt/tests/support/mod.rs"]
#[allow(dead_code, unreachable_pub)]
mod mqtt_support;
mod organisations;
mod runtime;
mod support;
mod web;
