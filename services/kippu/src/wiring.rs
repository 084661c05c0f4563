//! Wiring the adapters: the broker (embedded with the gates' logins from the database, or
//! external), the DID documents Kippu answers for, the timetables the insurer starts from.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kippu_credentials::{account_document, did_web, issuer_document, Concession, Credentials, IssuerKey, Resolver};
use kippu_mqtt::{ClientTls, EmbeddedBroker, MqttUrl, ServerTls};
use kippu_store::Store;
use kippu_web::IdentityServices;

use crate::config::Config;
use crate::secrets::SecretName;
use crate::secrets::Secrets;
use kippu_chain::Chain;
use kippu_identity::Keystore;
use kippu_payments::Checkout;

/// Every operator's current timetable, as imported.
pub(crate) async fn current_timetables(store: &Store) -> anyhow::Result<Vec<(u32, kippu_gtfs::Timetable)>> {
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
pub(crate) async fn identity_services(w: &Wiring, web_url: &str) -> anyhow::Result<IdentityServices> {
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
    Ok(IdentityServices { credentials: Credentials::new(resolver), authority, attestor, discounts })
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

/// Serves the web app on `listener` until the process ends.
pub(crate) fn serve_web(listener: tokio::net::TcpListener, app: axum::Router) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await {
            tracing::error!(error = %e, "web server stopped");
        }
    })
}

/// Serves `/metrics` with no login on its own listener (`web.metrics_bind`, where only
/// Prometheus reaches); returns its URL.
pub(crate) async fn serve_metrics(
    bind: &str,
    core: std::sync::Arc<crate::platform::Core>,
) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let l = tokio::net::TcpListener::bind(bind).await.with_context(|| format!("web.metrics_bind {bind}"))?;
    let url = format!("http://{}/metrics", l.local_addr()?);
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let core = core.clone();
            async move {
                // The same figures as the web app's `/metrics`, the outbox's read now.
                core.refresh_metrics().await;
                let text = crate::telemetry::prometheus().render();
                ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
            }
        }),
    );
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(l, app).await {
            tracing::error!(error = %e, "metrics listener stopped");
        }
    });
    Ok((url, task))
}

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
}
