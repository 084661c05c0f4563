//! `kippu backup` and `kippu restore`: the database, the sealed secrets and the deployment
//! record in one file (mode 0600). The master key is deliberately not in it: a stolen backup
//! opens nothing without it, so keep the two apart.
//!
//! The database part is a logical copy (every row of every table, read in one transaction), so
//! a backup of SQLite restores into PostgreSQL and back. Restore refuses to write over anything:
//! the data directory must have no secrets or deployment record, and the database must be empty.

use std::fmt;
use std::path::Path;

use anyhow::Context;
use kippu_store::{Dump, Store};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::secrets::{self, SealedSecrets, Secrets};

/// Format tag of the file.
pub const FORMAT: &str = "kippu-backup/1";

/// The file.
#[derive(Debug, Serialize, Deserialize)]
pub struct Backup {
    /// [`FORMAT`].
    pub format: String,
    /// Unix seconds when it was taken.
    pub created_at: i64,
    /// The deployment record.
    pub deployment: kippu_chain::Deployment,
    /// The secrets, still sealed under the master key.
    pub secrets: SealedSecrets,
    /// The database.
    pub database: Dump,
}

/// What a backup or restore did.
#[derive(Debug)]
pub struct Summary {
    /// Verb.
    pub what: &'static str,
    /// Tables.
    pub tables: usize,
    /// Rows.
    pub rows: usize,
    /// The file.
    pub file: std::path::PathBuf,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} rows of {} tables, the sealed secrets and the deployment record ({}). The master key is not in it.",
            self.what,
            self.rows,
            self.tables,
            self.file.display()
        )
    }
}

/// `kippu backup --out FILE`.
pub async fn backup(cfg: &Config, out: &Path) -> anyhow::Result<Summary> {
    let deployment = crate::serve::read_deployment(&cfg.deployment_path()).map_err(|r| anyhow::anyhow!("{r}"))?;
    let sealed = secrets::read_sealed(&cfg.secrets_path())?;
    let store = Store::connect(&cfg.database_url()).await.context("connecting the database")?;
    let database = store.dump().await?;
    let b = Backup { format: FORMAT.into(), created_at: crate::clock::now(), deployment, secrets: sealed, database };
    secrets::create_private(out, &serde_json::to_vec(&b)?)
        .with_context(|| format!("writing {} (it must not exist yet)", out.display()))?;
    Ok(Summary { what: "backed up", tables: b.database.tables.len(), rows: b.database.row_count(), file: out.into() })
}

/// `kippu restore --from FILE` into the configured data directory and database.
pub async fn restore(cfg: &Config, from: &Path) -> anyhow::Result<Summary> {
    let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    let b: Backup =
        serde_json::from_slice(&bytes).with_context(|| format!("{}: not a Kippu backup", from.display()))?;
    anyhow::ensure!(b.format == FORMAT, "{}: format {:?}, this Kippu reads {FORMAT}", from.display(), b.format);
    let (deployment_file, secrets_file) = (cfg.deployment_path(), cfg.secrets_path());
    for f in [&deployment_file, &secrets_file] {
        anyhow::ensure!(!f.exists(), "{} exists: restore only into a fresh data directory", f.display());
    }
    // With the master key at hand, prove it opens the secrets before writing anything.
    if let Ok(keystore) = crate::serve::master_key(cfg) {
        Secrets::open(&b.secrets, &keystore, from).context("the configured master key does not open this backup")?;
    }
    let store = Store::connect(&cfg.database_url()).await.context("connecting the database")?;
    anyhow::ensure!(
        store.is_empty().await?,
        "the database {} is not empty: restore only into a fresh one",
        cfg.database_url()
    );
    store.restore(&b.database).await?;
    secrets::create_private(&secrets_file, &serde_json::to_vec_pretty(&b.secrets)?)?;
    secrets::create_private(&deployment_file, &serde_json::to_vec_pretty(&b.deployment)?)?;
    Ok(Summary { what: "restored", tables: b.database.tables.len(), rows: b.database.row_count(), file: from.into() })
}
