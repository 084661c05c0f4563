//! The running platform: what `kippu serve` and `kippu dev` both start once they have a
//! database, a chain, secrets and a payment provider ([`Wiring`]). The demo adds its anvil,
//! seed, fake Stripe and simulated gates around exactly this, so the end-to-end tests exercise
//! what operators run.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use kippu_chain::Chain;
use kippu_credentials::{account_document, did_web, issuer_document, Concession, Credentials, IssuerKey, Resolver};
use kippu_domain::topics::GatePath;
use kippu_domain::Validator;
use kippu_identity::{ChallengeBook, Keystore};
use kippu_mqtt::{
    ClientTls, EmbeddedBroker, FleetWatcher, GateStatus as MqttGateStatus, MqttUrl, ServerTls, ValidatorHandle,
};
use kippu_payments::Checkout;
use kippu_store::Store;
use kippu_web::{AppState, GateStatus, IdentityServices, Inner, Platform};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::indexer::Indexer;
use crate::insurance::DelayInsurer;
use crate::secrets::{SecretName, Secrets};

/// Everything the platform is started from, made by `kippu serve` (checked, sealed secrets, an
/// existing deployment) or `kippu dev` (a fresh anvil, deployment and seed).
pub struct Wiring {
    /// Configuration.
    pub cfg: Config,
    /// Database.
    pub store: Store,
    /// Chain adapter sending with the hot keys.
    pub chain: Chain,
    /// JSON-RPC URL.
    pub rpc_url: String,
    /// Keystore (the master key).
    pub keystore: Keystore,
    /// Generated secrets.
    pub secrets: Secrets,
    /// The web listener, bound by the caller (so a taken port fails before anything starts).
    pub listener: tokio::net::TcpListener,
    /// Stripe Checkout client.
    pub checkout: Checkout,
    /// Stripe API base.
    pub stripe_url: String,
    /// Where Stripe's hosted Checkout pages live (the one origin besides the app forms lead to).
    pub checkout_origin: String,
    /// The delay oracles this process reports as.
    pub reporters: Vec<Chain>,
    /// The staff password of the portal.
    pub staff_password: String,
}

/// A running platform. Dropping it stops its tasks (and, in the demo, anvil).
pub struct Stack {
    /// Web app URL.
    pub web_url: String,
    /// Separate metrics listener, when configured.
    pub metrics_url: Option<String>,
    /// Broker URL (without credentials).
    pub mqtt_url: String,
    /// JSON-RPC URL.
    pub rpc_url: String,
    /// Stripe API base.
    pub stripe_url: String,
    /// Database URL.
    pub database_url: String,
    /// Contract addresses.
    pub deployment: kippu_chain::Deployment,
    /// Chain adapter.
    pub chain: Chain,
    /// Store.
    pub store: Store,
    /// Event follower.
    pub indexer: Indexer,
    /// Validator service.
    pub validator: ValidatorHandle,
    /// The public key gates trust for verdicts and snapshots.
    pub verdict_key: ed25519_dalek::VerifyingKey,
    /// The demo's extras (anvil, fake Stripe, simulated gates).
    #[cfg(feature = "dev")]
    pub demo: Option<crate::dev::Demo>,
    /// The running core (indexer, validator state, insurer, period close).
    pub core: Arc<Core>,
    pub(crate) tasks: Vec<JoinHandle<()>>,
    _broker: Broker,
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
    /// Stops everything (in the demo, anvil included).
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        #[cfg(feature = "dev")]
        {
            let mut this = self;
            if let Some(d) = this.demo.take() {
                d.stop().await;
            }
        }
    }
}

/// What the platform's core runs: what the web layer and the demo reach through [`Platform`].
pub struct Core {
    pub(crate) indexer: Indexer,
    pub(crate) fleet: FleetWatcher,
    /// The in-process validator's state (revocations reach it at once).
    pub(crate) validator_state: Arc<Mutex<Validator>>,
    pub(crate) insurer: DelayInsurer,
    pub(crate) chain: Chain,
    pub(crate) store: Store,
    /// One close at a time in this process: each reads and replaces the carried positions.
    pub(crate) closing: Mutex<()>,
}

impl Core {
    /// Closes the clearing period on chain (one close at a time in this process; the contract
    /// refuses a second close of the same period from anywhere).
    pub async fn close_period(&self) -> anyhow::Result<crate::settle::Closed> {
        let _one = self.closing.lock().await;
        crate::settle::close_period(&self.chain, &self.store, &self.indexer, now()).await
    }
}

/// The production side of the web layer's [`Platform`].
pub(crate) struct Services(pub(crate) Arc<Core>);

#[async_trait]
impl Platform for Services {
    async fn catch_up(&self) {
        if let Err(e) = self.0.indexer.catch_up().await {
            tracing::warn!(error = %e, "catch-up failed");
        }
    }

    async fn gates(&self) -> Vec<GateStatus> {
        let fleet = self.0.fleet.snapshot();
        // Registered gates (read each time: `kippu gate add` runs in another process) plus any
        // gate the broker reports, registered or not.
        let stations: HashMap<String, String> = match self.0.store.gates().await {
            Ok(rows) => rows.into_iter().map(|g| (g.gate_key, g.station)).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "gates not read for the fleet page");
                HashMap::new()
            }
        };
        let mut keys: Vec<&String> = stations.keys().chain(fleet.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .map(|k| GateStatus {
                key: k.clone(),
                station: stations.get(k).cloned().unwrap_or_else(|| "not registered".into()),
                state: match fleet.get(k) {
                    Some(MqttGateStatus::Online) => "online",
                    Some(MqttGateStatus::Offline) => "offline",
                    None => "never seen",
                }
                .into(),
                last: String::new(),
                did: String::new(),
            })
            .collect()
    }

    async fn timetable_imported(&self, operator_id: u32, timetable: kippu_gtfs::Timetable) {
        self.0.insurer.add_timetable(operator_id, timetable);
    }

    async fn key_revoked(&self, holder: alloy::primitives::Address) {
        self.0.validator_state.lock().await.revoke_key(holder);
    }

    async fn card_bound(&self, card_key: [u8; 32], ticket_id: u64, sig: Vec<u8>) {
        if let Err(e) = self.0.validator_state.lock().await.bind_card(card_key, ticket_id, &sig) {
            tracing::error!(error = %e, ticket_id, "card binding does not verify; not loaded");
        }
    }

    async fn device_revoked(&self, device_key: [u8; 32]) {
        self.0.validator_state.lock().await.revoke_device(device_key);
    }

    async fn card_unbound(&self, card_key: [u8; 32]) {
        self.0.validator_state.lock().await.unbind_card(&card_key);
    }

    fn metrics(&self) -> String {
        prometheus().render()
    }
}

/// The process-wide Prometheus recorder; installed once, even when a test process starts
/// several stacks.
pub fn prometheus() -> &'static metrics_exporter_prometheus::PrometheusHandle {
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

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Every operator's current timetable, as imported.
async fn current_timetables(store: &Store) -> anyhow::Result<Vec<(u32, kippu_gtfs::Timetable)>> {
    use base64::Engine as _;
    let operators: HashMap<String, u32> = store.operators().await?.into_iter().map(|o| (o.slug, o.id)).collect();
    let mut out = Vec::new();
    for t in store.current_timetables().await? {
        let Some(&operator) = operators.get(&t.operator_slug) else { continue };
        let zip = base64::engine::general_purpose::STANDARD.decode(&t.feed)?;
        out.push((operator, kippu_gtfs::import_timetable(&zip)?));
    }
    Ok(out)
}

/// `host[:port]` of a URL: the did:web authority Kippu's DIDs live under.
fn authority_of(url: &str) -> String {
    url.split("://").nth(1).unwrap_or(url).split('/').next().unwrap_or("localhost").to_owned()
}

/// DIDs and credentials: publishes every did:web document Kippu answers for.
async fn identity_services(w: &Wiring, web_url: &str) -> anyhow::Result<IdentityServices> {
    let cfg = &w.cfg;
    let authority = authority_of(web_url);
    let attestor = w.secrets.evm_key(SecretName::AttestorKey);
    // Holders' and issuers' DID documents are fetched only from public addresses; the allow-list
    // exists for tests (`kippu serve` refuses a non-empty one).
    let policy = kippu_credentials::FetchPolicy {
        allow_hosts: cfg.identity.did_fetch_allow_hosts.clone(),
        ..Default::default()
    };
    let resolver =
        Resolver::with_policy(did_web(&authority, &[]), Duration::from_secs(cfg.identity.did_cache_secs), policy);
    let chain_id = w.chain.deployment().chain_id;
    let root = did_web(&authority, &[]);
    let attestor_account = attestor.address().to_checksum(None);
    resolver.publish(&root, &account_document(&root, chain_id, &attestor_account, "Kippu consortium"));
    for o in w.store.operators().await? {
        let did = did_web(&authority, &["operators", &o.slug]);
        resolver.publish(&did, &account_document(&did, chain_id, &o.payee.to_checksum(None), &o.name));
    }
    for i in w.store.issuers().await? {
        let seed = w.keystore.open_seed(&i.did, &i.sealed_seed).with_context(|| format!("issuer {} key", i.slug))?;
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
        portal: kippu_web::PortalAuth::new(&w.staff_password),
    })
}

/// Every 30 s, each operator's gates get a fresh signed snapshot on their retained `config`
/// topic: the tickets valid with the operator, the revoked keys and the validator's key, so a
/// gate that loses its network keeps deciding with today's data. One broker connection serves
/// every gate.
async fn publish_snapshots(
    publisher: kippu_mqtt::ConfigPublisher,
    store: Store,
    state: Arc<Mutex<Validator>>,
    key: Arc<ed25519_dalek::SigningKey>,
    chain_id: u64,
) {
    use kippu_domain::snapshot::{GateSnapshot, SnapshotCard, SnapshotTicket, SNAPSHOT_VERSION};
    let mut every = tokio::time::interval(Duration::from_secs(30));
    loop {
        every.tick().await;
        // What the database holds first: tickets bought since start-up (this validator otherwise
        // loads them on their first scan, too late for a gate that is already offline), gates
        // added by `kippu gate add`, and revocations or card changes made through another process.
        let gates = match store.gates().await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(error = %e, "gates not read; snapshots retried next round");
                continue;
            }
        };
        match crate::validator::Stored::fetch(&store).await {
            Ok(stored) => {
                let mut v = state.lock().await;
                for g in &gates {
                    v.add_gate(&g.gate_key, kippu_domain::GateInfo { operator_id: g.operator_id });
                }
                stored.apply(&mut v);
            }
            Err(e) => tracing::warn!(error = %e, "validator state not refreshed before the snapshot"),
        }
        let now = now() as u64;
        let mut operators: Vec<u32> = gates.iter().map(|g| g.operator_id).collect();
        operators.sort_unstable();
        operators.dedup();
        for op in operators {
            let (tickets, revoked_holders, revoked_devices, cards) = {
                let v = state.lock().await;
                let (t, h, d) = v.offline_view(op, now);
                (t, h, d, v.offline_cards(op, now))
            };
            let keys: Vec<String> = gates.iter().filter(|g| g.operator_id == op).map(|g| g.gate_key.clone()).collect();
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
            let bytes = kippu_mqtt::Bytes::from(snapshot.sign(&key).to_bytes());
            for gate_key in &keys {
                let Some(path) = GatePath::parse_key(gate_key) else { continue };
                if let Err(e) = publisher.publish(&path, bytes.clone()).await {
                    tracing::warn!(gate = %gate_key, error = %e, "gate snapshot not published; retrying next round");
                }
            }
        }
        metrics::gauge!("kippu_job_last_success_seconds", "job" => "snapshots").set(now as f64);
    }
}

/// Runs `round` every `every`, logging failures; the job's last success is a metric.
fn every(
    name: &'static str,
    every: Duration,
    round: impl Fn() -> futures::future::BoxFuture<'static, anyhow::Result<()>> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            match round().await {
                Ok(()) => metrics::gauge!("kippu_job_last_success_seconds", "job" => name).set(now() as f64),
                Err(e) => tracing::warn!(job = name, error = format!("{e:#}"), "job round failed; retrying next round"),
            }
        }
    })
}

/// The broker the platform uses: the embedded one (gates log in with their own credentials
/// from the database; TLS when configured), or an external one.
pub(crate) struct Broker {
    /// URL gates and platform services connect to (no credentials).
    pub(crate) url: MqttUrl,
    /// Kept alive for the process.
    pub(crate) _embedded: Option<EmbeddedBroker>,
}

pub(crate) fn start_broker(cfg: &Config, store: &Store) -> anyhow::Result<Broker> {
    let ca = |url: MqttUrl| -> anyhow::Result<MqttUrl> {
        Ok(match &cfg.mqtt.ca_file {
            Some(ca) if url.is_tls() => url.with_tls(ClientTls::from_ca_file(ca).context("mqtt.ca_file")?),
            _ => url,
        })
    };
    match &cfg.mqtt.url {
        Some(u) => Ok(Broker { url: ca(MqttUrl::parse(u).context("mqtt.url")?)?, _embedded: None }),
        None => {
            let bind: SocketAddr = cfg.mqtt.embedded_bind.parse().context("mqtt.embedded_bind")?;
            let tls = match (&cfg.mqtt.tls_cert_file, &cfg.mqtt.tls_key_file) {
                (Some(cert), Some(key)) => Some(ServerTls::from_pem_files(cert, key).context("mqtt TLS")?),
                (None, None) => None,
                _ => anyhow::bail!("mqtt.tls_cert_file and mqtt.tls_key_file go together"),
            };
            let options = kippu_mqtt::SecuredOptions {
                tls,
                recheck_every: Duration::from_secs(cfg.mqtt.credential_recheck_secs.max(1)),
            };
            let creds: Arc<dyn kippu_mqtt::CredentialStore> = Arc::new(crate::gates::DbCredentials(store.clone()));
            let b = EmbeddedBroker::start_secured_with(bind, creds, options)?;
            let url = ca(b.mqtt_url())?;
            Ok(Broker { url, _embedded: Some(b) })
        }
    }
}

/// Starts the platform from `w`. The demo passes `dev` to add its simulated gates and routes.
pub async fn start(w: Wiring, #[cfg(feature = "dev")] dev: Option<crate::dev::DevStart>) -> anyhow::Result<Stack> {
    prometheus();
    let cfg = w.cfg.clone();
    let store = w.store.clone();
    let chain = w.chain.clone();
    let web_addr = w.listener.local_addr()?;
    let web_url = cfg.web.public_url.clone().unwrap_or_else(|| format!("http://{web_addr}"));

    let broker = start_broker(&cfg, &store)?;
    // Platform-side clients (validator, fleet watcher, snapshot publisher) log in as the validator.
    let mqtt = broker
        .url
        .clone()
        .with_login(kippu_mqtt::VALIDATOR_USERNAME, &w.secrets.text(SecretName::MqttValidatorPassword));

    let indexer = Indexer::new(chain.clone(), store.clone(), cfg.chain.confirmations);
    indexer.catch_up().await.context("first indexer pass")?;
    let mut tasks = vec![tokio::spawn(indexer.clone().run(Duration::from_millis(cfg.chain.poll_ms)))];
    tasks.push(tokio::spawn(crate::reconcile::run(
        chain.clone(),
        store.clone(),
        Duration::from_secs(cfg.chain.reconcile_secs.max(1)),
    )));

    // Validator: gates, tickets, revocations and cards preloaded, misses looked up in the database.
    let v = crate::validator::load_state(&store, chain.deployment().chain_id).await?;
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
    let verdict_key = Arc::new(w.secrets.verdict_key());
    let validator = crate::validator::spawn(
        &store,
        &mqtt,
        &kippu_mqtt::client_id("kippu-validator"),
        kippu_mqtt::ValidatorOptions {
            shared: cfg.mqtt.shared_subscription,
            signer: Some(verdict_key.clone()),
            ..Default::default()
        },
        validator_state.clone(),
    )
    .await?;

    // Every tap batch: rides recorded on chain (a ridden ticket cannot be refunded there), then
    // anchored. Drains what is waiting each round.
    let (anchor_chain, anchor_store) = (chain.clone(), store.clone());
    tasks.push(every("tap_batches", Duration::from_secs(cfg.settlement.anchor_secs.max(1)), move || {
        let (chain, store) = (anchor_chain.clone(), anchor_store.clone());
        Box::pin(async move {
            while crate::anchor::anchor_pending(&chain, &store).await?.is_some() {}
            Ok(())
        })
    }));

    let publisher = kippu_mqtt::ConfigPublisher::spawn(&mqtt, Duration::from_secs(10));
    tasks.push(tokio::spawn(publish_snapshots(
        publisher,
        store.clone(),
        validator_state.clone(),
        verdict_key.clone(),
        chain.deployment().chain_id,
    )));
    let insurer = DelayInsurer::new(
        store.clone(),
        cfg.insurance.threshold_minutes,
        cfg.insurance.feed_max_age_secs,
        w.reporters.clone(),
        current_timetables(&store).await?,
    );
    if let Some(url) = &cfg.insurance.feed_url {
        let every = Duration::from_secs(cfg.insurance.poll_secs.max(1));
        tasks.push(tokio::spawn(crate::insurance::poll(insurer.clone(), url.clone(), every)));
    }
    let fleet = FleetWatcher::spawn(&mqtt, &kippu_mqtt::client_id("kippu-fleet"));
    let core = Arc::new(Core {
        indexer: indexer.clone(),
        fleet,
        validator_state,
        insurer,
        chain: chain.clone(),
        store: store.clone(),
        closing: Mutex::new(()),
    });
    // Periods close on schedule here, or by `kippu close-period`; never by an open route.
    if cfg.settlement.period_secs > 0 {
        let (close_core, period) = (core.clone(), cfg.settlement.period_secs as i64);
        // Checked every minute (or every period, when periods are shorter than that).
        let check = Duration::from_secs(cfg.settlement.period_secs.clamp(1, 60));
        tasks.push(every("period_close", check, move || {
            let core = close_core.clone();
            Box::pin(async move {
                // The first period runs from the deployment's block.
                let since = match core.store.last_period_close().await? {
                    Some(c) => c.closed_at,
                    None => {
                        let block = core.chain.deployment().deploy_block;
                        core.chain.block_header(block).await?.map_or(0, |(_, _, at)| at as i64)
                    }
                };
                if now() - since >= period {
                    let closed = core.close_period().await?;
                    tracing::info!(period = closed.period_id, "scheduled period close");
                }
                Ok(())
            })
        }));
    }

    let identity = identity_services(&w, &web_url).await?;
    let platform: Arc<dyn Platform> = Arc::new(Services(core.clone()));
    #[cfg(feature = "dev")]
    let (demo, dev_platform) = match dev {
        Some(d) => {
            let (demo, p) = d.attach(&core, &broker, &verdict_key, &store.gates().await?).await?;
            (Some(demo), Some(p))
        }
        None => (None, None),
    };
    let state = AppState::new(Inner {
        store: store.clone(),
        chain: chain.clone(),
        keystore: w.keystore,
        challenges: ChallengeBook::default(),
        presentation_challenges: ChallengeBook::default(),
        checkout: w.checkout,
        webhook_secret: cfg.stripe.webhook_secret.clone(),
        public_url: web_url.clone(),
        platform,
        #[cfg(feature = "dev")]
        dev: dev_platform,
        identity,
        login_limits: kippu_web::LoginLimits::default().with_trusted_proxies(cfg.web.trusted_proxies.clone()),
        passkeys: kippu_web::Passkeys::new(&web_url),
        checkout_origin: w.checkout_origin.clone(),
        metrics_token: Some(w.secrets.text(SecretName::MetricsToken)),
    });
    let app = kippu_web::router(state);
    let listener = w.listener;
    tasks.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await {
            tracing::error!(error = %e, "web server stopped");
        }
    }));
    let metrics_url = match &cfg.web.metrics_bind {
        Some(bind) => {
            let l = tokio::net::TcpListener::bind(bind).await.with_context(|| format!("web.metrics_bind {bind}"))?;
            let url = format!("http://{}/metrics", l.local_addr()?);
            let app = axum::Router::new().route(
                "/metrics",
                axum::routing::get(|| async {
                    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], prometheus().render())
                }),
            );
            tasks.push(tokio::spawn(async move {
                if let Err(e) = axum::serve(l, app).await {
                    tracing::error!(error = %e, "metrics listener stopped");
                }
            }));
            Some(url)
        }
        None => None,
    };

    Ok(Stack {
        web_url,
        metrics_url,
        mqtt_url: broker.url.to_string(),
        rpc_url: w.rpc_url,
        stripe_url: w.stripe_url,
        database_url: cfg.database_url(),
        deployment: chain.deployment().clone(),
        chain,
        store,
        indexer,
        validator,
        verdict_key: verdict_key.verifying_key(),
        #[cfg(feature = "dev")]
        demo,
        tasks,
        _broker: broker,
        core,
    })
}
