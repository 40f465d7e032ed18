//! The plate-policy guest SDK: write an admission policy as one plain Rust function.
//!
//! ```ignore
//! use plate_policy_sdk::{export_policy, PolicySettings, ValidationRequest, Verdict, Violation};
//!
//! #[derive(serde::Deserialize, Default)]
//! #[serde(default, rename_all = "camelCase", deny_unknown_fields)]
//! struct Settings {}
//! impl PolicySettings for Settings {}
//!
//! fn validate(req: &ValidationRequest<Settings>) -> Verdict {
//!     Verdict::allow()
//! }
//! export_policy!(validate, Settings);
//! ```
//!
//! The macro emits the exports of guest ABI v2 (see `docs/abi.md`): `memory`,
//! `plate_abi_version`, `plate_alloc`, `plate_validate_settings`, `plate_validate`.
//! A verdict is a list of [`Violation`]s, each with a stable key and, where the
//! policy knows it, the field path.
//!
//! docs/authoring.md goes from `plate-policy new` to a passing suite; docs/abi.md
//! is the ABI itself, for guests written without this SDK.
#![warn(missing_docs)]

pub mod abi;
#[cfg(target_arch = "wasm32")]
pub mod alloc;
pub mod context;
pub mod guest;
pub mod image;
pub mod k8s;
pub mod pattern;
pub mod request;
pub mod verdict;
pub mod workload;

pub use abi::ABI_VERSION;
pub use image::{ImageReference, ImageReferenceError};
pub use request::{AdmissionRequest, GroupVersionKind, ValidationRequest};
pub use verdict::{SettingsValidation, Verdict, Violation};
pub use workload::{ContainerRef, ContainerSection};

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: alloc::BumpAllocator = alloc::BumpAllocator::new();

/// Deserializes `null` as the type's default (for `#[serde(deserialize_with)]`):
/// Kubernetes manifests written by templates often carry `field: null`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de> + Default,
{
    use serde::Deserialize;
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A policy's settings: deserialized from the policy set's `settings` field and
/// validated once when the policy is loaded. Absent fields take the type's
/// `Default`: put `#[serde(default)]` on the struct so the defaults are written once,
/// in the `Default` impl.
pub trait PolicySettings: serde::de::DeserializeOwned + Default {
    /// Semantic checks serde cannot express. The error text is shown to the
    /// operator as-is, so name the setting and what is wrong with it.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Emits the ABI exports for a policy function `fn(&ValidationRequest<S>) -> Verdict`.
#[macro_export]
macro_rules! export_policy {
    ($validate:path, $settings:ty) => {
        $crate::__export_abi! {
            settings: |input| $crate::guest::validate_settings::<$settings>(input),
            validate: |input| $crate::guest::validate::<$settings>(input, $validate),
        }
    };
}

/// Emits the ABI exports for a module holding several policies, each a function
/// `fn(&ValidationRequest<S>) -> Verdict` with its settings type, listed by name:
///
/// ```ignore
/// export_policies! {
///     "no-latest-tag" => (no_latest_tag::validate, no_latest_tag::Settings),
///     "require-resources" => (require_resources::validate, require_resources::Settings),
/// }
/// ```
///
/// The module's settings choose the policy: `{"policy": "no-latest-tag", "settings":
/// {...}}`. The policies share one copy of the SDK's code, and the host one compiled
/// module: evaluations of several of them in a row run on warm code (the built-in
/// policies are built this way; docs/performance.md).
#[macro_export]
macro_rules! export_policies {
    ($($name:literal => ($validate:path, $settings:ty)),+ $(,)?) => {
        const PLATE_BUNDLED_POLICIES: &[$crate::guest::BundledPolicy] = &[
            $($crate::guest::BundledPolicy {
                name: $name,
                validate_settings: $crate::guest::validate_settings::<$settings>,
                validate: |request| $crate::guest::validate_bundled::<$settings>(request, $validate),
            }),+
        ];
        $crate::__export_abi! {
            settings: |input| $crate::guest::validate_bundled_settings(input, PLATE_BUNDLED_POLICIES),
            validate: |input| $crate::guest::validate_bundle(input, PLATE_BUNDLED_POLICIES),
        }
    };
}

/// The ABI's exports around two functions of the input bytes: the settings check and
/// the validation (what [`export_policy!`] and [`export_policies!`] share).
#[doc(hidden)]
#[macro_export]
macro_rules! __export_abi {
    (settings: |$s:ident| $settings:expr, validate: |$v:ident| $validate:expr $(,)?) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn plate_abi_version() -> i32 {
            $crate::ABI_VERSION
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn plate_alloc(len: i32) -> i32 {
            $crate::guest::alloc(len)
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn plate_validate_settings(ptr: i32, len: i32) -> i64 {
            // SAFETY: the host wrote `len` bytes at `ptr`, a buffer it got from `plate_alloc`.
            let $s = unsafe { $crate::guest::input(ptr, len) };
            $crate::guest::output(&$settings)
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn plate_validate(ptr: i32, len: i32) -> i64 {
            // SAFETY: as above.
            let $v = unsafe { $crate::guest::input(ptr, len) };
            $crate::guest::output(&$validate)
        }
    };
}
