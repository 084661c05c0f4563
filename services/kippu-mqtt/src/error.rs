//! The crate's error type.

/// Everything that can go wrong talking MQTT.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// The broker URL could not be used.
    #[error("invalid MQTT URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Service options that cannot work (e.g. a wildcard in an operator slug).
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// The embedded broker did not come up.
    #[error("embedded broker: {0}")]
    Broker(String),
    /// Local IO, e.g. probing a listen address.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A file could not be read or written (a CA certificate, Mosquitto's password file).
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// TLS certificates, keys or settings that cannot be used.
    #[error("TLS: {0}")]
    Tls(String),
    /// Mosquitto could not be told to reload (unreadable pid file, no such process).
    #[error("mosquitto reload: {0}")]
    Reload(String),
    /// The broker did not acknowledge a publish in time.
    #[error("{0} not acknowledged by the broker in time")]
    Unacknowledged(String),
    /// The rumqttc client refused a request (its event loop is gone).
    #[error("MQTT client: {0}")]
    Client(#[from] rumqttc::ClientError),
    /// The broker could not be reached or did not answer in time.
    #[error("could not connect to {url}: {reason}")]
    Connect {
        /// Broker URL (without credentials).
        url: String,
        /// Last connection error seen, or "timed out".
        reason: String,
    },
    /// A payload could not be encoded.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// The client's background task has stopped.
    #[error("MQTT client is closed")]
    Closed,
}

/// `Result` with [`MqttError`].
pub type Result<T, E = MqttError> = std::result::Result<T, E>;
