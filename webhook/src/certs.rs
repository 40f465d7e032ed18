//! Development certificates (rcgen): a CA, a serving certificate for the webhook's
//! names, and a client certificate for testing `--client-ca`. Written as PEM files
//! named like a Kubernetes TLS Secret (`tls.crt`, `tls.key`, `ca.crt`).

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use thiserror::Error;
use time::{Duration, OffsetDateTime};

/// Names the dev serving certificate covers by default.
pub const DEFAULT_DNS_NAMES: &[&str] = &[
    "localhost",
    "127.0.0.1",
    "::1",
    "plate-policy.plate-system.svc",
    "plate-policy.plate-system.svc.cluster.local",
];

pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const SERVER_CERT: &str = "tls.crt";
pub const SERVER_KEY: &str = "tls.key";
pub const CLIENT_CERT: &str = "client.crt";
pub const CLIENT_KEY: &str = "client.key";

#[derive(Debug, Error)]
pub enum CertError {
    #[error("cannot generate certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("no DNS name or IP address given for the serving certificate")]
    NoNames,
}

/// Paths of a generated set.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub dir: PathBuf,
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl CertFiles {
    pub fn in_dir(dir: &Path) -> CertFiles {
        CertFiles {
            dir: dir.to_path_buf(),
            ca_cert: dir.join(CA_CERT),
            server_cert: dir.join(SERVER_CERT),
            server_key: dir.join(SERVER_KEY),
            client_cert: dir.join(CLIENT_CERT),
            client_key: dir.join(CLIENT_KEY),
        }
    }

    fn complete(&self) -> bool {
        [&self.ca_cert, &self.server_cert, &self.server_key]
            .iter()
            .all(|p| p.is_file())
    }
}

/// Writes a new CA, serving certificate (for `names`) and client certificate to `dir`.
pub fn generate(dir: &Path, names: &[String]) -> Result<CertFiles, CertError> {
    if names.is_empty() {
        return Err(CertError::NoNames);
    }
    let files = CertFiles::in_dir(dir);
    std::fs::create_dir_all(dir).map_err(|source| CertError::Write {
        path: dir.display().to_string(),
        source,
    })?;
    let now = OffsetDateTime::now_utc();

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "plate-policy development CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = now - Duration::hours(1);
    ca_params.not_after = now + Duration::days(3650);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca_pem = ca_cert.pem();
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf = |names: Vec<String>, common_name: &str, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(365);
        // Names the CA's key, not only its name: every CA made here has the same
        // name, and a client trusting an earlier one too (a CA bundle during a
        // rotation) picks the issuer by name and key identifier. Without the key,
        // OpenSSL may take the earlier CA and fail on the signature.
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &issuer)?;
        Ok::<_, rcgen::Error>((cert.pem(), key.serialize_pem()))
    };
    let (server_pem, server_key_pem) = leaf(
        names.to_vec(),
        &names[0],
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    let (client_pem, client_key_pem) = leaf(
        Vec::new(),
        "plate-policy-dev-client",
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;

    write(&files.ca_cert, &ca_pem, false)?;
    write(&dir.join(CA_KEY), &ca_key_pem, true)?;
    write(&files.server_cert, &format!("{server_pem}{ca_pem}"), false)?;
    write(&files.server_key, &server_key_pem, true)?;
    write(&files.client_cert, &client_pem, false)?;
    write(&files.client_key, &client_key_pem, true)?;
    Ok(files)
}

/// The dev certificates in `dir`, created on first use and reused afterwards.
pub fn ensure_dev_certs(dir: &Path) -> Result<(CertFiles, bool), CertError> {
    let files = CertFiles::in_dir(dir);
    if files.complete() {
        return Ok((files, false));
    }
    let names: Vec<String> = DEFAULT_DNS_NAMES.iter().map(|s| s.to_string()).collect();
    generate(dir, &names).map(|f| (f, true))
}

/// Writes a file atomically (a temporary file renamed into place), so a reader (a
/// server reloading its certificate, a client loading the CA) never sees half of it.
fn write(path: &Path, text: &str, secret: bool) -> Result<(), CertError> {
    let err = |source| CertError::Write {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, text).map_err(err)?;
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::tls::load_pair;

    /// The key identifiers of the first certificate of a PEM file: its own
    /// (subject) and its issuer's (authority).
    fn key_ids(path: &Path) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        use x509_parser::extensions::ParsedExtension;
        let der = CertificateDer::pem_file_iter(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .next()
            .unwrap_or_else(|| panic!("{}: no certificate", path.display()))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (mut subject, mut authority) = (None, None);
        for ext in cert.iter_extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => subject = Some(id.0.to_vec()),
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    authority = aki.key_identifier.as_ref().map(|id| id.0.to_vec());
                }
                _ => {}
            }
        }
        (subject, authority)
    }

    /// A client that trusts the CA of an earlier `certs` run too (a CA bundle during
    /// a rotation) must find the issuer by key: all these CAs have the same name.
    /// Without the authority key identifier, curl with OpenSSL and the bundle
    /// [old CA, new CA] failed against the new pair with `asn1 encoding
    /// routines::EVP lib` (the soak's failed connection at a rotation).
    #[test]
    fn leaf_certificates_name_the_key_of_their_ca() {
        let (a, b) = (
            tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
            tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
        );
        let names = ["localhost".to_string()];
        let first = generate(a.path(), &names).unwrap_or_else(|e| panic!("{e}"));
        let second = generate(b.path(), &names).unwrap_or_else(|e| panic!("{e}"));
        let (first_ca, _) = key_ids(&first.ca_cert);
        let (second_ca, _) = key_ids(&second.ca_cert);
        assert!(first_ca.is_some(), "a CA without a subject key identifier");
        assert_ne!(first_ca, second_ca, "two CAs with one key identifier");
        for leaf in [&second.server_cert, &second.client_cert] {
            assert_eq!(
                key_ids(leaf).1,
                second_ca,
                "{}: the authority key identifier is not its CA's key",
                leaf.display()
            );
        }
    }

    #[test]
    fn generated_pairs_load_and_are_reused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (files, created) = ensure_dev_certs(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(created);
        load_pair(&files.server_cert, &files.server_key).unwrap_or_else(|e| panic!("{e}"));
        load_pair(&files.client_cert, &files.client_key).unwrap_or_else(|e| panic!("{e}"));
        let before = std::fs::read(&files.server_cert).unwrap_or_default();
        let (_, created) = ensure_dev_certs(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(!created);
        assert_eq!(
            std::fs::read(&files.server_cert).unwrap_or_default(),
            before
        );
    }
}
