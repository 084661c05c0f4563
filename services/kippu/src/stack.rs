//! The running platform: what `kippu serve` and `kippu dev` both start once they have a
//! database, a chain, secrets and a payment provider ([`Wiring`]). The demo adds its anvil,
//! seed, fake Stripe and simulated gates around exactly this, so the end-to-end tests exercise
//! what operators run.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kippu_chain::Chain;
use kippu_identity::ChallengeBook;
use kippu_mqtt::{FleetWatcher, ValidatorHandle};
use kippu_store::Store;
use kippu_web::{AppState, Inner};
use tokio::sync::Mutex;

use crate::clock::now;
use crate::config::Config;
use crate::indexer::Indexer;
use crate::insurance::DelayInsurer;
use crate::jobs::{JobSettings, Supervisor};
pub use crate::platform::Core;
use crate::platform::Services;
use crate::secrets::SecretName;
pub(crate) use crate::wiring::Broker;
pub use crate::wiring::Wiring;
use crate::wiring::{current_timetables, identity_services, serve_metrics, serve_web, start_broker};

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
    /// What an add-on keeps running beside the platform (the demo's anvil, fake Stripe and
    /// simulated gates; `kippu::dev::demo` reads it back).
    #[cfg(feature = "dev")]
    pub demo: Option<Box<dyn Extra>>,
    /// The running core (indexer, validator state, insurer, period close).
    pub core: Arc<Core>,
    /// The supervised jobs and tasks of this process.
    pub jobs: Supervisor,
    _broker: Broker,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.jobs.abort();
        self.validator.abort();
    }
}

impl Stack {
    /// Stops everything (in the demo, anvil included).
    pub async fn shutdown(self) {
        self.jobs.abort();
        #[cfg(feature = "dev")]
        {
            let mut this = self;
            if let Some(d) = this.demo.take() {
                d.stop().await;
            }
        }
    }
}

/// What an add-on started beside the platform keeps running: the stack holds it and stops
/// it on shutdown. The stack knows only this trait, never the demo that implements it.
#[cfg(feature = "dev")]
#[async_trait::async_trait]
pub trait Extra: Send + Sync {
    /// Stops what it runs.
    async fn stop(self: Box<Self>);
    /// For its owner to read it back.
    fn as_any(&self) -> &dyn std::any::Any;
}

/// An add-on that attaches to the running core once it is up: `kippu dev` gives one that
/// connects its simulated gates and serves the demo's controls.
#[cfg(feature = "dev")]
#[async_trait::async_trait]
pub trait AddOn: Send {
    /// Attaches to `core`; returns what it keeps running and the web app's demo controls.
    async fn attach(
        self: Box<Self>,
        core: &Arc<Core>,
        broker: &kippu_mqtt::MqttUrl,
        verdict_key: &ed25519_dalek::SigningKey,
        gates: &[kippu_store::GateRow],
    ) -> anyhow::Result<(Box<dyn Extra>, Arc<dyn kippu_web::DevPlatform>)>;
}

/// Starts the platform from `w`: the composition root. The demo passes `dev` to add its
/// simulated gates and routes.
pub async fn start(w: Wiring, #[cfg(feature = "dev")] dev: Option<Box<dyn AddOn>>) -> anyhow::Result<Stack> {
    crate::telemetry::prometheus();
    let cfg = w.cfg.clone();
    let store = w.store.clone();
    // Every business write goes through the outbox: recorded first, sent and followed to
    // depth by the sender below (issue 20). Clones of `chain` share it.
    let outbox_policy = kippu_domain::outbox::Policy {
        confirmations: cfg.chain.confirmations.max(1),
        resend_after_secs: cfg.chain.resend_after_secs.max(1) as i64,
        stuck_after_attempts: 5,
    };
    let outbox = Arc::new(kippu_chain::Outbox::new(Arc::new(store.clone()), Arc::new(store.clone()), outbox_policy));
    let chain = if cfg.chain.outbox { w.chain.clone().with_outbox(outbox) } else { w.chain.clone() };
    // The sender runs before anything below can write, so no write waits on it.
    let mut jobs = Supervisor::default();
    let c = chain.clone();
    let every = Duration::from_millis(cfg.chain.poll_ms.max(1));
    let outbox_job =
        if cfg.chain.outbox { cfg.jobs.outbox.clone() } else { JobSettings { enabled: false, ..Default::default() } };
    jobs.service(
        "outbox",
        &outbox_job,
        Box::new(move || {
            let c = c.clone();
            Box::pin(async move {
                c.run_outbox(every).await;
                Ok(())
            })
        }),
    );
    // The settler's own reporter writes through the outbox too (one sender per key).
    let reporters: Vec<Chain> =
        w.reporters.iter().map(|r| if r.admin() == chain.admin() { chain.clone() } else { r.clone() }).collect();
    let web_url = cfg.web.public_url.clone().unwrap_or_else(|| format!("http://{}", w.listener.local_addr().unwrap()));

    let broker = start_broker(&cfg, &store)?;
    // Platform-side clients (validator, fleet watcher, snapshot publisher) log in as the validator.
    let mqtt = broker
        .url
        .clone()
        .with_login(kippu_mqtt::VALIDATOR_USERNAME, &w.secrets.text(SecretName::MqttValidatorPassword));

    let indexer = Indexer::new(chain.clone(), store.clone(), cfg.chain.confirmations);
    indexer.catch_up().await.context("first indexer pass")?;

    // Validator: gates, tickets, revocations and cards preloaded, misses looked up in the database.
    let v = crate::validator::load_state(&store, chain.deployment().chain_id).await?;
    let validator_state = Arc::new(Mutex::new(v));
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
    let insurer = DelayInsurer::new(
        store.clone(),
        cfg.insurance.threshold_minutes,
        cfg.insurance.feed_max_age_secs,
        reporters,
        current_timetables(&store).await?,
    );
    let core = Arc::new(Core {
        indexer: indexer.clone(),
        fleet: FleetWatcher::spawn(&mqtt, &kippu_mqtt::client_id("kippu-fleet")),
        validator_state,
        insurer,
        chain: chain.clone(),
        store: store.clone(),
        outbox_policy,
        closing: Mutex::new(()),
    });
    start_jobs(&mut jobs, &cfg, &core, &mqtt, &verdict_key);

    let identity = identity_services(&w, &web_url).await?;
    #[cfg(feature = "dev")]
    let (demo, dev_platform) = match dev {
        Some(d) => {
            let (demo, p) = d.attach(&core, &broker.url, &verdict_key, &store.gates().await?).await?;
            (Some(demo), Some(p))
        }
        None => (None, None),
    };
    let state = AppState::new(Inner {
        store: Arc::new(store.clone()),
        chain: Arc::new(chain.clone()),
        chain_writes: Arc::new(store.clone()),
        outbox_policy,
        keystore: w.keystore,
        challenges: ChallengeBook::default(),
        presentation_challenges: ChallengeBook::default(),
        checkout: Arc::new(w.checkout),
        webhook_secret: cfg.stripe.webhook_secret.clone(),
        public_url: web_url.clone(),
        platform: Arc::new(Services(core.clone())),
        #[cfg(feature = "dev")]
        dev: dev_platform,
        identity,
        login_limits: kippu_web::LoginLimits::default().with_trusted_proxies(cfg.web.trusted_proxies.clone()),
        passkeys: kippu_web::Passkeys::new(&web_url),
        checkout_origin: w.checkout_origin.clone(),
        metrics_token: Some(w.secrets.text(SecretName::MetricsToken)),
    });
    jobs.task(serve_web(w.listener, kippu_web::router(state)));
    let metrics_url = match &cfg.web.metrics_bind {
        Some(bind) => {
            let (url, task) = serve_metrics(bind, core.clone()).await?;
            jobs.task(task);
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
        jobs,
        _broker: broker,
        core,
    })
}

/// The singleton jobs, each supervised on its own schedule (see [`crate::jobs`]).
fn start_jobs(
    jobs: &mut Supervisor,
    cfg: &Config,
    core: &Arc<Core>,
    mqtt: &kippu_mqtt::MqttUrl,
    verdict_key: &Arc<ed25519_dalek::SigningKey>,
) {
    let j = &cfg.jobs;
    let c = core.clone();
    jobs.every(
        "follower",
        &j.follower,
        Duration::from_millis(cfg.chain.poll_ms.max(1)),
        Box::new(move || {
            let indexer = c.indexer.clone();
            Box::pin(async move { indexer.catch_up().await.map(drop) })
        }),
    );
    // A reorg can take tickets away: the gates must stop honouring them at once.
    let (mut rollbacks, c) = (core.indexer.rollbacks(), core.clone());
    jobs.task(tokio::spawn(async move {
        while rollbacks.changed().await.is_ok() {
            match crate::validator::Stored::fetch(&c.store).await {
                Ok(stored) => {
                    stored.apply(&mut *c.validator_state.lock().await);
                    tracing::warn!("validator refreshed after a chain reorganisation");
                }
                Err(e) => tracing::error!(error = %e, "validator not refreshed after a reorganisation"),
            }
        }
    }));
    let c = core.clone();
    jobs.every(
        "reconciler",
        &j.reconciler,
        Duration::from_secs(cfg.chain.reconcile_secs.max(1)),
        Box::new(move || {
            let (chain, store) = (c.chain.clone(), c.store.clone());
            Box::pin(async move { crate::reconcile::reconcile(&chain, &store, now()).await.map(drop) })
        }),
    );
    // Every tap batch: rides recorded on chain (a ridden ticket cannot be refunded there), then
    // anchored. Each round drains what is waiting.
    let c = core.clone();
    jobs.every(
        "tap_batches",
        &j.tap_batches,
        Duration::from_secs(cfg.settlement.anchor_secs.max(1)),
        Box::new(move || {
            let (chain, store) = (c.chain.clone(), c.store.clone());
            Box::pin(async move {
                while crate::anchor::anchor_pending(&chain, &store).await?.is_some() {}
                Ok(())
            })
        }),
    );
    if j.snapshots.enabled {
        let snapshots = Arc::new(crate::snapshots::Snapshots {
            publisher: kippu_mqtt::ConfigPublisher::spawn(mqtt, Duration::from_secs(10)),
            store: core.store.clone(),
            state: core.validator_state.clone(),
            key: verdict_key.clone(),
            chain_id: core.chain.deployment().chain_id,
        });
        jobs.every(
            "snapshots",
            &j.snapshots.settings(),
            Duration::from_secs(j.snapshots.every_secs.max(1)),
            Box::new(move || {
                let s = snapshots.clone();
                Box::pin(async move { s.round().await })
            }),
        );
    }
    // Periods close on schedule here, or by `kippu close-period`; never by an open route.
    if cfg.settlement.period_secs > 0 {
        let (c, period) = (core.clone(), cfg.settlement.period_secs as i64);
        // Checked every minute (or every period, when periods are shorter than that).
        let check = Duration::from_secs(cfg.settlement.period_secs.clamp(1, 60));
        jobs.every(
            "period_close",
            &j.period_close,
            check,
            Box::new(move || {
                let c = c.clone();
                Box::pin(async move {
                    // The first period runs from the deployment's block.
                    let since = match c.store.last_period_close().await? {
                        Some(last) => last.closed_at,
                        None => {
                            let block = c.chain.deployment().deploy_block;
                            c.chain.block_header(block).await?.map_or(0, |(_, _, at)| at as i64)
                        }
                    };
                    if now() - since >= period {
                        let closed = c.close_period().await?;
                        tracing::info!(period = closed.period_id, "scheduled period close");
                        let target = format!("period {}", closed.period_id);
                        use kippu_domain::audit::AuditAction::PeriodClosed;
                        crate::audit::record(&c.store, "job:period_close", "kippu", PeriodClosed, &target).await?;
                    }
                    Ok(())
                })
            }),
        );
    }
    if let Some(url) = cfg.insurance.feed_url.clone() {
        let c = core.clone();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("an HTTP client");
        jobs.every(
            "delay_feed",
            &j.delay_feed,
            Duration::from_secs(cfg.insurance.poll_secs.max(1)),
            Box::new(move || {
                let (c, http, url) = (c.clone(), http.clone(), url.clone());
                Box::pin(async move { crate::insurance::poll_once(&c.insurer, &http, &url).await })
            }),
        );
    }
}
