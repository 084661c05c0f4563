//! `kippu serve`: production. Before it listens on any port it checks everything it can, and
//! refuses to start — naming the setting and how to fix it — on a missing, short or public
//! secret, a missing or foreign deployment, an unconfigured Stripe, or a demo setting. It never
//! deploys contracts or seeds data by itself (`kippu init` deploys, once).

use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use kippu_chain::{Chain, Deployment, HotKeys};
use kippu_identity::Keystore;
use kippu_payments::{Checkout, StripeConfig};
use kippu_store::Store;

use crate::config::{Config, STRIPE_API};
use crate::secrets::{denylist, parse_master_key, SecretName, Secrets, SecretsError};
use crate::stack::{Stack, Wiring};

/// Shortest staff password, token or Stripe secret accepted.
pub const MIN_SECRET_CHARS: usize = 20;

/// One reason `kippu serve` will not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The setting, as in the file (`identity.master_key`), with its variable when it has one.
    pub setting: String,
    /// What is wrong with it.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}\n    fix: {}", self.setting, self.problem, self.fix)
    }
}

fn refusal(setting: &str, problem: impl Into<String>, fix: impl Into<String>) -> Refusal {
    Refusal { setting: setting.into(), problem: problem.into(), fix: fix.into() }
}

/// Why `kippu serve` stopped before serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Settings that must be fixed first (all of them, not only the first).
    #[error("kippu serve refuses to start:\n{}", .0.iter().map(|r| format!("  - {r}")).collect::<Vec<_>>().join("\n"))]
    Refused(Vec<Refusal>),
    /// Something failed while starting.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// A secret's common checks: present, long enough, not a public value.
pub fn check_secret(setting: &str, value: &str, min_chars: usize, fix: &str) -> Option<Refusal> {
    if value.trim().is_empty() {
        return Some(refusal(setting, "missing or empty", fix));
    }
    if value.chars().count() < min_chars {
        return Some(refusal(
            setting,
            format!("too short ({} characters; at least {min_chars})", value.chars().count()),
            fix,
        ));
    }
    if denylist::is_denied(value) {
        return Some(refusal(
            setting,
            "is a public value (a kippu dev default, an anvil/Hardhat well-known key, or a string committed to the Kippu repository)",
            fix,
        ));
    }
    None
}

/// The master key's text and the setting it came from: `identity.master_key` /
/// `KIPPU_MASTER_KEY`, else its file (which must be private to its owner).
fn read_master_key(cfg: &Config) -> Result<(String, String), Refusal> {
    match &cfg.identity.master_key {
        Some(k) => Ok(("identity.master_key (KIPPU_MASTER_KEY)".to_owned(), k.clone())),
        None => {
            let path = cfg.master_key_path();
            let setting = format!("identity.master_key_file (KIPPU_MASTER_KEY_FILE) = {}", path.display());
            match std::fs::read_to_string(&path) {
                Ok(t) => {
                    use std::os::unix::fs::PermissionsExt as _;
                    let mode = std::fs::metadata(&path).map(|m| m.permissions().mode()).unwrap_or(0);
                    if mode & 0o077 != 0 {
                        return Err(refusal(
                            &setting,
                            format!("the file is readable by others (mode {:o})", mode & 0o777),
                            format!("chmod 600 {}", path.display()),
                        ));
                    }
                    Ok((setting, t))
                }
                Err(e) => Err(refusal(
                    &setting,
                    format!("no master key ({e})"),
                    "run `kippu init`, or set KIPPU_MASTER_KEY from your secrets manager",
                )),
            }
        }
    }
}

const MASTER_KEY_FIX: &str = "use the master key `kippu init` generated (64 hex digits), or `kippu rotate-master-key`";

/// The master key, as `kippu serve` accepts it: given, random-looking, not a public value.
pub fn master_key(cfg: &Config) -> Result<Keystore, Refusal> {
    let (setting, text) = read_master_key(cfg)?;
    if let Some(r) = check_secret(&setting, text.trim(), 64, MASTER_KEY_FIX) {
        return Err(r);
    }
    let Some(bytes) = parse_master_key(&text) else {
        return Err(refusal(&setting, "is not 64 hex digits", MASTER_KEY_FIX));
    };
    // A key made of few distinct bytes (all zeros, a repeated pattern) was typed, not generated.
    let mut distinct = bytes.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 12 {
        return Err(refusal(&setting, "has too little variety to be a random key", MASTER_KEY_FIX));
    }
    Ok(Keystore::new(*bytes))
}

/// The master key without the strength checks, for processes that only open secrets sealed
/// under it (`kippu validator` beside the demo, whose master key is public): a production
/// deployment's secrets are never sealed under a key `kippu serve` and `kippu init` refuse.
pub fn master_key_unchecked(cfg: &Config) -> Result<Keystore, Refusal> {
    let (setting, text) = read_master_key(cfg)?;
    let bytes = parse_master_key(&text).ok_or_else(|| refusal(&setting, "is not 64 hex digits", MASTER_KEY_FIX))?;
    Ok(Keystore::new(*bytes))
}

fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost" || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Everything `kippu serve` checks without the network. Returns all refusals at once.
pub fn check_settings(cfg: &Config) -> Vec<Refusal> {
    let mut out = Vec::new();
    let mut push = |r: Option<Refusal>| out.extend(r);
    if cfg.web.dev_routes == Some(true) {
        push(Some(refusal(
            "web.dev_routes (KIPPU_DEV_ROUTES)",
            "the demo's routes are not served in production",
            "remove it; `kippu dev` is the demo",
        )));
    }
    if cfg.seed_demo {
        push(Some(refusal("seed_demo (KIPPU_SEED_DEMO)", "production never seeds demo data", "remove it")));
    }
    if cfg.chain.admin_key.is_some() {
        push(Some(refusal(
            "chain.admin_key (KIPPU_ADMIN_KEY)",
            "one key for every role is the demo's; production sends with the separate hot keys `kippu init` sealed",
            "remove it",
        )));
    }
    if cfg.identity.attestor_key.is_some() {
        push(Some(refusal(
            "identity.attestor_key (KIPPU_ATTESTOR_KEY)",
            "production signs concession attestations with the key `kippu init` sealed",
            "remove it",
        )));
    }
    if !cfg.identity.did_fetch_allow_hosts.is_empty() {
        push(Some(refusal(
            "identity.did_fetch_allow_hosts (KIPPU_DID_FETCH_ALLOW_HOSTS)",
            "lets DID resolution reach loopback and private addresses; it exists for tests only",
            "remove it",
        )));
    }
    match &cfg.chain.rpc_url {
        None => push(Some(refusal(
            "chain.rpc_url (KIPPU_RPC_URL)",
            "missing: kippu serve does not start a chain",
            "set it to a JSON-RPC node of your consortium network",
        ))),
        Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => push(Some(refusal(
            "chain.rpc_url (KIPPU_RPC_URL)",
            format!("{u:?} is not an http(s) URL"),
            "set it to a JSON-RPC node of your consortium network",
        ))),
        Some(_) => {}
    }
    let stripe_fix = "set it from your Stripe dashboard (Developers → API keys / Webhooks)";
    push(check_secret(
        "stripe.secret_key (KIPPU_STRIPE_SECRET_KEY)",
        &cfg.stripe.secret_key,
        MIN_SECRET_CHARS,
        stripe_fix,
    ));
    if !cfg.stripe.secret_key.is_empty() && !["sk_", "rk_"].iter().any(|p| cfg.stripe.secret_key.starts_with(p)) {
        push(Some(refusal(
            "stripe.secret_key (KIPPU_STRIPE_SECRET_KEY)",
            "is not a Stripe secret or restricted key (sk_… or rk_…)",
            stripe_fix,
        )));
    }
    push(check_secret(
        "stripe.webhook_secret (KIPPU_STRIPE_WEBHOOK_SECRET)",
        &cfg.stripe.webhook_secret,
        MIN_SECRET_CHARS,
        stripe_fix,
    ));
    if !cfg.stripe.webhook_secret.is_empty() && !cfg.stripe.webhook_secret.starts_with("whsec_") {
        push(Some(refusal(
            "stripe.webhook_secret (KIPPU_STRIPE_WEBHOOK_SECRET)",
            "is not a Stripe webhook signing secret (whsec_…)",
            stripe_fix,
        )));
    }
    if let Some(base) = &cfg.stripe.api_base {
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            push(Some(refusal(
                "stripe.api_base (KIPPU_STRIPE_API_BASE)",
                format!("{base:?} is not a URL"),
                "remove it",
            )));
        }
    }
    if cfg.web.portal_password.is_some() {
        // Staff no longer share a password: a setting left from an older version would
        // otherwise look like it still opens the portal.
        push(Some(refusal(
            "web.portal_password (KIPPU_PORTAL_PASSWORD)",
            "staff sign in with their own accounts; there is no shared staff password any more",
            "remove it; invite staff with `kippu staff invite` or from the portal",
        )));
    }
    for (i, k) in cfg.insurance.reporter_keys.iter().enumerate() {
        push(check_secret(
            &format!("insurance.reporter_keys[{i}] (KIPPU_REPORTER_KEYS)"),
            k,
            64,
            "give each oracle reporter its own freshly generated key",
        ));
    }
    // Gates and validators reach the broker over TLS; plain MQTT only to a broker on this host.
    match &cfg.mqtt.url {
        Some(u) => match kippu_mqtt::MqttUrl::parse(u) {
            Ok(url) if !url.is_tls() && !is_loopback_host(&url.host) => push(Some(refusal(
                "mqtt.url (KIPPU_MQTT_URL)",
                format!("plain MQTT to {} would carry gate passwords and passes in the clear", url.host),
                "use mqtts:// (and mqtt.ca_file for a private CA)",
            ))),
            Ok(_) => {}
            Err(e) => push(Some(refusal("mqtt.url (KIPPU_MQTT_URL)", e.to_string(), "use mqtts://host:port"))),
        },
        None => {
            let bind_loopback = cfg.mqtt.embedded_bind.parse::<std::net::SocketAddr>().map(|a| a.ip().is_loopback());
            match bind_loopback {
                Err(_) => push(Some(refusal(
                    "mqtt.embedded_bind (KIPPU_MQTT_EMBEDDED_BIND)",
                    "is not an address:port",
                    "e.g. 0.0.0.0:8883",
                ))),
                Ok(false) if cfg.mqtt.tls_cert_file.is_none() || cfg.mqtt.tls_key_file.is_none() => {
                    push(Some(refusal(
                        "mqtt.tls_cert_file / mqtt.tls_key_file",
                        "the embedded broker listens beyond this host without TLS",
                        "set both (kippu init wrote mqtt-server.pem and mqtt-server.key in the data directory; gates trust mqtt-ca.pem)",
                    )))
                }
                Ok(_) => {}
            }
        }
    }
    out
}

/// Reads the deployment record.
pub fn read_deployment(path: &Path) -> Result<Deployment, Refusal> {
    let setting = format!("deployment_file (KIPPU_DEPLOYMENT_FILE) = {}", path.display());
    let bytes = std::fs::read(path).map_err(|e| {
        refusal(&setting, format!("no deployment record ({e})"), "run `kippu init` once against your chain")
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| refusal(&setting, format!("not a deployment record: {e}"), "restore it from your backup"))
}

/// What the checks found usable.
pub struct Checked {
    /// The master key.
    pub keystore: Keystore,
    /// The opened secrets.
    pub secrets: Secrets,
    /// The deployment record.
    pub deployment: Deployment,
}

/// Every check that needs no network: settings, master key, secrets, the deployment record.
pub fn check_offline(cfg: &Config) -> Result<Checked, Vec<Refusal>> {
    let mut refusals = check_settings(cfg);
    let keystore = master_key(cfg).map_err(|r| refusals.push(r)).ok();
    let secrets = keystore.as_ref().and_then(|ks| {
        let path = cfg.secrets_path();
        let setting = format!("secrets_file (KIPPU_SECRETS_FILE) = {}", path.display());
        match Secrets::load(&path, ks) {
            Ok(s) => {
                // A sealed file someone filled by hand with public values guards nothing.
                for name in SecretName::ALL {
                    let public = match name {
                        SecretName::VerdictKey => denylist::is_denied(&hex::encode(s.verdict_key().to_bytes())),
                        SecretName::MinterKey
                        | SecretName::RelayerKey
                        | SecretName::SettlerKey
                        | SecretName::CatalogKey
                        | SecretName::AttestorKey => denylist::is_denied(&hex::encode(s.evm_key(name).to_bytes())),
                        _ => denylist::is_denied(&s.text(name)),
                    };
                    if public {
                        refusals.push(refusal(
                            &setting,
                            format!("secret {} is a public value", name.as_str()),
                            "generate fresh secrets with `kippu init` on a new deployment",
                        ));
                    }
                }
                Some(s)
            }
            Err(e) => {
                let fix = match e {
                    SecretsError::WrongMasterKey { .. } => "use the master key that sealed them",
                    _ => "run `kippu init`, or restore the file from your backup",
                };
                refusals.push(refusal(&setting, e.to_string(), fix));
                None
            }
        }
    });
    let deployment = read_deployment(&cfg.deployment_path()).map_err(|r| refusals.push(r)).ok();
    match (keystore, secrets, deployment) {
        (Some(keystore), Some(secrets), Some(deployment)) if refusals.is_empty() => {
            Ok(Checked { keystore, secrets, deployment })
        }
        _ => Err(refusals),
    }
}

/// The hot keys, from the secrets.
pub fn hot_keys(secrets: &Secrets) -> HotKeys {
    HotKeys {
        minter: secrets.evm_key(SecretName::MinterKey),
        relayer: secrets.evm_key(SecretName::RelayerKey),
        settler: secrets.evm_key(SecretName::SettlerKey),
        catalog: secrets.evm_key(SecretName::CatalogKey),
    }
}

/// The chain, checked against the record: same chain id, and the runtime code at every address
/// hashes to what `kippu init` deployed.
pub async fn check_chain(cfg: &Config, checked: &Checked) -> Result<Chain, Refusal> {
    let rpc = cfg.chain.rpc_url.clone().unwrap_or_default();
    let setting = format!("deployment_file (KIPPU_DEPLOYMENT_FILE) = {}", cfg.deployment_path().display());
    kippu_chain::verify_deployment(&rpc, &checked.deployment).await.map_err(|e| {
        refusal(
            &setting,
            format!("the chain at {rpc} does not hold this deployment: {e}"),
            "point chain.rpc_url at the network `kippu init` deployed to, or restore the right record",
        )
    })?;
    kippu_chain::connect(&rpc, hot_keys(&checked.secrets), checked.deployment.clone())
        .await
        .map_err(|e| refusal("chain.rpc_url (KIPPU_RPC_URL)", e.to_string(), "check the node"))
}

/// `kippu serve`: checks, then runs the platform. Nothing listens before every check passed.
pub async fn serve(cfg: Config) -> Result<Stack, ServeError> {
    let checked = check_offline(&cfg).map_err(ServeError::Refused)?;
    let chain = check_chain(&cfg, &checked).await.map_err(|r| ServeError::Refused(vec![r]))?;
    let rpc_url = cfg.chain.rpc_url.clone().unwrap_or_default();
    let stripe_url = cfg.stripe.api_base.clone().unwrap_or_else(|| STRIPE_API.into());
    let checkout = Checkout::new(&StripeConfig {
        api_base: stripe_url.clone(),
        secret_key: cfg.stripe.secret_key.clone(),
        webhook_secret: cfg.stripe.webhook_secret.clone(),
        currency: cfg.stripe.currency.clone(),
    })
    .map_err(|e| ServeError::Refused(vec![refusal("stripe.*", e.to_string(), "check the Stripe settings")]))?;
    let store = Store::connect(&cfg.database_url()).await.map_err(|e| {
        ServeError::Refused(vec![refusal("database.url (KIPPU_DATABASE_URL)", e.to_string(), "check it")])
    })?;
    let mut reporters = Vec::new();
    for key in &cfg.insurance.reporter_keys {
        reporters.push(chain.as_account(&rpc_url, key).await.map_err(anyhow::Error::from)?);
    }
    if reporters.is_empty() {
        reporters.push(chain.clone());
    }
    let listener = tokio::net::TcpListener::bind(&cfg.web.bind).await.map_err(|e| {
        ServeError::Refused(vec![refusal("web.bind (KIPPU_WEB_BIND)", format!("cannot listen: {e}"), "free the port")])
    })?;
    let wiring = Wiring {
        cfg,
        store,
        chain,
        rpc_url,
        keystore: checked.keystore,
        secrets: checked.secrets,
        listener,
        checkout,
        stripe_url,
        checkout_origin: "https://checkout.stripe.com".into(),
        reporters,
    };
    Ok(crate::stack::start(
        wiring,
        #[cfg(feature = "dev")]
        None,
    )
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Config {
        let mut c = Config::default();
        c.chain.rpc_url = Some("http://127.0.0.1:8545".into());
        c.stripe.secret_key = format!("sk_live_{}", hex::encode(rand::random::<[u8; 16]>()));
        c.stripe.webhook_secret = format!("whsec_{}", hex::encode(rand::random::<[u8; 16]>()));
        c
    }

    fn settings(problems: &[Refusal]) -> Vec<&str> {
        problems.iter().map(|r| r.setting.split(' ').next().unwrap_or("")).collect()
    }

    #[test]
    fn a_configured_production_passes_the_settings_checks() {
        assert_eq!(check_settings(&good()), vec![]);
    }

    #[test]
    fn dev_values_and_demo_settings_are_refused_by_name() {
        let mut c = good();
        c.stripe.secret_key = "sk_test_kippu_dev".into();
        c.stripe.webhook_secret = "whsec_kippu_dev".into();
        c.web.dev_routes = Some(true);
        c.chain.admin_key = Some(kippu_chain::anvil::DEV_ADMIN_KEY.into());
        c.identity.did_fetch_allow_hosts = vec!["127.0.0.1".into()];
        c.web.portal_password = Some("kippu-dev-portal".into());
        let s = check_settings(&c);
        let names = settings(&s);
        for want in [
            "stripe.secret_key",
            "stripe.webhook_secret",
            "web.dev_routes",
            "chain.admin_key",
            "identity.did_fetch_allow_hosts",
            "web.portal_password",
        ] {
            assert!(names.contains(&want), "{want} not refused: {s:#?}");
        }
    }

    #[test]
    fn the_master_key_must_be_given_random_and_private() {
        let mut c = good();
        c.identity.master_key = Some("6b697070752d6465762d6d61737465722d6b65792d6e6f742d7365637265742e".into());
        assert!(master_key(&c).unwrap_err().problem.contains("public value"));
        c.identity.master_key = Some("00".repeat(32));
        assert!(master_key(&c).is_err());
        c.identity.master_key = Some("abcd".into());
        assert!(master_key(&c).unwrap_err().problem.contains("too short"));
        c.identity.master_key = Some(hex::encode(rand::random::<[u8; 32]>()));
        assert!(master_key(&c).is_ok());
        c.identity.master_key = None;
        c.data_dir = std::env::temp_dir().join(format!("kippu-mk-{}", rand::random::<u64>()));
        assert!(master_key(&c).unwrap_err().problem.contains("no master key"));
    }

    #[test]
    fn plain_mqtt_only_to_this_host() {
        let mut c = good();
        c.mqtt.url = Some("mqtt://broker.example:1883".into());
        assert!(settings(&check_settings(&c)).contains(&"mqtt.url"));
        c.mqtt.url = Some("mqtt://127.0.0.1:1883".into());
        assert!(!settings(&check_settings(&c)).contains(&"mqtt.url"));
        c.mqtt.url = None;
        c.mqtt.embedded_bind = "0.0.0.0:8883".into();
        assert!(settings(&check_settings(&c)).contains(&"mqtt.tls_cert_file"));
    }
}
