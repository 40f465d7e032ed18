//! YAML documents as a tree that remembers where each value was written, so that a
//! problem found in a manifest (a wrong type, a policy's violation at a field path)
//! can name the line of the user's text, not a position in re-encoded JSON.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::Spanned;
use std::collections::HashMap;

/// A YAML value whose children carry their source position.
#[derive(Debug, Clone)]
pub enum Node {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(String, Spanned<Node>)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        // JSON has no NaN or infinity; like serde_json's Value, they become null.
        Ok(Number::from_f64(v).map_or(Node::Null, Node::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<Spanned<Node>>()?;
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

impl Node {
    /// The JSON value (a later duplicate key wins, as in `serde_json::Value`).
    pub fn to_value(&self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(n) => Value::Number(n.clone()),
            Node::String(s) => Value::String(s.clone()),
            Node::Seq(items) => Value::Array(items.iter().map(|i| i.value.to_value()).collect()),
            Node::Map(entries) => {
                let mut map = Map::new();
                for (k, v) in entries {
                    map.insert(k.clone(), v.value.to_value());
                }
                Value::Object(map)
            }
        }
    }

    /// The entry `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Spanned<Node>> {
        match self {
            Node::Map(entries) => entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// `a boolean`, `a number`, ... for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Node::Null => "nothing",
            Node::Bool(_) => "a boolean",
            Node::Number(_) => "a number",
            Node::String(_) => "a string",
            Node::Seq(_) => "a sequence",
            Node::Map(_) => "a mapping",
        }
    }
}

/// Lines of an object's fields, by the field paths policies report
/// (`spec.template.spec.containers[0].image`, `metadata.labels[environment]`).
#[derive(Debug, Clone, Default)]
pub struct FieldLines {
    lines: HashMap<String, u64>,
}

impl FieldLines {
    /// The lines of every field under `node`, which starts at `line`.
    pub fn of(node: &Spanned<Node>) -> FieldLines {
        let mut lines = HashMap::new();
        index(&node.value, String::new(), &mut lines);
        FieldLines { lines }
    }

    /// The line of `path`, or of its nearest ancestor that was written.
    pub fn line_of(&self, path: &str) -> Option<u64> {
        let mut path = path;
        loop {
            if let Some(line) = self.lines.get(path) {
                return Some(*line);
            }
            // Drop the last segment: `a.b[0].c` -> `a.b[0]` -> `a.b` -> `a`.
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
            if path.is_empty() {
                return None;
            }
        }
    }
}

fn index(node: &Node, prefix: String, out: &mut HashMap<String, u64>) {
    match node {
        Node::Map(entries) => {
            for (key, value) in entries {
                let line = value.referenced.line();
                // Keys are reachable both as `.key` and as `[key]` (labels and
                // annotations have dots and slashes in their keys).
                let bracket = format!("{prefix}[{key}]");
                let dotted = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                if line > 0 {
                    out.entry(bracket.clone()).or_insert(line);
                    out.entry(dotted.clone()).or_insert(line);
                }
                index(&value.value, dotted, out);
            }
        }
        Node::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                let path = format!("{prefix}[{i}]");
                let line = item.referenced.line();
                if line > 0 {
                    out.entry(path.clone()).or_insert(line);
                }
                index(&item.value, path, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Spanned<Node> {
        serde_saphyr::from_str::<Spanned<Node>>(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn values_and_lines_of_fields() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  labels:\n    app.kubernetes.io/name: api\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          image: nginx\n        - name: api\n          image: api:latest\n";
        let doc = parse(text);
        let value = doc.value.to_value();
        assert_eq!(
            value["spec"]["template"]["spec"]["containers"][1]["image"],
            "api:latest"
        );
        let lines = FieldLines::of(&doc);
        assert_eq!(
            lines.line_of("spec.template.spec.containers[1].image"),
            Some(14)
        );
        assert_eq!(lines.line_of("spec.template.spec.containers[0]"), Some(11));
        assert_eq!(
            lines.line_of("metadata.labels[app.kubernetes.io/name]"),
            Some(6)
        );
        // A field that was not written: its nearest written ancestor.
        assert_eq!(
            lines.line_of("spec.template.spec.containers[1].resources"),
            Some(13)
        );
        assert_eq!(lines.line_of("status"), None);
    }

    #[test]
    fn yaml_1_1_booleans_are_booleans() {
        let doc = parse("metadata:\n  name: n\n");
        let name = doc.value.get("metadata").and_then(|m| m.value.get("name"));
        assert!(matches!(name.map(|n| &n.value), Some(Node::Bool(false))));
    }
}
