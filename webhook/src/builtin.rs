//! The built-in policy set: `policies/policies.yaml` and the module holding the
//! built-in policies (policies/builtins), which build.rs compiled to wasm and
//! precompiled to native code, all embedded in the binary.

include!(concat!(env!("OUT_DIR"), "/builtin_modules.rs"));

/// Display name of the embedded policy set in messages.
pub const POLICY_SET_NAME: &str = "built-in policies.yaml";

/// The embedded policy set.
pub const POLICY_SET_YAML: &str = include_str!("../../policies/policies.yaml");

/// The wasm bytes of built-in policy `name`: the module holding every built-in
/// (policies/builtins), which runs the policy its settings name
/// ([`crate::policy_set::settings_document`]).
pub fn module(name: &str) -> Option<&'static [u8]> {
    BUILTIN_NAMES.contains(&name).then_some(BUILTIN_MODULE.0)
}

/// The native code build.rs precompiled for built-in policy `name`'s module.
pub fn precompiled(name: &str) -> Option<&'static [u8]> {
    BUILTIN_NAMES.contains(&name).then_some(BUILTIN_MODULE.1)
}

pub fn module_names() -> Vec<&'static str> {
    BUILTIN_NAMES.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, EngineConfig, Limits};

    /// build.rs's list of names and the module's own (policies/builtins) must agree:
    /// the module names what it holds when asked for no policy.
    #[test]
    fn the_module_holds_exactly_the_builtin_policies() {
        let engine = Engine::new(&EngineConfig {
            max_concurrent_instances: 1,
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let module = engine
            .load_module(BUILTIN_MODULE.0, Some(BUILTIN_MODULE.1), None)
            .unwrap_or_else(|e| panic!("{e}"));
        let answer = module.validate_settings(br#"{"policy":""}"#, &Limits::DEFAULT);
        let Ok(Err(message)) = answer else {
            panic!("the module accepted settings naming no policy: {answer:?}");
        };
        let held: Vec<&str> = message
            .rsplit_once('(')
            .map(|(_, list)| list.trim_end_matches(')').split(", ").collect())
            .unwrap_or_default();
        assert_eq!(held, BUILTIN_NAMES, "{message}");
    }
}
