//! Pulled artifacts kept by digest, in memory and optionally on disk (under the
//! module cache directory, `oci/`), so a restart or a reload needs no registry for
//! what it already has. Nothing read back is trusted: a manifest or a module is
//! used only if its SHA-256 is the digest it is filed under, and stored signatures
//! are verified against the policy's key again on every load.
//!
//! ```text
//! DIR/oci/manifests/sha256/HEX        the manifest's bytes, as pulled
//! DIR/oci/blobs/sha256/HEX            the module (the layer), as pulled
//! DIR/oci/signatures/sha256/HEX.json  the cosign signatures of manifest HEX
//! ```

use super::cosign::Signature;
use super::reference::sha256_digest;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Manifest,
    Blob,
}

/// Files by kind and digest.
type Files = HashMap<(Kind, String), Arc<[u8]>>;

#[derive(Default)]
pub struct Store {
    dir: Option<PathBuf>,
    memory: Mutex<Files>,
    signatures: Mutex<HashMap<String, Vec<Signature>>>,
}

impl Store {
    /// A store that also keeps what it holds in `dir/oci` (the module cache directory).
    pub fn with_dir(dir: &Path) -> Store {
        Store {
            dir: Some(dir.join("oci")),
            ..Store::default()
        }
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    fn path(&self, kind: Kind, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        let sub = match kind {
            Kind::Manifest => "manifests",
            Kind::Blob => "blobs",
        };
        Some(self.dir.as_ref()?.join(sub).join("sha256").join(hex))
    }

    fn get(&self, kind: Kind, digest: &str) -> Option<Arc<[u8]>> {
        let key = (kind, digest.to_string());
        if let Some(bytes) = lock(&self.memory).get(&key) {
            return Some(Arc::clone(bytes));
        }
        let path = self.path(kind, digest)?;
        let bytes = std::fs::read(&path).ok()?;
        if sha256_digest(&bytes) != digest {
            tracing::warn!(file = %path.display(), "ignoring a cached OCI file whose contents do not match its digest; pulling it again");
            let _ = std::fs::remove_file(&path);
            return None;
        }
        let bytes: Arc<[u8]> = bytes.into();
        lock(&self.memory).insert(key, Arc::clone(&bytes));
        Some(bytes)
    }

    /// Keeps `bytes`, which the caller verified to have `digest`.
    fn put(&self, kind: Kind, digest: &str, bytes: &[u8]) -> Arc<[u8]> {
        let bytes: Arc<[u8]> = bytes.into();
        lock(&self.memory).insert((kind, digest.to_string()), Arc::clone(&bytes));
        if let Some(path) = self.path(kind, digest) {
            write_atomic(&path, &bytes);
        }
        bytes
    }

    pub fn manifest(&self, digest: &str) -> Option<Arc<[u8]>> {
        self.get(Kind::Manifest, digest)
    }

    pub fn put_manifest(&self, digest: &str, bytes: &[u8]) -> Arc<[u8]> {
        self.put(Kind::Manifest, digest, bytes)
    }

    pub fn blob(&self, digest: &str) -> Option<Arc<[u8]>> {
        self.get(Kind::Blob, digest)
    }

    pub fn put_blob(&self, digest: &str, bytes: &[u8]) -> Arc<[u8]> {
        self.put(Kind::Blob, digest, bytes)
    }

    fn signatures_path(&self, manifest_digest: &str) -> Option<PathBuf> {
        let hex = manifest_digest.strip_prefix("sha256:")?;
        Some(
            self.dir
                .as_ref()?
                .join("signatures")
                .join("sha256")
                .join(format!("{hex}.json")),
        )
    }

    /// The signatures stored for a manifest (unverified: the caller checks them).
    pub fn signatures(&self, manifest_digest: &str) -> Vec<Signature> {
        if let Some(s) = lock(&self.signatures).get(manifest_digest) {
            return s.clone();
        }
        let Some(path) = self.signatures_path(manifest_digest) else {
            return Vec::new();
        };
        std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    pub fn put_signatures(&self, manifest_digest: &str, signatures: &[Signature]) {
        lock(&self.signatures).insert(manifest_digest.to_string(), signatures.to_vec());
        if let Some(path) = self.signatures_path(manifest_digest)
            && let Ok(json) = serde_json::to_vec(signatures)
        {
            write_atomic(&path, &json);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a map half-written.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Writes via a temporary file and a rename; a failure only costs a pull later.
fn write_atomic(path: &Path, bytes: &[u8]) {
    let result = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path))
        });
    if let Err(e) = result {
        tracing::warn!(file = %path.display(), error = %e, "cannot keep a pulled OCI file in the cache");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_found_by_digest_and_a_changed_file_is_not_used() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let digest = sha256_digest(b"module");
        Store::with_dir(dir.path()).put_blob(&digest, b"module");
        // A new store (a restarted server) reads it from disk.
        assert_eq!(
            Store::with_dir(dir.path()).blob(&digest).as_deref(),
            Some(&b"module"[..])
        );
        let file = dir.path().join("oci/blobs/sha256").join(&digest[7..]);
        std::fs::write(&file, b"tampered").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Store::with_dir(dir.path()).blob(&digest), None);
        assert!(!file.exists(), "the bad file is removed");
    }
}
