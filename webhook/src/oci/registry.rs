//! Talking to one registry with the `oci-client` crate: transport (HTTPS with the
//! system's roots or a registry's own CA; plain HTTP only when the registry is
//! marked insecure), credentials, and the few operations plate-policy needs, each
//! error turned into a sentence that says what to do.

use super::OciError;
use super::auth::DockerConfig;
use super::cosign::{self, Signature};
use super::reference::{OciReference, sha256_digest};
use futures::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Media type of an OCI image manifest (what a Wasm artifact's manifest is).
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// How to reach one registry (the policy set's `spec.registries`).
#[derive(Debug, Clone, Default)]
pub struct RegistrySettings {
    /// Plain HTTP instead of HTTPS.
    pub insecure: bool,
    /// Trust only this CA bundle (PEM) for the registry's certificate.
    pub ca: Option<CaBundle>,
}

#[derive(Debug, Clone)]
pub struct CaBundle {
    pub path: PathBuf,
    pub pem: Vec<u8>,
}

/// A manifest as far as plate-policy reads it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Present on an image index.
    #[serde(default)]
    pub manifests: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    fn oci(&self) -> OciDescriptor {
        OciDescriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
            ..OciDescriptor::default()
        }
    }
}

/// A connection to the registry of one reference.
pub struct Session {
    client: Client,
    auth: RegistryAuth,
    registry: String,
    /// Which credentials are used, for messages.
    credentials: String,
    insecure: bool,
}

/// How long to wait for a registry to accept a connection, and between bytes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(30);

impl Session {
    pub fn new(
        registry: &str,
        settings: &RegistrySettings,
        auth: &DockerConfig,
    ) -> Result<Session, OciError> {
        // reqwest is built without a crypto provider of its own: the process uses
        // ring, as the server's TLS does. Installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut config = ClientConfig {
            protocol: if settings.insecure {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            user_agent: concat!("plate-policy/", env!("CARGO_PKG_VERSION")),
            // A module is one small layer; nothing to gain from parallel uploads.
            max_concurrent_upload: 1,
            ..ClientConfig::default()
        };
        if let Some(ca) = &settings.ca {
            config.tls_certs_only = vec![Certificate {
                encoding: CertificateEncoding::Pem,
                data: ca.pem.clone(),
            }];
        }
        let client = Client::try_from(config).map_err(|e| OciError::Client {
            registry: registry.to_string(),
            message: match &settings.ca {
                Some(ca) => format!("the CA bundle {}: {}", ca.path.display(), chain(&e)),
                None => chain(&e),
            },
        })?;
        let (auth, credentials) = match auth.credentials(registry) {
            Some(c) => (
                RegistryAuth::Basic(c.username.clone(), c.password.clone()),
                match &auth.source {
                    Some(file) => format!(
                        "the credentials of user {:?} from {}",
                        c.username,
                        file.display()
                    ),
                    None => format!("the credentials of user {:?}", c.username),
                },
            ),
            None => (
                RegistryAuth::Anonymous,
                match &auth.source {
                    Some(file) => format!(
                        "no credentials ({} has none for {registry})",
                        file.display()
                    ),
                    None => "no credentials (none were given)".to_string(),
                },
            ),
        };
        Ok(Session {
            client,
            auth,
            registry: registry.to_string(),
            credentials,
            insecure: settings.insecure,
        })
    }

    fn image(reference: &OciReference) -> Result<Reference, OciError> {
        reference
            .client_form()
            .parse()
            .map_err(|e: oci_client::ParseError| OciError::Client {
                registry: reference.registry.clone(),
                message: format!("{reference}: {e}"),
            })
    }

    /// Translates a client error about `reference` into what to do.
    fn error(&self, reference: &OciReference, e: OciDistributionError) -> OciError {
        let unauthorized = || OciError::Unauthorized {
            registry: self.registry.clone(),
            reference: reference.to_string(),
            credentials: self.credentials.clone(),
        };
        match e {
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => unauthorized(),
            OciDistributionError::RegistryError { envelope, .. } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                let text: Vec<String> = envelope
                    .errors
                    .iter()
                    .map(|e| format!("{:?}: {}", e.code, e.message))
                    .collect();
                let text = text.join("; ");
                if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Unauthorized))
                {
                    unauthorized()
                } else if codes.iter().any(|c| matches!(c, OciErrorCode::Denied)) {
                    OciError::Denied {
                        registry: self.registry.clone(),
                        reference: reference.to_string(),
                        credentials: self.credentials.clone(),
                        message: text,
                    }
                } else if codes.iter().any(|c| {
                    matches!(
                        c,
                        OciErrorCode::NameUnknown
                            | OciErrorCode::ManifestUnknown
                            | OciErrorCode::BlobUnknown
                            | OciErrorCode::NotFound
                    )
                }) {
                    OciError::NotFound {
                        reference: reference.to_string(),
                        message: text,
                    }
                } else {
                    OciError::Registry {
                        reference: reference.to_string(),
                        message: text,
                    }
                }
            }
            OciDistributionError::ServerError { code: 401, .. } => unauthorized(),
            OciDistributionError::ServerError {
                code: 404, message, ..
            }
            | OciDistributionError::ImageManifestNotFoundError(message) => OciError::NotFound {
                reference: reference.to_string(),
                message,
            },
            OciDistributionError::DigestError(
                oci_client::errors::DigestError::VerificationError { expected, actual },
            ) => OciError::DigestMismatch {
                what: "manifest",
                reference: reference.to_string(),
                expected,
                actual,
            },
            OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() => {
                let cause = chain(&e);
                // A registry that answers with a certificate we do not trust is
                // reachable: say what to fix, not that it is down.
                if cause.contains("certificate") || cause.contains("InvalidContentType") {
                    OciError::Registry {
                        reference: reference.to_string(),
                        message: self.transport_hint(&cause),
                    }
                } else {
                    OciError::Unreachable {
                        registry: self.registry.clone(),
                        cause,
                    }
                }
            }
            other => OciError::Registry {
                reference: reference.to_string(),
                message: self.transport_hint(&chain(&other)),
            },
        }
    }

    /// A TLS failure against a registry that speaks plain HTTP says so, and a
    /// certificate failure says where a CA goes.
    fn transport_hint(&self, cause: &str) -> String {
        if !self.insecure && cause.contains("InvalidContentType") {
            format!(
                "{cause} (the registry may speak plain HTTP: mark it insecure: true under spec.registries if that is intended)"
            )
        } else if !self.insecure && cause.contains("certificate") {
            format!(
                "{cause} (give the registry's CA as caFile under spec.registries, or --registry-ca for the CLI)"
            )
        } else {
            cause.to_string()
        }
    }

    /// The manifest `reference` names: its bytes and their digest, checked against
    /// the reference's digest when it has one.
    pub async fn manifest(&self, reference: &OciReference) -> Result<(Vec<u8>, String), OciError> {
        let image = Self::image(reference)?;
        let (bytes, _) = self
            .client
            .pull_manifest_raw(
                &image,
                &self.auth,
                &[OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST],
            )
            .await
            .map_err(|e| self.error(reference, e))?;
        let digest = sha256_digest(&bytes);
        if let Some(expected) = &reference.digest
            && *expected != digest
        {
            return Err(OciError::DigestMismatch {
                what: "manifest",
                reference: reference.to_string(),
                expected: expected.clone(),
                actual: digest,
            });
        }
        Ok((bytes.to_vec(), digest))
    }

    /// The blob `descriptor` names, at most `limit` bytes, its digest checked.
    pub async fn blob(
        &self,
        reference: &OciReference,
        descriptor: &Descriptor,
        limit: usize,
    ) -> Result<Vec<u8>, OciError> {
        let too_large = |size: usize| OciError::TooLarge {
            reference: reference.to_string(),
            size,
            limit,
        };
        if usize::try_from(descriptor.size).map_or(true, |s| s > limit) {
            return Err(too_large(
                usize::try_from(descriptor.size).unwrap_or(usize::MAX),
            ));
        }
        let image = Self::image(reference)?;
        self.client
            .store_auth_if_needed(image.resolve_registry(), &self.auth)
            .await;
        let mut stream = self
            .client
            .pull_blob_stream(&image, &descriptor.oci())
            .await
            .map_err(|e| self.error(reference, e))?;
        let mut bytes = Vec::new();
        let mut failure = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() > limit {
                        return Err(too_large(bytes.len()));
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        // A transfer that broke off is that failure; a digest the client found wrong
        // is checked (and named) here, as is every blob: nothing unverified leaves.
        if let Some(e) = &failure {
            let digest_error = e
                .get_ref()
                .is_some_and(|inner| inner.is::<oci_client::errors::DigestError>());
            if !digest_error {
                return Err(OciError::Registry {
                    reference: reference.to_string(),
                    message: self.transport_hint(&chain(e)),
                });
            }
        }
        let actual = sha256_digest(&bytes);
        if actual != descriptor.digest {
            return Err(OciError::DigestMismatch {
                what: "layer",
                reference: reference.to_string(),
                expected: descriptor.digest.clone(),
                actual,
            });
        }
        if let Some(e) = failure {
            // The client's check failed where ours passed (a Docker-Content-Digest
            // header naming another digest): refuse rather than guess.
            return Err(OciError::Registry {
                reference: reference.to_string(),
                message: chain(&e),
            });
        }
        Ok(bytes)
    }

    /// The cosign signatures stored for `manifest_digest` (none if there are none).
    pub async fn signatures(
        &self,
        reference: &OciReference,
        manifest_digest: &str,
    ) -> Result<Vec<Signature>, OciError> {
        let sig_ref = reference.with_tag(&cosign::signature_tag(manifest_digest));
        let (bytes, _) = match self.manifest(&sig_ref).await {
            Ok(found) => found,
            Err(OciError::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| OciError::Registry {
                reference: sig_ref.to_string(),
                message: format!("the signature manifest is not JSON: {e}"),
            })?;
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut signatures = Vec::new();
        for layer in manifest
            .layers
            .iter()
            .filter(|l| l.media_type == cosign::SIMPLE_SIGNING_MEDIA_TYPE)
        {
            let Some(signature) = layer.annotations.get(cosign::SIGNATURE_ANNOTATION) else {
                continue;
            };
            let payload = self.blob(&sig_ref, layer, 1 << 20).await?;
            signatures.push(Signature {
                payload: base64::Engine::encode(&b64, &payload),
                signature: signature.clone(),
            });
        }
        Ok(signatures)
    }

    /// Uploads a blob (skipped when the registry has it).
    pub async fn push_blob(
        &self,
        reference: &OciReference,
        bytes: Vec<u8>,
        digest: &str,
    ) -> Result<(), OciError> {
        let image = Self::image(reference)?;
        self.client
            .auth(&image, &self.auth, RegistryOperation::Push)
            .await
            .map_err(|e| self.error(reference, e))?;
        if self
            .client
            .blob_exists(&image, digest)
            .await
            .map_err(|e| self.error(reference, e))?
        {
            return Ok(());
        }
        self.client
            .push_blob(&image, bytes, digest)
            .await
            .map(|_| ())
            .map_err(|e| self.error(reference, e))
    }

    /// Uploads a manifest under the reference's tag (or its digest).
    pub async fn push_manifest(
        &self,
        reference: &OciReference,
        bytes: Vec<u8>,
        media_type: &str,
    ) -> Result<(), OciError> {
        let image = Self::image(reference)?;
        let content_type = media_type.parse().map_err(|_| OciError::Client {
            registry: self.registry.clone(),
            message: format!("{media_type:?} is not a header value"),
        })?;
        self.client
            .push_manifest_raw(&image, bytes, content_type)
            .await
            .map(|_| ())
            .map_err(|e| self.error(reference, e))
    }
}

/// An error and its causes on one line (`a: b: c`).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
