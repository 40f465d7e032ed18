//! Manifests to AdmissionRequests, for `check` and `test`: multi-document YAML,
//! `kind: List`, `helm template` output, or AdmissionReview JSON, each object turned
//! into the request the API server would send when it is created or updated.

use crate::policy_set::first_line;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionReview};
use serde_json::{Value, json};
use serde_saphyr::Spanned;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("{file}:{line}:{column}: {message}")]
    Yaml {
        file: String,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("{file}: {message}")]
    Read { file: String, message: String },
    #[error("{file}:{line}: document {index}: {message}")]
    Object {
        file: String,
        line: u64,
        index: usize,
        message: String,
    },
}

/// One object found in a file, with where it starts.
#[derive(Debug, Clone)]
pub struct Located {
    pub line: u64,
    /// 1-based position of the document in the file.
    pub index: usize,
    pub value: Value,
}

/// Every object of a manifest file's text: documents in order, `List`s expanded,
/// empty documents skipped. An AdmissionReview stays as it is.
pub fn read_objects(file: &str, text: &str) -> Result<Vec<Located>, ManifestError> {
    let docs: Vec<Spanned<Value>> = serde_saphyr::from_multiple(text).map_err(|e| {
        let location = e.location();
        ManifestError::Yaml {
            file: file.to_string(),
            line: location.map_or(0, |l| l.line()),
            column: location.map_or(0, |l| l.column()),
            message: first_line(&e.to_string()),
        }
    })?;
    let mut out = Vec::new();
    for (i, doc) in docs.into_iter().enumerate() {
        let line = doc.referenced.line();
        let index = i + 1;
        match doc.value {
            Value::Null => {}
            Value::Object(map) => {
                let is_list = map
                    .get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k.ends_with("List"))
                    && map.get("items").is_some();
                if is_list {
                    let items = match map.get("items") {
                        Some(Value::Array(items)) => items.clone(),
                        Some(Value::Null) => Vec::new(),
                        _ => {
                            return Err(ManifestError::Object {
                                file: file.to_string(),
                                line,
                                index,
                                message: "a List whose items is not a sequence".into(),
                            });
                        }
                    };
                    out.extend(
                        items
                            .into_iter()
                            .map(|value| Located { line, index, value }),
                    );
                } else {
                    out.push(Located {
                        line,
                        index,
                        value: Value::Object(map),
                    });
                }
            }
            other => {
                return Err(ManifestError::Object {
                    file: file.to_string(),
                    line,
                    index,
                    message: format!(
                        "expected a Kubernetes object (a mapping), found {}",
                        type_name(&other)
                    ),
                });
            }
        }
    }
    Ok(out)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

/// Kinds that are cluster-scoped: a request for them has no namespace.
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "Node",
    "PersistentVolume",
    "StorageClass",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "PriorityClass",
    "IngressClass",
    "RuntimeClass",
    "CSIDriver",
    "APIService",
    "ClusterIssuer",
    "GatewayClass",
];

pub fn is_cluster_scoped(kind: &str) -> bool {
    CLUSTER_SCOPED.contains(&kind)
}

/// The plural resource name the API server would use (best effort; policies match
/// on kind, the resource is informational).
pub fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with('s')
        || lower.ends_with('x')
        || lower.ends_with("ch")
        || lower.ends_with("sh")
    {
        format!("{lower}es")
    } else if let Some(stem) = lower
        .strip_suffix('y')
        .filter(|s| !s.ends_with(['a', 'e', 'o', 'u']))
    {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

/// Splits `apps/v1` into (`apps`, `v1`) and `v1` into (``, `v1`).
fn group_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// What the request is about, when built from a manifest.
pub struct RequestSpec<'a> {
    pub operation: &'a str,
    /// Overrides the object's `metadata.namespace`; `default` when neither is set.
    pub namespace: Option<&'a str>,
    pub old_object: Option<&'a Value>,
    pub uid: &'a str,
}

/// A manifest (or an AdmissionReview) as the AdmissionRequest the API server sends.
pub fn to_request(
    object: &Value,
    spec: &RequestSpec<'_>,
) -> Result<AdmissionRequest<DynamicObject>, String> {
    if object.get("kind").and_then(Value::as_str) == Some("AdmissionReview") {
        return review_request(object.clone());
    }
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or("the object has no apiVersion")?;
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .ok_or("the object has no kind")?;
    let metadata = object.get("metadata");
    let name = metadata
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let namespace = if is_cluster_scoped(kind) {
        None
    } else {
        Some(
            spec.namespace
                .or_else(|| {
                    metadata
                        .and_then(|m| m.get("namespace"))
                        .and_then(Value::as_str)
                })
                .unwrap_or("default"),
        )
    };
    let (group, version) = group_version(api_version);
    let operation = spec.operation;
    if !matches!(operation, "CREATE" | "UPDATE" | "DELETE" | "CONNECT") {
        return Err(format!(
            "{operation:?} is not an operation (CREATE, UPDATE, DELETE, CONNECT)"
        ));
    }
    // The API server sends the namespace it will store the object in.
    let mut object = object.clone();
    if let (Some(ns), Some(Value::Object(meta))) = (namespace, object.get_mut("metadata")) {
        meta.insert("namespace".into(), Value::String(ns.to_string()));
    }
    let (new, old) = match operation {
        "DELETE" => (Value::Null, Some(object)),
        "UPDATE" => (
            object.clone(),
            Some(spec.old_object.cloned().unwrap_or(object)),
        ),
        _ => (object, None),
    };
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": spec.uid,
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": plural(kind)},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "requestResource": {"group": group, "version": version, "resource": plural(kind)},
            "name": name,
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": "plate-policy-cli"},
            "object": new,
            "oldObject": old,
            "dryRun": true,
        }
    });
    review_request(review)
}

fn review_request(review: Value) -> Result<AdmissionRequest<DynamicObject>, String> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_value(review).map_err(|e| format!("not a valid AdmissionReview: {e}"))?;
    review
        .try_into()
        .map_err(|_| "the AdmissionReview has no request".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals() {
        for (kind, plural_name) in [
            ("Pod", "pods"),
            ("Ingress", "ingresses"),
            ("NetworkPolicy", "networkpolicies"),
            ("Gateway", "gateways"),
            ("ClusterIssuer", "clusterissuers"),
        ] {
            assert_eq!(plural(kind), plural_name);
        }
    }

    #[test]
    fn reads_documents_and_lists() {
        let text = "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n# empty\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Pod, metadata: {name: b}}\n- {apiVersion: v1, kind: Pod, metadata: {name: c}}\n";
        let objects = read_objects("f.yaml", text).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = objects
            .iter()
            .filter_map(|o| o.value["metadata"]["name"].as_str())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(objects[0].line, 2);
    }

    #[test]
    fn yaml_errors_carry_a_line() {
        let err = read_objects("bad.yaml", "a: 1\nb: [unclosed\n").err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.starts_with("bad.yaml:"), "{text}");
    }

    #[test]
    fn builds_requests_the_api_server_would_send() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
        let spec = RequestSpec {
            operation: "CREATE",
            namespace: Some("plate-prod"),
            old_object: None,
            uid: "u1",
        };
        let req = to_request(&pod, &spec).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(req.namespace.as_deref(), Some("plate-prod"));
        assert_eq!(req.kind.kind, "Pod");
        assert_eq!(req.uid, "u1");
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}});
        let req = to_request(&ns, &spec).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(req.namespace, None);
        assert!(to_request(&json!({"kind": "Pod"}), &spec).is_err());
    }
}
