//! Typed input of a policy evaluation (the input document of the ABI, docs/abi.md).

use serde::Deserialize;
use serde::de::DeserializeOwned;
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
    /// The request's id, as the API server sent it.
    #[serde(default)]
    pub uid: String,
    /// The kind of the object: group (`""` for the core group: Pods, Namespaces,
    /// Services), version and kind.
    pub kind: GroupVersionKind,
    /// The subresource, for requests to one (`ephemeralcontainers` for `kubectl debug`).
    #[serde(default)]
    pub sub_resource: Option<String>,
    /// The object's name (may be empty for `generateName` creations).
    #[serde(default)]
    pub name: Option<String>,
    /// The object's namespace; None or empty for cluster-scoped kinds.
    #[serde(default)]
    pub namespace: Option<String>,
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    #[serde(default)]
    pub operation: String,
    /// The object as it would be stored; None for DELETE. Read it with [`object`](Self::object).
    #[serde(default)]
    pub object: Option<Box<RawValue>>,
    /// The object before an UPDATE (and the deleted object on DELETE).
    #[serde(default)]
    pub old_object: Option<Box<RawValue>>,
    /// True when the request is a dry run (`kubectl --dry-run=server`, `plate-policy check`).
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

/// The kind of an object as an AdmissionRequest names it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GroupVersionKind {
    /// The API group: `apps`, `cert-manager.io`; `""` (empty) for the core group.
    #[serde(default)]
    pub group: String,
    /// The version: `v1`.
    #[serde(default)]
    pub version: String,
    /// The kind: `Deployment`.
    pub kind: String,
}
