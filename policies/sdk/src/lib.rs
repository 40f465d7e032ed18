//! The plate-policy guest SDK: write an admission policy as one plain Rust function.
//!
//! ```ignore
//! use plate_policy_sdk::{export_policy, PolicySettings, ValidationRequest, Verdict};
//!
//! #[derive(serde::Deserialize, Default)]
//! struct Settings {}
//! impl PolicySettings for Settings {}
//!
//! fn validate(req: &ValidationRequest<Settings>) -> Verdict {
//!     Verdict::allow()
//! }
//! export_policy!(validate, Settings);
//! ```
//!
//! The macro emits the exports of guest ABI v1 (see `docs/abi.md`): `memory`,
//! `plate_abi_version`, `plate_alloc`, `plate_validate_settings`, `plate_validate`.

pub mod abi;
#[cfg(target_arch = "wasm32")]
pub mod alloc;
pub mod context;
pub mod image;
pub mod pattern;
pub mod request;
pub mod workload;

pub use image::{ImageReference, ImageReferenceError};
pub use request::{AdmissionRequest, GroupVersionKind, ValidationRequest, Verdict};
pub use workload::{ContainerRef, ContainerSection};

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: alloc::BumpAllocator = alloc::BumpAllocator::new();

/// The ABI version this SDK implements. The host refuses modules that declare another.
pub const ABI_VERSION: i32 = 1;

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

/// A policy's settings: deserialized from the policy set's `settings` field (absent
/// fields take the type's defaults) and validated once when the policy is loaded.
pub trait PolicySettings: serde::de::DeserializeOwned + Default {
    /// Semantic checks serde cannot express. The error text is shown to the
    /// operator as-is, so name the setting and what is wrong with it.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Emits the ABI v1 exports for a policy function `fn(&ValidationRequest<S>) -> Verdict`.
#[macro_export]
macro_rules! export_policy {
    ($validate:path, $settings:ty) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn plate_abi_version() -> i32 {
            $crate::ABI_VERSION
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn plate_alloc(len: i32) -> i32 {
            $crate::abi::alloc(len)
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn plate_validate_settings(ptr: i32, len: i32) -> i64 {
            // SAFETY: the host wrote `len` bytes at `ptr`, a buffer it got from `plate_alloc`.
            let input = unsafe { $crate::abi::input(ptr, len) };
            $crate::abi::output(&$crate::abi::validate_settings::<$settings>(input))
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn plate_validate(ptr: i32, len: i32) -> i64 {
            // SAFETY: as above.
            let input = unsafe { $crate::abi::input(ptr, len) };
            $crate::abi::output(&$crate::abi::validate::<$settings>(input, $validate))
        }
    };
}
