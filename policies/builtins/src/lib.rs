//! The built-in policies as one WebAssembly module: one copy of the SDK's code for all
//! of them, so a request that several built-ins judge runs their evaluations (each
//! still in a fresh instance) on code the first one brought into the caches, and the
//! host compiles and embeds one module instead of six (docs/performance.md, "The cold
//! path on loopback"). The host selects the policy with the settings
//! `{"policy": NAME, "settings": ...}` (webhook/src/builtin.rs).

#[cfg(target_arch = "wasm32")]
plate_policy_sdk::export_policies! {
    "no-latest-tag" => (no_latest_tag::validate, no_latest_tag::Settings),
    "no-staging-issuer" => (no_staging_issuer::validate, no_staging_issuer::Settings),
    "require-namespace-labels" => (require_namespace_labels::validate, require_namespace_labels::Settings),
    "require-ssl-redirect" => (require_ssl_redirect::validate, require_ssl_redirect::Settings),
    "trusted-registries" => (trusted_registries::validate, trusted_registries::Settings),
    "require-resources" => (require_resources::validate, require_resources::Settings),
}
