//! Gates and the MQTT logins of gates and the validator.

/// A registered gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateRow {
    /// `operator/station/gate`.
    pub gate_key: String,
    /// Operator the gate belongs to.
    pub operator_id: u32,
    /// Station name.
    pub station: String,
    /// The GTFS stop a stop gate stands at; `None` for on-board validators and non-GTFS stations.
    pub stop_id: Option<String>,
    /// An on-board validator: it rides a vehicle and names the run with each scan.
    pub on_board: bool,
}

/// An MQTT login as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRow {
    /// MQTT username: a gate key `operator/station/gate`, or `validator`.
    pub username: String,
    /// `gate` or `validator`.
    pub kind: String,
    /// SHA-256 (hex) of the password.
    pub secret_sha256: String,
    /// `username:$7$…` for Mosquitto's password file.
    pub mosquitto_line: String,
    /// When it was issued (Unix seconds).
    pub issued_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
}
