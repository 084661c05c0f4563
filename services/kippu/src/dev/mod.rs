//! `kippu dev`, the demo: only in a binary built with the `dev` feature (`make dev`).
//!
//! Around the platform `kippu serve` runs, it starts anvil as a child process, deploys the
//! contracts with one key for every role, seeds the demo consortium, starts a loopback fake
//! Stripe, connects simulated gates and turns on the demo's routes (one-click sign-in, a gate
//! that reads the PNG on screen, hand-fed delays, an open period close). None of this exists in
//! a default build.

pub mod seed;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use gate_firmware_sim::{display as verdict_line, SimGate};
use kippu_chain::anvil::{AnvilProcess, DEV_ADMIN_KEY};
use kippu_chain::{ChainConfig, InsuranceTerms};
use kippu_domain::{TripRef, VerdictMessage};
use kippu_identity::Keystore;
use kippu_payments::fake::{FakeStripe, FakeStripeHandle};
use kippu_payments::{Checkout, StripeConfig};
use kippu_store::{GateRow, Store};
use kippu_web::{DelayOutcome, DevPlatform};
use tokio::sync::Mutex;

use crate::config::Config;
use crate::secrets::{self, Secrets};
use crate::stack::{Core, Stack, Wiring};

/// The password of every demo staff account (public, like every dev value; only `kippu dev`
/// seeds these accounts).
pub const DEV_PORTAL_PASSWORD: &str = "kippu-dev-portal";
/// The demo consortium's admin (signs in with [`DEV_PORTAL_PASSWORD`]).
pub const DEV_ADMIN_EMAIL: &str = "admin@kippu.dev";
/// The demo consortium's auditor.
pub const DEV_AUDITOR_EMAIL: &str = "auditor@kippu.dev";

/// The demo member of staff of an organisation (operator, issuer, insurer): `staff@{slug}.dev`.
pub fn dev_staff_email(slug: &str) -> String {
    format!("staff@{slug}.dev")
}
/// The demo's master key (public; `kippu serve` refuses it).
pub const DEV_MASTER_KEY: &str = "6b697070752d6465762d6d61737465722d6b65792d6e6f742d7365637265742e";
/// The demo's Stripe keys (public; `kippu serve` refuses them).
pub const DEV_STRIPE_SECRET_KEY: &str = "sk_test_kippu_dev";
/// See [`DEV_STRIPE_SECRET_KEY`].
pub const DEV_STRIPE_WEBHOOK_SECRET: &str = "whsec_kippu_dev";

impl Config {
    /// The demo's public values wherever the configuration left a setting empty.
    pub fn with_dev_defaults(mut self) -> Self {
        self.seed_demo = true;
        self.web.dev_routes.get_or_insert(true);
        self.identity.master_key.get_or_insert_with(|| DEV_MASTER_KEY.into());
        if self.stripe.secret_key.is_empty() {
            self.stripe.secret_key = DEV_STRIPE_SECRET_KEY.into();
        }
        if self.stripe.webhook_secret.is_empty() {
            self.stripe.webhook_secret = DEV_STRIPE_WEBHOOK_SECRET.into();
        }
        // Passkeys need a domain for their relying party ID; on the loopback that is localhost.
        if self.web.public_url.is_none() {
            if let Some(port) = self.web.bind.strip_prefix("127.0.0.1:").filter(|p| *p != "0") {
                self.web.public_url = Some(format!("http://localhost:{port}"));
            }
        }
        self
    }
}

/// The demo's extras, kept by the [`Stack`].
pub struct Demo {
    /// anvil, when the demo started it.
    anvil: Option<AnvilProcess>,
    /// The loopback Stripe.
    pub fake_stripe: Option<FakeStripeHandle>,
    /// Each simulated gate's broker URL with its own credentials `(gate key, URL)`.
    pub gate_mqtt_urls: Vec<(String, String)>,
}

#[async_trait::async_trait]
impl crate::stack::Extra for Demo {
    async fn stop(mut self: Box<Self>) {
        if let Some(a) = self.anvil.take() {
            a.stop().await;
        }
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The demo's extras of a stack `kippu dev` started.
pub fn demo(stack: &Stack) -> Option<&Demo> {
    stack.demo.as_ref().and_then(|d| d.as_any().downcast_ref::<Demo>())
}

/// What the demo hands the core to attach its simulated gates.
pub struct DevStart {
    anvil: Option<AnvilProcess>,
    fake_stripe: Option<FakeStripeHandle>,
    gate_passwords: HashMap<String, String>,
    data_dir: std::path::PathBuf,
}

#[async_trait::async_trait]
impl crate::stack::AddOn for DevStart {
    /// Connects the simulated gates (each with its own login, trusting only the validator's
    /// key, deciding offline from the last snapshot under `data_dir/gates/`).
    async fn attach(
        self: Box<Self>,
        core: &Arc<Core>,
        broker: &kippu_mqtt::MqttUrl,
        verdict_key: &ed25519_dalek::SigningKey,
        gate_rows: &[GateRow],
    ) -> anyhow::Result<(Box<dyn crate::stack::Extra>, Arc<dyn DevPlatform>)> {
        let mut gates = HashMap::new();
        let mut urls = Vec::new();
        for g in gate_rows {
            let Some(password) = self.gate_passwords.get(&g.gate_key) else { continue };
            let url = url_with_login(broker, &g.gate_key, password);
            let dir = self.data_dir.join("gates").join(g.gate_key.replace('/', "_"));
            std::fs::create_dir_all(&dir)?;
            let mut offline = gate_firmware_sim::OfflineOptions::in_dir(&dir);
            offline.rules.chain_id = core.chain.deployment().chain_id;
            let setup = gate_firmware_sim::GateSetup {
                trusted_validators: vec![verdict_key.verifying_key()],
                offline: Some(offline),
                ..gate_firmware_sim::GateSetup::new(&url, &g.gate_key)
            };
            gates.insert(g.gate_key.clone(), SimGate::connect_with(setup).await?);
            urls.push((g.gate_key.clone(), url));
        }
        let platform = Arc::new(DevServices { core: core.clone(), gates, last: Mutex::default() });
        let this = *self;
        Ok((Box::new(Demo { anvil: this.anvil, fake_stripe: this.fake_stripe, gate_mqtt_urls: urls }), platform))
    }
}

/// The demo's side of the web layer: simulated gates, hand-fed delays, the open period close.
struct DevServices {
    core: Arc<Core>,
    gates: HashMap<String, SimGate>,
    last: Mutex<HashMap<String, String>>,
}

#[async_trait]
impl DevPlatform for DevServices {
    async fn scan_png(&self, gate_key: &str, png: Vec<u8>, run: Option<TripRef>) -> Result<VerdictMessage, String> {
        let gate = self.gates.get(gate_key).ok_or_else(|| format!("no simulated gate {gate_key}"))?;
        gate.set_run(run);
        let v = gate.present_image(&png).await.map_err(|e| e.to_string())?;
        tracing::info!(gate = gate_key, "{}", verdict_line(&v));
        self.last.lock().await.insert(gate_key.to_owned(), verdict_line(&v));
        Ok(v)
    }

    async fn tap_card(&self, gate_key: &str, card: kippu_domain::card::Card) -> Result<VerdictMessage, String> {
        let gate = self.gates.get(gate_key).ok_or_else(|| format!("no simulated gate {gate_key}"))?;
        gate.set_run(None);
        let v = gate.tap_card(&card).await.map_err(|e| e.to_string())?.verdict;
        tracing::info!(gate = gate_key, "card: {}", verdict_line(&v));
        self.last.lock().await.insert(gate_key.to_owned(), verdict_line(&v));
        Ok(v)
    }

    async fn ingest_delays(&self, feed: &[u8]) -> Result<DelayOutcome, String> {
        let out = self.core.insurer.ingest(feed, crate::clock::now()).await.map_err(|e| e.to_string())?;
        metrics::counter!("kippu_vouchers_issued_total").increment(out.vouchers.len() as u64);
        if let Err(e) = self.core.indexer.catch_up().await {
            tracing::warn!(error = %e, "catch-up failed");
        }
        Ok(out)
    }

    async fn close_period(&self) -> Result<kippu_app::period::Closed, String> {
        self.core.close_period().await.map_err(|e| format!("{e:#}"))
    }

    fn runs_of(&self, operator_id: u32) -> Vec<(String, String)> {
        self.core.insurer.runs_of(operator_id)
    }
}

/// `mqtt://user:password@host:port`, the form the simulated gates take (a gate key's `/`
/// escaped in the username).
fn url_with_login(url: &kippu_mqtt::MqttUrl, username: &str, password: &str) -> String {
    let scheme = if url.is_tls() { "mqtts" } else { "mqtt" };
    let host = if url.host.contains(':') { format!("[{}]", url.host) } else { url.host.clone() };
    format!("{scheme}://{}:{password}@{host}:{}", username.replace('/', "%2F"), url.port)
}

fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    format!("{scheme}://{}", rest.split('/').next().unwrap_or(""))
}

/// The configured anvil, else the repository's npm-installed one (so the binary also runs
/// outside the checkout's root), else `anvil` on PATH.
fn resolve_anvil(configured: &std::path::Path) -> std::path::PathBuf {
    if configured.exists() || configured.is_absolute() {
        return configured.to_path_buf();
    }
    let in_repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(configured);
    if in_repo.exists() {
        return in_repo;
    }
    std::path::PathBuf::from("anvil")
}

/// Starts the demo from `cfg` (its empty settings filled with the demo's public values).
pub async fn start(cfg: Config) -> anyhow::Result<Stack> {
    let cfg = cfg.with_dev_defaults();
    crate::telemetry::prometheus();
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(&cfg.web.bind)
        .await
        .with_context(|| format!("binding web on {}", cfg.web.bind))?;
    let web_addr: SocketAddr = listener.local_addr()?;
    let web_url = cfg.web.public_url.clone().unwrap_or_else(|| format!("http://{web_addr}"));

    // Chain: an external node, or a fresh anvil child whose lifetime is ours.
    let (anvil, rpc_url, fresh_chain) = match &cfg.chain.rpc_url {
        Some(u) => (None, u.clone(), false),
        None => {
            let bin = resolve_anvil(&cfg.chain.anvil_bin);
            let a = AnvilProcess::spawn(&bin, cfg.chain.anvil_port, cfg.chain.chain_id, None).await?;
            let u = a.url();
            (Some(a), u, true)
        }
    };
    if fresh_chain && cfg.database.url.is_none() {
        // A new chain makes the old read models meaningless: start the embedded database anew too.
        let path = cfg.data_dir.join("kippu.db");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
    let store = Store::connect(&cfg.database_url()).await.context("connecting the database")?;
    let master = secrets::parse_master_key(cfg.identity.master_key.as_deref().unwrap_or_default())
        .context("identity.master_key: 64 hex digits")?;
    let keystore = Keystore::new(*master);
    // The demo's secrets are fresh each run but written, with its (public) master key, where
    // `kippu validator` finds them.
    if cfg.identity.master_key_file.is_none() {
        secrets::write_private(&cfg.master_key_path(), format!("{}\n", hex::encode(*master)).as_bytes())?;
    }
    let secrets_path = cfg.secrets_path();
    let secrets = match (fresh_chain, Secrets::load(&secrets_path, &keystore)) {
        (false, Ok(s)) => s,
        _ => {
            let s = Secrets::generate();
            s.store(&secrets_path, &keystore)?;
            s
        }
    };

    let chain_cfg = ChainConfig {
        rpc_url: rpc_url.clone(),
        admin_key: cfg.chain.admin_key.clone().unwrap_or_else(|| DEV_ADMIN_KEY.into()),
    };
    let terms = InsuranceTerms {
        threshold_minutes: cfg.insurance.threshold_minutes,
        voucher_value: u128::from(cfg.insurance.voucher_value),
        voucher_operator_id: seed::TAXI,
        voucher_lifetime: cfg.insurance.voucher_lifetime_secs,
    };
    let deployment_file = cfg.deployment_path();
    let existing = if fresh_chain {
        None
    } else {
        std::fs::read(&deployment_file).ok().and_then(|b| serde_json::from_slice(&b).ok())
    };
    let authority = web_url.split("://").nth(1).unwrap_or(&web_url).split('/').next().unwrap_or("localhost").to_owned();
    let chain = match existing {
        Some(d) => {
            let key: alloy::signers::local::PrivateKeySigner =
                chain_cfg.admin_key.parse().context("chain.admin_key")?;
            kippu_chain::connect(&rpc_url, kippu_chain::HotKeys::single(key), d).await?
        }
        None => {
            let c = kippu_chain::deploy_single_key(&chain_cfg, &terms, cfg.identity.max_concession_bps)
                .await
                .context("deploying contracts")?;
            std::fs::write(&deployment_file, serde_json::to_vec_pretty(c.deployment())?)?;
            if cfg.seed_demo {
                let catalog = seed::catalog(
                    cfg.insurance.threshold_minutes,
                    cfg.insurance.voucher_value,
                    cfg.insurance.voucher_lifetime_secs,
                );
                seed::seed(&c, &store, &keystore, &catalog, &authority).await.context("seeding the demo")?;
            }
            c
        }
    };
    // The concession attestor signs with the sealed key, as in production.
    let attestor = secrets.evm_key(crate::secrets::SecretName::AttestorKey).address();
    chain.grant_concession_issuer(attestor).await.context("granting the concession attestor its role")?;
    crate::gates::register_validator_login(&store, &secrets).await?;
    // Every simulated gate gets a fresh credential each run; the plaintext stays in memory.
    let mut gate_passwords = HashMap::new();
    for g in store.gates().await? {
        gate_passwords.insert(g.gate_key.clone(), crate::gates::issue(&store, &g.gate_key, "gate").await?);
    }

    let (stripe_url, fake_stripe) = match &cfg.stripe.api_base {
        Some(u) => (u.clone(), None),
        None => {
            let bind: SocketAddr = cfg.stripe.fake_bind.parse().context("stripe.fake_bind")?;
            let f = FakeStripe::start(
                bind,
                format!("{web_url}/webhooks/stripe"),
                cfg.stripe.webhook_secret.clone(),
                cfg.stripe.secret_key.clone(),
            )
            .await?;
            (f.base_url().to_string(), Some(f))
        }
    };
    let checkout = Checkout::new(&StripeConfig {
        api_base: stripe_url.clone(),
        secret_key: cfg.stripe.secret_key.clone(),
        webhook_secret: cfg.stripe.webhook_secret.clone(),
        currency: cfg.stripe.currency.clone(),
    })?;
    // The loopback fake hosts its payment page itself; real Stripe's is checkout.stripe.com.
    let checkout_origin = match &fake_stripe {
        Some(f) => origin_of(f.base_url()),
        None => "https://checkout.stripe.com".into(),
    };
    let reporters = oracle_reporters(&cfg, &chain, &rpc_url, fresh_chain).await?;
    let data_dir = cfg.data_dir.clone();
    let wiring = Wiring {
        cfg,
        store,
        chain,
        rpc_url,
        keystore,
        secrets,
        listener,
        checkout,
        stripe_url,
        checkout_origin,
        reporters,
    };
    let dev = DevStart { anvil, fake_stripe, gate_passwords, data_dir };
    crate::stack::start(wiring, Some(Box::new(dev))).await
}

/// The delay oracles this process reports as. On a chain it deployed, it also sets the quorum
/// and registers and funds the reporters (on a real network that is governance, done beforehand).
async fn oracle_reporters(
    cfg: &Config,
    chain: &kippu_chain::Chain,
    rpc_url: &str,
    fresh: bool,
) -> anyhow::Result<Vec<kippu_chain::Chain>> {
    if fresh && cfg.insurance.quorum > 1 {
        chain.set_quorum(cfg.insurance.quorum).await?;
    }
    if cfg.insurance.reporter_keys.is_empty() {
        return Ok(vec![chain.clone()]);
    }
    let mut reporters = Vec::new();
    for key in &cfg.insurance.reporter_keys {
        let r = chain.as_account(rpc_url, key).await.context("insurance.reporter_keys")?;
        if fresh {
            chain.grant_oracle(r.admin()).await?;
            chain.fund(r.admin(), 10u128.pow(19)).await?;
        }
        reporters.push(r);
    }
    Ok(reporters)
}
