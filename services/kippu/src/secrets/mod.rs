//! Kippu's own secrets: generated at random by `kippu init`, stored sealed under the master key.
//!
//! They are sealed, not derived from the master key, so `kippu rotate-master-key` re-wraps them
//! (and the keystore) without changing any gate's password or any signature key. The file is
//! written with mode 0600, atomically (temporary file, then rename), so a crash never leaves a
//! half-written file behind.

pub mod denylist;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use alloy::signers::local::PrivateKeySigner;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use kippu_identity::Keystore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The secrets `kippu init` generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SecretName {
    /// Ed25519 seed of the key that signs gate verdicts and offline snapshots.
    VerdictKey,
    /// Bearer token of `/metrics` on the web listener.
    MetricsToken,
    /// The validators' MQTT password (username `validator`).
    MqttValidatorPassword,
    /// Hot key that mints FARE for card payments.
    MinterKey,
    /// Hot key that relays purchases, refunds and voucher redemptions.
    RelayerKey,
    /// Hot key that records rides, anchors taps, reports delays and settles periods.
    SettlerKey,
    /// Hot key that lists operators, products, bundles and cover terms.
    CatalogKey,
    /// Signing-only key of concession attestations (EIP-712, never sends a transaction).
    AttestorKey,
}

impl SecretName {
    /// Every secret, in file order.
    pub const ALL: [SecretName; 8] = [
        Self::VerdictKey,
        Self::MetricsToken,
        Self::MqttValidatorPassword,
        Self::MinterKey,
        Self::RelayerKey,
        Self::SettlerKey,
        Self::CatalogKey,
        Self::AttestorKey,
    ];

    /// Its name in the file (and the owner its seal is bound to, so blobs cannot be swapped).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerdictKey => "verdict-key",
            Self::MetricsToken => "metrics-token",
            Self::MqttValidatorPassword => "mqtt-validator-password",
            Self::MinterKey => "minter-key",
            Self::RelayerKey => "relayer-key",
            Self::SettlerKey => "settler-key",
            Self::CatalogKey => "catalog-key",
            Self::AttestorKey => "attestor-key",
        }
    }

    fn is_evm_key(self) -> bool {
        matches!(self, Self::MinterKey | Self::RelayerKey | Self::SettlerKey | Self::CatalogKey | Self::AttestorKey)
    }

    fn owner(self) -> String {
        format!("kippu-secret:{}", self.as_str())
    }
}

/// Version of the file format.
pub const FILE_VERSION: u32 = 1;
/// Owner of the check value: opening it proves the master key is the one that sealed the file.
const CHECK_OWNER: &str = "kippu-secrets-check";

/// Secrets errors. Messages name the file and say how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// No file where one is expected.
    #[error("{path}: no sealed secrets here; run `kippu init` first (or set secrets_file / KIPPU_SECRETS_FILE)")]
    Missing {
        /// Where it was looked for.
        path: String,
    },
    /// The file exists but could not be read or parsed.
    #[error("{path}: {why}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
    /// The master key does not open the file.
    #[error("{path}: the master key does not open these secrets (a different or rotated master key?)")]
    WrongMasterKey {
        /// The file.
        path: String,
    },
    /// A secret is missing from the file.
    #[error("{path}: secret {name} is missing; the file is damaged or from an older version")]
    MissingSecret {
        /// The file.
        path: String,
        /// The secret.
        name: &'static str,
    },
    /// Writing failed.
    #[error("writing {path}: {why}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
}

/// The file as stored: every value sealed by [`Keystore::seal_seed`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SealedSecrets {
    /// [`FILE_VERSION`].
    pub version: u32,
    /// A known value sealed under the master key.
    pub check: String,
    /// Sealed secrets by name.
    pub secrets: BTreeMap<String, String>,
}

/// The secrets, opened.
pub struct Secrets {
    seeds: BTreeMap<SecretName, Zeroizing<[u8; 32]>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secret material.
        f.debug_struct("Secrets").field("count", &self.seeds.len()).finish_non_exhaustive()
    }
}

fn random_seed(name: SecretName) -> Zeroizing<[u8; 32]> {
    loop {
        let seed = Zeroizing::new(rand::random::<[u8; 32]>());
        // A random 32-byte string is a valid secp256k1 scalar except with ~2^-128 probability.
        if !name.is_evm_key() || PrivateKeySigner::from_slice(seed.as_slice()).is_ok() {
            return seed;
        }
    }
}

impl Secrets {
    /// Fresh random secrets.
    pub fn generate() -> Self {
        Self { seeds: SecretName::ALL.iter().map(|n| (*n, random_seed(*n))).collect() }
    }

    /// Secrets from given seeds (the demo, tests).
    pub fn from_seeds(seeds: impl IntoIterator<Item = (SecretName, [u8; 32])>) -> Self {
        Self { seeds: seeds.into_iter().map(|(n, s)| (n, Zeroizing::new(s))).collect() }
    }

    fn seed(&self, name: SecretName) -> &[u8; 32] {
        self.seeds.get(&name).expect("every secret is present once opened")
    }

    /// The verdict and snapshot signing key.
    pub fn verdict_key(&self) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(self.seed(SecretName::VerdictKey))
    }

    /// A hot or attestor key.
    pub fn evm_key(&self, name: SecretName) -> PrivateKeySigner {
        assert!(name.is_evm_key(), "{} is not an account key", name.as_str());
        PrivateKeySigner::from_slice(self.seed(name)).expect("checked when generated")
    }

    /// A password-like secret as text (base64url, 192 bits).
    pub fn text(&self, name: SecretName) -> String {
        URL_SAFE_NO_PAD.encode(&self.seed(name)[..24])
    }

    /// Seals every secret under `keystore`.
    pub fn seal(&self, keystore: &Keystore) -> Result<SealedSecrets, kippu_identity::IdentityError> {
        let mut secrets = BTreeMap::new();
        for (name, seed) in &self.seeds {
            secrets.insert(name.as_str().to_owned(), keystore.seal_seed(&name.owner(), seed)?);
        }
        Ok(SealedSecrets { version: FILE_VERSION, check: keystore.seal_seed(CHECK_OWNER, &[0u8; 32])?, secrets })
    }

    /// Opens `sealed` with `keystore`; `path` names the file in errors.
    pub fn open(sealed: &SealedSecrets, keystore: &Keystore, path: &Path) -> Result<Self, SecretsError> {
        let p = path.display().to_string();
        if sealed.version != FILE_VERSION {
            return Err(SecretsError::Unreadable { path: p, why: format!("unknown version {}", sealed.version) });
        }
        keystore.open_seed(CHECK_OWNER, &sealed.check).map_err(|_| SecretsError::WrongMasterKey { path: p.clone() })?;
        let mut seeds = BTreeMap::new();
        for name in SecretName::ALL {
            let text = sealed
                .secrets
                .get(name.as_str())
                .ok_or(SecretsError::MissingSecret { path: p.clone(), name: name.as_str() })?;
            let seed = keystore
                .open_seed(&name.owner(), text)
                .map_err(|e| SecretsError::Unreadable { path: p.clone(), why: format!("{}: {e}", name.as_str()) })?;
            seeds.insert(name, seed);
        }
        Ok(Self { seeds })
    }

    /// Reads and opens the file at `path`.
    pub fn load(path: &Path, keystore: &Keystore) -> Result<Self, SecretsError> {
        let sealed = read_sealed(path)?;
        Self::open(&sealed, keystore, path)
    }

    /// Seals and writes to `path` (mode 0600, atomically).
    pub fn store(&self, path: &Path, keystore: &Keystore) -> Result<(), SecretsError> {
        let sealed = self
            .seal(keystore)
            .map_err(|e| SecretsError::Write { path: path.display().to_string(), why: e.to_string() })?;
        let bytes = serde_json::to_vec_pretty(&sealed).expect("plain data serializes");
        write_private(path, &bytes)
            .map_err(|e| SecretsError::Write { path: path.display().to_string(), why: e.to_string() })
    }
}

/// Reads the sealed file at `path`.
pub fn read_sealed(path: &Path) -> Result<SealedSecrets, SecretsError> {
    let p = path.display().to_string();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(SecretsError::Missing { path: p }),
        Err(e) => return Err(SecretsError::Unreadable { path: p, why: e.to_string() }),
    };
    serde_json::from_slice(&bytes).map_err(|e| SecretsError::Unreadable { path: p, why: e.to_string() })
}

/// Writes `bytes` to `path` readable by its owner only (0600), atomically: a temporary file
/// beside it, fsync'd, then renamed over it.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// Writes a file that must not exist yet (0600): `kippu init` never overwrites.
pub fn create_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// A fresh random master key, as the 64 hex digits the configuration takes.
pub fn new_master_key() -> Zeroizing<String> {
    Zeroizing::new(hex::encode(rand::random::<[u8; 32]>()))
}

/// Parses a master key (64 hex digits, optional `0x`) into its bytes.
pub fn parse_master_key(text: &str) -> Option<Zeroizing<[u8; 32]>> {
    let t = text.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    let mut out = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(t, out.as_mut()).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keystore(byte: u8) -> Keystore {
        Keystore::new([byte; 32])
    }

    #[test]
    fn sealed_secrets_round_trip_and_refuse_another_master_key() {
        let dir = std::env::temp_dir().join(format!("kippu-secrets-{}", rand::random::<u64>()));
        let path = dir.join("secrets.json");
        let s = Secrets::generate();
        s.store(&path, &keystore(1)).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let back = Secrets::load(&path, &keystore(1)).unwrap();
        assert_eq!(back.text(SecretName::MetricsToken), s.text(SecretName::MetricsToken));
        assert_eq!(back.verdict_key().to_bytes(), s.verdict_key().to_bytes());
        assert!(matches!(Secrets::load(&path, &keystore(2)), Err(SecretsError::WrongMasterKey { .. })));
        assert!(matches!(Secrets::load(&dir.join("none.json"), &keystore(1)), Err(SecretsError::Missing { .. })));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn secrets_are_random_not_derived() {
        let (a, b) = (Secrets::generate(), Secrets::generate());
        for n in SecretName::ALL {
            assert_ne!(a.seed(n), b.seed(n), "{}", n.as_str());
        }
        // Each account key is distinct, so each hot role is held by its own key.
        let mut addrs: Vec<_> =
            SecretName::ALL.iter().filter(|n| n.is_evm_key()).map(|n| a.evm_key(*n).address()).collect();
        addrs.sort();
        addrs.dedup();
        assert_eq!(addrs.len(), 5);
    }

    #[test]
    fn a_blob_moved_to_another_name_does_not_open() {
        let ks = keystore(3);
        let mut sealed = Secrets::generate().seal(&ks).unwrap();
        let relayer = sealed.secrets["relayer-key"].clone();
        sealed.secrets.insert("minter-key".into(), relayer);
        assert!(matches!(Secrets::open(&sealed, &ks, Path::new("x")), Err(SecretsError::Unreadable { .. })));
    }
}
