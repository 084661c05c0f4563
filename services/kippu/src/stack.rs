//! Wires the adapters into one running platform. `kippu dev` and the
//! end-to-end tests start exactly this, so the tests exercise what users run.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use anyhow::Context;
use async_trait::async_trait;
use gate_firmware_sim::{display as verdict_line, SimGate};
use kippu_chain::anvil::{AnvilProcess, DEV_ADMIN_KEY};
use kippu_chain::{Chain, ChainConfig, Deployment, InsuranceTerms};
use kippu_credentials::{account_document, did_web, issuer_document, Concession, Credentials, IssuerKey, Resolver};
use kippu_domain::TripRef;
use kippu_domain::{Validator, VerdictMessage};
use kippu_identity::{ChallengeBook, Keystore};
use kippu_mqtt::{EmbeddedBroker, FleetWatcher, GateStatus as MqttGateStatus, MqttUrl, ValidatorHandle};
use kippu_payments::fake::{FakeStripe, FakeStripeHandle};
use kippu_payments::{Checkout, StripeConfig};
use kippu_store::Store;
use kippu_web::{AppState, DelayOutcome, GateStatus, IdentityServices, Inner, Platform};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::indexer::Indexer;
use crate::insurance::DelayInsurer;
use crate::seed;

/// The bundled timetable of the demo bus operator.
pub const TIMETABLE: &[u8] = include_bytes!("../seed/bullrunner-gtfs.zip");

/// A running platform. Dropping it stops anvil (child process) and the tasks.
pub struct Stack {
    /// Web app URL.
    pub web_url: String,
    /// Broker URL.
    pub mqtt_url: String,
    /// Each registered gate's broker URL with its own credentials (gate key, URL); the
    /// embedded broker admits a gate only with them, and only to its own topics.
    pub gate_mqtt_urls: Vec<(String, String)>,
    /// JSON-RPC URL.
    pub rpc_url: String,
    /// Stripe API base (the loopback fake in dev).
    pub stripe_url: String,
    /// Database URL.
    pub database_url: String,
    /// Contract addresses.
    pub deployment: Deployment,
    /// Chain adapter.
    pub chain: Chain,
    /// Store.
    pub store: Store,
    /// Loopback Stripe, when used.
    pub fake_stripe: Option<FakeStripeHandle>,
    /// Event follower.
    pub indexer: Indexer,
    /// Validator service.
    pub validator: ValidatorHandle,
    anvil: Option<AnvilProcess>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.validator.abort();
    }
}

impl Stack {
    /// Stops everything, anvil included.
    pub async fn shutdown(mut self) {
        if let Some(a) = self.anvil.take() {
            a.stop().await;
        }
    }
}

struct Services {
    indexer: Indexer,
    fleet: FleetWatcher,
    stations: HashMap<String, String>,
    /// Each registered gate's device identity (did:key of its Ed25519 key).
    gate_dids: HashMap<String, String>,
    /// The in-process validator's state (revocations reach it at once).
    validator_state: Arc<Mutex<Validator>>,
    gates: HashMap<String, SimGate>,
    last: Mutex<HashMap<String, String>>,
    insurer: DelayInsurer,
    chain: Chain,
    store: Store,
    /// One close at a time: each reads and replaces the carried positions.
    closing: Mutex<()>,
}

#[async_trait]
impl Platform for Services {
    async fn catch_up(&self) {
        if let Err(e) = self.indexer.catch_up().await {
            tracing::warn!(error = %e, "catch-up failed");
        }
    }

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

    async fn gates(&self) -> Vec<GateStatus> {
        let last = self.last.lock().await;
        let fleet = self.fleet.snapshot();
        // Registered gates plus any gate the broker reports, registered or not.
        let mut keys: Vec<&String> = self.stations.keys().chain(fleet.keys()).collect();
        keys.sort();
        keys.dedup();
        let mut out: Vec<_> = keys
            .into_iter()
            .map(|k| GateStatus {
                key: k.clone(),
                station: self.stations.get(k).cloned().unwrap_or_else(|| "not registered".into()),
                state: match fleet.get(k) {
                    Some(MqttGateStatus::Online) => "online",
                    Some(MqttGateStatus::Offline) => "offline",
                    None => "never seen",
                }
                .into(),
                last: last.get(k).cloned().unwrap_or_else(|| "no scans yet".into()),
                did: self.gate_dids.get(k).cloned().unwrap_or_default(),
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    async fn ingest_delays(&self, feed: &[u8]) -> Result<DelayOutcome, String> {
        let out = self.insurer.ingest(feed, now()).await.map_err(|e| e.to_string())?;
        metrics::counter!("kippu_vouchers_issued_total").increment(out.vouchers.len() as u64);
        self.catch_up().await;
        Ok(out)
    }

    async fn timetable_imported(&self, operator_id: u32, timetable: kippu_gtfs::Timetable) {
        self.insurer.add_timetable(operator_id, timetable);
    }

    fn runs_of(&self, operator_id: u32) -> Vec<(String, String)> {
        self.insurer.runs_of(operator_id)
    }

    async fn key_revoked(&self, holder: alloy::primitives::Address) {
        self.validator_state.lock().await.revoke_key(holder);
    }

    async fn card_bound(&self, card_key: [u8; 32], ticket_id: u64, sig: Vec<u8>) {
        if let Err(e) = self.validator_state.lock().await.bind_card(card_key, ticket_id, &sig) {
            tracing::error!(error = %e, ticket_id, "card binding does not verify; not loaded");
        }
    }

    async fn device_revoked(&self, device_key: [u8; 32]) {
        self.validator_state.lock().await.revoke_device(device_key);
    }

    async fn card_unbound(&self, card_key: [u8; 32]) {
        self.validator_state.lock().await.unbind_card(&card_key);
    }

    async fn close_period(&self) -> Result<serde_json::Value, String> {
        let _one = self.closing.lock().await;
        let closed = crate::settle::close_period(&self.chain, &self.store, &self.indexer, now())
            .await
            .map_err(|e| format!("{e:#}"))?;
        serde_json::to_value(closed).map_err(|e| e.to_string())
    }

    fn metrics(&self) -> String {
        prometheus().render()
    }
}

/// The process-wide Prometheus recorder; installed once, even when a test
/// process starts several stacks.
fn prometheus() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics shows only this handle's view");
        }
        handle
    })
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The configured anvil, else the repository's npm-installed one (so the
/// binary also runs outside the checkout's root), else `anvil` on PATH.
/// Every operator's current timetable; the bundled Bull Runner feed when none
/// was imported (an external database without the demo).
async fn current_timetables(store: &Store) -> anyhow::Result<Vec<(u32, kippu_gtfs::Timetable)>> {
    use base64::Engine as _;
    let current = store.current_timetables().await?;
    if current.is_empty() {
        return Ok(vec![(seed::BUS, kippu_gtfs::import_timetable(TIMETABLE)?)]);
    }
    let operators: HashMap<String, u32> = store.operators().await?.into_iter().map(|o| (o.slug, o.id)).collect();
    let mut out = Vec::new();
    for t in current {
        let Some(&operator) = operators.get(&t.operator_slug) else { continue };
        let zip = base64::engine::general_purpose::STANDARD.decode(&t.feed)?;
        out.push((operator, kippu_gtfs::import_timetable(&zip)?));
    }
    Ok(out)
}

/// The delay oracles this process reports as. On a chain it deployed, it also
/// sets the quorum and registers and funds the reporters; on an existing
/// chain that is the consortium's governance, done beforehand.
async fn oracle_reporters(cfg: &Config, chain: &Chain, rpc_url: &str, fresh: bool) -> anyhow::Result<Vec<Chain>> {
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

/// `host[:port]` of a URL: the did:web authority Kippu's DIDs live under.
fn authority_of(url: &str) -> String {
    url.split("://").nth(1).unwrap_or(url).split('/').next().unwrap_or("localhost").to_owned()
}

/// DIDs and credentials: hosts the demo issuers, grants the concession
/// attestor its role, and publishes every did:web document Kippu answers for.
async fn identity_services(
    cfg: &Config,
    chain: &Chain,
    store: &Store,
    keystore: &Keystore,
    web_url: &str,
) -> anyhow::Result<IdentityServices> {
    let authority = authority_of(web_url);
    if cfg.seed_demo {
        seed::seed_issuers(store, keystore, &authority).await.context("seeding the demo issuers")?;
    }
    let attestor = match &cfg.identity.attestor_key {
        Some(k) => k.parse::<PrivateKeySigner>().context("identity.attestor_key")?,
        None => kippu_identity::deterministic_demo_key("kippu-concession-attestor"),
    };
    chain.grant_concession_issuer(attestor.address()).await.context("granting the concession attestor its role")?;
    let resolver = Resolver::new(did_web(&authority, &[]), Duration::from_secs(cfg.identity.did_cache_secs));
    let chain_id = chain.deployment().chain_id;
    let root = did_web(&authority, &[]);
    let attestor_account = attestor.address().to_checksum(None);
    resolver.publish(&root, &account_document(&root, chain_id, &attestor_account, "Kippu consortium"));
    for o in store.operators().await? {
        let did = did_web(&authority, &["operators", &o.slug]);
        resolver.publish(&did, &account_document(&did, chain_id, &o.payee.to_checksum(None), &o.name));
    }
    for i in store.issuers().await? {
        let seed = keystore.open_seed(&i.did, &i.sealed_seed).with_context(|| format!("issuer {} key", i.slug))?;
        let key = IssuerKey::from_seed(*seed);
        resolver.publish(&i.did, &issuer_document(&i.did, &key.public_key(), &i.name));
    }
    let discounts = HashMap::from([
        (Concession::Student, cfg.identity.student_discount_bps),
        (Concession::Senior, cfg.identity.senior_discount_bps),
        (Concession::Disability, cfg.identity.disability_discount_bps),
    ]);
    Ok(IdentityServices {
        credentials: Credentials::new(resolver),
        authority,
        attestor,
        discounts,
        portal: kippu_web::PortalAuth::new(&cfg.web.portal_password),
    })
}

/// Every 30 s, each operator's gates get a fresh signed snapshot on their retained `config`
/// topic: the tickets valid with the operator, the revoked keys and the validator's key, so a
/// gate that loses its network keeps deciding with today's data.
async fn publish_snapshots(
    mqtt: MqttUrl,
    store: Store,
    state: Arc<Mutex<Validator>>,
    key: Arc<ed25519_dalek::SigningKey>,
    gates: Vec<(String, u32)>,
    chain_id: u64,
) {
    use kippu_domain::snapshot::{GateSnapshot, SnapshotCard, SnapshotTicket, SNAPSHOT_VERSION};
    let mut every = tokio::time::interval(Duration::from_secs(30));
    loop {
        every.tick().await;
        // What the database holds first: tickets bought since start-up (this validator otherwise
        // loads them on their first scan, too late for a gate that is already offline), and
        // revocations or card changes made through another instance of the platform.
        match crate::validator::Stored::fetch(&store).await {
            Ok(stored) => stored.apply(&mut *state.lock().await),
            Err(e) => tracing::warn!(error = %e, "validator state not refreshed before the snapshot"),
        }
        let now = now() as u64;
        let mut operators: Vec<u32> = gates.iter().map(|(_, op)| *op).collect();
        operators.sort_unstable();
        operators.dedup();
        for op in operators {
            let (tickets, revoked_holders, revoked_devices, cards) = {
                let v = state.lock().await;
                let (t, h, d) = v.offline_view(op, now);
                (t, h, d, v.offline_cards(op, now))
            };
            let keys: Vec<String> = gates.iter().filter(|(_, o)| *o == op).map(|(k, _)| k.clone()).collect();
            let snapshot = GateSnapshot {
                version: SNAPSHOT_VERSION,
                issued_at: now,
                valid_until: now + 24 * 3600,
                operator_id: op,
                gates: keys.clone(),
                chain_id,
                validators: vec![alloy::primitives::B256::from(key.verifying_key().to_bytes())],
                revoked_holders,
                revoked_devices: revoked_devices.into_iter().map(alloy::primitives::B256::from).collect(),
                tickets: tickets.iter().map(SnapshotTicket::from).collect(),
                cards: cards
                    .into_iter()
                    .map(|(k, c)| SnapshotCard {
                        card_key: alloy::primitives::B256::from(k),
                        ticket_id: c.ticket_id,
                        holder: c.holder,
                    })
                    .collect(),
            };
            let bytes = snapshot.sign(&key).to_bytes();
            for gate_key in &keys {
                let Ok(path) = gate_firmware_sim::gate_path(gate_key) else { continue };
                if let Err(e) = gate_firmware_sim::publish_config(&mqtt, &path, &bytes).await {
                    tracing::warn!(gate = %gate_key, error = %e, "gate snapshot not published; retrying next round");
                }
            }
        }
    }
}

fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    format!("{scheme}://{}", rest.split('/').next().unwrap_or(""))
}

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

/// Starts the whole platform from `cfg`.
pub async fn start(cfg: Config) -> anyhow::Result<Stack> {
    prometheus();
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

    let database_url = match &cfg.database.url {
        Some(u) => u.clone(),
        None => {
            let path = cfg.data_dir.join("kippu.db");
            if fresh_chain {
                // A new chain makes the old read models meaningless: start the embedded database anew too.
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            format!("sqlite://{}", path.display())
        }
    };
    let store = Store::connect(&database_url).await.context("connecting the database")?;
    let keystore = Keystore::from_hex(&cfg.identity.master_key).context("identity.master_key")?;

    let chain_cfg = ChainConfig {
        rpc_url: rpc_url.clone(),
        admin_key: cfg.chain.admin_key.clone().unwrap_or_else(|| DEV_ADMIN_KEY.into()),
    };
    let deployment_file = cfg.data_dir.join("deployment.json");
    let existing = if fresh_chain {
        None
    } else {
        std::fs::read(&deployment_file).ok().and_then(|b| serde_json::from_slice::<Deployment>(&b).ok())
    };
    let chain = match existing {
        Some(d) => Chain::attach(&chain_cfg, d).await?,
        None => {
            let terms = InsuranceTerms {
                threshold_minutes: cfg.insurance.threshold_minutes,
                voucher_value: cfg.insurance.voucher_value,
                voucher_operator_id: seed::TAXI,
                voucher_lifetime: cfg.insurance.voucher_lifetime_secs,
            };
            let c = Chain::deploy(&chain_cfg, &terms).await.context("deploying contracts")?;
            std::fs::write(&deployment_file, serde_json::to_vec_pretty(c.deployment())?)?;
            if cfg.seed_demo {
                seed::seed(&c, &store, &keystore, &terms).await.context("seeding the demo")?;
            }
            c
        }
    };

    // The embedded broker enforces the same per-gate credentials and topic ACL as the shipped
    // Mosquitto configuration (deploy/mosquitto): a gate publishes only its own scans and reads
    // only its own verdicts. Passwords derive from a secret held by the keystore.
    let acl_secret = keystore.derive_seed("mqtt:acl");
    let (mqtt_url, _broker, secured) = match &cfg.mqtt.url {
        Some(u) => (u.clone(), None, false),
        None => {
            let bind: SocketAddr = cfg.mqtt.embedded_bind.parse().context("mqtt.embedded_bind")?;
            let secret = acl_secret.to_vec();
            let b = tokio::task::spawn_blocking(move || EmbeddedBroker::start_secured(bind, &secret)).await??;
            (b.url(), Some(b), true)
        }
    };
    let mqtt_plain = MqttUrl::parse(&mqtt_url)?;
    // Platform-side clients (validator, fleet watcher) log in as the validator; simulated gates as themselves.
    let mqtt = if secured {
        kippu_mqtt::Credentials::validator(acl_secret.as_slice()).apply_to(&mqtt_plain)
    } else {
        mqtt_plain.clone()
    };
    let gate_url = |gate_key: &str| -> String {
        match (secured, gate_firmware_sim::gate_path(gate_key).ok()) {
            (true, Some(path)) => {
                let c = kippu_mqtt::Credentials::gate(acl_secret.as_slice(), &path);
                format!(
                    "mqtt://{}:{}@{}:{}",
                    c.username.replace('/', "%2F"),
                    c.password,
                    mqtt_plain.host,
                    mqtt_plain.port
                )
            }
            _ => mqtt_url.clone(),
        }
    };

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

    let indexer = Indexer::new(chain.clone(), store.clone(), cfg.chain.confirmations);
    indexer.catch_up().await.context("first indexer pass")?;
    let mut tasks = vec![tokio::spawn(indexer.clone().run(Duration::from_millis(cfg.chain.poll_ms)))];
    tasks.push(tokio::spawn(crate::reconcile::run(
        chain.clone(),
        store.clone(),
        Duration::from_secs(cfg.chain.reconcile_secs.max(1)),
    )));

    // Validator: gates, tickets, revocations and cards preloaded, misses looked up in the database.
    let v = crate::validator::load_state(&store, cfg.chain.chain_id).await?;
    let gate_rows = store.gates().await?;
    let validator_state = Arc::new(Mutex::new(v));
    // A reorg can take tickets away: the gates must stop honouring them at once.
    let (mut rollbacks, reorg_state, reorg_store) = (indexer.rollbacks(), validator_state.clone(), store.clone());
    tasks.push(tokio::spawn(async move {
        while rollbacks.changed().await.is_ok() {
            match crate::validator::Stored::fetch(&reorg_store).await {
                Ok(stored) => {
                    stored.apply(&mut *reorg_state.lock().await);
                    tracing::warn!("validator refreshed after a chain reorganisation");
                }
                Err(e) => tracing::error!(error = %e, "validator not refreshed after a reorganisation"),
            }
        }
    }));
    // The validator signs its verdicts; gates holding its public key ignore any other.
    let verdict_key = Arc::new(crate::validator::verdict_key(&keystore));
    let validator = crate::validator::spawn(
        &store,
        &mqtt,
        &format!("kippu-validator-{}", std::process::id()),
        kippu_mqtt::ValidatorOptions {
            shared: cfg.mqtt.shared_subscription,
            signer: Some(verdict_key.clone()),
            ..Default::default()
        },
        validator_state.clone(),
    )
    .await?;

    let (anchor_chain, anchor_store) = (chain.clone(), store.clone());
    tasks.push(tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(30));
        every.tick().await;
        loop {
            every.tick().await;
            if let Err(e) = crate::anchor::anchor_pending(&anchor_chain, &anchor_store).await {
                tracing::warn!(error = %e, "tap anchoring failed; retrying next round");
            }
        }
    }));

    let gate_mqtt_urls: Vec<(String, String)> =
        gate_rows.iter().map(|g| (g.gate_key.clone(), gate_url(&g.gate_key))).collect();
    // Simulated gates trust only the validator's key, and decide offline from the last signed
    // snapshot when no verdict comes (journal and snapshot under data_dir/gates/).
    let mut gates = HashMap::new();
    for g in &gate_rows {
        let dir = cfg.data_dir.join("gates").join(g.gate_key.replace('/', "_"));
        std::fs::create_dir_all(&dir)?;
        let mut offline = gate_firmware_sim::OfflineOptions::in_dir(&dir);
        offline.rules.chain_id = cfg.chain.chain_id;
        let setup = gate_firmware_sim::GateSetup {
            trusted_validators: vec![verdict_key.verifying_key()],
            offline: Some(offline),
            ..gate_firmware_sim::GateSetup::new(&gate_url(&g.gate_key), &g.gate_key)
        };
        gates.insert(g.gate_key.clone(), SimGate::connect_with(setup).await?);
    }
    tasks.push(tokio::spawn(publish_snapshots(
        mqtt.clone(),
        store.clone(),
        validator_state.clone(),
        verdict_key.clone(),
        gate_rows.iter().map(|g| (g.gate_key.clone(), g.operator_id)).collect(),
        cfg.chain.chain_id,
    )));
    let reporters = oracle_reporters(&cfg, &chain, &rpc_url, fresh_chain).await?;
    let insurer = DelayInsurer::new(
        store.clone(),
        cfg.insurance.threshold_minutes,
        cfg.insurance.feed_max_age_secs,
        reporters,
        current_timetables(&store).await?,
    );
    if let Some(url) = &cfg.insurance.feed_url {
        let every = Duration::from_secs(cfg.insurance.poll_secs.max(1));
        tasks.push(tokio::spawn(crate::insurance::poll(insurer.clone(), url.clone(), every)));
    }
    let fleet = FleetWatcher::spawn(&mqtt, &format!("kippu-fleet-{}", std::process::id()));
    let stations = gate_rows.iter().map(|g| (g.gate_key.clone(), g.station.clone())).collect();
    // Simulated gates' device keys are derived from the master key; a real
    // gate generates its own and registers the did:key.
    let gate_dids = gate_rows
        .iter()
        .map(|g| {
            let key = IssuerKey::from_seed(*keystore.derive_seed(&format!("gate:{}", g.gate_key)));
            (g.gate_key.clone(), format!("did:key:{}", key.public_key_multibase()))
        })
        .collect();
    let platform = Arc::new(Services {
        indexer: indexer.clone(),
        fleet,
        stations,
        gate_dids,
        validator_state,
        gates,
        last: Mutex::new(HashMap::new()),
        insurer,
        chain: chain.clone(),
        store: store.clone(),
        closing: Mutex::new(()),
    });

    let identity = identity_services(&cfg, &chain, &store, &keystore, &web_url).await?;
    let state = AppState::new(Inner {
        store: store.clone(),
        chain: chain.clone(),
        keystore,
        challenges: ChallengeBook::default(),
        checkout,
        webhook_secret: cfg.stripe.webhook_secret.clone(),
        public_url: web_url.clone(),
        platform,
        dev_routes: cfg.web.dev_routes.unwrap_or(false),
        identity,
        login_limits: kippu_web::LoginLimits::default().with_trusted_proxies(cfg.web.trusted_proxies.clone()),
        passkeys: kippu_web::Passkeys::new(&web_url),
        // The loopback fake hosts its payment page itself; real Stripe's is checkout.stripe.com.
        checkout_origin: match &fake_stripe {
            Some(f) => origin_of(f.base_url()),
            None => "https://checkout.stripe.com".into(),
        },
    });
    let app = kippu_web::router(state);
    tasks.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await {
            tracing::error!(error = %e, "web server stopped");
        }
    }));

    Ok(Stack {
        web_url,
        mqtt_url,
        gate_mqtt_urls,
        rpc_url,
        stripe_url,
        database_url,
        deployment: chain.deployment().clone(),
        chain,
        store,
        fake_stripe,
        indexer,
        validator,
        anvil,
        tasks,
    })
}
