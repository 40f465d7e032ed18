//! Manifests to AdmissionRequests, for `check` and `test`: multi-document YAML,
//! `kind: List`, `helm template` output, or AdmissionReview JSON, each object turned
//! into the request the API server would send when it is created or updated.

use crate::policy_set::first_line;
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
#[derive(Debug, Clone, Copy)]
pub struct RequestSpec<'a> {
    pub operation: &'a str,
    /// Overrides the object's `metadata.namespace`; `default` when neither is set.
    pub namespace: Option<&'a str>,
    pub old_object: Option<&'a Value>,
    pub uid: &'a str,
}

/// Why a manifest cannot be turned into a request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    #[error("the object has no {0}")]
    Missing(&'static str),
    #[error("{0:?} is not an operation (CREATE, UPDATE, DELETE, CONNECT)")]
    Operation(String),
    #[error("not a valid AdmissionReview: {0}")]
    Review(#[from] crate::review::ReviewError),
}

/// A manifest (or an AdmissionReview) as the JSON of the AdmissionRequest the API
/// server would send; [`crate::review::parse_request`] reads it like the server does.
pub fn to_request(object: &Value, spec: &RequestSpec<'_>) -> Result<Vec<u8>, RequestError> {
    if object.get("kind").and_then(Value::as_str) == Some("AdmissionReview") {
        // Checked as the server checks a body, then its request as sent.
        let body = serde_json::to_vec(object).unwrap_or_default();
        let review = crate::review::parse(&body)?;
        return Ok(review.raw_request().to_vec());
    }
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or(RequestError::Missing("apiVersion"))?;
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .ok_or(RequestError::Missing("kind"))?;
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
        return Err(RequestError::Operation(operation.to_string()));
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
    let request = json!({
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
    });
    // Serializing a serde_json::Value cannot fail.
    let bytes = serde_json::to_vec(&request).unwrap_or_default();
    // What the server would reject, `check` and `test` reject too.
    crate::review::parse_request(&bytes)?;
    Ok(bytes)
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
        let bytes = to_request(&pod, &spec).unwrap_or_else(|e| panic!("{e}"));
        let req = crate::review::parse_request(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(req.namespace, "plate-prod");
        assert_eq!(req.kind, "Pod");
        assert_eq!(req.uid, "u1");
        let object: Value =
            serde_json::from_slice(req.object().unwrap_or_default()).unwrap_or_default();
        assert_eq!(
            object["metadata"]["namespace"], "plate-prod",
            "the namespace is filled in"
        );
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}});
        let bytes = to_request(&ns, &spec).unwrap_or_else(|e| panic!("{e}"));
        let req = crate::review::parse_request(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(req.namespace, "");
        assert_eq!(
            to_request(&json!({"kind": "Pod"}), &spec),
            Err(RequestError::Missing("apiVersion"))
        );
        let delete = RequestSpec {
            operation: "DELETE",
            ..spec
        };
        let bytes = to_request(&pod, &delete).unwrap_or_else(|e| panic!("{e}"));
        let req = crate::review::parse_request(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            req.object().is_none() && req.old_object().is_some(),
            "DELETE carries the old object"
        );
        let bad = RequestSpec {
            operation: "PATCH",
            ..spec
        };
        assert_eq!(
            to_request(&pod, &bad),
            Err(RequestError::Operation("PATCH".into()))
        );
    }
}
