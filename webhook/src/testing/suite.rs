//! The test-suite file format of `plate-policy test` (docs/testing.md).

use crate::policy_set::Mode;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SuiteFile {
    #[serde(default)]
    pub description: String,
    /// The policy-set entry under test (shorthand for `policies: [NAME]`).
    #[serde(default)]
    pub policy: Option<String>,
    /// The entries under test; with neither field, the whole set runs.
    #[serde(default)]
    pub policies: Vec<String>,
    /// A policy set file, relative to the suite; default: the built-in set.
    #[serde(default)]
    pub policy_set: Option<String>,
    pub cases: Vec<Spanned<Case>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// Allowed, with no warning.
    Allow,
    /// Denied.
    Deny,
    /// Allowed, with at least one warning.
    Warn,
}

impl Expect {
    pub fn as_str(self) -> &'static str {
        match self {
            Expect::Allow => "allow",
            Expect::Deny => "deny",
            Expect::Warn => "warn",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Case {
    pub name: String,
    /// The object inline: a manifest or a whole AdmissionReview.
    #[serde(default)]
    pub object: Option<serde_json::Value>,
    /// Or a file holding it (YAML or JSON), relative to the suite.
    #[serde(default)]
    pub file: Option<String>,
    /// The object before an UPDATE (default: the object itself).
    #[serde(default)]
    pub old_object: Option<serde_json::Value>,
    /// CREATE (default), UPDATE, DELETE or CONNECT.
    #[serde(default)]
    pub operation: Option<String>,
    /// The namespace the object is in (overrides its metadata.namespace).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Labels of that namespace, as the namespace cache would know them.
    #[serde(default)]
    pub namespace_labels: Option<BTreeMap<String, String>>,
    /// Force the environment instead of resolving it from the namespace.
    #[serde(default)]
    pub environment: Option<String>,
    /// Objects the policies may look up: inline objects, or paths of manifest files
    /// relative to the suite.
    #[serde(default)]
    pub context: Vec<ContextItem>,
    /// Replace the settings of the policies under test.
    #[serde(default)]
    pub settings: Option<serde_json::Value>,
    /// Replace the mode of the policies under test.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Replace `allowExistingViolations` of the policies under test.
    #[serde(default)]
    pub allow_existing_violations: Option<bool>,
    pub expect: Expect,
    /// A substring the denial (deny) or the warnings (warn) must contain.
    #[serde(default)]
    pub message: Option<String>,
    /// A regular expression they must match.
    #[serde(default)]
    pub message_regex: Option<String>,
}

/// A context object inline, or a file of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ContextItem {
    File(String),
    Object(serde_json::Map<String, serde_json::Value>),
}
