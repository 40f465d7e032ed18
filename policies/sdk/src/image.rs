//! Container image references, parsed as the distribution project reads them
//! (`github.com/distribution/reference` v0.6.0 `ParseNormalizedNamed`, what
//! containerd and CRI-O resolve images with):
//!
//! ```text
//! reference := name [ ":" tag ] [ "@" digest ]
//! name      := [ domain "/" ] path-component { "/" path-component }
//! domain    := host [ ":" port ]        host: DNS labels separated by ".", or "[" hex and ":" "]"
//! tag       := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//! digest    := "sha256:" hex{64} | "sha384:" hex{96} | "sha512:" hex{128}   (lowercase hex)
//! ```
//!
//! The first `/`-separated component is a registry only if it contains `.` or `:`,
//! is `localhost`, or has an uppercase letter; otherwise the image is on Docker Hub
//! (`nginx` is `docker.io/library/nginx`). So `harbor.local:5000/plate/api` has no
//! tag: the colon belongs to the port. The path may have 255 characters at most, a
//! Docker Hub short name counted with its `library/` prefix; 64 hex digits alone are an
//! image ID, not a reference. The fuzz target `image` (fuzz/) checks this parser
//! against a port of distribution's own regular expressions.

use std::fmt;

/// A parsed image reference. `domain` is as written (None for Docker Hub short names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    /// The registry host as written (`harbor.local:5000`); None for Docker Hub short names.
    pub domain: Option<String>,
    /// The repository path (`plate/api`; `library/nginx` for `nginx`).
    pub path: String,
    /// The tag as written; None when there is none (the runtime then pulls `latest`).
    pub tag: Option<String>,
    /// The digest (`sha256:...`), when the reference pins one.
    pub digest: Option<String>,
}

/// Why a string is not an image reference; `Display` says it for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageReferenceError {
    /// The reference is empty.
    Empty,
    /// The repository name has this many characters, more than 255.
    TooLong(usize),
    /// 64 hex digits alone: an image ID.
    Identifier(String),
    /// The registry host is not a host (with an optional port).
    InvalidDomain(String),
    /// A path component breaks the grammar.
    InvalidPathComponent(String),
    /// The tag breaks the grammar.
    InvalidTag(String),
    /// The digest is not `algorithm:hex` (sha256: 64 lowercase hex digits).
    InvalidDigest(String),
}

impl fmt::Display for ImageReferenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageReferenceError::Empty => write!(f, "the image reference is empty"),
            ImageReferenceError::TooLong(n) => {
                write!(
                    f,
                    "the repository path is {n} characters long (at most 255; a Docker Hub short name counts with its library/ prefix)"
                )
            }
            ImageReferenceError::Identifier(id) => write!(
                f,
                "{id:?} is a 64-digit hexadecimal image ID, not an image reference: name the image by repository (and digest: repository@sha256:...)"
            ),
            ImageReferenceError::InvalidDomain(d) => {
                write!(f, "{d:?} is not a valid registry host")
            }
            ImageReferenceError::InvalidPathComponent(c) => write!(
                f,
                "{c:?} is not a valid repository path component (lowercase letters, digits and single separators . _ __ -)"
            ),
            ImageReferenceError::InvalidTag(t) => write!(
                f,
                "{t:?} is not a valid tag (letters, digits, _ . -, at most 128, not starting with . or -)"
            ),
            ImageReferenceError::InvalidDigest(d) => write!(
                f,
                "{d:?} is not a valid digest (sha256:, sha384: or sha512: and its lowercase hex digest)"
            ),
        }
    }
}

impl std::error::Error for ImageReferenceError {}

/// The registry of images whose reference names none.
pub const DOCKER_HUB: &str = "docker.io";

impl ImageReference {
    /// Parses `reference` by the grammar above.
    pub fn parse(reference: &str) -> Result<ImageReference, ImageReferenceError> {
        if reference.is_empty() {
            return Err(ImageReferenceError::Empty);
        }
        if reference.len() == 64
            && reference
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(ImageReferenceError::Identifier(reference.to_string()));
        }
        let (rest, digest) = match reference.split_once('@') {
            Some((rest, digest)) => {
                validate_digest(digest)?;
                (rest, Some(digest.to_string()))
            }
            None => (reference, None),
        };
        // A tag is a colon after the last slash; an earlier colon is a port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                let tag = &rest[at + 1..];
                validate_tag(tag)?;
                (&rest[..at], Some(tag.to_string()))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(ImageReferenceError::Empty);
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest)) if looks_like_domain(first) => {
                validate_domain(first)?;
                (Some(first.to_string()), rest)
            }
            _ => (None, name),
        };
        // Counted as distribution counts it: the path as normalized.
        let docker_hub = matches!(
            domain.as_deref(),
            None | Some(DOCKER_HUB | "index.docker.io")
        );
        let length = if docker_hub && !path.contains('/') {
            "library/".len() + path.len()
        } else {
            path.len()
        };
        if length > 255 {
            return Err(ImageReferenceError::TooLong(length));
        }
        for component in path.split('/') {
            validate_path_component(component)?;
        }
        Ok(ImageReference {
            domain,
            path: path.to_string(),
            tag,
            digest,
        })
    }

    /// The registry host the runtime pulls from (`docker.io` for short names).
    pub fn registry(&self) -> &str {
        match self.domain.as_deref() {
            None | Some("index.docker.io") | Some("registry-1.docker.io") => DOCKER_HUB,
            Some(domain) => domain,
        }
    }

    /// The fully qualified repository: `docker.io/library/nginx`, `harbor.local:5000/plate/api`.
    pub fn repository(&self) -> String {
        let registry = self.registry();
        if registry == DOCKER_HUB && !self.path.contains('/') {
            format!("{DOCKER_HUB}/library/{}", self.path)
        } else {
            format!("{registry}/{}", self.path)
        }
    }

    /// The tag the runtime resolves when none is written: `latest`.
    pub fn effective_tag(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }

    /// A digest fixes the exact image whatever the tag says.
    pub fn is_pinned(&self) -> bool {
        self.digest.is_some()
    }
}

fn looks_like_domain(component: &str) -> bool {
    component.contains('.')
        || component.contains(':')
        || component == "localhost"
        || component.chars().any(|c| c.is_ascii_uppercase())
}

fn validate_domain(domain: &str) -> Result<(), ImageReferenceError> {
    let bad = || ImageReferenceError::InvalidDomain(domain.to_string());
    let (host, port) = if let Some(v6) = domain.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or_else(bad)?;
        if addr.is_empty() || !addr.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err(bad());
        }
        match after {
            "" => (None, None),
            p => (None, Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match domain.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    if let Some(host) = host {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !host.split('.').all(label_ok) {
            return Err(bad());
        }
    }
    if let Some(port) = port
        && (port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(bad());
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn validate_path_component(component: &str) -> Result<(), ImageReferenceError> {
    let bad = || ImageReferenceError::InvalidPathComponent(component.to_string());
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(bad());
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if alnum(b) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-", then an alphanumeric.
        let start = i;
        match b {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if bytes.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return Err(bad()),
        }
        if i == start || !bytes.get(i).copied().is_some_and(alnum) {
            return Err(bad());
        }
    }
    Ok(())
}

fn validate_tag(tag: &str) -> Result<(), ImageReferenceError> {
    let bytes = tag.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let ok = !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ImageReferenceError::InvalidTag(tag.to_string()))
    }
}

fn validate_digest(digest: &str) -> Result<(), ImageReferenceError> {
    let bad = || ImageReferenceError::InvalidDigest(digest.to_string());
    let (algorithm, hex) = digest.split_once(':').ok_or_else(bad)?;
    // go-digest's algorithms; any other is refused (ErrDigestUnsupported).
    let length = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(bad()),
    };
    if hex.len() == length
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (input, domain, path, tag, pinned, repository)
    type Row<'a> = (
        &'a str,
        Option<&'a str>,
        &'a str,
        Option<&'a str>,
        bool,
        &'a str,
    );
    /// (input, is this the expected error?)
    type BadRow<'a> = (&'a str, fn(&ImageReferenceError) -> bool);

    const SHA: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn ok(
        input: &str,
        domain: Option<&str>,
        path: &str,
        tag: Option<&str>,
        digest: bool,
        repository: &str,
    ) {
        let parsed = ImageReference::parse(input)
            .unwrap_or_else(|e| panic!("{input:?} should parse, got error: {e}"));
        assert_eq!(parsed.domain.as_deref(), domain, "domain of {input:?}");
        assert_eq!(parsed.path, path, "path of {input:?}");
        assert_eq!(parsed.tag.as_deref(), tag, "tag of {input:?}");
        assert_eq!(parsed.is_pinned(), digest, "digest of {input:?}");
        assert_eq!(parsed.repository(), repository, "repository of {input:?}");
    }

    #[test]
    fn parses_valid_references() {
        let sha_img = format!("app:1.25@{SHA}");
        let sha_only = format!("app@{SHA}");
        let port_digest = format!("harbor.local:5000/plate/api@{SHA}");
        #[rustfmt::skip]
        let table: &[Row<'_>] = &[
            ("nginx", None, "nginx", None, false, "docker.io/library/nginx"),
            ("nginx:1.25", None, "nginx", Some("1.25"), false, "docker.io/library/nginx"),
            ("nginx:latest", None, "nginx", Some("latest"), false, "docker.io/library/nginx"),
            ("library/nginx:1.25", None, "library/nginx", Some("1.25"), false, "docker.io/library/nginx"),
            ("bitnami/redis:7.2", None, "bitnami/redis", Some("7.2"), false, "docker.io/bitnami/redis"),
            ("docker.io/nginx", Some("docker.io"), "nginx", None, false, "docker.io/library/nginx"),
            ("index.docker.io/library/nginx:1", Some("index.docker.io"), "library/nginx", Some("1"), false, "docker.io/library/nginx"),
            ("harbor.local:5000/plate/api", Some("harbor.local:5000"), "plate/api", None, false, "harbor.local:5000/plate/api"),
            ("harbor.local:5000/plate/api:2.0.1", Some("harbor.local:5000"), "plate/api", Some("2.0.1"), false, "harbor.local:5000/plate/api"),
            ("harbor.cocdev.co.kr/plate/plate-api:latest", Some("harbor.cocdev.co.kr"), "plate/plate-api", Some("latest"), false, "harbor.cocdev.co.kr/plate/plate-api"),
            ("localhost/app", Some("localhost"), "app", None, false, "localhost/app"),
            ("localhost:5000/app:v1", Some("localhost:5000"), "app", Some("v1"), false, "localhost:5000/app"),
            ("[::1]:5000/app:v1", Some("[::1]:5000"), "app", Some("v1"), false, "[::1]:5000/app"),
            ("Registry/app", Some("Registry"), "app", None, false, "Registry/app"),
            ("ghcr.io/org/team/app:sha-abc_1.2-rc", Some("ghcr.io"), "org/team/app", Some("sha-abc_1.2-rc"), false, "ghcr.io/org/team/app"),
            (sha_img.as_str(), None, "app", Some("1.25"), true, "docker.io/library/app"),
            (sha_only.as_str(), None, "app", None, true, "docker.io/library/app"),
            (port_digest.as_str(), Some("harbor.local:5000"), "plate/api", None, true, "harbor.local:5000/plate/api"),
            ("a__b/c-d--e/f.g:T", None, "a__b/c-d--e/f.g", Some("T"), false, "docker.io/a__b/c-d--e/f.g"),
        ];
        for (input, domain, path, tag, digest, repository) in table {
            ok(input, *domain, path, *tag, *digest, repository);
        }
    }

    #[test]
    fn effective_tag_is_latest_when_untagged() {
        let cases = [
            ("nginx", "latest"),
            ("nginx:1.25", "1.25"),
            ("harbor.local:5000/plate/api", "latest"),
            ("harbor.local:5000/plate/api:3", "3"),
        ];
        for (input, tag) in cases {
            let parsed = ImageReference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(parsed.effective_tag(), tag, "{input}");
        }
    }

    #[test]
    fn accepts_the_edges_distribution_accepts() {
        let at_limit = "a".repeat(247);
        let sha512 = format!("app@sha512:{}", "0123456789abcdef".repeat(8));
        let sha384 = format!("app@sha384:{}", "0123456789abcdef".repeat(6));
        let long_path = format!("ghcr.io/{}", "a".repeat(255));
        for input in [&at_limit, &sha512, &sha384, &long_path] {
            assert!(ImageReference::parse(input).is_ok(), "{input:?}");
        }
    }

    #[test]
    fn rejects_invalid_references() {
        let long = format!("{}/app", "a".repeat(300));
        let short_name_250 = "a".repeat(250);
        let image_id = "0123456789abcdef".repeat(4);
        #[rustfmt::skip]
        let table: &[BadRow<'_>] = &[
            ("", |e| *e == ImageReferenceError::Empty),
            (":latest", |e| *e == ImageReferenceError::Empty),
            ("nginx:", |e| matches!(e, ImageReferenceError::InvalidTag(_))),
            ("nginx:-bad", |e| matches!(e, ImageReferenceError::InvalidTag(_))),
            ("nginx:has space", |e| matches!(e, ImageReferenceError::InvalidTag(_))),
            ("nginx@sha256:abc", |e| matches!(e, ImageReferenceError::InvalidDigest(_))),
            ("nginx@sha256", |e| matches!(e, ImageReferenceError::InvalidDigest(_))),
            ("NGINX", |e| matches!(e, ImageReferenceError::InvalidPathComponent(_))),
            ("org/App", |e| matches!(e, ImageReferenceError::InvalidPathComponent(_))),
            ("a//b", |e| matches!(e, ImageReferenceError::InvalidPathComponent(_))),
            ("a/b/", |e| matches!(e, ImageReferenceError::InvalidPathComponent(_))),
            ("a/-b", |e| matches!(e, ImageReferenceError::InvalidPathComponent(_))),
            ("a/b..c", |e| matches!(e, ImageReferenceError::InvalidPathComponent(_))),
            ("a/b___c", |e| matches!(e, ImageReferenceError::InvalidPathComponent(_))),
            ("host:port/app", |e| matches!(e, ImageReferenceError::InvalidDomain(_))),
            ("-bad.io/app", |e| matches!(e, ImageReferenceError::InvalidDomain(_))),
            ("[zz]:5000/app", |e| matches!(e, ImageReferenceError::InvalidDomain(_))),
            (long.as_str(), |e| matches!(e, ImageReferenceError::TooLong(_))),
            // Found by the differential fuzz target against distribution's grammar:
            // a short name counts with its library/ prefix, unknown or uppercase digest
            // algorithms, IPv4 inside an IPv6 host, and bare image IDs are refused.
            (short_name_250.as_str(), |e| *e == ImageReferenceError::TooLong(258)),
            ("a@md5+x.y:0123456789abcdef0123456789abcdef", |e| matches!(e, ImageReferenceError::InvalidDigest(_))),
            ("a@SHA256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", |e| matches!(e, ImageReferenceError::InvalidDigest(_))),
            ("a@sha384:0123456789abcdef0123456789abcdef", |e| matches!(e, ImageReferenceError::InvalidDigest(_))),
            ("[::ffff:1.2.3.4]/app", |e| matches!(e, ImageReferenceError::InvalidDomain(_))),
            (image_id.as_str(), |e| matches!(e, ImageReferenceError::Identifier(_))),
        ];
        for (input, expected) in table {
            match ImageReference::parse(input) {
                Ok(parsed) => panic!("{input:?} should not parse, got {parsed:?}"),
                Err(e) => assert!(expected(&e), "{input:?}: unexpected error {e:?}"),
            }
        }
    }
}
