//! Context lookups (the ABI's optional `plate.lookup_object` import): a policy reads
//! one object by apiVersion, kind, namespace and name. Answered from an
//! [`ObjectSource`] (reflector stores in `serve`, objects given to `test` and
//! `check`), never from the API server, and only for the kinds the policy's entry
//! lists under `context`. This module is the answer logic; `host` wires it to wasm.

use crate::objects::{ObjectKind, ObjectSource};
use serde::Deserialize;
use std::sync::Arc;

/// Lookup answers larger than this are refused (the guest asked for something huge).
pub const MAX_ANSWER_BYTES: usize = 4 << 20;

/// What lookups one evaluation may do, and what it did.
pub struct LookupScope {
    pub policy: Arc<str>,
    pub allowed: Arc<[ObjectKind]>,
    pub objects: Arc<dyn ObjectSource>,
    pub stats: LookupStats,
}

/// Lookups of one evaluation, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LookupStats {
    pub found: u32,
    pub not_found: u32,
    pub refused: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Query {
    api_version: String,
    kind: String,
    #[serde(default)]
    namespace: String,
    name: String,
}

fn error(message: String) -> Vec<u8> {
    serde_json::json!({ "error": message })
        .to_string()
        .into_bytes()
}

/// The answer document for the query bytes a guest passed (docs/abi.md).
pub fn answer(scope: Option<&mut LookupScope>, query: Option<&[u8]>) -> Vec<u8> {
    let Some(query) = query else {
        return error("the lookup query lies outside memory".into());
    };
    let query: Query = match serde_json::from_slice(query) {
        Ok(q) => q,
        Err(e) => return error(format!("the lookup query is not valid: {e}")),
    };
    let Some(scope) = scope else {
        return error("lookups are not available in this evaluation".into());
    };
    let kind = ObjectKind {
        api_version: query.api_version,
        kind: query.kind,
    };
    if !scope.allowed.contains(&kind) {
        scope.stats.refused += 1;
        tracing::warn!(
            policy = &*scope.policy,
            kind = %kind,
            "lookup refused: the kind is not in the policy's context list"
        );
        return error(format!(
            "lookup of {kind} refused: add {{apiVersion: {}, kind: {}}} to this policy's `context` in the policy set",
            kind.api_version, kind.kind
        ));
    }
    match scope.objects.get(&kind, &query.namespace, &query.name) {
        Some(object) if object.json.len() <= MAX_ANSWER_BYTES => {
            scope.stats.found += 1;
            let mut out = Vec::with_capacity(object.json.len() + 32);
            out.extend_from_slice(b"{\"found\":true,\"object\":");
            out.extend_from_slice(&object.json);
            out.push(b'}');
            out
        }
        Some(object) => error(format!(
            "the object is {} bytes, over the lookup limit of {MAX_ANSWER_BYTES}",
            object.json.len()
        )),
        None => {
            scope.stats.not_found += 1;
            b"{\"found\":false}".to_vec()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::StaticObjects;

    fn scope(objects: StaticObjects) -> LookupScope {
        LookupScope {
            policy: "p".into(),
            allowed: vec![ObjectKind::new("cert-manager.io/v1", "ClusterIssuer")].into(),
            objects: Arc::new(objects),
            stats: LookupStats::default(),
        }
    }

    #[test]
    fn answers_found_not_found_and_refused_and_counts_them() {
        let mut objects = StaticObjects::default();
        let issuer = serde_json::json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": "le"}});
        objects.insert(&issuer).unwrap_or_else(|e| panic!("{e}"));
        let mut scope = scope(objects);
        let found = answer(
            Some(&mut scope),
            Some(br#"{"apiVersion":"cert-manager.io/v1","kind":"ClusterIssuer","name":"le"}"#),
        );
        let found: serde_json::Value = serde_json::from_slice(&found).unwrap_or_default();
        assert_eq!(found["found"], true);
        assert_eq!(found["object"]["metadata"]["name"], "le");
        let missing = answer(
            Some(&mut scope),
            Some(br#"{"apiVersion":"cert-manager.io/v1","kind":"ClusterIssuer","name":"x"}"#),
        );
        assert_eq!(missing, b"{\"found\":false}");
        let refused = answer(
            Some(&mut scope),
            Some(br#"{"apiVersion":"v1","kind":"Secret","namespace":"a","name":"x"}"#),
        );
        assert!(
            String::from_utf8_lossy(&refused)
                .contains("refused: add {apiVersion: v1, kind: Secret}")
        );
        assert_eq!(
            scope.stats,
            LookupStats {
                found: 1,
                not_found: 1,
                refused: 1
            }
        );
        let bad = answer(Some(&mut scope), Some(b"{"));
        assert!(String::from_utf8_lossy(&bad).contains("not valid"));
        let none = answer(
            None,
            Some(br#"{"apiVersion":"v1","kind":"Secret","name":"x"}"#),
        );
        assert!(String::from_utf8_lossy(&none).contains("not available"));
    }
}
