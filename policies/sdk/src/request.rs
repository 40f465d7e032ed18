//! Typed inputs and verdict of a policy evaluation (the JSON documents of ABI v1).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// Everything the host passes to one evaluation.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationRequest<S> {
    /// The `request` of the AdmissionReview (admission.k8s.io/v1).
    pub request: AdmissionRequest,
    /// The environment of the object's namespace (`prod`, `stg`, ...), if it resolved.
    #[serde(default)]
    pub environment: Option<String>,
    /// Labels of the object's namespace (of the object itself for a Namespace).
    #[serde(default)]
    pub namespace_labels: BTreeMap<String, String>,
    /// This policy's settings from the policy set.
    #[serde(default)]
    pub settings: S,
}

impl<S> ValidationRequest<S> {
    /// The environment name, or `"unknown"` for messages.
    pub fn environment_name(&self) -> &str {
        self.environment.as_deref().unwrap_or("unknown")
    }
}

/// The fields of an AdmissionRequest a policy needs; the objects stay raw JSON so
/// each policy reads them into exactly the types it uses.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    #[serde(default)]
    pub uid: String,
    pub kind: GroupVersionKind,
    #[serde(default)]
    pub sub_resource: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub operation: String,
    #[serde(default)]
    pub object: Option<Box<RawValue>>,
    #[serde(default)]
    pub old_object: Option<Box<RawValue>>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

impl AdmissionRequest {
    /// Reads the object under review into `T`. `Ok(None)` when there is none (DELETE).
    pub fn object<T: DeserializeOwned>(&self) -> Result<Option<T>, String> {
        match &self.object {
            None => Ok(None),
            Some(raw) if raw.get() == "null" => Ok(None),
            Some(raw) => serde_json::from_str(raw.get())
                .map(Some)
                .map_err(|e| format!("cannot read the {} object: {e}", self.kind.kind)),
        }
    }

    /// `kind/namespace/name` for messages (`Deployment/plate-prod/plate-api`).
    pub fn object_ref(&self) -> String {
        let name = self.name.as_deref().unwrap_or("");
        match self.namespace.as_deref() {
            Some(ns) if !ns.is_empty() && self.kind.kind != "Namespace" => {
                format!("{}/{}/{}", self.kind.kind, ns, name)
            }
            _ => format!("{}/{}", self.kind.kind, name),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct GroupVersionKind {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    pub kind: String,
}

/// A policy's answer. `allowed: false` is a violation; what it does to the request
/// (deny, warn, audit) is the policy set's `mode`, decided by the host.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verdict {
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Set when the policy could not evaluate at all; the host applies the
    /// policy's failure outcome instead of reading `allowed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Verdict {
    pub fn allow() -> Self {
        Verdict {
            allowed: true,
            ..Verdict::default()
        }
    }

    pub fn deny(message: impl Into<String>) -> Self {
        Verdict {
            allowed: false,
            message: Some(message.into()),
            ..Verdict::default()
        }
    }

    /// Several violations become one verdict, one per line: the host shows a
    /// denial as these lines and turns each line into its own warning in warn mode.
    pub fn deny_all(messages: Vec<String>) -> Self {
        if messages.is_empty() {
            Verdict::allow()
        } else {
            Verdict::deny(messages.join("\n"))
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Verdict {
            allowed: false,
            error: Some(message.into()),
            ..Verdict::default()
        }
    }

    pub fn with_warning(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }
}

/// The answer of `plate_validate_settings`.
#[derive(Debug, Serialize)]
pub struct SettingsValidation {
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl SettingsValidation {
    pub fn valid() -> Self {
        SettingsValidation {
            valid: true,
            message: None,
        }
    }

    pub fn invalid(message: String) -> Self {
        SettingsValidation {
            valid: false,
            message: Some(message),
        }
    }
}
