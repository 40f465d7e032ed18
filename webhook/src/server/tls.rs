//! TLS for the webhook: rustls (TLS 1.2 and 1.3, ring), a certificate resolver whose
//! certificate and key can be swapped while the server runs (new handshakes get the
//! new pair, open connections keep theirs), and optional client-certificate checks.

use arc_swap::ArcSwap;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("{path}: cannot read certificates: {message}")]
    Certificates { path: String, message: String },
    #[error("{path}: holds no PEM certificate")]
    NoCertificates { path: String },
    #[error("{path}: cannot read the private key: {message}")]
    Key { path: String, message: String },
    #[error("{cert} and {key} do not form a usable pair: {message}")]
    Pair {
        cert: String,
        key: String,
        message: String,
    },
    #[error("{path}: not a usable client CA bundle: {message}")]
    ClientCa { path: String, message: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM certificate chain and key and checks that they belong together.
pub fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let cert_name = cert.display().to_string();
    let key_name = key.display().to_string();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Certificates {
            path: cert_name.clone(),
            message: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificates { path: cert_name });
    }
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key_name.clone(),
        message: e.to_string(),
    })?;
    CertifiedKey::from_der(chain, private_key, &provider()).map_err(|e| TlsError::Pair {
        cert: cert_name,
        key: key_name,
        message: e.to_string(),
    })
}

/// The serving certificate, replaceable at run time.
#[derive(Debug)]
pub struct ReloadableCert {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    current: ArcSwap<CertifiedKey>,
}

impl ReloadableCert {
    pub fn load(cert_path: PathBuf, key_path: PathBuf) -> Result<ReloadableCert, TlsError> {
        let pair = load_pair(&cert_path, &key_path)?;
        Ok(ReloadableCert {
            cert_path,
            key_path,
            current: ArcSwap::from_pointee(pair),
        })
    }

    /// Re-reads the files; on error the current pair stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let pair = load_pair(&self.cert_path, &self.key_path)?;
        self.current.store(Arc::new(pair));
        Ok(())
    }

    /// The end-entity certificate in use (DER), e.g. for its expiry.
    pub fn leaf(&self) -> Option<CertificateDer<'static>> {
        self.current.load().cert.first().cloned()
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The server's rustls configuration: TLS 1.3 and 1.2, HTTP/2 and HTTP/1.1 by ALPN,
/// and when `client_ca` is given, a client certificate signed by it is required.
pub fn server_config(
    cert: Arc<ReloadableCert>,
    client_ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let name = path.display().to_string();
            let bad = |message: String| TlsError::ClientCa {
                path: name.clone(),
                message,
            };
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
                .map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad("no PEM certificate in it".into()));
            }
            for c in certs {
                roots.add(c).map_err(|e| bad(e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| bad(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
