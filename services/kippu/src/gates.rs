//! Gate credentials: `kippu gate add|rotate|revoke OPERATOR/STATION/GATE`.
//!
//! Each gate gets its own random MQTT password, shown once and written as a file for the
//! device; Kippu keeps only its hashes. The brokers learn it at once: the embedded broker reads
//! the credentials from the database on every login ([`DbCredentials`]) and re-checks live
//! connections, and for Mosquitto Kippu rewrites the password file and ACL and sends SIGHUP.

use std::path::{Path, PathBuf};

use anyhow::Context;
use async_trait::async_trait;
use kippu_domain::topics::GatePath;
use kippu_mqtt::{Identity, StoreUnavailable};
use kippu_store::{GateRow, Store};

use crate::config::Config;
use crate::secrets::{SecretName, Secrets};

/// Username of the validators' (and other platform services') MQTT login.
pub const VALIDATOR: &str = kippu_mqtt::VALIDATOR_USERNAME;

/// The embedded broker's credential store: the `mqtt_credentials` table.
pub struct DbCredentials(pub Store);

#[async_trait]
impl kippu_mqtt::CredentialStore for DbCredentials {
    async fn authenticate(&self, username: &str, password: &str) -> Result<Option<Identity>, StoreUnavailable> {
        // The database unreachable: the broker refuses new logins ("server unavailable") and
        // keeps live ones, rather than let anyone in or cut every gate off.
        let Some(row) = self.0.credential(username).await.map_err(|e| StoreUnavailable(e.to_string()))? else {
            return Ok(None);
        };
        if row.revoked_at.is_some() || !kippu_mqtt::credential_matches(&row.secret_sha256, password) {
            return Ok(None);
        }
        // A row's kind must match what its username claims.
        Ok(Identity::from_username(username).filter(|identity| {
            matches!((identity, row.kind.as_str()), (Identity::Validator, "validator") | (Identity::Gate(_), "gate"))
        }))
    }
}

/// Issues `username` a fresh random credential (replacing any it had); returns the password.
pub async fn issue(store: &Store, username: &str, kind: &str) -> anyhow::Result<String> {
    let password = kippu_mqtt::random_password();
    store
        .put_credential(
            username,
            kind,
            &kippu_mqtt::credential_hash(&password),
            &kippu_mqtt::mosquitto_password_line(username, &password),
            crate::clock::now(),
        )
        .await?;
    Ok(password)
}

/// Rewrites Mosquitto's password file and ACL from the database and has it reload them, when
/// Kippu manages a Mosquitto (`mqtt.mosquitto_password_file`). Returns whether it did.
pub async fn sync_mosquitto(cfg: &Config, store: &Store) -> anyhow::Result<bool> {
    let Some(password_file) = &cfg.mqtt.mosquitto_password_file else { return Ok(false) };
    let files = kippu_mqtt::MosquittoFiles {
        password_file: password_file.clone(),
        acl_file: cfg.mqtt.mosquitto_acl_file.clone().unwrap_or_else(|| password_file.with_extension("acl")),
    };
    let lines: Vec<String> = store.active_credentials().await?.into_iter().map(|c| c.mosquitto_line).collect();
    kippu_mqtt::write_mosquitto_files(&files, lines).with_context(|| format!("writing {}", password_file.display()))?;
    if let Some(pid) = &cfg.mqtt.mosquitto_pid_file {
        kippu_mqtt::reload_mosquitto(pid).with_context(|| format!("signalling the Mosquitto of {}", pid.display()))?;
    }
    Ok(true)
}

/// What a gate device needs, written once to a file only its owner can read.
#[derive(Debug, serde::Serialize)]
pub struct GateFile {
    /// `operator/station/gate`.
    pub gate: String,
    /// Broker URL.
    pub mqtt_url: String,
    /// MQTT username.
    pub username: String,
    /// MQTT password (shown once; Kippu keeps only its hash).
    pub password: String,
    /// The validator's verdict key (hex Ed25519): the gate ignores verdicts signed by any other.
    pub verdict_key: Option<String>,
}

/// Where `kippu gate add` writes a gate's file by default.
pub fn default_out(dir: &Path, gate: &GatePath) -> PathBuf {
    dir.join(format!("{}.gate.toml", gate.key().replace('/', "_")))
}

/// Parses `OPERATOR/STATION/GATE`.
pub fn parse_gate(key: &str) -> anyhow::Result<GatePath> {
    GatePath::parse_key(key).with_context(|| {
        format!("{key:?} is not OPERATOR/STATION/GATE (three levels of letters, digits, '-' or '_', up to 64 each)")
    })
}

/// Registers a gate (the operator must exist) and issues its credential.
pub async fn add(
    store: &Store,
    gate: &GatePath,
    station: &str,
    stop_id: Option<String>,
    on_board: bool,
) -> anyhow::Result<String> {
    let operators = store.operators().await?;
    let op = operators
        .iter()
        .find(|o| o.slug == gate.operator)
        .with_context(|| format!("no operator {:?}; add it to the catalogue first", gate.operator))?;
    if store.credential(&gate.key()).await?.is_some_and(|c| c.revoked_at.is_none()) {
        anyhow::bail!("gate {} already has a credential; use `kippu gate rotate` to replace it", gate.key());
    }
    store
        .upsert_gate(&GateRow {
            gate_key: gate.key(),
            operator_id: op.id,
            station: station.to_owned(),
            stop_id,
            on_board,
        })
        .await?;
    issue(store, &gate.key(), "gate").await
}

/// Replaces a registered gate's credential: the old one stops working at once.
pub async fn rotate(store: &Store, gate: &GatePath) -> anyhow::Result<String> {
    if !store.gates().await?.iter().any(|g| g.gate_key == gate.key()) {
        anyhow::bail!("no gate {}; `kippu gate add` it first", gate.key());
    }
    issue(store, &gate.key(), "gate").await
}

/// Revokes a gate's credential: it can no longer log in, and a live connection is cut.
pub async fn revoke(store: &Store, gate: &GatePath) -> anyhow::Result<()> {
    if !store.revoke_credential(&gate.key(), crate::clock::now()).await? {
        anyhow::bail!("gate {} has no active credential", gate.key());
    }
    Ok(())
}

/// Registers the validators' MQTT login (its password is the sealed secret).
pub async fn register_validator_login(store: &Store, secrets: &Secrets) -> anyhow::Result<()> {
    let password = secrets.text(SecretName::MqttValidatorPassword);
    store
        .put_credential(
            crate::gates::VALIDATOR,
            "validator",
            &kippu_mqtt::credential_hash(&password),
            &kippu_mqtt::mosquitto_password_line(crate::gates::VALIDATOR, &password),
            crate::clock::now(),
        )
        .await?;
    Ok(())
}
