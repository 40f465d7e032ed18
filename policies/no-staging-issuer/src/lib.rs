//! Policy `no-staging-issuer`: a staging ACME issuer (certificates browsers reject)
//! must not issue for an environment's Ingresses, Gateways or Certificates. Reads the
//! cert-manager annotations (`cert-manager.io/cluster-issuer`, `cert-manager.io/issuer`)
//! on any annotated object and `spec.issuerRef` of Certificates and CertificateRequests.

use plate_policy_sdk::pattern::glob_match;
use plate_policy_sdk::{PolicySettings, ValidationRequest, Verdict, export_policy};
use serde::Deserialize;
use std::collections::BTreeMap;

pub const ISSUER_ANNOTATIONS: [&str; 2] =
    ["cert-manager.io/cluster-issuer", "cert-manager.io/issuer"];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Issuer names that are staging issuers.
    #[serde(default = "default_staging_issuers")]
    pub staging_issuers: Vec<String>,
    /// Glob patterns over issuer names that are staging issuers.
    #[serde(default = "default_staging_patterns")]
    pub staging_issuer_patterns: Vec<String>,
    /// The issuer the message suggests instead.
    #[serde(default = "default_suggested")]
    pub suggested_issuer: String,
}

fn default_staging_issuers() -> Vec<String> {
    vec!["letsencrypt-staging".to_string()]
}
fn default_staging_patterns() -> Vec<String> {
    vec!["*staging*".to_string()]
}
fn default_suggested() -> String {
    "letsencrypt-prod".to_string()
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            staging_issuers: default_staging_issuers(),
            staging_issuer_patterns: default_staging_patterns(),
            suggested_issuer: default_suggested(),
        }
    }
}

impl PolicySettings for Settings {
    fn validate(&self) -> Result<(), String> {
        if self.staging_issuers.is_empty() && self.staging_issuer_patterns.is_empty() {
            return Err(
                "stagingIssuers and stagingIssuerPatterns are both empty: nothing would be denied"
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
        Ok(())
    }
}

impl Settings {
    fn is_staging(&self, issuer: &str) -> bool {
        self.staging_issuers.iter().any(|s| s == issuer)
            || self
                .staging_issuer_patterns
                .iter()
                .any(|p| glob_match(p, issuer))
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
}

pub fn validate(req: &ValidationRequest<Settings>) -> Verdict {
    let kind = req.request.kind.kind.as_str();
    let object: Object = match req.request.object::<Object>() {
        Ok(Some(object)) => object,
        Ok(None) => return Verdict::allow(),
        Err(e) => return Verdict::error(e),
    };
    let env = req.environment_name();
    let settings = &req.settings;
    let fix = format!(
        "use a production issuer such as {:?} in {env}",
        settings.suggested_issuer
    );
    let mut violations = Vec::new();
    for annotation in ISSUER_ANNOTATIONS {
        if let Some(issuer) = object.metadata.annotations.get(annotation)
            && settings.is_staging(issuer)
        {
            violations.push(format!(
                "annotation {annotation:?} names {issuer:?}, a staging issuer whose certificates browsers reject; {fix}"
            ));
        }
    }
    let has_issuer_ref = matches!(kind, "Certificate" | "CertificateRequest");
    if has_issuer_ref
        && let Some(issuer_ref) = object.spec.and_then(|s| s.issuer_ref)
        && settings.is_staging(&issuer_ref.name)
    {
        let issuer_kind = issuer_ref.kind.as_deref().unwrap_or("Issuer");
        violations.push(format!(
            "spec.issuerRef names {issuer_kind} {:?}, a staging issuer whose certificates browsers reject; {fix}",
            issuer_ref.name
        ));
    }
    Verdict::deny_all(violations)
}

export_policy!(validate, Settings);
