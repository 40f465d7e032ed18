//! Context lookups: read another Kubernetes object from the host's cache (the ABI's
//! optional `plate.lookup_object` import). The host answers only for the kinds the
//! policy's entry in the policy set lists under `context`; a refusal comes back as
//! `Err` with the host's explanation.

use serde::Deserialize;
use serde::de::DeserializeOwned;

// The attribute needs a literal: "plate" is `abi::IMPORT_MODULE`, and the function
// name is `abi::IMPORT_LOOKUP` (the host refuses any other import).
#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "plate")]
unsafe extern "C" {
    fn lookup_object(ptr: i32, len: i32) -> i64;
}

#[derive(Deserialize)]
struct Answer<T> {
    #[serde(default)]
    found: bool,
    #[serde(default = "Option::default")]
    object: Option<T>,
    #[serde(default)]
    error: Option<String>,
}

/// Looks up `kind` (`apiVersion` like `cert-manager.io/v1`) named `name` in
/// `namespace` (empty for cluster-scoped kinds). `Ok(None)`: not in the cache.
pub fn lookup<T: DeserializeOwned>(
    api_version: &str,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Result<Option<T>, String> {
    let query = serde_json::json!({
        "apiVersion": api_version,
        "kind": kind,
        "namespace": namespace,
        "name": name,
    })
    .to_string();
    let bytes = call_host(query.as_bytes())?;
    let answer: Answer<T> = serde_json::from_slice(&bytes)
        .map_err(|e| format!("cannot read the {kind} {name:?} the host returned: {e}"))?;
    if let Some(error) = answer.error {
        return Err(error);
    }
    Ok(if answer.found { answer.object } else { None })
}

#[cfg(target_arch = "wasm32")]
fn call_host(query: &[u8]) -> Result<Vec<u8>, String> {
    // SAFETY: the host reads `query.len()` bytes at its address and returns the
    // offset and length of an answer it wrote into a buffer from `plate_alloc`.
    let packed = unsafe { lookup_object(query.as_ptr() as usize as i32, query.len() as i32) };
    let (ptr, len) = crate::abi::unpack(packed);
    let (ptr, len) = (ptr as usize, len as usize);
    if ptr == 0 {
        return Err("the host returned no lookup answer".into());
    }
    // SAFETY: as above; the buffer is never freed (fresh instance per evaluation).
    Ok(unsafe { std::slice::from_raw_parts(ptr as *const u8, len) }.to_vec())
}

#[cfg(not(target_arch = "wasm32"))]
fn call_host(_query: &[u8]) -> Result<Vec<u8>, String> {
    Err("context lookups are only available inside the plate-policy host".into())
}
