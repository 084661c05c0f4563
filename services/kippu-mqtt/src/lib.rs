//! Kippu's MQTT side: the wiring between gates and the pure validator of
//! `kippu-domain`.
//!
//! * [`EmbeddedBroker`] runs rumqttd in-process, so a dev setup or a test needs
//!   no system broker.
//! * [`ValidatorService`] subscribes to the gates' `scan` topics, decides each
//!   scan with [`kippu_domain::Validator`] and publishes the verdict.
//! * [`GateClient`] is what a gate (or the gate simulator) speaks: publish a
//!   scan, wait for the matching verdict.
//!
//! Topics follow [`kippu_domain::topics`]:
//! `kippu/v1/gates/{operator}/{station}/{gate}/{scan|verdict|status|config}`.

pub mod acl;
mod broker;
mod error;
mod fleet;
mod gate;
mod mqtt_url;
mod validator;

pub use acl::{Credentials, Identity};
pub use broker::{EmbeddedBroker, DEFAULT_EMBEDDED_ADDR};
pub use error::{MqttError, Result};
pub use fleet::FleetWatcher;
pub use gate::{GateClient, GateOptions, GateStatus};
pub use mqtt_url::{network_options, MqttUrl, DEFAULT_INFLIGHT, KEEP_ALIVE};
pub use validator::{CardRecord, TapRecorder, TicketLookup, ValidatorHandle, ValidatorOptions, ValidatorService};

/// Current unix time in seconds (0 if the clock is before 1970).
pub fn now_unix() -> u64 {
    now_unix_millis() / 1000
}

/// Current unix time in milliseconds, the unit of [`kippu_domain::ScanRequest::ts`].
pub fn now_unix_millis() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// How long `connect`/`spawn` wait for the broker before giving up.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Pause after an event-loop error before polling again (which reconnects);
/// keeps a dead broker from turning the loop into a busy spin.
pub(crate) const RECONNECT_DELAY: std::time::Duration = std::time::Duration::from_millis(500);
