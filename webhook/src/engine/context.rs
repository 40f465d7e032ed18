//! Context lookups (ABI v1, optional import): a policy may import
//! `plate.lookup_object(ptr, len) -> i64` to read one Kubernetes object by
//! apiVersion, kind, namespace and name. The host answers from memory (a reflector
//! cache in `serve`, objects given to `test` and `check`), never from the API
//! server, and only for the kinds the policy's entry lists under `context`.

use super::limits::StoreState;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use wasmtime::{Caller, Extern, Linker};

pub const IMPORT_MODULE: &str = "plate";
pub const IMPORT_LOOKUP: &str = "lookup_object";

/// A kind a policy may look up.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContextKind {
    pub api_version: String,
    pub kind: String,
}

impl std::fmt::Display for ContextKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.api_version, self.kind)
    }
}

/// Where looked-up objects come from.
pub trait ContextObjects: Send + Sync {
    /// The object as JSON, or None when it is not known. `namespace` is empty for
    /// cluster-scoped kinds.
    fn get(&self, kind: &ContextKind, namespace: &str, name: &str) -> Option<Vec<u8>>;
}

/// No objects at all (no cluster): every lookup is "not found".
pub struct NoObjects;

impl ContextObjects for NoObjects {
    fn get(&self, _kind: &ContextKind, _namespace: &str, _name: &str) -> Option<Vec<u8>> {
        None
    }
}

/// What lookups one evaluation may do, and what it did.
pub struct LookupScope {
    pub policy: Arc<str>,
    pub allowed: Arc<[ContextKind]>,
    pub objects: Arc<dyn ContextObjects>,
    pub stats: LookupStats,
}

/// Lookups of one evaluation, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

/// Lookup answers larger than this are refused (the guest asked for something huge).
const MAX_ANSWER_BYTES: usize = 4 << 20;

/// Adds `plate.lookup_object` to the linker.
pub fn define(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        IMPORT_MODULE,
        IMPORT_LOOKUP,
        |mut caller: Caller<'_, StoreState>, ptr: i32, len: i32| -> wasmtime::Result<i64> {
            let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
                wasmtime::bail!("lookup_object: the module exports no memory");
            };
            let query = {
                let data = memory.data(&caller);
                let start = ptr as u32 as usize;
                let end = start.saturating_add(len as u32 as usize);
                match data.get(start..end) {
                    Some(bytes) => serde_json::from_slice::<Query>(bytes)
                        .map_err(|e| format!("the lookup query is not valid: {e}")),
                    None => Err("the lookup query lies outside memory".to_string()),
                }
            };
            let answer = answer(caller.data_mut(), query);
            let Some(Extern::Func(alloc)) = caller.get_export("plate_alloc") else {
                wasmtime::bail!("lookup_object: the module exports no plate_alloc");
            };
            let alloc = alloc.typed::<i32, i32>(&caller)?;
            let size = i32::try_from(answer.len())?;
            let at = alloc.call(&mut caller, size)?;
            if at <= 0 {
                wasmtime::bail!("lookup_object: plate_alloc({size}) gave no buffer");
            }
            memory.write(&mut caller, at as u32 as usize, &answer)?;
            Ok(((at as u32 as i64) << 32) | size as i64)
        },
    )?;
    Ok(())
}

fn answer(state: &mut StoreState, query: Result<Query, String>) -> Vec<u8> {
    let error = |message: String| {
        serde_json::json!({ "error": message })
            .to_string()
            .into_bytes()
    };
    let query = match query {
        Ok(q) => q,
        Err(e) => return error(e),
    };
    let Some(scope) = state.lookup.as_mut() else {
        return error("lookups are not available in this evaluation".into());
    };
    let kind = ContextKind {
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
        Some(object) if object.len() <= MAX_ANSWER_BYTES => {
            scope.stats.found += 1;
            let mut out = Vec::with_capacity(object.len() + 32);
            out.extend_from_slice(b"{\"found\":true,\"object\":");
            out.extend_from_slice(&object);
            out.push(b'}');
            out
        }
        Some(object) => error(format!(
            "the object is {} bytes, over the lookup limit",
            object.len()
        )),
        None => {
            scope.stats.not_found += 1;
            b"{\"found\":false}".to_vec()
        }
    }
}
