//! Compiled modules on disk (`--module-cache DIR`), never trusted blindly: wasmtime
//! loads a cache entry as native code, so a file that is corrupt (a torn write, a
//! flipped bit) or foreign (copied from another module's entry) must be refused
//! before it is deserialized. Each entry starts with a header naming the SHA-256 of
//! the module it was compiled from and of the compiled code that follows; an entry
//! whose header does not match is ignored, logged, and rebuilt.
//!
//! The file name carries the module's digest, the engine's compatibility hash
//! (wasmtime version and configuration) and whether the module was pre-initialized,
//! so each machine compiles a module once per engine.

use std::hash::{Hash, Hasher};
use std::path::Path;
use wasmtime::Module;

/// The first bytes of every entry (and its format version).
const MAGIC: &[u8] = b"plate-policy compiled module v1\n";
const DIGEST_LEN: usize = 32;
const HEADER_LEN: usize = MAGIC.len() + 2 * DIGEST_LEN;

/// A SHA-256 digest.
pub type Digest = [u8; DIGEST_LEN];

/// The SHA-256 of `bytes`.
pub fn digest(bytes: &[u8]) -> Digest {
    let mut out = [0u8; DIGEST_LEN];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

fn hex(digest: &Digest) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `<sha256 of the module>-<engine hash>[-preinit].cwasm`
pub fn file_name(module: &Digest, compatibility: impl Hash, preinitialized: bool) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    compatibility.hash(&mut hasher);
    env!("CARGO_PKG_VERSION").hash(&mut hasher);
    let kind = if preinitialized { "-preinit" } else { "" };
    format!("{}-{:016x}{kind}.cwasm", hex(module), hasher.finish())
}

/// Why an entry was refused.
#[derive(Debug, PartialEq, Eq)]
enum Refused {
    Format,
    Foreign,
    Corrupt,
}

/// The compiled code of an entry, after its header checked out for `module`.
fn payload<'a>(entry: &'a [u8], module: &Digest) -> Result<&'a [u8], Refused> {
    if entry.len() < HEADER_LEN || !entry.starts_with(MAGIC) {
        return Err(Refused::Format);
    }
    let (from, rest) = entry[MAGIC.len()..].split_at(DIGEST_LEN);
    let (sum, code) = rest.split_at(DIGEST_LEN);
    if from != module {
        return Err(Refused::Foreign);
    }
    if sum != digest(code) {
        return Err(Refused::Corrupt);
    }
    Ok(code)
}

/// The compiled code of `module` stored at `path`, if the entry is there and sound.
/// Read into memory rather than mapped: a file changed on disk later must not be
/// able to change code that is running.
pub fn read(path: &Path, module: &Digest) -> Option<Vec<u8>> {
    let entry = std::fs::read(path).ok()?;
    match payload(&entry, module) {
        Ok(code) => Some(code.to_vec()),
        Err(why) => {
            let reason = match why {
                Refused::Format => "not a plate-policy cache entry (or an older format)",
                Refused::Foreign => "compiled from another module",
                Refused::Corrupt => "its contents do not match their checksum",
            };
            tracing::warn!(file = %path.display(), reason, "ignoring a compiled module in the cache; compiling it again");
            None
        }
    }
}

/// Stores `compiled` for `module` atomically; a failure only costs a recompile.
pub fn write(compiled: &Module, path: &Path, module: &Digest) {
    let result = compiled
        .serialize()
        .map_err(|e| e.to_string())
        .and_then(|code| {
            let mut entry = Vec::with_capacity(HEADER_LEN + code.len());
            entry.extend_from_slice(MAGIC);
            entry.extend_from_slice(module);
            entry.extend_from_slice(&digest(&code));
            entry.extend_from_slice(&code);
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, entry)
                .and_then(|()| std::fs::rename(&tmp, path))
                .map_err(|e| e.to_string())
        });
    if let Err(e) = result {
        tracing::warn!(file = %path.display(), error = %e, "cannot store the compiled module in the cache");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(module: &Digest, code: &[u8]) -> Vec<u8> {
        [MAGIC, module, &digest(code), code].concat()
    }

    #[test]
    fn a_sound_entry_gives_its_code_and_a_bad_one_is_refused_with_its_reason() {
        let module = digest(b"module bytes");
        let good = entry(&module, b"native code");
        assert_eq!(payload(&good, &module), Ok(&b"native code"[..]));

        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(payload(&flipped, &module), Err(Refused::Corrupt));

        let other = digest(b"another module");
        assert_eq!(payload(&good, &other), Err(Refused::Foreign));

        assert_eq!(payload(b"native code", &module), Err(Refused::Format));
        assert_eq!(
            payload(&good[..HEADER_LEN - 1], &module),
            Err(Refused::Format)
        );
    }

    #[test]
    fn names_differ_by_module_engine_and_preinitialization() {
        let (a, b) = (digest(b"a"), digest(b"b"));
        assert_ne!(file_name(&a, 1u64, false), file_name(&b, 1u64, false));
        assert_ne!(file_name(&a, 1u64, false), file_name(&a, 2u64, false));
        assert_ne!(file_name(&a, 1u64, false), file_name(&a, 1u64, true));
        assert!(file_name(&a, 1u64, true).ends_with("-preinit.cwasm"));
    }
}
