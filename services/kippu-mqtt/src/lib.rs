//! Kippu's MQTT side: the wiring between gates and the pure validator of
//! `kippu-domain`.
//!
//! * [`EmbeddedBroker`] runs rumqttd in-process, so a dev setup or a test needs
//!   no system broker.
//! * [`ValidatorService`] subscribes to the gates' `scan` topics, decides each
//!   scan with [`kippu_domain::Validator`] and publishes the verdict.
//! * [`GateClient`] is what a gate (or the gate simulator) speaks: publish a
//!   scan, wait for the matching verdict.
//! * [`ConfigPublisher`] pushes each gate's retained `config` (its signed offline
//!   snapshot) over one persistent connection.
//! * Logins are per gate, with random passwords kept as hashes: a
//!   [`CredentialStore`] for the secured embedded broker, and Mosquitto's password
//!   file and ACL written by [`write_mosquitto_files`] and applied with
//!   [`reload_mosquitto`]. `mqtts://` URLs and [`ServerTls`] put TLS on both hops.
//!
//! Topics follow [`kippu_domain::topics`]:
//! `kippu/v1/gates/{operator}/{station}/{gate}/{scan|verdict|status|config}`.

pub mod acl;
mod broker;
mod config;
mod credentials;
mod error;
mod fleet;
mod gate;
mod mosquitto;
mod mqtt_url;
mod tls;
mod validator;

pub use acl::{Credentials, Identity, VALIDATOR_USERNAME};
pub use broker::{EmbeddedBroker, SecuredOptions, DEFAULT_EMBEDDED_ADDR, DEFAULT_RECHECK};
/// The payload type of [`ConfigPublisher::publish`]: cheap to clone, so one snapshot
/// serves every gate of an operator without copying it.
pub use bytes::Bytes;
pub use config::ConfigPublisher;
pub use credentials::{
    credential_hash, credential_matches, random_password, CredentialStore, MemoryCredentials, StoreUnavailable,
};
pub use error::{MqttError, Result};
pub use fleet::FleetWatcher;
pub use gate::{GateClient, GateOptions, GateStatus};
#[cfg(unix)]
pub use mosquitto::reload_mosquitto;
pub use mosquitto::{mosquitto_password_line, write_mosquitto_files, MosquittoFiles};
pub use mqtt_url::{network_options, MqttUrl, DEFAULT_INFLIGHT, KEEP_ALIVE};
pub use tls::{ClientTls, ServerTls};
pub use validator::{CardRecord, TapRecorder, TicketLookup, ValidatorHandle, ValidatorOptions, ValidatorService};

/// Current unix time in seconds (0 if the clock is before 1970).
pub fn now_unix() -> u64 {
    now_unix_millis() / 1000
}

/// Current unix time in milliseconds, the unit of [`kippu_domain::ScanRequest::ts`].
pub fn now_unix_millis() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A client id for `role` (e.g. `kippu-validator`): the role, a dash and 64 random bits
/// in hex. Random, because a broker keeps one session per id and drops the older
/// connection on a duplicate: two processes (or a restarted one whose old session the
/// broker still holds) must never evict each other, nor can a gate guess an id.
pub fn client_id(role: &str) -> String {
    format!("{role}-{:016x}", rand::random::<u64>())
}

/// Largest MQTT packet (remaining length) a Kippu broker carries: a gate's retained
/// offline snapshot, which lists every valid ticket of its operator, may be up to
/// [`kippu_domain::snapshot::MAX_SNAPSHOT_BYTES`]; the headroom covers topic and headers.
/// The embedded broker enforces it; `deploy/mosquitto` sets the same number as its
/// `message_size_limit` (a payload limit there).
pub const MAX_PACKET_BYTES: usize = kippu_domain::snapshot::MAX_SNAPSHOT_BYTES + 64 * 1024;

/// How long `connect`/`spawn` wait for the broker before giving up.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Pause after an event-loop error before polling again (which reconnects);
/// keeps a dead broker from turning the loop into a busy spin.
pub(crate) const RECONNECT_DELAY: std::time::Duration = std::time::Duration::from_millis(500);
