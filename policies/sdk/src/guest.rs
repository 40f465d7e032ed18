//! Guest side of the ABI: buffers in linear memory and the JSON framing of calls,
//! used by the exports [`export_policy!`](crate::export_policy) emits, and the
//! dispatch of a module holding several policies
//! ([`export_policies!`](crate::export_policies)). Every
//! evaluation runs in a fresh instance, so buffers are never freed.

use crate::PolicySettings;
use crate::request::ValidationRequest;
use crate::verdict::{SettingsValidation, Verdict};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

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
    let parsed = parse_settings::<S>(input);
    match parsed {
        Ok(settings) => match settings.validate() {
            Ok(()) => SettingsValidation::valid(),
            Err(message) => SettingsValidation::invalid(message),
        },
        Err(e) => SettingsValidation::invalid(format!("settings do not parse: {e}")),
    }
}

/// `null` or nothing is the type's default.
fn parse_settings<S: PolicySettings>(input: &[u8]) -> Result<S, serde_json::Error> {
    if input.is_empty() || input == b"null" {
        Ok(S::default())
    } else {
        serde_json::from_slice(input)
    }
}

/// The settings of a module holding several policies
/// ([`export_policies!`](crate::export_policies)): which policy, and its own settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundledSettings {
    /// The name of the policy to run, as the module lists it.
    #[serde(default)]
    pub policy: String,
    /// That policy's settings, read by the policy's own settings type.
    #[serde(default)]
    pub settings: Option<Box<RawValue>>,
}

impl BundledSettings {
    fn settings_bytes(&self) -> &[u8] {
        self.settings
            .as_ref()
            .map_or(b"", |raw| raw.get().as_bytes())
    }
}

/// A policy of a module holding several: its name, how it validates its settings
/// and how it validates a request.
pub struct BundledPolicy {
    /// The name the settings' `policy` field selects it by.
    pub name: &'static str,
    /// [`validate_settings`] for the policy's settings type.
    pub validate_settings: fn(&[u8]) -> SettingsValidation,
    /// [`validate_bundled`] for the policy's function and settings type.
    pub validate: fn(ValidationRequest<BundledSettings>) -> Verdict,
}

fn unknown_policy(name: &str, policies: &[BundledPolicy]) -> String {
    let known: Vec<&str> = policies.iter().map(|p| p.name).collect();
    if name.is_empty() {
        format!(
            "this module holds several policies: name one in settings.policy ({})",
            known.join(", ")
        )
    } else {
        format!(
            "this module holds no policy {name:?} (it holds {})",
            known.join(", ")
        )
    }
}

/// `plate_validate_settings` of a module holding several policies: the settings are
/// `{"policy": NAME, "settings": {...}}`, and NAME's own settings are validated.
pub fn validate_bundled_settings(input: &[u8], policies: &[BundledPolicy]) -> SettingsValidation {
    let bundled: BundledSettings = match serde_json::from_slice(input) {
        Ok(bundled) => bundled,
        Err(e) => return SettingsValidation::invalid(format!("settings do not parse: {e}")),
    };
    match policies.iter().find(|p| p.name == bundled.policy) {
        Some(policy) => (policy.validate_settings)(bundled.settings_bytes()),
        None => SettingsValidation::invalid(unknown_policy(&bundled.policy, policies)),
    }
}

/// `plate_validate` of a module holding several policies: runs the one the settings name.
pub fn validate_bundle(input: &[u8], policies: &[BundledPolicy]) -> Verdict {
    match serde_json::from_slice::<ValidationRequest<BundledSettings>>(input) {
        Ok(request) => match policies.iter().find(|p| p.name == request.settings.policy) {
            Some(policy) => (policy.validate)(request),
            None => Verdict::error(unknown_policy(&request.settings.policy, policies)),
        },
        Err(e) => Verdict::error(format!("policy could not read its input: {e}")),
    }
}

/// Reads the chosen policy's own settings and runs it on the request.
pub fn validate_bundled<S: PolicySettings>(
    request: ValidationRequest<BundledSettings>,
    policy: fn(&ValidationRequest<S>) -> Verdict,
) -> Verdict {
    match parse_settings::<S>(request.settings.settings_bytes()) {
        Ok(settings) => policy(&ValidationRequest {
            request: request.request,
            environment: request.environment,
            namespace_labels: request.namespace_labels,
            settings,
        }),
        Err(e) => Verdict::error(format!("policy could not read its settings: {e}")),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Violation;

    #[derive(Deserialize, Default)]
    #[serde(default, deny_unknown_fields)]
    struct Threshold {
        limit: u32,
    }
    impl PolicySettings for Threshold {
        fn validate(&self) -> Result<(), String> {
            if self.limit == 0 {
                return Err("limit must be positive".into());
            }
            Ok(())
        }
    }

    #[derive(Deserialize, Default)]
    #[serde(default, deny_unknown_fields)]
    struct Nothing {}
    impl PolicySettings for Nothing {}

    fn over_limit(req: &ValidationRequest<Threshold>) -> Verdict {
        Verdict::deny(Violation::new(
            "limit",
            format!("limit {} in {}", req.settings.limit, req.environment_name()),
        ))
    }

    fn allow(_: &ValidationRequest<Nothing>) -> Verdict {
        Verdict::allow()
    }

    const POLICIES: &[BundledPolicy] = &[
        BundledPolicy {
            name: "threshold",
            validate_settings: validate_settings::<Threshold>,
            validate: |request| validate_bundled::<Threshold>(request, over_limit),
        },
        BundledPolicy {
            name: "allow",
            validate_settings: validate_settings::<Nothing>,
            validate: |request| validate_bundled::<Nothing>(request, allow),
        },
    ];

    const REQUEST: &str = r#""environment":"prod","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"object":{}}"#;

    #[test]
    fn a_bundle_runs_the_policy_its_settings_name_with_that_policys_settings() {
        let input = format!(
            r#"{{"settings":{{"policy":"threshold","settings":{{"limit":3}}}},{REQUEST}}}"#
        );
        let verdict = validate_bundle(input.as_bytes(), POLICIES);
        assert!(!verdict.allowed);
        assert_eq!(verdict.violations[0].message, "limit 3 in prod");
        let input = format!(r#"{{"settings":{{"policy":"allow"}},{REQUEST}}}"#);
        assert!(validate_bundle(input.as_bytes(), POLICIES).allowed);
    }

    #[test]
    fn a_bundle_validates_the_named_policys_settings_and_names_what_it_holds() {
        let check = |settings: &str| validate_bundled_settings(settings.as_bytes(), POLICIES);
        assert!(check(r#"{"policy":"threshold","settings":{"limit":1}}"#).valid);
        assert!(check(r#"{"policy":"allow"}"#).valid);
        let refused = |settings: &str| check(settings).message.unwrap_or_default();
        assert_eq!(
            refused(r#"{"policy":"threshold","settings":{"limit":0}}"#),
            "limit must be positive"
        );
        assert!(
            refused(r#"{"policy":"threshold","settings":{"limt":1}}"#)
                .contains("unknown field `limt`"),
            "{}",
            refused(r#"{"policy":"threshold","settings":{"limt":1}}"#)
        );
        assert_eq!(
            refused(r#"{"policy":"nope"}"#),
            r#"this module holds no policy "nope" (it holds threshold, allow)"#
        );
        assert_eq!(
            refused("{}"),
            "this module holds several policies: name one in settings.policy (threshold, allow)"
        );
        assert!(refused(r#"{"policy":"allow","extra":1}"#).contains("unknown field `extra`"));
    }

    #[test]
    fn a_bundle_asked_for_a_policy_it_lacks_or_given_bad_settings_reports_an_error() {
        let input = format!(r#"{{"settings":{{"policy":"nope"}},{REQUEST}}}"#);
        let verdict = validate_bundle(input.as_bytes(), POLICIES);
        assert_eq!(
            verdict.error.as_deref(),
            Some(r#"this module holds no policy "nope" (it holds threshold, allow)"#)
        );
        let input = format!(
            r#"{{"settings":{{"policy":"threshold","settings":{{"limit":"x"}}}},{REQUEST}}}"#
        );
        let error = validate_bundle(input.as_bytes(), POLICIES)
            .error
            .unwrap_or_default();
        assert!(
            error.starts_with("policy could not read its settings:"),
            "{error}"
        );
    }
}
