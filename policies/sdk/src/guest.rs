//! Guest side of the ABI: buffers in linear memory and the JSON framing of calls,
//! used by the exports [`export_policy!`](crate::export_policy) emits. Every
//! evaluation runs in a fresh instance, so buffers are never freed.

use crate::PolicySettings;
use crate::request::ValidationRequest;
use crate::verdict::{SettingsValidation, Verdict};
use serde::Serialize;

/// Allocates `len` bytes for the host to write its input into; 0 on failure.
pub fn alloc(len: i32) -> i32 {
    let Ok(len) = usize::try_from(len) else {
        return 0;
    };
    let mut buf: Vec<u8> = Vec::with_capacity(len.max(1));
    let ptr = buf.as_mut_ptr();
    std::mem::forget(buf);
    ptr as usize as i32
}

/// Borrows the host's input buffer.
///
/// # Safety
/// `ptr` must come from [`alloc`] with at least `len` bytes that the host initialized.
pub unsafe fn input<'a>(ptr: i32, len: i32) -> &'a [u8] {
    if ptr == 0 || len <= 0 {
        return &[];
    }
    // SAFETY: guaranteed by the caller (the host follows the ABI).
    unsafe { std::slice::from_raw_parts(ptr as usize as *const u8, len as usize) }
}

/// Serializes `value` into a leaked buffer and packs its place for the host.
pub fn output<T: Serialize>(value: &T) -> i64 {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| {
        // A verdict always serializes; keep a defined answer (a policy error) if not.
        br#"{"allowed":false,"error":"the policy could not encode its verdict"}"#.to_vec()
    });
    let packed = crate::abi::pack(bytes.as_ptr() as usize as u32, bytes.len() as u32);
    std::mem::forget(bytes);
    packed
}

/// Deserializes and validates settings (the host calls this at load time).
pub fn validate_settings<S: PolicySettings>(input: &[u8]) -> SettingsValidation {
    let parsed: Result<S, _> = if input.is_empty() || input == b"null" {
        Ok(S::default())
    } else {
        serde_json::from_slice(input)
    };
    match parsed {
        Ok(settings) => match settings.validate() {
            Ok(()) => SettingsValidation::valid(),
            Err(message) => SettingsValidation::invalid(message),
        },
        Err(e) => SettingsValidation::invalid(format!("settings do not parse: {e}")),
    }
}

/// Deserializes the validation input and runs the policy function on it.
pub fn validate<S: PolicySettings>(
    input: &[u8],
    policy: fn(&ValidationRequest<S>) -> Verdict,
) -> Verdict {
    match serde_json::from_slice::<ValidationRequest<S>>(input) {
        Ok(request) => policy(&request),
        Err(e) => Verdict::error(format!("policy could not read its input: {e}")),
    }
}
