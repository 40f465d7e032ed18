//! Policy `no-staging-issuer`: a staging ACME issuer (certificates browsers reject)
//! must not issue for an environment's Ingresses, Gateways or Certificates.
//!
//! It reads the cert-manager annotations (`cert-manager.io/cluster-issuer`,
//! `cert-manager.io/issuer`) on any annotated object and `spec.issuerRef` of
//! Certificates and CertificateRequests, then looks the named ClusterIssuer or
//! Issuer up (policy-set `context`): what makes an issuer staging is its ACME server,
//! whatever its name. An issuer the cache does not know is judged by its name
//! (`stagingIssuers`, `stagingIssuerPatterns`), and otherwise by `unknownIssuer`.

use plate_policy_sdk::context::lookup;
use plate_policy_sdk::pattern::glob_match;
use plate_policy_sdk::{PolicySettings, ValidationRequest, Verdict, Violation};
use serde::Deserialize;
use std::collections::BTreeMap;

pub const CLUSTER_ISSUER_ANNOTATION: &str = "cert-manager.io/cluster-issuer";
pub const ISSUER_ANNOTATION: &str = "cert-manager.io/issuer";
const CERT_MANAGER_API: &str = "cert-manager.io/v1";
const CERT_MANAGER_GROUP: &str = "cert-manager.io";
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// What to do with an issuer that is neither in the cache nor staging by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UnknownIssuer {
    Deny,
    Warn,
    #[default]
    Allow,
}

#[derive(Debug, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Issuer names that are staging issuers (used when the issuer is not in the cache).
    pub staging_issuers: Vec<String>,
    /// Glob patterns over issuer names, likewise.
    pub staging_issuer_patterns: Vec<String>,
    /// ACME directory URLs that are staging directories.
    pub staging_acme_servers: Vec<String>,
    /// An issuer not in the cache and not staging by name: deny, warn or allow.
    pub unknown_issuer: UnknownIssuer,
    /// The issuer the message suggests instead.
    pub suggested_issuer: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            staging_issuers: vec!["letsencrypt-staging".to_string()],
            staging_issuer_patterns: vec!["*staging*".to_string()],
            staging_acme_servers: vec![LETS_ENCRYPT_STAGING.to_string()],
            unknown_issuer: UnknownIssuer::default(),
            suggested_issuer: "letsencrypt-prod".to_string(),
        }
    }
}

impl PolicySettings for Settings {
    fn validate(&self) -> Result<(), String> {
        if self.staging_issuers.is_empty()
            && self.staging_issuer_patterns.is_empty()
            && self.staging_acme_servers.is_empty()
        {
            return Err(
                "stagingIssuers, stagingIssuerPatterns and stagingAcmeServers are all empty: nothing would be denied"
                    .into(),
            );
        }
        if let Some(i) = self.staging_issuers.iter().position(|s| s.is_empty()) {
            return Err(format!("stagingIssuers[{i}] is empty"));
        }
        if let Some(i) = self
            .staging_issuer_patterns
            .iter()
            .position(|s| s.is_empty())
        {
            return Err(format!("stagingIssuerPatterns[{i}] is empty"));
        }
        if let Some(i) = self
            .staging_acme_servers
            .iter()
            .position(|s| !s.starts_with("https://") && !s.starts_with("http://"))
        {
            return Err(format!(
                "stagingAcmeServers[{i}] ({:?}) is not an http(s) URL",
                self.staging_acme_servers[i]
            ));
        }
        Ok(())
    }
}

impl Settings {
    fn staging_by_name(&self, issuer: &str) -> bool {
        self.staging_issuers.iter().any(|s| s == issuer)
            || self
                .staging_issuer_patterns
                .iter()
                .any(|p| glob_match(p, issuer))
    }

    fn staging_server(&self, server: &str) -> bool {
        let normalize = |s: &str| s.trim().trim_end_matches('/').to_ascii_lowercase();
        let server = normalize(server);
        self.staging_acme_servers
            .iter()
            .any(|s| normalize(s) == server)
    }
}

#[derive(Deserialize, Default)]
struct Object {
    #[serde(default, deserialize_with = "plate_policy_sdk::nullable")]
    metadata: Metadata,
    #[serde(default)]
    spec: Option<IssuerSpec>,
}

#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(default, deserialize_with = "plate_policy_sdk::nullable")]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IssuerSpec {
    #[serde(default)]
    issuer_ref: Option<IssuerRef>,
}

#[derive(Deserialize)]
struct IssuerRef {
    #[serde(default, deserialize_with = "plate_policy_sdk::nullable")]
    name: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    group: Option<String>,
}

/// The parts of a (Cluster)Issuer this policy reads.
#[derive(Deserialize, Default)]
struct Issuer {
    #[serde(default, deserialize_with = "plate_policy_sdk::nullable")]
    spec: IssuerBody,
}

#[derive(Deserialize, Default)]
struct IssuerBody {
    #[serde(default)]
    acme: Option<Acme>,
}

#[derive(Deserialize, Default)]
struct Acme {
    #[serde(default, deserialize_with = "plate_policy_sdk::nullable")]
    server: String,
}

/// One issuer reference found on the object, and where.
struct Reference {
    /// `annotation "cert-manager.io/cluster-issuer"` or `spec.issuerRef`.
    place: String,
    /// The violation key: `annotation:cert-manager.io/cluster-issuer`, `issuerRef`.
    key: String,
    /// The field: `metadata.annotations[cert-manager.io/cluster-issuer]`.
    path: String,
    /// `ClusterIssuer` or `Issuer`.
    kind: String,
    name: String,
    /// Look it up? Not for issuers of other API groups (external issuers).
    resolvable: bool,
}

enum Judgement {
    Fine,
    /// A message and its short form.
    Violation(String, String),
    Warning(String),
}

pub fn validate(req: &ValidationRequest<Settings>) -> Verdict {
    let kind = req.request.kind.kind.as_str();
    let object: Object = match req.request.object::<Object>() {
        Ok(Some(object)) => object,
        Ok(None) => return Verdict::allow(),
        Err(e) => return Verdict::error(e),
    };
    let namespace = req.request.namespace.as_deref().unwrap_or("");
    let mut references = Vec::new();
    let annotations = &object.metadata.annotations;
    // cert-manager's ingress-shim: `issuer-kind` and `issuer-group` override the kind
    // and group for either annotation; empty values mean the defaults.
    let kind_override = annotations
        .get("cert-manager.io/issuer-kind")
        .filter(|k| !k.is_empty());
    let group_override = annotations
        .get("cert-manager.io/issuer-group")
        .filter(|g| !g.is_empty());
    for (annotation, default_kind) in [
        (CLUSTER_ISSUER_ANNOTATION, "ClusterIssuer"),
        (ISSUER_ANNOTATION, "Issuer"),
    ] {
        if let Some(name) = annotations.get(annotation) {
            let kind = kind_override
                .cloned()
                .unwrap_or_else(|| default_kind.into());
            references.push(Reference {
                place: format!("annotation {annotation:?}"),
                key: format!("annotation:{annotation}"),
                path: format!("metadata.annotations[{annotation}]"),
                resolvable: is_cert_manager(group_override.map(String::as_str), &kind),
                kind,
                name: name.clone(),
            });
        }
    }
    if matches!(kind, "Certificate" | "CertificateRequest")
        && let Some(issuer_ref) = object.spec.and_then(|s| s.issuer_ref)
    {
        let kind = issuer_ref
            .kind
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| "Issuer".into());
        references.push(Reference {
            place: "spec.issuerRef".into(),
            key: "issuerRef".into(),
            path: "spec.issuerRef.name".into(),
            resolvable: is_cert_manager(issuer_ref.group.as_deref(), &kind),
            kind,
            name: issuer_ref.name,
        });
    }

    let env = req.environment_name();
    let fix = format!(
        "use a production issuer such as {:?} in {env}",
        req.settings.suggested_issuer
    );
    let mut violations = Vec::new();
    let mut warnings = Vec::new();
    for reference in &references {
        match judge(reference, namespace, &req.settings, &fix) {
            Ok(Judgement::Fine) => {}
            Ok(Judgement::Violation(message, summary)) => violations.push(
                Violation::new(reference.key.clone(), message)
                    .at(reference.path.clone())
                    .summary(summary),
            ),
            Ok(Judgement::Warning(m)) => warnings.push(m),
            Err(e) => return Verdict::error(e),
        }
    }
    let mut verdict = Verdict::from_violations(violations);
    verdict.warnings = warnings;
    verdict
}

/// A violation when the issuer's name marks it as staging.
fn by_name(reference: &Reference, settings: &Settings, fix: &str) -> Option<Judgement> {
    let Reference {
        place, kind, name, ..
    } = reference;
    settings.staging_by_name(name).then(|| {
        Judgement::Violation(
            format!(
                "{place} names {kind} {name:?}, a staging issuer by its name (certificates browsers reject); {fix}"
            ),
            staging_summary(reference, settings),
        )
    })
}

/// `cluster-issuer: letsencrypt-staging is a staging issuer; use letsencrypt-prod`.
fn staging_summary(reference: &Reference, settings: &Settings) -> String {
    let place = reference
        .key
        .strip_prefix("annotation:cert-manager.io/")
        .unwrap_or(&reference.key);
    format!(
        "{place}: {} is a staging issuer; use {}",
        reference.name, settings.suggested_issuer
    )
}

/// An issuer cert-manager itself implements (so plate-policy can look it up), as
/// opposed to an external issuer of another API group.
fn is_cert_manager(group: Option<&str>, kind: &str) -> bool {
    group.is_none_or(|g| g.is_empty() || g == CERT_MANAGER_GROUP)
        && matches!(kind, "Issuer" | "ClusterIssuer")
}

fn judge(
    reference: &Reference,
    namespace: &str,
    settings: &Settings,
    fix: &str,
) -> Result<Judgement, String> {
    let Reference {
        place, kind, name, ..
    } = reference;
    let found = if reference.resolvable {
        let scope = if kind == "ClusterIssuer" {
            ""
        } else {
            namespace
        };
        match lookup::<Issuer>(CERT_MANAGER_API, kind, scope, name) {
            Ok(found) => found,
            // Refused (the policy set lists no such `context` kind) or unavailable:
            // judge by name as before lookups existed, and say why.
            Err(e) => {
                return Ok(by_name(reference, settings, fix).unwrap_or(Judgement::Warning(e)));
            }
        }
    } else {
        None
    };
    if let Some(issuer) = found {
        let server = issuer.spec.acme.map(|a| a.server).unwrap_or_default();
        return Ok(if !server.is_empty() && settings.staging_server(&server) {
            Judgement::Violation(
                format!(
                    "{place} names {kind} {name:?}, whose ACME server {server} is a staging directory (certificates browsers reject); {fix}"
                ),
                staging_summary(reference, settings),
            )
        } else {
            Judgement::Fine
        });
    }
    if let Some(judgement) = by_name(reference, settings, fix) {
        return Ok(judgement);
    }
    let unknown = if reference.resolvable {
        format!(
            "{place} names {kind} {name:?}, which plate-policy cannot find, so it cannot tell whether it is a staging issuer"
        )
    } else {
        format!(
            "{place} names {kind} {name:?} of another API group (an external issuer), which plate-policy cannot inspect"
        )
    };
    let short_place = reference
        .key
        .strip_prefix("annotation:cert-manager.io/")
        .unwrap_or(&reference.key);
    Ok(match settings.unknown_issuer {
        UnknownIssuer::Allow => Judgement::Fine,
        // A warning is all kubectl shows: short enough to fit Kubernetes' 119 characters.
        UnknownIssuer::Warn => Judgement::Warning(if reference.resolvable {
            format!("{short_place}: {kind} {name:?} not found; cannot tell if it is staging")
        } else {
            format!(
                "{short_place}: {kind} {name:?} is an external issuer; cannot tell if it is staging"
            )
        }),
        UnknownIssuer::Deny => Judgement::Violation(
            format!("{unknown}; create it or fix the name"),
            format!("{short_place}: {kind} {name} is unknown; create it or fix the name"),
        ),
    })
}

#[cfg(feature = "standalone")]
plate_policy_sdk::export_policy!(validate, Settings);
