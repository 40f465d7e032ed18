//! Manifests to AdmissionRequests, for `check` and `test`: multi-document YAML,
//! `kind: List`, `helm template` output, or AdmissionReview JSON, each object turned
//! into the request the API server would send when it is created or updated.

mod node;

pub use node::{FieldLines, Node};

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
    /// A field of a Kubernetes object with a value the API server would refuse.
    #[error("{file}:{line}: {field}: {message}")]
    Field {
        file: String,
        line: u64,
        field: String,
        message: String,
    },
}

/// One object found in a file, with where it starts and where its fields are.
#[derive(Debug, Clone)]
pub struct Located {
    pub line: u64,
    /// 1-based position of the document in the file.
    pub index: usize,
    pub value: Value,
    /// Lines of the object's fields, for messages about a field.
    pub fields: FieldLines,
}

/// Every object of a manifest file's text: documents in order, `List`s expanded
/// (a List in a List too, as kubectl does), empty documents skipped. An
/// AdmissionReview stays as it is. Fields the API server requires to be strings
/// (apiVersion, kind, metadata's name, namespace, labels and annotations) are
/// checked here, where the line is known: YAML 1.1 (what kubectl reads) turns
/// `name: n` into `false`.
pub fn read_objects(file: &str, text: &str) -> Result<Vec<Located>, ManifestError> {
    let docs: Vec<Spanned<Node>> = serde_saphyr::from_multiple(text).map_err(|e| {
        let location = e.location();
        ManifestError::Yaml {
            file: file.to_string(),
            line: location.map_or(0, |l| l.line()),
            column: location.map_or(0, |l| l.column()),
            message: first_line(&e.to_string()),
        }
    })?;
    let mut out = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        collect(file, text, doc, i + 1, &mut out)?;
    }
    Ok(out)
}

/// Adds the object(s) of `node` (a document or a List item) to `out`.
fn collect(
    file: &str,
    text: &str,
    node: &Spanned<Node>,
    index: usize,
    out: &mut Vec<Located>,
) -> Result<(), ManifestError> {
    let line = node.referenced.line();
    let object_error = |message: String| ManifestError::Object {
        file: file.to_string(),
        line,
        index,
        message,
    };
    match &node.value {
        Node::Null => Ok(()),
        Node::Map(_) => {
            let kind = match node.value.get("kind").map(|k| &k.value) {
                Some(Node::String(kind)) => Some(kind.as_str()),
                _ => None,
            };
            let items = node.value.get("items");
            if let (Some(kind), Some(items)) = (kind, items)
                && kind.ends_with("List")
            {
                return match &items.value {
                    Node::Seq(items) => items
                        .iter()
                        .try_for_each(|item| collect(file, text, item, index, out)),
                    Node::Null => Ok(()),
                    _ => Err(object_error("a List whose items is not a sequence".into())),
                };
            }
            if kind != Some("AdmissionReview") {
                check_string_fields(file, text, node)?;
            }
            out.push(Located {
                line,
                index,
                value: node.value.to_value(),
                fields: FieldLines::of(node),
            });
            Ok(())
        }
        other => Err(object_error(format!(
            "expected a Kubernetes object (a mapping), found {}",
            other.type_name()
        ))),
    }
}

/// The lines of `text` as YAML counts them, which is how the parser numbers the
/// lines of its positions: LF, CR LF and a lone CR each end a line (YAML 1.2, 5.4;
/// most editors show a lone CR as a line break too). `str::lines` ends lines at LF
/// only, so on a file with lone CRs it would find another line than the parser
/// named. After a final line break comes one more, empty line.
fn yaml_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.find(['\r', '\n']) {
            Some(end) => {
                let next = if current[end..].starts_with("\r\n") {
                    end + 2
                } else {
                    end + 1
                };
                rest = current.get(next..);
                current.get(..end)
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// The scalar as written at `spanned`'s position (for the YAML 1.1 hint).
fn written_at(text: &str, spanned: &Spanned<Node>) -> Option<String> {
    let line = yaml_lines(text).nth(
        usize::try_from(spanned.referenced.line())
            .ok()?
            .checked_sub(1)?,
    )?;
    let column = usize::try_from(spanned.referenced.column())
        .ok()?
        .checked_sub(1)?;
    let rest: String = line.chars().skip(column).collect();
    let token: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | '}' | ']' | '#'))
        .collect();
    (!token.is_empty()).then_some(token)
}

fn not_a_string(file: &str, text: &str, field: &str, value: &Spanned<Node>) -> ManifestError {
    let found = value.value.type_name();
    let hint = match (&value.value, written_at(text, value)) {
        (Node::Bool(b), Some(written)) if !written.eq_ignore_ascii_case(&b.to_string()) => {
            format!(" (YAML 1.1 reads {written} as {b}; quote it)")
        }
        (Node::Bool(_) | Node::Number(_), Some(written)) => format!("; quote it: \"{written}\""),
        _ => String::new(),
    };
    ManifestError::Field {
        file: file.to_string(),
        line: value.referenced.line(),
        field: field.to_string(),
        message: format!("expected a string, found {found}{hint}"),
    }
}

fn check_string_fields(
    file: &str,
    text: &str,
    object: &Spanned<Node>,
) -> Result<(), ManifestError> {
    let is_string = |n: &Spanned<Node>| matches!(n.value, Node::String(_) | Node::Null);
    for field in ["apiVersion", "kind"] {
        if let Some(v) = object.value.get(field).filter(|v| !is_string(v)) {
            return Err(not_a_string(file, text, field, v));
        }
    }
    let Some(metadata) = object.value.get("metadata") else {
        return Ok(());
    };
    for field in ["name", "namespace", "generateName"] {
        if let Some(v) = metadata.value.get(field).filter(|v| !is_string(v)) {
            return Err(not_a_string(file, text, &format!("metadata.{field}"), v));
        }
    }
    for map in ["labels", "annotations"] {
        if let Some(Node::Map(entries)) = metadata.value.get(map).map(|m| &m.value) {
            for (key, value) in entries {
                if !is_string(value) {
                    return Err(not_a_string(
                        file,
                        text,
                        &format!("metadata.{map}[{key}]"),
                        value,
                    ));
                }
            }
        }
    }
    Ok(())
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
    fn lists_in_lists_are_opened() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items:\n  - {apiVersion: v1, kind: Pod, metadata: {name: inner}}\n- {apiVersion: v1, kind: Pod, metadata: {name: outer}}\n";
        let objects = read_objects("f.yaml", text).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = objects
            .iter()
            .filter_map(|o| o.value["metadata"]["name"].as_str())
            .collect();
        assert_eq!(names, ["inner", "outer"]);
        assert_eq!(objects[0].line, 7);
    }

    #[test]
    fn fields_that_must_be_strings_name_line_field_and_the_yaml_trap() {
        let err = |text: &str| {
            read_objects("n.yaml", text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(
            err("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: n\n"),
            "n.yaml:4: metadata.name: expected a string, found a boolean (YAML 1.1 reads n as false; quote it)"
        );
        assert_eq!(
            err(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: {tier: 1, on: yes}\n"
            ),
            "n.yaml:5: metadata.labels[tier]: expected a string, found a number; quote it: \"1\""
        );
        assert!(err("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  annotations:\n    x: on\n").starts_with("n.yaml:6: metadata.annotations[x]: expected a string, found a boolean (YAML 1.1 reads on as true"));
        // Quoted, it is a string.
        assert!(
            read_objects(
                "n.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: \"n\"\n"
            )
            .is_ok()
        );
    }

    #[test]
    fn lines_end_at_lf_crlf_and_a_lone_cr_as_in_yaml() {
        let lines = |text| yaml_lines(text).collect::<Vec<_>>();
        assert_eq!(lines("a\rb\r\nc\nd"), ["a", "b", "c", "d"]);
        assert_eq!(lines("a\r\r\n\n"), ["a", "", "", ""]);
        assert_eq!(lines("one line"), ["one line"]);
        assert_eq!(lines(""), [""]);
    }

    #[test]
    fn the_yaml_trap_is_found_on_lines_ended_by_a_lone_cr() {
        // The parser counts a lone CR as a line break; the hint must read the line
        // it names, not the line of that number counted by LF (fuzz finding,
        // fuzz/corpus/manifest/crash-5a111f...).
        let err = |text: &str| {
            read_objects("n.yaml", text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let expected = "n.yaml:4: metadata.name: expected a string, found a boolean (YAML 1.1 reads n as false; quote it)";
        assert_eq!(
            err("apiVersion: v1\rkind: ConfigMap\rmetadata:\r  name: n\n  labels:\n    a: b\n"),
            expected
        );
        assert_eq!(
            err("apiVersion: v1\r\nkind: ConfigMap\r\nmetadata:\r  name: n\r\n"),
            expected
        );
        // A later line, reached through lone CRs and LFs: the scalar of that line.
        assert_eq!(
            err("apiVersion: v1\rkind: ConfigMap\nmetadata:\r  name: a\n  labels:\r    x: on\r"),
            "n.yaml:6: metadata.labels[x]: expected a string, found a boolean (YAML 1.1 reads on as true; quote it)"
        );
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
