//! One typed configuration: defaults for the embedded stack, overridden by an
//! optional TOML file, then by `KIPPU_*` environment variables (highest).

use std::path::PathBuf;

use serde::Deserialize;

/// Whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Working directory for the embedded default (SQLite file, deployment record).
    pub data_dir: PathBuf,
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
    /// Seed demo operators, products, travelers and gates.
    pub seed_demo: bool,
}

/// Web app settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Listen address.
    pub bind: String,
    /// URL travelers use (for redirects from Stripe).
    pub public_url: Option<String>,
    /// Dev-only, unauthenticated routes (feed a GTFS-RT message, close the
    /// clearing period). Off unless configured; `kippu dev` turns them on.
    pub dev_routes: Option<bool>,
    /// Password of the issuer portal (staff of the hosted concession issuers). The dev default is public.
    pub portal_password: String,
    /// Reverse proxies in front of the web app whose `X-Forwarded-For` names the client for
    /// rate limiting. Empty: the socket peer is the client and the header is ignored.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

/// Database settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://...` or `postgres://...`; empty = SQLite file in `data_dir`.
    pub url: Option<String>,
}

/// MQTT settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// External broker URL; `None` starts the embedded broker.
    pub url: Option<String>,
    /// Where the embedded broker listens (not 1883, to leave a system broker alone).
    pub embedded_bind: String,
    /// Subscribe through `$share/validators/...`.
    pub shared_subscription: bool,
}

/// Chain settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChainSection {
    /// External JSON-RPC URL; `None` starts anvil as a child process.
    pub rpc_url: Option<String>,
    /// anvil binary for the embedded default.
    pub anvil_bin: PathBuf,
    /// anvil port (0 = any free port).
    pub anvil_port: u16,
    /// Chain id for anvil.
    pub chain_id: u64,
    /// Operating account key (hex); defaults to anvil's first dev key.
    pub admin_key: Option<String>,
    /// Blocks to wait before booking an event.
    pub confirmations: u64,
    /// Follower poll interval.
    pub poll_ms: u64,
    /// How often the ledger is reconciled with the contracts (seconds).
    pub reconcile_secs: u64,
}

/// Stripe settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StripeSection {
    /// API base; `None` starts the loopback fake.
    pub api_base: Option<String>,
    /// Secret key.
    pub secret_key: String,
    /// Webhook signing secret.
    pub webhook_secret: String,
    /// Where the fake listens.
    pub fake_bind: String,
    /// Currency.
    pub currency: String,
}

/// Identity settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// Keystore master key (64 hex chars). The dev default is public: never use it in production.
    pub master_key: String,
    /// Hex private key of the concession attestor (PlanMarket's CONCESSION_ISSUER_ROLE). Dev default is public.
    pub attestor_key: Option<String>,
    /// Concession discounts in basis points.
    pub student_discount_bps: u16,
    /// Senior discount (bps).
    pub senior_discount_bps: u16,
    /// Disability discount (bps).
    pub disability_discount_bps: u16,
    /// How long a resolved DID document (other than Kippu's own) is cached, in seconds.
    pub did_cache_secs: u64,
}

/// Delay insurance settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InsuranceConfig {
    /// Minutes of delay that trigger a voucher.
    pub threshold_minutes: u32,
    /// Voucher value (minor units).
    pub voucher_value: u128,
    /// Voucher lifetime (seconds).
    pub voucher_lifetime_secs: u64,
    /// A GTFS-Realtime TripUpdates URL to poll (none: feeds arrive only through the dev route or CLI).
    pub feed_url: Option<String>,
    /// Seconds between polls of `feed_url`.
    pub poll_secs: u64,
    /// Feed messages older than this (seconds) are refused as stale.
    pub feed_max_age_secs: u64,
    /// Distinct oracle reports needed before a delay pays (k of k-of-n).
    pub quorum: u8,
    /// Hex keys of the oracle reporters this process runs; empty: the operating account reports alone.
    pub reporter_keys: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(".kippu"),
            web: WebConfig::default(),
            database: DatabaseConfig::default(),
            mqtt: MqttConfig::default(),
            chain: ChainSection::default(),
            stripe: StripeSection::default(),
            identity: IdentityConfig::default(),
            insurance: InsuranceConfig::default(),
            seed_demo: true,
        }
    }
}

/// The issuer portal's password in development (public, like the other dev secrets).
pub const DEV_PORTAL_PASSWORD: &str = "kippu-dev-portal";

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            public_url: None,
            dev_routes: None,
            portal_password: DEV_PORTAL_PASSWORD.into(),
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self { url: None, embedded_bind: "127.0.0.1:18830".into(), shared_subscription: true }
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
        }
    }
}

impl Default for StripeSection {
    fn default() -> Self {
        Self {
            api_base: None,
            secret_key: "sk_test_kippu_dev".into(),
            webhook_secret: "whsec_kippu_dev".into(),
            fake_bind: "127.0.0.1:12111".into(),
            currency: "eur".into(),
        }
    }
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            master_key: "6b697070752d6465762d6d61737465722d6b65792d6e6f742d7365637265742e".into(),
            attestor_key: None,
            student_discount_bps: 3_000,
            senior_discount_bps: 5_000,
            disability_discount_bps: 5_000,
            did_cache_secs: 300,
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

impl Config {
    /// Defaults, then `file` (if any), then the environment.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let mut cfg = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Read(p.into(), e))?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse(p.into(), e))?
            }
            None => Self::default(),
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        Ok(cfg)
    }

    /// Applies `KIPPU_*` overrides from `get` (the environment, or a map in tests).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
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
        let nonempty = |k: &str| get(k).filter(|v| !v.is_empty());
        if let Some(v) = nonempty("KIPPU_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = nonempty("KIPPU_DATABASE_URL") {
            self.database.url = Some(v);
        }
        if let Some(v) = nonempty("KIPPU_MQTT_URL") {
            self.mqtt.url = Some(v);
        }
        if let Some(v) = nonempty("KIPPU_MQTT_EMBEDDED_BIND") {
            self.mqtt.embedded_bind = v;
        }
        if let Some(v) = nonempty("KIPPU_RPC_URL") {
            self.chain.rpc_url = Some(v);
        }
        if let Some(v) = nonempty("KIPPU_ANVIL_BIN") {
            self.chain.anvil_bin = v.into();
        }
        if let Some(v) = nonempty("KIPPU_ANVIL_PORT") {
            self.chain.anvil_port = num("KIPPU_ANVIL_PORT", v)?;
        }
        if let Some(v) = nonempty("KIPPU_ADMIN_KEY") {
            self.chain.admin_key = Some(v);
        }
        if let Some(v) = nonempty("KIPPU_CHAIN_ID") {
            self.chain.chain_id = num("KIPPU_CHAIN_ID", v)?;
        }
        if let Some(v) = nonempty("KIPPU_CONFIRMATIONS") {
            self.chain.confirmations = num("KIPPU_CONFIRMATIONS", v)?;
        }
        if let Some(v) = nonempty("KIPPU_RECONCILE_SECS") {
            self.chain.reconcile_secs = num("KIPPU_RECONCILE_SECS", v)?;
        }
        if let Some(v) = nonempty("KIPPU_WEB_BIND") {
            self.web.bind = v;
        }
        if let Some(v) = nonempty("KIPPU_PUBLIC_URL") {
            self.web.public_url = Some(v);
        }
        if let Some(v) = nonempty("KIPPU_GTFS_RT_URL") {
            self.insurance.feed_url = Some(v);
        }
        if let Some(v) = nonempty("KIPPU_PORTAL_PASSWORD") {
            self.web.portal_password = v;
        }
        if let Some(v) = nonempty("KIPPU_TRUSTED_PROXIES") {
            self.web.trusted_proxies = v
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| p.parse().map_err(|e| ConfigError::Env("KIPPU_TRUSTED_PROXIES", format!("{p:?}: {e}"))))
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = nonempty("KIPPU_DEV_ROUTES") {
            self.web.dev_routes = Some(flag("KIPPU_DEV_ROUTES", v)?);
        }
        if let Some(v) = nonempty("KIPPU_STRIPE_API_BASE") {
            self.stripe.api_base = Some(v);
        }
        if let Some(v) = nonempty("KIPPU_STRIPE_SECRET_KEY") {
            self.stripe.secret_key = v;
        }
        if let Some(v) = nonempty("KIPPU_STRIPE_WEBHOOK_SECRET") {
            self.stripe.webhook_secret = v;
        }
        if let Some(v) = nonempty("KIPPU_STRIPE_FAKE_BIND") {
            self.stripe.fake_bind = v;
        }
        if let Some(v) = nonempty("KIPPU_ATTESTOR_KEY") {
            self.identity.attestor_key = Some(v);
        }
        if let Some(v) = nonempty("KIPPU_MASTER_KEY") {
            self.identity.master_key = v;
        }
        if let Some(v) = nonempty("KIPPU_SEED_DEMO") {
            self.seed_demo = flag("KIPPU_SEED_DEMO", v)?;
        }
        Ok(())
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
}
