//! Test doubles for Kippu's ports, so tests of the application and its routes run in
//! milliseconds with no external process: no anvil, no MQTT broker, no PostgreSQL.
//!
//! - [`FakeChain`] implements [`kippu_app::ports::Chain`] in memory, refusing with the
//!   contracts' own typed errors and booking every event into a real [`Store`] the way the
//!   ledger follower does.
//! - [`FakePayments`] implements [`kippu_app::ports::Payments`], recording each checkout.
//! - [`FakePlatform`] implements [`kippu_web::Platform`], recording what the web layer tells
//!   the running platform (a key revoked, a card bound, …).
//! - [`memory_store`] opens a migrated SQLite database in memory; [`Catalogue`] seeds it with
//!   a consortium (the demo's by default).
//! - [`TestApp`] puts them together behind kippu-web's router, with a [`Client`] per browser
//!   and the scenario steps tests share (sign up, top up, buy, staff sign-in, …).
//! - [`passkey::SoftAuthenticator`] answers WebAuthn options as a browser's passkey would.

pub mod app;
pub mod catalogue;
pub mod chain;
pub mod passkey;
pub mod payments;
pub mod platform;

pub use app::{Answer, Client, Stream, TestApp, TestAppBuilder};
pub use catalogue::Catalogue;
pub use chain::{ChainTerms, FakeChain, FakeTicket, FakeVoucher, Mined, Tx};
pub use kippu_store::Store;
pub use payments::FakePayments;
pub use platform::{FakePlatform, PlatformCall};

/// Result of test setup steps (any error, reported by the failing test).
pub type SetupResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A fresh, migrated SQLite database that lives in memory for as long as a connection of the
/// handle's pool is open. Each call opens a database of its own, under a `file:` URI name of
/// its own that every pooled connection opens in shared-cache mode (`sqlite::memory:` would
/// give each connection an empty database of its own: the `Any` driver parses the URL again
/// for every connection, and sqlx names each parse's database anew).
pub async fn memory_store() -> SetupResult<Store> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let url = format!("sqlite:file:kippu-testkit-{}-{n}?mode=memory&cache=shared", std::process::id());
    Ok(Store::connect(&url).await?)
}
