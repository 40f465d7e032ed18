//! An independent reading of container image references: a port of
//! `github.com/distribution/reference` v0.6.0 (`ParseNormalizedNamed`, what
//! containerd and CRI-O resolve an image with), built on that project's own
//! regular expressions (regexp.go) and `go-digest`'s digest validation, so that it
//! shares nothing with the SDK's hand-written parser. The image fuzz target checks
//! the two against each other.

use regex::Regex;
use std::sync::OnceLock;

/// A reference as distribution normalizes it: Docker Hub short names get
/// `docker.io` and `library/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// Empty when the grammar could read no domain (see `parse_normalized_named`).
    pub domain: String,
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

// regexp.go, verbatim but for `\w`, which is ASCII in Go and Unicode in Rust.
const ALPHANUMERIC: &str = r"[a-z0-9]+";
const SEPARATOR: &str = r"(?:[._]|__|[-]+)";
const DOMAIN_NAME_COMPONENT: &str = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const OPTIONAL_PORT: &str = r"(?::[0-9]+)?";
const TAG: &str = r"[0-9A-Za-z_][0-9A-Za-z_.-]{0,127}";
const DIGEST: &str = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}";
const IDENTIFIER: &str = r"([a-f0-9]{64})";
const IPV6_ADDRESS: &str = r"\[(?:[a-fA-F0-9:]+)\]";
const LOCALHOST: &str = "localhost";
const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
/// reference.go: `RepositoryNameTotalLengthMax`, checked against the path.
const REPOSITORY_NAME_TOTAL_LENGTH_MAX: usize = 255;

fn optional(parts: &[&str]) -> String {
    format!("(?:{})?", parts.concat())
}

fn any_times(parts: &[&str]) -> String {
    format!("(?:{})*", parts.concat())
}

fn capture(parts: &[&str]) -> String {
    format!("({})", parts.concat())
}

fn anchored(parts: &[&str]) -> String {
    format!("^{}$", parts.concat())
}

struct Grammar {
    reference: Regex,
    anchored_name: Regex,
    anchored_identifier: Regex,
}

fn grammar() -> &'static Grammar {
    static GRAMMAR: OnceLock<Grammar> = OnceLock::new();
    GRAMMAR.get_or_init(|| {
        let domain_name = format!(
            "{DOMAIN_NAME_COMPONENT}{}",
            any_times(&[r"\.", DOMAIN_NAME_COMPONENT])
        );
        let host = format!("(?:{domain_name}|{IPV6_ADDRESS})");
        let domain_and_port = format!("{host}{OPTIONAL_PORT}");
        let path_component = format!("{ALPHANUMERIC}{}", any_times(&[SEPARATOR, ALPHANUMERIC]));
        let remote_name = format!("{path_component}{}", any_times(&["/", &path_component]));
        let name_pat = format!("{}{remote_name}", optional(&[&domain_and_port, "/"]));
        let reference = anchored(&[
            &capture(&[&name_pat]),
            &optional(&[":", &capture(&[TAG])]),
            &optional(&["@", &capture(&[DIGEST])]),
        ]);
        let anchored_name = anchored(&[
            &optional(&[&capture(&[&domain_and_port]), "/"]),
            &capture(&[&remote_name]),
        ]);
        let build = |pattern: &str| {
            Regex::new(pattern).unwrap_or_else(|e| panic!("the grammar does not compile: {e}"))
        };
        Grammar {
            reference: build(&reference),
            anchored_name: build(&anchored_name),
            anchored_identifier: build(&anchored(&[IDENTIFIER])),
        }
    })
}

/// go-digest v1.0.0 `Digest.Validate`: an available algorithm (sha256, sha384,
/// sha512) with exactly its length of lowercase hex.
fn validate_digest(digest: &str) -> Result<(), String> {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return Err("invalid digest format".into());
    };
    if algorithm.is_empty() || encoded.is_empty() {
        return Err("invalid digest format".into());
    }
    let size = match algorithm {
        "sha256" => 32,
        "sha384" => 48,
        "sha512" => 64,
        _ => return Err("unsupported digest algorithm".into()),
    };
    if encoded.len() != size * 2 {
        return Err("invalid digest length".into());
    }
    if !encoded
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err("invalid digest format".into());
    }
    Ok(())
}

/// normalize.go `splitDockerDomain`.
fn split_docker_domain(name: &str) -> (String, String) {
    let Some((maybe_domain, maybe_remote)) = name.split_once('/') else {
        return (
            DEFAULT_DOMAIN.to_string(),
            format!("{OFFICIAL_REPO_PREFIX}{name}"),
        );
    };
    let (domain, remote) = if maybe_domain == LOCALHOST {
        (maybe_domain, maybe_remote)
    } else if maybe_domain == LEGACY_DEFAULT_DOMAIN {
        (DEFAULT_DOMAIN, maybe_remote)
    } else if maybe_domain.contains(['.', ':']) || maybe_domain.to_lowercase() != maybe_domain {
        (maybe_domain, maybe_remote)
    } else {
        (DEFAULT_DOMAIN, name)
    };
    let remote = if domain == DEFAULT_DOMAIN && !remote.contains('/') {
        format!("{OFFICIAL_REPO_PREFIX}{remote}")
    } else {
        remote.to_string()
    };
    (domain.to_string(), remote)
}

/// reference.go `Parse`.
fn parse(s: &str) -> Result<Normalized, String> {
    let g = grammar();
    let Some(matches) = g.reference.captures(s) else {
        return Err(if s.is_empty() {
            "repository name must have at least one component".into()
        } else {
            "invalid reference format".into()
        });
    };
    let name = matches.get(1).map_or("", |m| m.as_str());
    let (domain, path) = match g.anchored_name.captures(name) {
        Some(parts) => (
            parts.get(1).map_or("", |m| m.as_str()),
            parts.get(2).map_or("", |m| m.as_str()),
        ),
        None => ("", name),
    };
    if path.len() > REPOSITORY_NAME_TOTAL_LENGTH_MAX {
        return Err("repository name must not be more than 255 characters".into());
    }
    let tag = matches.get(2).map(|m| m.as_str().to_string());
    let digest = matches.get(3).map(|m| m.as_str().to_string());
    if let Some(digest) = &digest {
        validate_digest(digest)?;
    }
    Ok(Normalized {
        domain: domain.to_string(),
        path: path.to_string(),
        tag,
        digest,
    })
}

/// normalize.go `ParseNormalizedNamed`.
pub fn parse_normalized_named(s: &str) -> Result<Normalized, String> {
    if grammar().anchored_identifier.is_match(s) {
        return Err("cannot specify 64-byte hexadecimal strings".into());
    }
    let (domain, remainder) = split_docker_domain(s);
    let remote = remainder
        .split_once(':')
        .map_or(remainder.as_str(), |(r, _)| r);
    if remote.to_lowercase() != remote {
        return Err("repository name must be lowercase".into());
    }
    parse(&format!("{domain}/{remainder}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(s: &str) -> Option<(String, String, Option<String>)> {
        parse_normalized_named(s)
            .ok()
            .map(|n| (n.domain, n.path, n.tag))
    }

    /// Cases from distribution's normalize_test.go and reference_test.go.
    #[test]
    fn reads_references_as_distribution_does() {
        let some = |d: &str, p: &str, t: Option<&str>| {
            Some((d.to_string(), p.to_string(), t.map(str::to_string)))
        };
        assert_eq!(parts("ubuntu"), some("docker.io", "library/ubuntu", None));
        assert_eq!(
            parts("docker.io/ubuntu:22.04"),
            some("docker.io", "library/ubuntu", Some("22.04"))
        );
        assert_eq!(
            parts("index.docker.io/foo/bar"),
            some("docker.io", "foo/bar", None)
        );
        assert_eq!(
            parts("localhost:5000/foo"),
            some("localhost:5000", "foo", None)
        );
        assert_eq!(
            parts("[::1]:5000/foo:v1"),
            some("[::1]:5000", "foo", Some("v1"))
        );
        assert_eq!(parts("Foo/bar"), some("Foo", "bar", None));
        for bad in [
            "",
            "Uppercase",
            "a/B",
            "foo@sha256:abc",
            "a:b:c",
            "[::ffff:1.2.3.4]/x",
            "x@md5:0123456789abcdef0123456789abcdef",
            &"a".repeat(64).replace('a', "f"),
        ] {
            assert_eq!(parts(bad), None, "{bad:?}");
        }
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            parse_normalized_named(&format!("nginx@{digest}")).map(|n| n.digest),
            Ok(Some(digest))
        );
    }
}
