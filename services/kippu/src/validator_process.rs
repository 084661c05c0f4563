//! `kippu validator`: one more validator process beside a running platform (scaling out the
//! gates' validation, or one per operator). Apart from [`crate::validator`], which the
//! platform itself runs, because it reads the deployment's files as `kippu serve` does.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kippu_mqtt::{MqttUrl, ValidatorOptions};
use kippu_store::Store;
use tokio::sync::Mutex;

use crate::config::Config;
use crate::secrets::{SecretName, Secrets};
use crate::validator::{load_state, spawn, Stored};

/// `kippu validator`: one more validator process beside a running platform, until `stop`.
pub async fn run(
    cfg: &Config,
    operator: Option<String>,
    refresh_every: Duration,
    stop: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let database_url = cfg.database_url();
    let url = cfg
        .mqtt
        .url
        .as_deref()
        .context("kippu validator needs the platform's broker: set mqtt.url (KIPPU_MQTT_URL)")?;
    // The verdict key and the MQTT login are the deployment's sealed secrets: every validator
    // process signs with the one key its gates trust.
    let keystore = crate::serve::master_key_unchecked(cfg).map_err(|r| anyhow::anyhow!("{r}"))?;
    let secrets = Secrets::load(&cfg.secrets_path(), &keystore)?;
    let store = Store::connect(&database_url).await.context("connecting the database")?;
    let mut mqtt = MqttUrl::parse(url)?;
    if let (Some(ca), true) = (&cfg.mqtt.ca_file, mqtt.is_tls()) {
        mqtt = mqtt.with_tls(kippu_mqtt::ClientTls::from_ca_file(ca).context("mqtt.ca_file")?);
    }
    // Validators log in as `validator` with the sealed password, unless the URL names a login.
    if mqtt.username.is_none() {
        mqtt = mqtt.with_login(crate::gates::VALIDATOR, &secrets.text(SecretName::MqttValidatorPassword));
    }
    // Passes name their chain: the deployment's, or the configured one beside a demo.
    let chain_id =
        crate::serve::read_deployment(&cfg.deployment_path()).map(|d| d.chain_id).unwrap_or(cfg.chain.chain_id);
    let state = Arc::new(Mutex::new(load_state(&store, chain_id).await?));
    let opts = ValidatorOptions {
        shared: cfg.mqtt.shared_subscription,
        operator,
        signer: Some(Arc::new(secrets.verdict_key())),
        ..Default::default()
    };
    let handle = spawn(&store, &mqtt, &kippu_mqtt::client_id("kippu-validator"), opts, state.clone()).await?;
    tracing::info!(broker = %mqtt, "validator ready");
    println!("validator ready pid={}", std::process::id());
    // Revocations, refunds and reorgs reach the platform's own validator at once; this one
    // learns them from the database (new tickets it looks up on their first scan).
    let mut every = tokio::time::interval(refresh_every);
    every.tick().await;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = every.tick() => match Stored::fetch(&store).await {
                Ok(stored) => stored.apply(&mut *state.lock().await),
                Err(e) => tracing::warn!(error = %e, "validator state not refreshed; retrying next round"),
            },
            r = &mut stop => {
                r?;
                break;
            }
        }
    }
    handle.abort();
    Ok(())
}
