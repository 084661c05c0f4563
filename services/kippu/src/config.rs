//! One typed configuration: defaults, overridden by an optional TOML file, then by `KIPPU_*`
//! environment variables (highest). Every key is documented in `deploy/kippu.example.toml`
//! (a test keeps the two in step).
//!
//! The defaults are those of production (`kippu serve`): no secret has a default, so a missing
//! one is refused at start rather than silently replaced by a public value. `kippu dev` fills
//! in its own public demo values ([`Config::with_dev_defaults`], `dev` builds only).
//!
//! Why not figment: its environment provider parses values as TOML-like literals, so a numeric
//! password or a hex key made of digits arrives as an integer and fails as a string (checked
//! with figment 0.10). Secrets must arrive byte for byte, so each `KIPPU_*` variable is mapped to
//! its field here, by name, with its type.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Whole configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Working directory: SQLite file, deployment record, sealed secrets, master key file.
    pub data_dir: PathBuf,
    /// The sealed secrets `kippu init` generated (default `data_dir/secrets.json`).
    pub secrets_file: Option<PathBuf>,
    /// The deployment record `kippu init` wrote (default `data_dir/deployment.json`).
    pub deployment_file: Option<PathBuf>,
    /// Web app.
    pub web: WebConfig,
    /// Database.
    pub database: DatabaseConfig,
    /// MQTT.
    pub mqtt: MqttConfig,
    /// Chain.
    pub chain: ChainSection,
    /// Stripe.
    pub stripe: StripeSection,
    /// Identity.
    pub identity: IdentityConfig,
    /// Delay insurance.
    pub insurance: InsuranceConfig,
    /// Settlement: period closes and tap batches.
    pub settlement: SettlementConfig,
    /// Background jobs: each one's section (on/off, back-off).
    pub jobs: crate::jobs::JobsConfig,
    /// `kippu dev` only: seed demo operators, products, travelers and gates.
    pub seed_demo: bool,
}

/// Web app settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Listen address.
    pub bind: String,
    /// URL travelers use (for redirects from Stripe, did:web authority, passkeys).
    pub public_url: Option<String>,
    /// `kippu dev` only: the demo's routes (one-click sign-in, simulated gates, hand-fed delays,
    /// open period close). `kippu serve` refuses to start with it on.
    pub dev_routes: Option<bool>,
    /// Removed: staff sign in with their own accounts (issue 19). Still read so that `kippu
    /// serve` refuses a configuration that sets it, rather than ignore it silently.
    pub portal_password: Option<String>,
    /// Reverse proxies in front of the web app whose `X-Forwarded-For` names the client for
    /// rate limiting. Empty: the socket peer is the client and the header is ignored.
    pub trusted_proxies: Vec<IpAddr>,
    /// A separate listen address for `/metrics` (no login there: bind it where only Prometheus
    /// reaches). Unset: `/metrics` is served on `bind` behind the metrics token or staff login.
    pub metrics_bind: Option<String>,
}

/// Database settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://...` or `postgres://...`; empty = SQLite file in `data_dir`.
    pub url: Option<String>,
}

/// MQTT settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// External broker URL (`mqtts://` for TLS); `None` starts the embedded broker.
    pub url: Option<String>,
    /// Where the embedded broker listens (not 1883, to leave a system broker alone).
    pub embedded_bind: String,
    /// Subscribe through `$share/validators/...`.
    pub shared_subscription: bool,
    /// CA certificate (PEM) clients trust for `mqtts://` (default: the web PKI roots).
    pub ca_file: Option<PathBuf>,
    /// Certificate chain (PEM) the embedded broker serves TLS with.
    pub tls_cert_file: Option<PathBuf>,
    /// Private key (PEM) of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// Seconds between re-checks of live connections' credentials (a revoked gate is cut off).
    pub credential_recheck_secs: u64,
    /// Mosquitto's `password_file`, written by Kippu whenever a gate credential changes.
    pub mosquitto_password_file: Option<PathBuf>,
    /// Mosquitto's `acl_file`, written beside the password file.
    pub mosquitto_acl_file: Option<PathBuf>,
    /// Mosquitto's `pid_file`: Kippu sends SIGHUP so it reloads both files at once.
    pub mosquitto_pid_file: Option<PathBuf>,
}

/// Chain settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChainSection {
    /// JSON-RPC URL of a node of the consortium chain. `kippu dev` starts anvil when unset.
    pub rpc_url: Option<String>,
    /// `kippu dev`: the anvil binary.
    pub anvil_bin: PathBuf,
    /// `kippu dev`: anvil port (0 = any free port).
    pub anvil_port: u16,
    /// `kippu dev`: anvil's chain id.
    pub chain_id: u64,
    /// `kippu dev` only: one key for every role (anvil's first by default). `kippu serve` sends
    /// with the hot keys `kippu init` sealed and refuses this setting.
    pub admin_key: Option<String>,
    /// Blocks to wait before booking an event.
    pub confirmations: u64,
    /// Follower poll interval (milliseconds).
    pub poll_ms: u64,
    /// How often the ledger is reconciled with the contracts (seconds).
    pub reconcile_secs: u64,
    /// A sent chain write the node no longer knows, or has not mined, after this many seconds
    /// is sent again (the outbox).
    pub resend_after_secs: u64,
    /// Business writes go through the chain-write outbox: recorded, sent by whichever process
    /// holds the sender's lease (`[jobs.outbox]`), followed to depth and sent again when lost.
    /// Off sends each write directly and forgets it once mined (tests of the follower alone).
    pub outbox: bool,
}

/// Stripe settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StripeSection {
    /// API base (default Stripe's own); `kippu dev` starts a loopback fake when unset.
    pub api_base: Option<String>,
    /// Secret API key (`sk_live_…`).
    pub secret_key: String,
    /// Webhook signing secret (`whsec_…`).
    pub webhook_secret: String,
    /// `kippu dev`: where the fake listens.
    pub fake_bind: String,
    /// Currency.
    pub currency: String,
}

/// Identity settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// Master key (64 hex digits) that seals the keystore and the generated secrets. Prefer
    /// `master_key_file` or the `KIPPU_MASTER_KEY` variable from a secrets manager.
    pub master_key: Option<String>,
    /// File holding the master key (default `data_dir/master.key`, written by `kippu init`).
    pub master_key_file: Option<PathBuf>,
    /// `kippu dev`: hex key of the concession attestor. Production uses the sealed one.
    pub attestor_key: Option<String>,
    /// Concession discounts in basis points.
    pub student_discount_bps: u16,
    /// Senior discount (bps).
    pub senior_discount_bps: u16,
    /// Disability discount (bps).
    pub disability_discount_bps: u16,
    /// Largest concession discount the contract accepts (bps), set at `kippu init`.
    pub max_concession_bps: u16,
    /// How long a resolved DID document (other than Kippu's own) is cached, in seconds.
    pub did_cache_secs: u64,
    /// Tests only: hosts whose DID documents may be fetched from loopback or private addresses.
    /// `kippu serve` refuses to start when it is not empty.
    pub did_fetch_allow_hosts: Vec<String>,
}

/// Delay insurance settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct InsuranceConfig {
    /// Minutes of delay that trigger a voucher.
    pub threshold_minutes: u32,
    /// Voucher value (minor units).
    pub voucher_value: u64,
    /// Voucher lifetime (seconds).
    pub voucher_lifetime_secs: u64,
    /// A GTFS-Realtime TripUpdates URL to poll (none: no live feed).
    pub feed_url: Option<String>,
    /// Seconds between polls of `feed_url`.
    pub poll_secs: u64,
    /// Feed messages older than this (seconds) are refused as stale.
    pub feed_max_age_secs: u64,
    /// Distinct oracle reports needed before a delay pays (k of k-of-n).
    pub quorum: u8,
    /// Hex keys of the oracle reporters this process runs; empty: the settlement key reports alone.
    pub reporter_keys: Vec<String>,
}

/// Settlement settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SettlementConfig {
    /// Length of a clearing period in seconds: `kippu serve` closes one when this much time has
    /// passed since the last close. 0: periods close only by `kippu close-period`.
    pub period_secs: u64,
    /// Seconds between tap batches (rides recorded on chain, Merkle root anchored).
    pub anchor_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(".kippu"),
            secrets_file: None,
            deployment_file: None,
            web: WebConfig::default(),
            database: DatabaseConfig::default(),
            mqtt: MqttConfig::default(),
            chain: ChainSection::default(),
            stripe: StripeSection::default(),
            identity: IdentityConfig::default(),
            insurance: InsuranceConfig::default(),
            settlement: SettlementConfig::default(),
            jobs: crate::jobs::JobsConfig::default(),
            seed_demo: false,
        }
    }
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            public_url: None,
            dev_routes: None,
            portal_password: None,
            trusted_proxies: Vec::new(),
            metrics_bind: None,
        }
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            url: None,
            embedded_bind: "127.0.0.1:18830".into(),
            shared_subscription: true,
            ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            credential_recheck_secs: 10,
            mosquitto_password_file: None,
            mosquitto_acl_file: None,
            mosquitto_pid_file: None,
        }
    }
}

impl Default for ChainSection {
    fn default() -> Self {
        Self {
            rpc_url: None,
            anvil_bin: PathBuf::from("contracts/node_modules/.bin/anvil"),
            anvil_port: 18545,
            chain_id: 31337,
            admin_key: None,
            confirmations: 0,
            poll_ms: 250,
            reconcile_secs: 30,
            resend_after_secs: 15,
            outbox: true,
        }
    }
}

impl Default for StripeSection {
    fn default() -> Self {
        Self {
            api_base: None,
            secret_key: String::new(),
            webhook_secret: String::new(),
            fake_bind: "127.0.0.1:12111".into(),
            currency: "eur".into(),
        }
    }
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            master_key: None,
            master_key_file: None,
            attestor_key: None,
            student_discount_bps: 3_000,
            senior_discount_bps: 5_000,
            disability_discount_bps: 5_000,
            max_concession_bps: 5_000,
            did_cache_secs: 300,
            did_fetch_allow_hosts: Vec::new(),
        }
    }
}

impl Default for InsuranceConfig {
    fn default() -> Self {
        Self {
            threshold_minutes: 15,
            voucher_value: 1500,
            voucher_lifetime_secs: 7 * 86_400,
            feed_url: None,
            poll_secs: 30,
            feed_max_age_secs: 300,
            quorum: 1,
            reporter_keys: Vec::new(),
        }
    }
}

impl Default for SettlementConfig {
    fn default() -> Self {
        Self { period_secs: 0, anchor_secs: 10 }
    }
}

/// Stripe's API, where production sends Checkout requests.
pub const STRIPE_API: &str = "https://api.stripe.com";

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// The file is not valid TOML for this struct.
    #[error("invalid config {0}: {1}")]
    Parse(PathBuf, toml::de::Error),
    /// An environment variable has a bad value.
    #[error("invalid {0}: {1}")]
    Env(&'static str, String),
}

type Setter = fn(&mut Config, String) -> Result<(), ConfigError>;

/// A [`Setter`] from an assignment (which may use `?` on the value's parse).
macro_rules! set {
    (|$c:ident, $v:ident| $body:expr) => {
        |$c: &mut Config, $v: String| -> Result<(), ConfigError> {
            $body;
            Ok(())
        }
    };
}

fn num<T: std::str::FromStr>(k: &'static str, v: String) -> Result<T, ConfigError> {
    v.parse().map_err(|_| ConfigError::Env(k, v))
}

fn flag(k: &'static str, v: String) -> Result<bool, ConfigError> {
    match v.as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => Err(ConfigError::Env(k, v)),
    }
}

fn list(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|p| !p.is_empty())
}

/// Every `KIPPU_*` variable, the key it sets, and how. Values arrive as written: a secret is
/// never reinterpreted.
pub const ENV: &[(&str, &str, Setter)] = &[
    ("KIPPU_DATA_DIR", "data_dir", set!(|c, v| c.data_dir = v.into())),
    ("KIPPU_SECRETS_FILE", "secrets_file", set!(|c, v| c.secrets_file = Some(v.into()))),
    ("KIPPU_DEPLOYMENT_FILE", "deployment_file", set!(|c, v| c.deployment_file = Some(v.into()))),
    ("KIPPU_SEED_DEMO", "seed_demo", set!(|c, v| c.seed_demo = flag("KIPPU_SEED_DEMO", v)?)),
    ("KIPPU_WEB_BIND", "web.bind", set!(|c, v| c.web.bind = v)),
    ("KIPPU_PUBLIC_URL", "web.public_url", set!(|c, v| c.web.public_url = Some(v))),
    ("KIPPU_DEV_ROUTES", "web.dev_routes", set!(|c, v| c.web.dev_routes = Some(flag("KIPPU_DEV_ROUTES", v)?))),
    ("KIPPU_PORTAL_PASSWORD", "web.portal_password", set!(|c, v| c.web.portal_password = Some(v))),
    ("KIPPU_TRUSTED_PROXIES", "web.trusted_proxies", |c, v| {
        c.web.trusted_proxies = list(&v)
            .map(|p| p.parse().map_err(|e| ConfigError::Env("KIPPU_TRUSTED_PROXIES", format!("{p:?}: {e}"))))
            .collect::<Result<_, _>>()?;
        Ok(())
    }),
    ("KIPPU_METRICS_BIND", "web.metrics_bind", set!(|c, v| c.web.metrics_bind = Some(v))),
    ("KIPPU_DATABASE_URL", "database.url", set!(|c, v| c.database.url = Some(v))),
    ("KIPPU_MQTT_URL", "mqtt.url", set!(|c, v| c.mqtt.url = Some(v))),
    ("KIPPU_MQTT_EMBEDDED_BIND", "mqtt.embedded_bind", set!(|c, v| c.mqtt.embedded_bind = v)),
    ("KIPPU_MQTT_CA_FILE", "mqtt.ca_file", set!(|c, v| c.mqtt.ca_file = Some(v.into()))),
    ("KIPPU_MQTT_TLS_CERT_FILE", "mqtt.tls_cert_file", set!(|c, v| c.mqtt.tls_cert_file = Some(v.into()))),
    ("KIPPU_MQTT_TLS_KEY_FILE", "mqtt.tls_key_file", set!(|c, v| c.mqtt.tls_key_file = Some(v.into()))),
    (
        "KIPPU_MQTT_CREDENTIAL_RECHECK_SECS",
        "mqtt.credential_recheck_secs",
        set!(|c, v| c.mqtt.credential_recheck_secs = num("KIPPU_MQTT_CREDENTIAL_RECHECK_SECS", v)?),
    ),
    (
        "KIPPU_MOSQUITTO_PASSWORD_FILE",
        "mqtt.mosquitto_password_file",
        set!(|c, v| c.mqtt.mosquitto_password_file = Some(v.into())),
    ),
    ("KIPPU_MOSQUITTO_ACL_FILE", "mqtt.mosquitto_acl_file", set!(|c, v| c.mqtt.mosquitto_acl_file = Some(v.into()))),
    ("KIPPU_MOSQUITTO_PID_FILE", "mqtt.mosquitto_pid_file", set!(|c, v| c.mqtt.mosquitto_pid_file = Some(v.into()))),
    ("KIPPU_RPC_URL", "chain.rpc_url", set!(|c, v| c.chain.rpc_url = Some(v))),
    ("KIPPU_ANVIL_BIN", "chain.anvil_bin", set!(|c, v| c.chain.anvil_bin = v.into())),
    ("KIPPU_ANVIL_PORT", "chain.anvil_port", set!(|c, v| c.chain.anvil_port = num("KIPPU_ANVIL_PORT", v)?)),
    ("KIPPU_CHAIN_ID", "chain.chain_id", set!(|c, v| c.chain.chain_id = num("KIPPU_CHAIN_ID", v)?)),
    ("KIPPU_ADMIN_KEY", "chain.admin_key", set!(|c, v| c.chain.admin_key = Some(v))),
    ("KIPPU_CONFIRMATIONS", "chain.confirmations", set!(|c, v| c.chain.confirmations = num("KIPPU_CONFIRMATIONS", v)?)),
    ("KIPPU_POLL_MS", "chain.poll_ms", set!(|c, v| c.chain.poll_ms = num("KIPPU_POLL_MS", v)?)),
    (
        "KIPPU_RECONCILE_SECS",
        "chain.reconcile_secs",
        set!(|c, v| c.chain.reconcile_secs = num("KIPPU_RECONCILE_SECS", v)?),
    ),
    ("KIPPU_OUTBOX", "chain.outbox", set!(|c, v| c.chain.outbox = v == "true" || v == "1")),
    (
        "KIPPU_RESEND_AFTER_SECS",
        "chain.resend_after_secs",
        set!(|c, v| c.chain.resend_after_secs = num("KIPPU_RESEND_AFTER_SECS", v)?),
    ),
    ("KIPPU_STRIPE_API_BASE", "stripe.api_base", set!(|c, v| c.stripe.api_base = Some(v))),
    ("KIPPU_STRIPE_SECRET_KEY", "stripe.secret_key", set!(|c, v| c.stripe.secret_key = v)),
    ("KIPPU_STRIPE_WEBHOOK_SECRET", "stripe.webhook_secret", set!(|c, v| c.stripe.webhook_secret = v)),
    ("KIPPU_STRIPE_FAKE_BIND", "stripe.fake_bind", set!(|c, v| c.stripe.fake_bind = v)),
    ("KIPPU_STRIPE_CURRENCY", "stripe.currency", set!(|c, v| c.stripe.currency = v)),
    ("KIPPU_MASTER_KEY", "identity.master_key", set!(|c, v| c.identity.master_key = Some(v))),
    ("KIPPU_MASTER_KEY_FILE", "identity.master_key_file", set!(|c, v| c.identity.master_key_file = Some(v.into()))),
    ("KIPPU_ATTESTOR_KEY", "identity.attestor_key", set!(|c, v| c.identity.attestor_key = Some(v))),
    (
        "KIPPU_MAX_CONCESSION_BPS",
        "identity.max_concession_bps",
        set!(|c, v| c.identity.max_concession_bps = num("KIPPU_MAX_CONCESSION_BPS", v)?),
    ),
    (
        "KIPPU_DID_FETCH_ALLOW_HOSTS",
        "identity.did_fetch_allow_hosts",
        set!(|c, v| c.identity.did_fetch_allow_hosts = list(&v).map(str::to_owned).collect()),
    ),
    ("KIPPU_GTFS_RT_URL", "insurance.feed_url", set!(|c, v| c.insurance.feed_url = Some(v))),
    (
        "KIPPU_INSURANCE_POLL_SECS",
        "insurance.poll_secs",
        set!(|c, v| c.insurance.poll_secs = num("KIPPU_INSURANCE_POLL_SECS", v)?),
    ),
    ("KIPPU_INSURANCE_QUORUM", "insurance.quorum", set!(|c, v| c.insurance.quorum = num("KIPPU_INSURANCE_QUORUM", v)?)),
    (
        "KIPPU_REPORTER_KEYS",
        "insurance.reporter_keys",
        set!(|c, v| c.insurance.reporter_keys = list(&v).map(str::to_owned).collect()),
    ),
    (
        "KIPPU_PERIOD_SECS",
        "settlement.period_secs",
        set!(|c, v| c.settlement.period_secs = num("KIPPU_PERIOD_SECS", v)?),
    ),
    (
        "KIPPU_ANCHOR_SECS",
        "settlement.anchor_secs",
        set!(|c, v| c.settlement.anchor_secs = num("KIPPU_ANCHOR_SECS", v)?),
    ),
];

impl Config {
    /// Defaults, then `file` (if any), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut cfg = match file {
            Some(p) => Self::from_file(p)?,
            None => Self::default(),
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        Ok(cfg)
    }

    /// Defaults, then `path`.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.into(), e))?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse(path.into(), e))
    }

    /// Applies `KIPPU_*` overrides from `get` (the environment, or a map in tests). An empty
    /// variable counts as unset.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        for (name, _, set) in ENV {
            if let Some(v) = get(name).filter(|v| !v.is_empty()) {
                set(self, v)?;
            }
        }
        Ok(())
    }

    /// The sealed secrets' file.
    pub fn secrets_path(&self) -> PathBuf {
        self.secrets_file.clone().unwrap_or_else(|| self.data_dir.join("secrets.json"))
    }

    /// The deployment record's file.
    pub fn deployment_path(&self) -> PathBuf {
        self.deployment_file.clone().unwrap_or_else(|| self.data_dir.join("deployment.json"))
    }

    /// The master key's file.
    pub fn master_key_path(&self) -> PathBuf {
        self.identity.master_key_file.clone().unwrap_or_else(|| self.data_dir.join("master.key"))
    }

    /// The database URL: configured, or the SQLite file in `data_dir`.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", self.data_dir.join("kippu.db").display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file_and_defaults() {
        let mut c: Config = toml::from_str("[database]\nurl = \"sqlite://x.db\"\n[web]\nbind = \"0.0.0.0:1\"").unwrap();
        assert_eq!(c.mqtt.embedded_bind, "127.0.0.1:18830");
        let env = |k: &str| match k {
            "KIPPU_DATABASE_URL" => Some("postgres://127.0.0.1/test".to_string()),
            "KIPPU_ANVIL_PORT" => Some("9999".to_string()),
            _ => None,
        };
        c.apply_env(env).unwrap();
        assert_eq!(c.database.url.as_deref(), Some("postgres://127.0.0.1/test"));
        assert_eq!(c.web.bind, "0.0.0.0:1");
        assert_eq!(c.chain.anvil_port, 9999);
        let bad = |k: &str| (k == "KIPPU_ANVIL_PORT").then(|| "nope".to_string());
        assert!(matches!(c.apply_env(bad), Err(ConfigError::Env("KIPPU_ANVIL_PORT", _))));
        assert!(toml::from_str::<Config>("[web]\nbindd = 1").is_err());
    }

    #[test]
    fn secrets_arrive_byte_for_byte() {
        let mut c = Config::default();
        let digits = "0".repeat(63) + "7";
        c.apply_env(|k| match k {
            "KIPPU_MASTER_KEY" => Some(digits.clone()),
            "KIPPU_PORTAL_PASSWORD" => Some("007".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.identity.master_key.as_deref(), Some(digits.as_str()));
        assert_eq!(c.web.portal_password.as_deref(), Some("007"));
    }

    #[test]
    fn production_defaults_hold_no_secret() {
        let c = Config::default();
        assert!(c.identity.master_key.is_none() && c.identity.attestor_key.is_none());
        assert!(c.stripe.secret_key.is_empty() && c.stripe.webhook_secret.is_empty());
        assert!(c.web.portal_password.is_none() && c.chain.admin_key.is_none());
        assert!(!c.seed_demo && c.web.dev_routes.is_none());
    }

    #[test]
    fn trusted_proxies_from_file_and_environment() {
        let mut c: Config = toml::from_str("[web]\ntrusted_proxies = [\"10.0.0.1\"]").unwrap();
        assert_eq!(c.web.trusted_proxies, vec!["10.0.0.1".parse::<std::net::IpAddr>().unwrap()]);
        c.apply_env(|k| (k == "KIPPU_TRUSTED_PROXIES").then(|| " 10.0.0.2, ::1 ,".to_string())).unwrap();
        assert_eq!(c.web.trusted_proxies.len(), 2);
        assert_eq!(c.web.trusted_proxies[1], "::1".parse::<std::net::IpAddr>().unwrap());
        let bad = |k: &str| (k == "KIPPU_TRUSTED_PROXIES").then(|| "10.0.0.2,proxy.local".to_string());
        assert!(matches!(c.apply_env(bad), Err(ConfigError::Env("KIPPU_TRUSTED_PROXIES", _))));
        assert!(Config::default().web.trusted_proxies.is_empty(), "no proxy is believed unless configured");
    }

    /// Every key of the configuration, as dotted paths, from a TOML document.
    fn keys(v: &toml::Value, prefix: &str, out: &mut Vec<String>) {
        if let toml::Value::Table(t) = v {
            for (k, v) in t {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                if v.is_table() {
                    keys(v, &path, out);
                } else {
                    out.push(path);
                }
            }
        }
    }

    /// `deploy/kippu.example.toml` documents every key and every variable, and parses.
    #[test]
    fn every_key_and_variable_is_documented() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kippu.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        // Commented-out keys count as documented: uncomment them to parse the full set.
        let uncommented: String = text
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|r| {
                        r.split_once(" = ").is_some_and(|(k, _)| {
                            !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                        })
                    })
                    .unwrap_or(l)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let example: Config = toml::from_str(&uncommented).expect("the example parses as a Config");
        let mut documented = Vec::new();
        keys(&toml::Value::try_from(&example).unwrap(), "", &mut documented);
        // Every key with a variable, and every key the defaults have (those without one too).
        let mut wanted: Vec<String> = ENV.iter().map(|(_, key, _)| (*key).to_owned()).collect();
        keys(&toml::Value::try_from(Config::default()).unwrap(), "", &mut wanted);
        for key in wanted {
            assert!(documented.contains(&key), "{key} is not documented in deploy/kippu.example.toml");
        }
        for (name, key, _) in ENV {
            assert!(text.contains(name), "{name} ({key}) is not named in deploy/kippu.example.toml");
        }
    }
}
