//! The built-in policy set: `policies/policies.yaml` and the policy modules that
//! build.rs compiled to wasm and precompiled to native code, all embedded in the binary.

include!(concat!(env!("OUT_DIR"), "/builtin_modules.rs"));

/// Display name of the embedded policy set in messages.
pub const POLICY_SET_NAME: &str = "built-in policies.yaml";

/// The embedded policy set.
pub const POLICY_SET_YAML: &str = include_str!("../../policies/policies.yaml");

/// The wasm bytes of built-in module `name`.
pub fn module(name: &str) -> Option<&'static [u8]> {
    BUILTIN_MODULES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, wasm, _)| *wasm)
}

/// The native code build.rs precompiled for built-in module `name`.
pub fn precompiled(name: &str) -> Option<&'static [u8]> {
    BUILTIN_MODULES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, code)| *code)
}

pub fn module_names() -> Vec<&'static str> {
    BUILTIN_MODULES.iter().map(|(n, _, _)| *n).collect()
}
