//! TLS settings: what an `mqtts://` client trusts, and what the secured embedded
//! broker presents.
//!
//! Every config is built with the aws-lc-rs provider passed explicitly rather than
//! through rustls' process-wide default: the workspace pins that provider (two
//! providers unified into one binary leave rustls unable to pick a default), and
//! an explicit provider works whether or not anything installed a default.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::error::{MqttError, Result};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn tls_error(what: &str, e: impl fmt::Display) -> MqttError {
    MqttError::Tls(format!("{what}: {e}"))
}

/// Reads a file for a TLS setting, naming the file in the error.
pub(crate) fn read_pem_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| MqttError::File { path: path.to_owned(), source })
}

/// What an `mqtts://` client trusts: one CA certificate (a private CA, as for a
/// broker on a gate network), or the Mozilla roots of `webpki-roots` when none is given.
#[derive(Clone)]
pub struct ClientTls {
    /// The CA as given (PEM), `None` for the webpki roots; compared by [`PartialEq`].
    ca_pem: Option<Arc<[u8]>>,
    config: Arc<ClientConfig>,
}

impl ClientTls {
    /// Trusts the Mozilla roots compiled into `webpki-roots`.
    pub fn webpki_roots() -> Self {
        static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
        let config = CONFIG.get_or_init(|| {
            let roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
            Arc::new(client_config(roots).expect("the aws-lc-rs provider supports the default protocol versions"))
        });
        Self { ca_pem: None, config: config.clone() }
    }

    /// Trusts only the CA certificate(s) in `pem`.
    pub fn from_ca_pem(pem: &[u8]) -> Result<Self> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| tls_error("CA certificate", e))?;
            roots.add(cert).map_err(|e| tls_error("CA certificate", e))?;
        }
        if roots.is_empty() {
            return Err(MqttError::Tls("no CA certificate in the PEM given".into()));
        }
        Ok(Self { ca_pem: Some(pem.into()), config: Arc::new(client_config(roots)?) })
    }

    /// [`Self::from_ca_pem`] with the PEM read from `path`.
    pub fn from_ca_file(path: &Path) -> Result<Self> {
        Self::from_ca_pem(&read_pem_file(path)?)
    }

    /// The rustls config rumqttc connects with.
    pub(crate) fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }
}

fn client_config(roots: RootCertStore) -> Result<ClientConfig> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("client config", e))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl PartialEq for ClientTls {
    fn eq(&self, other: &Self) -> bool {
        self.ca_pem == other.ca_pem
    }
}

impl Eq for ClientTls {}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.ca_pem {
            Some(pem) => write!(f, "ClientTls(CA, {} PEM bytes)", pem.len()),
            None => f.write_str("ClientTls(webpki roots)"),
        }
    }
}

/// The certificate chain and private key the secured embedded broker presents.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
}

impl ServerTls {
    /// From PEM: `chain` holds the server certificate first, then any intermediates;
    /// `key` its private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<Self> {
        let certs = CertificateDer::pem_slice_iter(chain)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| tls_error("certificate chain", e))?;
        if certs.is_empty() {
            return Err(MqttError::Tls("no certificate in the chain given".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| tls_error("private key", e))?;
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("server config", e))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| tls_error("certificate and key", e))?;
        Ok(Self { config: Arc::new(config) })
    }

    /// [`Self::from_pem`] with both read from files.
    pub fn from_pem_files(chain: &Path, key: &Path) -> Result<Self> {
        Self::from_pem(&read_pem_file(chain)?, &read_pem_file(key)?)
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }
}

impl fmt::Debug for ServerTls {
    // The key stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerTls(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junk_is_a_tls_error() {
        for pem in [&b""[..], b"not pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"] {
            assert!(matches!(ClientTls::from_ca_pem(pem), Err(MqttError::Tls(_))), "{pem:?}");
            assert!(matches!(ServerTls::from_pem(pem, pem), Err(MqttError::Tls(_))), "{pem:?}");
        }
        let e = ClientTls::from_ca_file(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }

    #[test]
    fn webpki_roots_are_not_empty_and_compare_equal() {
        let a = ClientTls::webpki_roots();
        assert!(!webpki_roots::TLS_SERVER_ROOTS.is_empty());
        assert_eq!(a, ClientTls::webpki_roots());
        assert_eq!(format!("{a:?}"), "ClientTls(webpki roots)");
    }
}
