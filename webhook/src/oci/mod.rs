//! Policy modules from OCI registries: `oci://REGISTRY/REPO@sha256:DIGEST` (or
//! `:TAG`, resolved to a digest when loaded). Pulls follow the CNCF Wasm OCI
//! artifact layout (config `application/vnd.wasm.config.v0+json`, one layer
//! `application/wasm`) and read Kubewarden's too; every manifest and module is
//! checked against its digest before it is kept or compiled; a `cosignKey` makes a
//! valid cosign signature a condition of use. What was pulled is kept by digest
//! ([`store`]), so a restart or a reload does not need the registry for modules it
//! already has. docs/policy-set.md ("Modules from OCI registries") is the user's
//! view; docs/security.md the trust model.

pub mod auth;
pub mod cosign;
pub mod reference;
pub mod registry;
pub mod store;

pub use auth::{Credentials, DockerConfig};
pub use cosign::PublicKey;
pub use reference::{OciReference, ReferenceError, SCHEME};
pub use registry::{CaBundle, Descriptor, Manifest, RegistrySettings};

use registry::Session;
use std::sync::Arc;
use store::Store;
use thiserror::Error;

/// The CNCF Wasm OCI artifact's config media type.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The CNCF Wasm OCI artifact's layer media type.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// Kubewarden's policy config media type.
pub const KUBEWARDEN_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v1+json";
/// Kubewarden's policy layer media type.
pub const KUBEWARDEN_LAYER_MEDIA_TYPE: &str = "application/vnd.wasm.content.layer.v1+wasm";

/// The largest module pulled (a Go policy is a few MiB).
pub const MAX_MODULE_BYTES: usize = 64 << 20;

/// Why an OCI module could not be had.
#[derive(Debug, Error)]
pub enum OciError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(
        "cannot reach the registry {registry}: {cause}; {reference} is not in the module cache, so it cannot be loaded until the registry answers{hint}"
    )]
    Offline {
        registry: String,
        reference: String,
        cause: String,
        /// For a tag: how to load from the cache next time.
        hint: &'static str,
    },
    #[error("cannot reach the registry {registry}: {cause}")]
    Unreachable { registry: String, cause: String },
    #[error(
        "the registry {registry} refused {reference} (HTTP 401 unauthorized) with {credentials}: check the user name and password for {registry}"
    )]
    Unauthorized {
        registry: String,
        reference: String,
        credentials: String,
    },
    #[error("the registry {registry} denied access to {reference} with {credentials}: {message}")]
    Denied {
        registry: String,
        reference: String,
        credentials: String,
        message: String,
    },
    #[error(
        "{reference} was not found in its registry ({message}): check the repository, tag or digest"
    )]
    NotFound { reference: String, message: String },
    #[error("{reference}: the registry answered with an error: {message}")]
    Registry { reference: String, message: String },
    #[error(
        "{reference}: the {what} does not match its digest: expected {expected}, but the registry sent content whose digest is {actual}; nothing was loaded"
    )]
    DigestMismatch {
        what: &'static str,
        reference: String,
        expected: String,
        actual: String,
    },
    #[error(
        "{reference} is not a Wasm module artifact: {found}; plate-policy reads the CNCF Wasm layout (config {WASM_CONFIG_MEDIA_TYPE}, one layer {WASM_LAYER_MEDIA_TYPE}) and Kubewarden's (config {KUBEWARDEN_CONFIG_MEDIA_TYPE}, one layer {KUBEWARDEN_LAYER_MEDIA_TYPE})"
    )]
    NotWasm { reference: String, found: String },
    #[error("{reference}: the module is {size} bytes, more than the {limit} a module may have")]
    TooLarge {
        reference: String,
        size: usize,
        limit: usize,
    },
    #[error(
        "{reference} is not signed: no cosign signature was found (tag {tag}); sign it with cosign sign --key, or remove verify from the policy entry"
    )]
    Unsigned {
        reference: String,
        digest: String,
        tag: String,
    },
    #[error(
        "{reference} is not signed with the key {key}: {count} signature(s) found, none valid ({reasons}); the module is not used"
    )]
    WrongSignature {
        reference: String,
        digest: String,
        key: String,
        count: usize,
        reasons: String,
    },
    #[error("the registry {registry}: {message}")]
    Client { registry: String, message: String },
    #[error("cannot start the registry client: {0}")]
    Runtime(String),
}

/// A module pulled (or found in the cache) and verified.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The reference as written.
    pub reference: OciReference,
    /// The manifest's digest: what a tag resolved to.
    pub digest: String,
    pub manifest_media_type: String,
    pub config_media_type: String,
    pub layer: Descriptor,
    /// The module's bytes, whose SHA-256 is `layer.digest`.
    pub module: Arc<[u8]>,
    /// Whether it came from the cache (no registry was asked).
    pub cached: bool,
    /// The fingerprint of the key whose signature was verified.
    pub verified_with: Option<String>,
}

/// Pulls, pushes and keeps modules; shared by every load of a process.
#[derive(Default)]
pub struct Oci {
    auth: DockerConfig,
    store: Store,
}

/// What a module layer may be, and the layout it belongs to.
fn module_layer(manifest: &Manifest) -> Result<(&Descriptor, &str), String> {
    if manifest.manifests.is_some() {
        return Err(
            "it is an image index, not a manifest; pin the digest of the Wasm artifact's manifest"
                .into(),
        );
    }
    let config = manifest
        .config
        .as_ref()
        .map(|c| c.media_type.as_str())
        .unwrap_or("none");
    let layers: Vec<&str> = manifest
        .layers
        .iter()
        .map(|l| l.media_type.as_str())
        .collect();
    let found = || format!("config {config}, layers [{}]", layers.join(", "));
    let expected_layer = match config {
        WASM_CONFIG_MEDIA_TYPE => WASM_LAYER_MEDIA_TYPE,
        KUBEWARDEN_CONFIG_MEDIA_TYPE => KUBEWARDEN_LAYER_MEDIA_TYPE,
        _ => return Err(found()),
    };
    match manifest.layers.as_slice() {
        [layer] if layer.media_type == expected_layer => Ok((layer, config)),
        _ => Err(found()),
    }
}

/// Runs `f` on a runtime of its own, on a thread of its own: loads are
/// synchronous and may be called from inside the server's runtime.
fn block_on<T: Send>(f: impl std::future::Future<Output = T> + Send) -> Result<T, OciError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| OciError::Runtime(e.to_string()))?;
                Ok(runtime.block_on(f))
            })
            .join()
            .map_err(|_| OciError::Runtime("the registry client panicked".into()))?
    })
}

impl Oci {
    /// Keeps pulled artifacts under `dir/oci` as well as in memory.
    pub fn with_dir(dir: &std::path::Path) -> Oci {
        Oci {
            auth: DockerConfig::default(),
            store: Store::with_dir(dir),
        }
    }

    /// Uses these credentials from now on.
    pub fn set_auth(&mut self, auth: DockerConfig) {
        self.auth = auth;
    }

    /// Where pulled artifacts are kept on disk, if anywhere.
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.store.dir()
    }

    /// The artifact `reference` names, from the cache when it is there (digest
    /// references only), else from the registry; with `key`, only if a cosign
    /// signature of it by that key verifies.
    pub fn fetch(
        &self,
        reference: &OciReference,
        settings: &RegistrySettings,
        key: Option<&PublicKey>,
    ) -> Result<Artifact, OciError> {
        let mut signatures_needed = false;
        if let Some(digest) = &reference.digest
            && let Some(artifact) = self.cached(reference, digest)?
        {
            let Some(key) = key else {
                return Ok(artifact);
            };
            if self
                .check_signature(reference, digest, key, &self.store.signatures(digest))
                .is_ok()
            {
                return Ok(Artifact {
                    verified_with: Some(key.fingerprint.clone()),
                    ..artifact
                });
            }
            signatures_needed = true;
        }
        let session = Session::new(&reference.registry, settings, &self.auth)?;
        let pulled = block_on(self.pull(&session, reference, key, signatures_needed))?;
        pulled.map_err(|e| match e {
            OciError::Unreachable { registry, cause } => OciError::Offline {
                registry,
                reference: reference.to_string(),
                cause,
                hint: if reference.digest.is_none() {
                    " (a tag is resolved at the registry on every load; pin the digest to load from the cache)"
                } else {
                    ""
                },
            },
            other => other,
        })
    }

    /// The artifact from the cache, if its manifest and module are both there.
    fn cached(&self, reference: &OciReference, digest: &str) -> Result<Option<Artifact>, OciError> {
        let Some(manifest_bytes) = self.store.manifest(digest) else {
            return Ok(None);
        };
        let Ok(manifest) = serde_json::from_slice::<Manifest>(&manifest_bytes) else {
            return Ok(None);
        };
        let (layer, config) = module_layer(&manifest).map_err(|found| OciError::NotWasm {
            reference: reference.to_string(),
            found,
        })?;
        let Some(module) = self.store.blob(&layer.digest) else {
            return Ok(None);
        };
        Ok(Some(Artifact {
            reference: reference.clone(),
            digest: digest.to_string(),
            manifest_media_type: manifest
                .media_type
                .clone()
                .unwrap_or_else(|| registry::OCI_MANIFEST.to_string()),
            config_media_type: config.to_string(),
            layer: layer.clone(),
            module,
            cached: true,
            verified_with: None,
        }))
    }

    fn check_signature(
        &self,
        reference: &OciReference,
        digest: &str,
        key: &PublicKey,
        signatures: &[cosign::Signature],
    ) -> Result<(), OciError> {
        cosign::verify(key, digest, signatures).map_err(|why| match why {
            cosign::Unverified::Unsigned => OciError::Unsigned {
                reference: reference.with_digest(digest).to_string(),
                digest: digest.to_string(),
                tag: cosign::signature_tag(digest),
            },
            cosign::Unverified::WrongSignatures { count, reasons } => OciError::WrongSignature {
                reference: reference.with_digest(digest).to_string(),
                digest: digest.to_string(),
                key: key.source.clone(),
                count,
                reasons: reasons.join("; "),
            },
        })
    }

    async fn pull(
        &self,
        session: &Session,
        reference: &OciReference,
        key: Option<&PublicKey>,
        only_signatures: bool,
    ) -> Result<Artifact, OciError> {
        let (artifact, digest) = if only_signatures {
            let digest = reference.digest.clone().unwrap_or_default();
            match self.cached(reference, &digest)? {
                Some(a) => (a, digest),
                None => self.pull_artifact(session, reference).await?,
            }
        } else {
            self.pull_artifact(session, reference).await?
        };
        let Some(key) = key else {
            return Ok(artifact);
        };
        let signatures = session.signatures(reference, &digest).await?;
        self.check_signature(reference, &digest, key, &signatures)?;
        self.store.put_signatures(&digest, &signatures);
        Ok(Artifact {
            verified_with: Some(key.fingerprint.clone()),
            ..artifact
        })
    }

    async fn pull_artifact(
        &self,
        session: &Session,
        reference: &OciReference,
    ) -> Result<(Artifact, String), OciError> {
        // A reference with a digest is pulled by digest, even if it has a tag.
        let by = match &reference.digest {
            Some(digest) => reference.with_digest(digest),
            None => reference.clone(),
        };
        let (manifest_bytes, digest) = session.manifest(&by).await?;
        if reference.digest.is_none() {
            tracing::info!(reference = %reference, digest = %digest, "resolved an OCI tag to a digest");
        }
        let manifest: Manifest =
            serde_json::from_slice(&manifest_bytes).map_err(|e| OciError::NotWasm {
                reference: reference.to_string(),
                found: format!("its manifest is not JSON ({e})"),
            })?;
        let (layer, config) = module_layer(&manifest).map_err(|found| OciError::NotWasm {
            reference: reference.to_string(),
            found,
        })?;
        let module = match self.store.blob(&layer.digest) {
            Some(module) => module,
            None => {
                let bytes = session.blob(reference, layer, MAX_MODULE_BYTES).await?;
                self.store.put_blob(&layer.digest, &bytes)
            }
        };
        self.store.put_manifest(&digest, &manifest_bytes);
        Ok((
            Artifact {
                reference: reference.clone(),
                digest: digest.clone(),
                manifest_media_type: manifest
                    .media_type
                    .clone()
                    .unwrap_or_else(|| registry::OCI_MANIFEST.to_string()),
                config_media_type: config.to_string(),
                layer: layer.clone(),
                module,
                cached: false,
                verified_with: None,
            },
            digest,
        ))
    }

    /// Pushes `module` as a Wasm artifact to `reference` (its tag, or by digest);
    /// returns the manifest's digest.
    pub fn push(
        &self,
        reference: &OciReference,
        settings: &RegistrySettings,
        module: &[u8],
        layout: Layout,
    ) -> Result<String, OciError> {
        let (manifest, config, layer_digest) = artifact_manifest(module, layout);
        let digest = reference::sha256_digest(&manifest);
        if let Some(wanted) = &reference.digest
            && *wanted != digest
        {
            return Err(OciError::DigestMismatch {
                what: "manifest",
                reference: reference.to_string(),
                expected: wanted.clone(),
                actual: digest,
            });
        }
        let target = match &reference.tag {
            Some(tag) => reference.with_tag(tag),
            None => reference.with_digest(&digest),
        };
        let session = Session::new(&reference.registry, settings, &self.auth)?;
        let config_digest = reference::sha256_digest(&config);
        block_on(async {
            session.push_blob(&target, config, &config_digest).await?;
            session
                .push_blob(&target, module.to_vec(), &layer_digest)
                .await?;
            session
                .push_manifest(&target, manifest, registry::OCI_MANIFEST)
                .await
        })??;
        Ok(digest)
    }
}

/// Which artifact layout `push` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// The CNCF Wasm OCI artifact layout.
    #[default]
    Cncf,
    /// Kubewarden's policy layout (for testing compatibility).
    Kubewarden,
}

/// The manifest, the config blob and the layer digest of a module's artifact.
/// Nothing varies but the module, so the same module always gets the same digest.
fn artifact_manifest(module: &[u8], layout: Layout) -> (Vec<u8>, Vec<u8>, String) {
    let layer_digest = reference::sha256_digest(module);
    let (config_type, layer_type, config) = match layout {
        Layout::Cncf => (
            WASM_CONFIG_MEDIA_TYPE,
            WASM_LAYER_MEDIA_TYPE,
            serde_json::json!({
                "architecture": "wasm",
                "os": "wasip1",
                "layerDigests": [layer_digest],
            }),
        ),
        Layout::Kubewarden => (
            KUBEWARDEN_CONFIG_MEDIA_TYPE,
            KUBEWARDEN_LAYER_MEDIA_TYPE,
            serde_json::json!({}),
        ),
    };
    let config = config.to_string().into_bytes();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": registry::OCI_MANIFEST,
        "config": {
            "mediaType": config_type,
            "digest": reference::sha256_digest(&config),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": layer_type,
            "digest": layer_digest,
            "size": module.len(),
        }],
    });
    (manifest.to_string().into_bytes(), config, layer_digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_layouts_are_read_and_others_are_refused_with_what_they_are() {
        for layout in [Layout::Cncf, Layout::Kubewarden] {
            let (manifest, _, layer) = artifact_manifest(b"\0asm", layout);
            let manifest: Manifest =
                serde_json::from_slice(&manifest).unwrap_or_else(|e| panic!("{e}"));
            let (found, _) = module_layer(&manifest).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(found.digest, layer);
        }
        let image: Manifest = serde_json::from_value(serde_json::json!({
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:x", "size": 1},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:y", "size": 1}],
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        match module_layer(&image) {
            Err(found) => assert_eq!(
                found,
                "config application/vnd.oci.image.config.v1+json, layers [application/vnd.oci.image.layer.v1.tar+gzip]"
            ),
            Ok(l) => panic!("accepted {l:?}"),
        }
    }

    #[test]
    fn the_same_module_gets_the_same_digest() {
        let (a, _, _) = artifact_manifest(b"\0asm module", Layout::Cncf);
        let (b, _, _) = artifact_manifest(b"\0asm module", Layout::Cncf);
        let (c, _, _) = artifact_manifest(b"\0asm other", Layout::Cncf);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
