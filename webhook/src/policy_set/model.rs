//! The `PolicySet` file format (policy.plate.dev/v1alpha1), exactly as written on
//! disk. Unknown fields are errors; positions are kept for error messages.

use serde::Deserialize;
use serde_saphyr::Location;
pub use serde_saphyr::Spanned;
use std::collections::BTreeMap;

pub const API_VERSION: &str = "policy.plate.dev/v1alpha1";
pub const KIND: &str = "PolicySet";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicySetFile {
    pub api_version: Spanned<String>,
    pub kind: Spanned<String>,
    #[serde(default)]
    pub metadata: Metadata,
    pub spec: Spec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    #[serde(default)]
    pub environments: Environments,
    /// Refuse `oci://` module references that name a tag without a digest.
    #[serde(default)]
    pub require_digests: bool,
    /// How to reach OCI registries, by host (`registry.example.com:5000`).
    #[serde(default)]
    pub registries: BTreeMap<String, Spanned<RegistryEntry>>,
    pub policies: Vec<Spanned<PolicyEntry>>,
}

/// One registry's transport (`spec.registries.HOST`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryEntry {
    /// Plain HTTP, no TLS: only for a registry on a trusted network.
    #[serde(default)]
    pub insecure: bool,
    /// A PEM CA bundle, relative to the policy set file: the only roots trusted
    /// for this registry's certificate.
    #[serde(default)]
    pub ca_file: Option<String>,
}

/// Conditions an `oci://` module must meet before it is used.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Verify {
    /// A cosign public key (PEM): a path relative to the policy set file, or the
    /// PEM itself.
    pub cosign_key: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Environments {
    /// The namespace label that holds the environment.
    #[serde(default = "default_label")]
    pub label: String,
    /// Label value -> environment name.
    #[serde(default = "default_values")]
    pub values: BTreeMap<String, String>,
    /// Fallback for namespaces whose label is missing or unmapped, first match wins.
    #[serde(default = "default_patterns")]
    pub name_patterns: Vec<Spanned<NamePattern>>,
    /// Environment of a namespace nothing else resolves (default: none).
    #[serde(default)]
    pub default: Option<Spanned<String>>,
}

impl Default for Environments {
    fn default() -> Self {
        Environments {
            label: default_label(),
            values: default_values(),
            name_patterns: default_patterns(),
            default: None,
        }
    }
}

fn default_label() -> String {
    "environment".into()
}

fn default_values() -> BTreeMap<String, String> {
    [
        ("production", "prod"),
        ("development", "stg"),
        ("staging", "stg"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn default_patterns() -> Vec<Spanned<NamePattern>> {
    [("*-prod", "prod"), ("*-stg", "stg")]
        .into_iter()
        .map(|(p, e)| {
            unspanned(NamePattern {
                pattern: p.into(),
                environment: e.into(),
            })
        })
        .collect()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamePattern {
    pub pattern: String,
    pub environment: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyEntry {
    pub name: Spanned<String>,
    /// `builtin:NAME`, `oci://REGISTRY/REPO@sha256:...` (or `:TAG`), or a path to
    /// a `.wasm` file, relative to the policy set file.
    pub module: Spanned<String>,
    /// For `oci://` modules: a signature that must verify before the module is used.
    #[serde(default)]
    pub verify: Option<Spanned<Verify>>,
    /// Environments the policy applies in; empty or absent means every namespace.
    #[serde(default = "all_environments")]
    pub environments: Spanned<Vec<String>>,
    #[serde(default)]
    pub mode: Mode,
    #[serde(rename = "match")]
    pub match_: Spanned<MatchSpec>,
    #[serde(default = "no_settings")]
    pub settings: Spanned<serde_json::Value>,
    #[serde(default)]
    pub failure_policy: FailurePolicy,
    #[serde(default = "default_timeout")]
    pub timeout_ms: Spanned<u64>,
    #[serde(default = "default_memory", rename = "memoryMiB")]
    pub memory_mib: Spanned<u64>,
    /// Kinds the policy may look up (`plate.lookup_object`); nothing else is visible to it.
    #[serde(default = "no_context")]
    pub context: Spanned<Vec<crate::objects::ObjectKind>>,
    /// On UPDATE, drop violations the old object already had (same key and
    /// message), so an existing violation does not block unrelated updates.
    #[serde(default)]
    pub allow_existing_violations: bool,
    /// Whether `plate-policy audit` judges existing objects with this policy; false
    /// for rules that only make sense for an operation (DELETE, UPDATE-only).
    #[serde(default = "audited")]
    pub audit: bool,
}

fn audited() -> bool {
    true
}

fn no_context() -> Spanned<Vec<crate::objects::ObjectKind>> {
    unspanned(Vec::new())
}

/// A value that was not written in the file (a default).
pub fn unspanned<T>(value: T) -> Spanned<T> {
    Spanned::new(value, Location::UNKNOWN, Location::UNKNOWN)
}

fn all_environments() -> Spanned<Vec<String>> {
    unspanned(Vec::new())
}

fn no_settings() -> Spanned<serde_json::Value> {
    unspanned(serde_json::Value::Null)
}

fn default_timeout() -> Spanned<u64> {
    unspanned(crate::engine::Limits::DEFAULT.timeout_ms)
}

fn default_memory() -> Spanned<u64> {
    unspanned(crate::engine::Limits::DEFAULT.memory_mib)
}

/// What a violation does to the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Deny the request.
    #[default]
    Enforce,
    /// Allow with an AdmissionResponse warning.
    Warn,
    /// Allow; record in logs and metrics only.
    Audit,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
            Mode::Audit => "audit",
        }
    }
}

/// What happens when the policy cannot give a verdict (trap, timeout, ...).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum FailurePolicy {
    #[default]
    Fail,
    Ignore,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchSpec {
    /// `Kind` (core group), `group/Kind`, `group/*` or `*`.
    pub kinds: Vec<String>,
    #[serde(default = "default_operations")]
    pub operations: Vec<Operation>,
    #[serde(default)]
    pub namespaces: NamespaceFilter,
    /// Subresources to match as well (e.g. `ephemeralcontainers`); the main resource
    /// always matches.
    #[serde(default)]
    pub subresources: Vec<String>,
}

fn default_operations() -> Vec<Operation> {
    vec![Operation::Create, Operation::Update]
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceFilter {
    /// Globs; empty means every namespace.
    #[serde(default)]
    pub include: Vec<String>,
    /// Globs; checked after `include`.
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// An operation a policy matches (`*`: all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Operation {
    #[serde(rename = "CREATE")]
    Create,
    #[serde(rename = "UPDATE")]
    Update,
    #[serde(rename = "DELETE")]
    Delete,
    #[serde(rename = "CONNECT")]
    Connect,
    #[serde(rename = "*")]
    All,
}

impl Operation {
    /// Does this selector match a request's operation?
    pub fn matches(self, operation: crate::review::Operation) -> bool {
        use crate::review::Operation as Request;
        matches!(
            (self, operation),
            (Operation::All, _)
                | (Operation::Create, Request::Create)
                | (Operation::Update, Request::Update)
                | (Operation::Delete, Request::Delete)
                | (Operation::Connect, Request::Connect)
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
            Operation::All => "*",
        }
    }
}
