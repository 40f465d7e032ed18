//! Policy `trusted-registries`: every container image must come from a registry the
//! platform trusts (default: the platform's Harbor, `harbor.cocdev.co.kr`), so prod
//! runs only images that went through it. An entry of `registries` is a registry
//! host (`harbor.cocdev.co.kr`, `localhost:5000`) or a host and repository path
//! prefix (`docker.io/library`, `ghcr.io/plate`) that matches at a `/` boundary.
//! Images are compared by their fully qualified repository, so Docker Hub short
//! names count as `docker.io` (`nginx` is `docker.io/library/nginx`), and hosts
//! compare without regard to case. An image reference that does not parse is a
//! violation. Covers containers, init and ephemeral containers of every pod-bearing
//! kind; on the `ephemeralcontainers` subresource (`kubectl debug`) only ephemeral
//! containers can change, so only they are checked.

use plate_policy_sdk::workload::containers_under_review;
use plate_policy_sdk::{ImageReference, PolicySettings, ValidationRequest, Verdict, Violation};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Trusted registry hosts, or host/path prefixes.
    pub registries: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            registries: vec!["harbor.cocdev.co.kr".to_string()],
        }
    }
}

impl PolicySettings for Settings {
    fn validate(&self) -> Result<(), String> {
        if self.registries.is_empty() {
            return Err(
                "registries is empty: list at least one trusted registry (e.g. \"harbor.cocdev.co.kr\")"
                    .into(),
            );
        }
        for (i, entry) in self.registries.iter().enumerate() {
            Trusted::parse(entry).map_err(|e| format!("registries[{i}]: {e}"))?;
        }
        Ok(())
    }
}

/// One `registries` entry, normalised: the registry host (Docker Hub's aliases read
/// as `docker.io`) and an optional repository path prefix.
#[derive(Debug, PartialEq, Eq)]
struct Trusted {
    host: String,
    path: Option<String>,
}

impl Trusted {
    fn parse(entry: &str) -> Result<Trusted, String> {
        if entry.is_empty() {
            return Err("the entry is empty".into());
        }
        if let Some((scheme, _)) = entry.split_once("://") {
            return Err(format!(
                "{entry:?} has a scheme ({scheme}://); write the registry host only, e.g. \"harbor.cocdev.co.kr\""
            ));
        }
        if entry.ends_with('/') {
            return Err(format!(
                "{entry:?} ends with a slash; write {:?}",
                entry.trim_end_matches('/')
            ));
        }
        // Read as the name of an image in it: `HOST[/PATH]/x`, by the image grammar.
        let probe = format!("{entry}/x");
        let reference = ImageReference::parse(&probe)
            .map_err(|e| format!("{entry:?} is not a registry host or host/path prefix ({e})"))?;
        if reference.tag.is_some() || reference.digest.is_some() {
            return Err(format!(
                "{entry:?} names a tag or digest; write a registry host or host/path prefix"
            ));
        }
        if reference.domain.is_none() {
            return Err(format!(
                "{entry:?} does not start with a registry host (a host has a dot or a port, or is localhost); for Docker Hub write \"docker.io/{entry}\""
            ));
        }
        let path = reference
            .path
            .strip_suffix("/x")
            .map(str::to_string)
            .filter(|p| !p.is_empty());
        Ok(Trusted {
            host: reference.registry().to_ascii_lowercase(),
            path,
        })
    }

    /// True when `host`/`path` (a fully qualified repository) is under this entry.
    fn covers(&self, host: &str, path: &str) -> bool {
        if !host.eq_ignore_ascii_case(&self.host) {
            return false;
        }
        match &self.path {
            None => true,
            Some(prefix) => {
                path == prefix
                    || path
                        .strip_prefix(prefix.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            }
        }
    }
}

/// The registry host of `reference` and its repository path under that host:
/// `nginx` is (`docker.io`, `library/nginx`).
fn host_and_path(reference: &ImageReference) -> (&str, String) {
    let host = reference.registry();
    let repository = reference.repository();
    // `repository()` is always `{registry}/{path}`.
    let path = repository
        .strip_prefix(host)
        .and_then(|rest| rest.strip_prefix('/'))
        .map(str::to_string)
        .unwrap_or_else(|| repository.clone());
    (host, path)
}

pub fn validate(req: &ValidationRequest<Settings>) -> Verdict {
    let list = match containers_under_review(&req.request) {
        Ok(list) => list,
        Err(e) => return Verdict::error(e),
    };
    let settings = &req.settings;
    let mut trusted = Vec::with_capacity(settings.registries.len());
    for entry in &settings.registries {
        match Trusted::parse(entry) {
            Ok(t) => trusted.push(t),
            // Settings are validated on load; this is only reached if that was skipped.
            Err(e) => return Verdict::error(format!("invalid settings: registries: {e}")),
        }
    }
    let env = req.environment_name();
    let names = settings.registries.join(", ");
    let mut violations = Vec::new();
    for container in &list {
        let Some(image) = container.image.as_deref() else {
            continue;
        };
        let who = container.describe();
        let violation = |message: String, summary: String| {
            Violation::new(container.key(), message)
                .at(container.field_path("image"))
                .summary(format!("{}: {summary}", container.name))
        };
        let reference = match ImageReference::parse(image) {
            Ok(reference) => reference,
            Err(e) => {
                violations.push(violation(
                    format!(
                        "{who} uses image {image:?}, which is not a valid image reference ({e}); \
                         write registry/repository:tag with a trusted registry ({names})"
                    ),
                    format!("{image:?} is not a valid image reference"),
                ));
                continue;
            }
        };
        let (host, path) = host_and_path(&reference);
        if trusted.iter().any(|t| t.covers(host, &path)) {
            continue;
        }
        let repository = reference.repository();
        // When the host is trusted for other paths only, the repository is what is wrong.
        let from = if trusted.iter().any(|t| t.host.eq_ignore_ascii_case(host)) {
            format!("repository {repository:?}")
        } else {
            format!("registry {host:?}")
        };
        violations.push(violation(
            format!(
                "{who} uses image {image:?} from {from}, which is not in the trusted registries ({names}) for {env}; \
                 push the image to a trusted registry"
            ),
            format!("{repository} is not from {names}"),
        ));
    }
    Verdict::from_violations(violations)
}

#[cfg(feature = "standalone")]
plate_policy_sdk::export_policy!(validate, Settings);

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(entry: &str) -> Trusted {
        Trusted::parse(entry).unwrap_or_else(|e| panic!("{entry}: {e}"))
    }

    #[test]
    fn parses_entries() {
        let table = [
            ("harbor.cocdev.co.kr", "harbor.cocdev.co.kr", None),
            ("HARBOR.cocdev.co.kr", "harbor.cocdev.co.kr", None),
            ("localhost:5000", "localhost:5000", None),
            ("localhost", "localhost", None),
            ("[::1]:5000", "[::1]:5000", None),
            ("docker.io", "docker.io", None),
            ("index.docker.io", "docker.io", None),
            ("docker.io/library", "docker.io", Some("library")),
            ("ghcr.io/plate", "ghcr.io", Some("plate")),
            ("ghcr.io/plate/team", "ghcr.io", Some("plate/team")),
        ];
        for (entry, host, path) in table {
            let t = trusted(entry);
            assert_eq!(t.host, host, "{entry}");
            assert_eq!(t.path.as_deref(), path, "{entry}");
        }
    }

    #[test]
    fn rejects_entries() {
        for entry in [
            "",
            "https://harbor.cocdev.co.kr",
            "harbor.cocdev.co.kr/",
            "docker.io/library/",
            "bitnami",
            "harbor.cocdev.co.kr/plate:1.0",
            "harbor.cocdev.co.kr/Plate",
            "har bor.io",
            "-bad.io",
        ] {
            assert!(
                Trusted::parse(entry).is_err(),
                "{entry:?} should be rejected"
            );
        }
    }

    #[test]
    fn splits_references_into_host_and_path() {
        let split = |image: &str| {
            let r = ImageReference::parse(image).unwrap_or_else(|e| panic!("{image}: {e}"));
            let (host, path) = host_and_path(&r);
            (host.to_string(), path)
        };
        assert_eq!(split("nginx"), ("docker.io".into(), "library/nginx".into()));
        assert_eq!(
            split("bitnami/redis:7"),
            ("docker.io".into(), "bitnami/redis".into())
        );
        assert_eq!(
            split(
                "harbor.cocdev.co.kr/plate/api@sha256:0123456789012345678901234567890123456789012345678901234567890123"
            ),
            ("harbor.cocdev.co.kr".into(), "plate/api".into())
        );
        assert_eq!(
            split("localhost:5000/app"),
            ("localhost:5000".into(), "app".into())
        );
    }

    #[test]
    fn matches_at_path_boundaries() {
        let check = |entry: &str, image: &str| {
            let t = trusted(entry);
            let r = ImageReference::parse(image).unwrap_or_else(|e| panic!("{image}: {e}"));
            let (host, path) = host_and_path(&r);
            t.covers(host, &path)
        };
        assert!(check(
            "harbor.cocdev.co.kr",
            "harbor.cocdev.co.kr/plate/api:1"
        ));
        assert!(check(
            "harbor.cocdev.co.kr",
            "HARBOR.cocdev.co.kr/plate/api:1"
        ));
        assert!(!check(
            "harbor.cocdev.co.kr",
            "harbor.cocdev.co.kr.evil.com/plate/api:1"
        ));
        assert!(!check(
            "harbor.cocdev.co.kr",
            "harbor.cocdev.co.kr:8443/plate/api:1"
        ));
        assert!(check("docker.io/library", "nginx:1.25"));
        assert!(check("docker.io/library", "docker.io/library/nginx"));
        assert!(check("docker.io/library", "index.docker.io/library/nginx"));
        assert!(!check("docker.io/library", "bitnami/redis:7.2"));
        assert!(!check("docker.io/library", "docker.io/libraryx/nginx"));
        assert!(check("docker.io", "bitnami/redis:7.2"));
        assert!(check("ghcr.io/plate", "ghcr.io/plate/api:1"));
        assert!(!check("ghcr.io/plate", "ghcr.io/plate-evil/api:1"));
        // An entry that is a whole repository trusts that repository.
        assert!(check("ghcr.io/plate", "ghcr.io/plate:1"));
        assert!(check("docker.io/library/nginx", "nginx:1.25"));
        assert!(!check("docker.io/library/nginx", "nginx-unprivileged:1.25"));
        assert!(check("localhost:5000", "localhost:5000/app:v1"));
        assert!(!check("localhost:5000", "localhost/app:v1"));
    }
}
