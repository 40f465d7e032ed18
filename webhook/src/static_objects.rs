//! Context objects given up front (test cases, `--context` files) instead of a
//! cluster: what `test` and `check` answer policies' lookups from.

use crate::engine::{ContextKind, ContextObjects};
use crate::manifest;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

#[derive(Default, Clone)]
pub struct StaticObjects {
    objects: HashMap<(String, String, String, String), Vec<u8>>,
}

impl StaticObjects {
    /// Adds an object; it needs apiVersion, kind and metadata.name.
    pub fn insert(&mut self, object: &Value) -> Result<(), String> {
        let field = |path: &[&str]| {
            path.iter()
                .try_fold(object, |v, key| v.get(key))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let api_version = field(&["apiVersion"]).ok_or("a context object has no apiVersion")?;
        let kind = field(&["kind"]).ok_or("a context object has no kind")?;
        let name = field(&["metadata", "name"]).ok_or("a context object has no metadata.name")?;
        let namespace = field(&["metadata", "namespace"]).unwrap_or_default();
        self.objects.insert(
            (api_version, kind, namespace, name),
            object.to_string().into_bytes(),
        );
        Ok(())
    }

    /// Adds every object of a manifest file (multi-document YAML or a List).
    pub fn insert_file(&mut self, path: &Path) -> Result<(), String> {
        let file = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("{file}: cannot read: {e}"))?;
        for object in manifest::read_objects(&file, &text).map_err(|e| e.to_string())? {
            self.insert(&object.value)
                .map_err(|e| format!("{file}:{}: {e}", object.line))?;
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

impl ContextObjects for StaticObjects {
    fn get(&self, kind: &ContextKind, namespace: &str, name: &str) -> Option<Vec<u8>> {
        self.objects
            .get(&(
                kind.api_version.clone(),
                kind.kind.clone(),
                namespace.to_string(),
                name.to_string(),
            ))
            .cloned()
    }
}
