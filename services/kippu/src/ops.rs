//! Operators' one-shot commands against a production deployment: `kippu catalog apply`,
//! `kippu close-period`, `kippu rotate-master-key`. They pass the same checks as `kippu serve`
//! before touching anything.

use std::fmt;
use std::path::Path;

use anyhow::Context;
use kippu_chain::Chain;
use kippu_identity::{Keystore, SealedKey};
use kippu_store::Store;

use crate::config::Config;
use crate::indexer::Indexer;
use crate::secrets::{self, Secrets};
use crate::serve::{check_chain, check_offline};

/// A checked deployment, ready for one command.
pub struct Ops {
    /// Configuration.
    pub cfg: Config,
    /// The chain, sending with the hot keys.
    pub chain: Chain,
    /// The database.
    pub store: Store,
    /// The keystore.
    pub keystore: Keystore,
}

impl Ops {
    /// Checks like `kippu serve` and connects.
    pub async fn open(cfg: &Config) -> anyhow::Result<Self> {
        let checked = check_offline(cfg).map_err(crate::serve::ServeError::Refused)?;
        let chain = check_chain(cfg, &checked).await.map_err(|r| crate::serve::ServeError::Refused(vec![r]))?;
        let store = Store::connect(&cfg.database_url()).await.context("connecting the database")?;
        Ok(Self { cfg: cfg.clone(), chain, store, keystore: checked.keystore })
    }

    /// `host[:port]` of the public URL: the did:web authority of hosted issuers.
    pub fn authority(&self) -> String {
        let url = self.cfg.web.public_url.clone().unwrap_or_else(|| format!("http://{}", self.cfg.web.bind));
        url.split("://").nth(1).unwrap_or(&url).split('/').next().unwrap_or("localhost").to_owned()
    }

    /// Closes the current period (the ledger is brought up to date first).
    pub async fn close_period(&self) -> anyhow::Result<crate::settle::Closed> {
        let indexer = Indexer::new(self.chain.clone(), self.store.clone(), self.cfg.chain.confirmations);
        crate::settle::close_period(&self.chain, &self.store, &indexer, crate::clock::now()).await
    }
}

/// What a rotation did.
#[derive(Debug)]
pub struct Rotated {
    /// Travelers' keys re-sealed.
    pub travelers: usize,
    /// Issuers' seeds re-sealed.
    pub issuers: usize,
    /// Where the new master key is.
    pub new_key_file: std::path::PathBuf,
    /// Whether the configured master key file now holds the new key.
    pub replaced_file: bool,
}

impl fmt::Display for Rotated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "master key rotated: {} traveler keys and {} issuer keys re-sealed, secrets re-sealed",
            self.travelers, self.issuers
        )?;
        if self.replaced_file {
            write!(f, "the master key file now holds the new key ({})", self.new_key_file.display())
        } else {
            write!(
                f,
                "the new key is in {}: put it where KIPPU_MASTER_KEY comes from before the next start",
                self.new_key_file.display()
            )
        }
    }
}

/// Opens with `old` or (a rotation interrupted after this value was done) `new`; seals with `new`.
fn reseal_key(old: &Keystore, new: &Keystore, text: &str) -> anyhow::Result<String> {
    let sealed = SealedKey::parse(text)?;
    let key = old.open(&sealed).or_else(|_| new.open(&sealed)).context("a traveler key opens with neither key")?;
    Ok(new.seal(&key)?.to_string())
}

fn reseal_seed(old: &Keystore, new: &Keystore, owner: &str, text: &str) -> anyhow::Result<String> {
    let seed = old
        .open_seed(owner, text)
        .or_else(|_| new.open_seed(owner, text))
        .context("an issuer seed opens with neither key")?;
    Ok(new.seal_seed(owner, &seed)?)
}

/// `kippu rotate-master-key`: every sealed value re-wrapped under a new key, resumable. The
/// database first (one transaction), then the secrets file, then the master key file, so an
/// interrupted rotation is finished by running it again with the same new key.
pub async fn rotate_master_key(cfg: &Config, new_key_file: Option<&Path>) -> anyhow::Result<Rotated> {
    let old = crate::serve::master_key(cfg).map_err(|r| anyhow::anyhow!("{r}"))?;
    let configured_file = cfg.identity.master_key.is_none().then(|| cfg.master_key_path());
    let new_path =
        new_key_file.map(Path::to_path_buf).unwrap_or_else(|| cfg.master_key_path().with_extension("key.new"));
    if !new_path.exists() {
        let key = secrets::new_master_key();
        secrets::create_private(&new_path, format!("{}\n", key.as_str()).as_bytes())
            .with_context(|| format!("writing {}", new_path.display()))?;
    }
    let mut new_cfg = cfg.clone();
    new_cfg.identity.master_key = Some(std::fs::read_to_string(&new_path)?.trim().to_owned());
    let new = crate::serve::master_key(&new_cfg).map_err(|r| anyhow::anyhow!("the new key: {r}"))?;

    let store = Store::connect(&cfg.database_url()).await.context("connecting the database")?;
    let (travelers, issuers) = store.sealed_values().await?;
    let travelers: Vec<_> =
        travelers.into_iter().map(|(a, t)| Ok((a, reseal_key(&old, &new, &t)?))).collect::<anyhow::Result<_>>()?;
    let issuers: Vec<_> = issuers
        .into_iter()
        .map(|(did, t)| Ok((did.clone(), reseal_seed(&old, &new, &did, &t)?)))
        .collect::<anyhow::Result<_>>()?;
    store.replace_sealed_values(&travelers, &issuers).await?;

    let secrets_path = cfg.secrets_path();
    let opened = Secrets::load(&secrets_path, &old).or_else(|_| Secrets::load(&secrets_path, &new))?;
    opened.store(&secrets_path, &new)?;

    let replaced_file = match &configured_file {
        Some(file) if new_key_file.is_none() => {
            std::fs::rename(&new_path, file).with_context(|| format!("replacing {}", file.display()))?;
            true
        }
        _ => false,
    };
    Ok(Rotated {
        travelers: travelers.len(),
        issuers: issuers.len(),
        new_key_file: if replaced_file { configured_file.unwrap_or(new_path) } else { new_path },
        replaced_file,
    })
}
