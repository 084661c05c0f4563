//! `kippu init`: once per deployment. Deploys the contracts to the configured chain with an
//! explicit deployer key, grants each role to its own key — a cold admin key that only grants
//! roles and pauses, and hot keys for minting, relaying, settlement and the catalogue — and has
//! the deployer renounce everything. Generates fresh random secrets, seals them under the master
//! key, and records the deployment (addresses, chain id, block, runtime code hashes). Every file
//! it writes is mode 0600 and none is ever overwritten.

use std::path::{Path, PathBuf};

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use anyhow::Context;
use kippu_chain::{InsuranceTerms, RoleHolders};
use kippu_identity::Keystore;
use kippu_store::Store;

use crate::config::Config;
use crate::secrets::{self, SecretName, Secrets};

/// What `kippu init` is told on the command line.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// File holding the deployer's private key (hex): it pays for the deployment, then holds no role.
    pub deployer_key_file: PathBuf,
    /// The cold admin's address (a key kept offline). None: generate one and write it to
    /// `data_dir/cold-admin.key` for the operator to move offline.
    pub admin: Option<Address>,
    /// Wei the deployer sends each hot key for gas (on chains that charge gas).
    pub fund_hot_keys_wei: u128,
    /// The operator whose vouchers the insurance's default terms name (0: none yet).
    pub voucher_operator_id: u32,
    /// Host names and addresses gates reach the embedded broker at, for its TLS certificate
    /// (`localhost`, `127.0.0.1` and the public URL's host are always in it).
    pub mqtt_hosts: Vec<String>,
    /// The e-mail of the consortium's first admin: they get a one-time link to set a password.
    pub admin_email: String,
}

/// What `kippu init` did.
#[derive(Debug)]
pub struct Initialised {
    /// The deployment record written.
    pub deployment: kippu_chain::Deployment,
    /// Where the master key was written (None: it came from configuration).
    pub master_key_file: Option<PathBuf>,
    /// Where a generated cold admin key was written.
    pub cold_admin_file: Option<PathBuf>,
    /// The first admin's one-time invitation link, to show once.
    pub admin_invitation: String,
    /// The sealed secrets' file.
    pub secrets_file: PathBuf,
    /// The deployment record's file.
    pub deployment_file: PathBuf,
    /// The embedded broker's TLS files `(CA for gates, certificate chain, key)`, when made.
    pub broker_tls: Option<(PathBuf, PathBuf, PathBuf)>,
}

/// A CA of this deployment and a certificate it signs for the embedded broker: the broker
/// serves TLS from its first start, and gates trust the CA (written beside, public).
fn broker_certificate(cfg: &Config, extra_hosts: &[String]) -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    if let Some(url) = &cfg.web.public_url {
        let host = url.split("://").nth(1).unwrap_or(url).split(['/', ':']).next().unwrap_or("");
        if !host.is_empty() {
            hosts.push(host.to_owned());
        }
    }
    hosts.extend(extra_hosts.iter().cloned());
    hosts.sort();
    hosts.dedup();
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name.push(DnType::CommonName, "Kippu gate broker CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
    let key = KeyPair::generate()?;
    let mut server = CertificateParams::new(hosts)?;
    server.distinguished_name.push(DnType::CommonName, "Kippu gate broker");
    let cert = server.signed_by(&key, &ca)?;
    let (ca_file, cert_file, key_file) =
        (cfg.data_dir.join("mqtt-ca.pem"), cfg.data_dir.join("mqtt-server.pem"), cfg.data_dir.join("mqtt-server.key"));
    for (path, text) in [(&ca_file, ca.pem()), (&cert_file, cert.pem()), (&key_file, key.serialize_pem())] {
        secrets::create_private(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok((ca_file, cert_file, key_file))
}

/// The consortium and its first admin, with their invitation link. A resumed `kippu init`
/// (the admin was made, the deployment failed) gives the same admin a fresh link.
async fn first_admin(cfg: &Config, store: &Store, email: &str) -> anyhow::Result<String> {
    use kippu_app::staff::{InviteError, OrganisationError};
    let now = crate::clock::now();
    let url = cfg.web.public_url.clone().unwrap_or_else(|| format!("http://{}", cfg.web.bind));
    let inv = match kippu_app::staff::first_admin(store, email, now).await {
        Ok(inv) => inv,
        Err(OrganisationError::FirstStaff(InviteError::Taken(_))) => {
            let email = kippu_app::accounts::normalize_email(email).map_err(|e| anyhow::anyhow!("{email}: {e}"))?;
            let a = store.staff_by_email(&email).await?.context("the admin account vanished")?;
            anyhow::ensure!(
                a.organisation == kippu_domain::staff::CONSORTIUM,
                "{email} is staff of {}, not the consortium",
                a.organisation
            );
            kippu_app::staff::reinvite(store, None, kippu_domain::staff::CONSORTIUM, &a.id, now).await?
        }
        Err(e) => anyhow::bail!("the first admin ({email}): {e}"),
    };
    let target = format!("{} ({})", inv.account.email, inv.account.role);
    crate::audit::record(
        store,
        "cli",
        kippu_domain::staff::CONSORTIUM,
        kippu_domain::audit::AuditAction::StaffAdded,
        &target,
    )
    .await?;
    Ok(inv.link(&url))
}

fn read_key_file(path: &Path) -> anyhow::Result<PrivateKeySigner> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.trim().parse::<PrivateKeySigner>().with_context(|| format!("{}: not a hex private key", path.display()))
}

/// The master key: configured (checked like `kippu serve` does), else generated into its file.
fn master_key(cfg: &Config) -> anyhow::Result<(Keystore, Option<PathBuf>)> {
    let path = cfg.master_key_path();
    if cfg.identity.master_key.is_some() || path.exists() {
        let ks = crate::serve::master_key(cfg).map_err(|r| anyhow::anyhow!("{r}"))?;
        return Ok((ks, None));
    }
    let key = secrets::new_master_key();
    secrets::create_private(&path, format!("{}\n", key.as_str()).as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    let bytes = secrets::parse_master_key(&key).expect("generated as 64 hex digits");
    Ok((Keystore::new(*bytes), Some(path)))
}

/// Runs `kippu init`. Resumable: when a previous run sealed the secrets but did not record a
/// deployment (the chain was unreachable, say), it deploys with those secrets.
pub async fn init(cfg: &Config, opts: &InitOptions) -> anyhow::Result<Initialised> {
    let deployment_file = cfg.deployment_path();
    let secrets_file = cfg.secrets_path();
    anyhow::ensure!(
        !deployment_file.exists(),
        "{} exists: this data directory is initialised already (kippu init never overwrites)",
        deployment_file.display()
    );
    let rpc = cfg.chain.rpc_url.clone().context("chain.rpc_url (KIPPU_RPC_URL): the chain to deploy to")?;
    let deployer = read_key_file(&opts.deployer_key_file)?;

    let (keystore, master_key_file) = master_key(cfg)?;
    let secrets = if secrets_file.exists() {
        Secrets::load(&secrets_file, &keystore)?
    } else {
        let s = Secrets::generate();
        s.store(&secrets_file, &keystore)?;
        s
    };

    let (admin, cold_admin_file) = match opts.admin {
        Some(a) => (a, None),
        None => {
            let key = PrivateKeySigner::random();
            let path = cfg.data_dir.join("cold-admin.key");
            secrets::create_private(&path, format!("{}\n", hex::encode(key.to_bytes())).as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            (key.address(), Some(path))
        }
    };
    let roles = RoleHolders {
        admin,
        minter: secrets.evm_key(SecretName::MinterKey).address(),
        relayer: secrets.evm_key(SecretName::RelayerKey).address(),
        settler: secrets.evm_key(SecretName::SettlerKey).address(),
        catalog: secrets.evm_key(SecretName::CatalogKey).address(),
        attestor: secrets.evm_key(SecretName::AttestorKey).address(),
    };
    anyhow::ensure!(
        deployer.address() != admin,
        "the deployer renounces every role after deploying; give the cold admin its own key"
    );
    let terms = InsuranceTerms {
        threshold_minutes: cfg.insurance.threshold_minutes,
        voucher_value: u128::from(cfg.insurance.voucher_value),
        voucher_operator_id: opts.voucher_operator_id,
        voucher_lifetime: cfg.insurance.voucher_lifetime_secs,
    };

    // The database first: a deployment nobody can use (no validator login) is worse than none.
    let store = Store::connect(&cfg.database_url()).await.context("connecting the database")?;
    crate::gates::register_validator_login(&store, &secrets).await?;
    let admin_invitation = first_admin(cfg, &store, &opts.admin_email).await?;

    let deployment =
        kippu_chain::deploy(&rpc, &deployer, &roles, &terms, cfg.identity.max_concession_bps, opts.fund_hot_keys_wei)
            .await
            .context("deploying the contracts")?;
    secrets::create_private(&deployment_file, &serde_json::to_vec_pretty(&deployment)?)
        .with_context(|| format!("writing {}", deployment_file.display()))?;
    crate::gates::sync_mosquitto(cfg, &store).await?;
    let embedded_without_tls = cfg.mqtt.url.is_none() && cfg.mqtt.tls_cert_file.is_none();
    let broker_tls = if embedded_without_tls && !cfg.data_dir.join("mqtt-server.pem").exists() {
        Some(broker_certificate(cfg, &opts.mqtt_hosts)?)
    } else {
        None
    };
    Ok(Initialised {
        deployment,
        master_key_file,
        cold_admin_file,
        admin_invitation,
        secrets_file,
        deployment_file,
        broker_tls,
    })
}
