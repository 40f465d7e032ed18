//! What policies and environment resolution read besides the request: Kubernetes
//! objects by kind, namespace and name. One abstraction, [`ObjectSource`], with three
//! sources: objects given up front ([`StaticObjects`], for `test` and `check`), a
//! cluster watched by reflectors ([`reflector::ClusterObjects`], for `serve`), and
//! nothing ([`NoObjects`], `serve --dev`). Namespaces are objects like any other;
//! their labels are read once, when the object is stored, not per request.

pub mod reflector;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;

/// Labels of one object (a namespace's, usually), shared without copying.
pub type Labels = Arc<BTreeMap<String, String>>;

/// A kind of object: `{apiVersion: cert-manager.io/v1, kind: ClusterIssuer}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectKind {
    pub api_version: String,
    pub kind: String,
}

impl ObjectKind {
    pub fn new(api_version: &str, kind: &str) -> Self {
        ObjectKind {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        }
    }

    /// Core v1 Namespaces: what environments are resolved from.
    pub fn namespace() -> Self {
        ObjectKind::new("v1", "Namespace")
    }

    /// (group, version): `apps/v1` is (`apps`, `v1`), `v1` is (``, `v1`).
    pub fn group_version(&self) -> (&str, &str) {
        self.api_version
            .split_once('/')
            .unwrap_or(("", self.api_version.as_str()))
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.api_version, self.kind)
    }
}

/// One stored object: its JSON (as policies receive it) and its labels.
#[derive(Debug, Clone)]
pub struct StoredObject {
    pub json: Arc<[u8]>,
    pub labels: Labels,
}

impl StoredObject {
    /// Serializes `object` once; `managedFields` are dropped (no policy reads them,
    /// and they are often most of an object's size).
    pub fn from_value(mut object: Value) -> StoredObject {
        let labels = object
            .get("metadata")
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object)
            .map(|labels| {
                labels
                    .iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
            metadata.remove("managedFields");
        }
        // Serializing a serde_json::Value cannot fail.
        let json = serde_json::to_vec(&object).unwrap_or_default();
        StoredObject {
            json: json.into(),
            labels: Arc::new(labels),
        }
    }
}

/// Where objects come from.
pub trait ObjectSource: Send + Sync {
    /// The object, or None when it is not known. `namespace` is empty for
    /// cluster-scoped kinds.
    fn get(&self, kind: &ObjectKind, namespace: &str, name: &str) -> Option<StoredObject>;

    /// The labels of Namespace `name`, or None when it is not known.
    fn namespace_labels(&self, name: &str) -> Option<Labels> {
        self.get(&ObjectKind::namespace(), "", name)
            .map(|o| o.labels)
    }
}

/// No objects at all (no cluster): every lookup is "not found".
pub struct NoObjects;

impl ObjectSource for NoObjects {
    fn get(&self, _kind: &ObjectKind, _namespace: &str, _name: &str) -> Option<StoredObject> {
        None
    }
}

/// Why an object given to `test` or `check` cannot be used.
#[derive(Debug, Error)]
pub enum ObjectError {
    #[error("a context object has no {0}")]
    Missing(&'static str),
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    #[error("{file}:{line}: {source}")]
    InFile {
        file: String,
        line: u64,
        source: Box<ObjectError>,
    },
}

type Key = (ObjectKind, String, String);

/// Objects given up front: test cases' `context` and `namespaceLabels`, `check
/// --context` files.
#[derive(Default, Clone)]
pub struct StaticObjects {
    objects: HashMap<Key, StoredObject>,
}

impl StaticObjects {
    /// Adds an object; it needs apiVersion, kind and metadata.name.
    pub fn insert(&mut self, object: &Value) -> Result<(), ObjectError> {
        let field = |path: &[&str]| {
            path.iter()
                .try_fold(object, |v, key| v.get(key))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let api_version = field(&["apiVersion"]).ok_or(ObjectError::Missing("apiVersion"))?;
        let kind = field(&["kind"]).ok_or(ObjectError::Missing("kind"))?;
        let name = field(&["metadata", "name"]).ok_or(ObjectError::Missing("metadata.name"))?;
        let namespace = field(&["metadata", "namespace"]).unwrap_or_default();
        self.objects.insert(
            (ObjectKind { api_version, kind }, namespace, name),
            StoredObject::from_value(object.clone()),
        );
        Ok(())
    }

    /// Adds a Namespace with these labels (what the namespace cache would know).
    pub fn insert_namespace(&mut self, name: &str, labels: &BTreeMap<String, String>) {
        let object = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": labels},
        });
        self.objects.insert(
            (ObjectKind::namespace(), String::new(), name.to_string()),
            StoredObject::from_value(object),
        );
    }

    /// Adds every object of a manifest file (multi-document YAML or a List).
    pub fn insert_file(&mut self, path: &Path) -> Result<(), ObjectError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ObjectError::Read {
            file: file.clone(),
            source,
        })?;
        for object in crate::manifest::read_objects(&file, &text)? {
            self.insert(&object.value)
                .map_err(|source| ObjectError::InFile {
                    file: file.clone(),
                    line: object.line,
                    source: Box::new(source),
                })?;
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// The kinds of the objects held, sorted, each once.
    pub fn kinds(&self) -> Vec<ObjectKind> {
        let mut kinds: Vec<ObjectKind> = self.objects.keys().map(|(k, _, _)| k.clone()).collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

impl ObjectSource for StaticObjects {
    fn get(&self, kind: &ObjectKind, namespace: &str, name: &str) -> Option<StoredObject> {
        self.objects
            .get(&(kind.clone(), namespace.to_string(), name.to_string()))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_objects_keep_labels_and_drop_managed_fields() {
        let stored = StoredObject::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "a", "labels": {"environment": "production", "n": 1},
                         "managedFields": [{"manager": "kubectl"}]},
        }));
        assert_eq!(
            stored.labels.get("environment").map(String::as_str),
            Some("production")
        );
        // A non-string label value (invalid in Kubernetes) is not a label.
        assert_eq!(stored.labels.len(), 1);
        let text = String::from_utf8_lossy(&stored.json).into_owned();
        assert!(!text.contains("managedFields"), "{text}");
        assert!(text.contains("\"name\":\"a\""), "{text}");
    }

    #[test]
    fn static_objects_answer_by_kind_namespace_and_name() {
        let mut objects = StaticObjects::default();
        let issuer = json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                            "metadata": {"name": "le", "namespace": "plate-prod"}});
        objects.insert(&issuer).unwrap_or_else(|e| panic!("{e}"));
        objects.insert_namespace(
            "plate-prod",
            &BTreeMap::from([("environment".to_string(), "production".to_string())]),
        );
        let kind = ObjectKind::new("cert-manager.io/v1", "Issuer");
        assert!(objects.get(&kind, "plate-prod", "le").is_some());
        assert!(objects.get(&kind, "plate-stg", "le").is_none());
        assert!(
            objects
                .get(
                    &ObjectKind::new("cert-manager.io/v1", "ClusterIssuer"),
                    "",
                    "le"
                )
                .is_none()
        );
        let labels = objects.namespace_labels("plate-prod").unwrap_or_default();
        assert_eq!(
            labels.get("environment").map(String::as_str),
            Some("production")
        );
        assert!(objects.namespace_labels("other").is_none());
        let nameless = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {}});
        assert!(matches!(
            objects.insert(&nameless),
            Err(ObjectError::Missing("metadata.name"))
        ));
    }
}
