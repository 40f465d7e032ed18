//! `oci://REGISTRY/REPOSITORY@sha256:DIGEST` and `oci://REGISTRY/REPOSITORY:TAG`:
//! module references to an artifact in an OCI registry. The registry is always
//! written out (no Docker Hub default), and a reference names a tag or a digest
//! (no implicit `latest`).

use std::fmt;
use thiserror::Error;

/// The scheme of OCI module references.
pub const SCHEME: &str = "oci://";

/// A parsed `oci://` reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OciReference {
    /// Host, with its port if written (`registry.example.com:5000`).
    pub registry: String,
    /// The repository path (`plate/no-latest-tag`).
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:` and 64 lowercase hex digits.
    pub digest: Option<String>,
}

/// Why a string is not an OCI module reference.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("{0:?} does not start with oci://")]
    NoScheme(String),
    #[error(
        "{0:?} names no registry: write the registry host first (oci://registry.example.com/REPOSITORY@sha256:...)"
    )]
    NoRegistry(String),
    #[error(
        "{0:?} names neither a tag nor a digest: pin a digest (@sha256:...) or, where allowed, a tag (:1.2.0); there is no implicit latest"
    )]
    Unpinned(String),
    #[error(
        "{reference:?}: {digest:?} is not a sha256 digest (sha256: and 64 lowercase hex digits)"
    )]
    BadDigest { reference: String, digest: String },
    #[error("{reference:?}: the repository {repository:?} is not valid ({why})")]
    BadRepository {
        reference: String,
        repository: String,
        why: &'static str,
    },
    #[error(
        "{reference:?}: the tag {tag:?} is not valid (letters, digits, _ . -, at most 128, not starting with . or -)"
    )]
    BadTag { reference: String, tag: String },
}

impl OciReference {
    /// Parses `oci://REGISTRY/REPO[:TAG][@sha256:DIGEST]`.
    pub fn parse(text: &str) -> Result<OciReference, ReferenceError> {
        let rest = text
            .strip_prefix(SCHEME)
            .ok_or_else(|| ReferenceError::NoScheme(text.to_string()))?;
        let (name, digest) = match rest.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (rest, None),
        };
        let (registry, path) = name
            .split_once('/')
            .ok_or_else(|| ReferenceError::NoRegistry(text.to_string()))?;
        let looks_like_host =
            registry.contains('.') || registry.contains(':') || registry == "localhost";
        if registry.is_empty() || !looks_like_host || !valid_host(registry) {
            return Err(ReferenceError::NoRegistry(text.to_string()));
        }
        // A tag follows the last `:` after the last `/`.
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
            _ => (path, None),
        };
        if let Err(why) = valid_repository(repository) {
            return Err(ReferenceError::BadRepository {
                reference: text.to_string(),
                repository: repository.to_string(),
                why,
            });
        }
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(ReferenceError::BadTag {
                reference: text.to_string(),
                tag: tag.to_string(),
            });
        }
        if let Some(digest) = digest
            && !valid_digest(digest)
        {
            return Err(ReferenceError::BadDigest {
                reference: text.to_string(),
                digest: digest.to_string(),
            });
        }
        if tag.is_none() && digest.is_none() {
            return Err(ReferenceError::Unpinned(text.to_string()));
        }
        Ok(OciReference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }

    /// The same artifact pinned to `digest` (the tag dropped).
    pub fn with_digest(&self, digest: &str) -> OciReference {
        OciReference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest.to_string()),
        }
    }

    /// The same repository at `tag` (the digest dropped).
    pub fn with_tag(&self, tag: &str) -> OciReference {
        OciReference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        }
    }

    /// `REGISTRY/REPOSITORY`, as cosign's signature payload names an image.
    pub fn repository_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The reference without the scheme, as the OCI client reads it.
    pub fn client_form(&self) -> String {
        let mut s = self.repository_name();
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            s.push('@');
            s.push_str(digest);
        }
        s
    }
}

impl fmt::Display for OciReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}", self.client_form())
    }
}

fn valid_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(']') || name.starts_with('[') => (name, Some(port)),
        _ => (host, None),
    };
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.chars().all(|c| c.is_ascii_digit()))
    {
        return false;
    }
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'))
}

/// Distribution's path grammar: lowercase components of `[a-z0-9]` separated by
/// `.`, `_`, `__` or runs of `-`, joined with `/`.
fn valid_repository(repository: &str) -> Result<(), &'static str> {
    if repository.is_empty() {
        return Err("it is empty");
    }
    if repository.len() > 255 {
        return Err("longer than 255 characters");
    }
    for component in repository.split('/') {
        if component.is_empty() {
            return Err("an empty path component");
        }
        let bytes = component.as_bytes();
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
            return Err("components start and end with a lowercase letter or digit");
        }
        if !bytes
            .iter()
            .all(|&b| alnum(b) || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err("only lowercase letters, digits, . _ - and /");
        }
        if component.contains("..") || component.contains("___") || component.contains("._") {
            return Err("separators . and _ do not repeat");
        }
    }
    Ok(())
}

fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `sha256:` and 64 lowercase hex digits.
pub fn valid_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let sum = ring::digest::digest(&ring::digest::SHA256, bytes);
    let hex: String = sum.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn digests_tags_and_both_parse() {
        let r = OciReference::parse(&format!(
            "oci://registry.example.com:5000/plate/no-latest@{D}"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.registry, "registry.example.com:5000");
        assert_eq!(r.repository, "plate/no-latest");
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(D));
        let r =
            OciReference::parse("oci://127.0.0.1:5000/p:v1.2.0").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.tag.as_deref(), Some("v1.2.0"));
        assert_eq!(r.to_string(), "oci://127.0.0.1:5000/p:v1.2.0");
        let both = format!("oci://ghcr.io/a/b:1@{D}");
        let r = OciReference::parse(&both).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (r.tag.as_deref(), r.digest.as_deref()),
            (Some("1"), Some(D))
        );
        assert_eq!(r.to_string(), both);
        assert_eq!(
            r.with_digest(D).to_string(),
            format!("oci://ghcr.io/a/b@{D}")
        );
    }

    #[test]
    fn bad_references_say_what_is_wrong() {
        let cases = [
            (
                "registry.example.com/p@sha256:00",
                "does not start with oci://",
            ),
            ("oci://plate/no-latest:1", "names no registry"),
            ("oci://registry.example.com/p", "neither a tag nor a digest"),
            (
                "oci://registry.example.com/p@sha256:ABC",
                "is not a sha256 digest",
            ),
            ("oci://registry.example.com/P:1", "is not valid"),
            (
                "oci://registry.example.com/p:-x",
                "the tag \"-x\" is not valid",
            ),
            (
                "oci://registry.example.com/a//b:1",
                "an empty path component",
            ),
        ];
        for (text, expected) in cases {
            match OciReference::parse(text) {
                Ok(r) => panic!("{text} parsed as {r:?}"),
                Err(e) => assert!(e.to_string().contains(expected), "{text}: {e}"),
            }
        }
    }

    #[test]
    fn digests_of_bytes() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(valid_digest(&sha256_digest(b"x")));
    }
}
