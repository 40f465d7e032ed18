//! One module on its own, for `plate-policy run` and `bench`: a policy set with a
//! single entry that runs the module on any kind and operation, everywhere, with
//! the given settings, so the object goes through the same decision path as in
//! `serve` (fresh sandbox, limits, settings validated by the policy itself).

use crate::admission::{self, Context, Decision};
use crate::engine::EvaluationSlot;
use crate::manifest::{self, Located, RequestSpec};
use crate::objects::{ObjectKind, ObjectSource};
use crate::policy_set::{BUILTIN_PREFIX, Loader, PolicySet};
use crate::review;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Why the module or its input cannot be used.
#[derive(Debug, Error)]
pub enum SingleError {
    #[error("{0}")]
    Load(String),
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    #[error("{file} holds {count} objects; give a file with exactly one")]
    NotOne { file: String, count: usize },
    #[error("--settings: {0}")]
    Settings(String),
    #[error("{file}:{line}: {message}")]
    Request {
        file: String,
        line: u64,
        message: String,
    },
}

/// The name the one entry gets: the module's file stem as a policy name.
pub fn policy_name(module_ref: &str) -> String {
    let stem = module_ref
        .strip_prefix(BUILTIN_PREFIX)
        .map(str::to_string)
        .unwrap_or_else(|| {
            Path::new(module_ref)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
    let name: String = stem
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c == '_' || c == '.' { '-' } else { c })
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        .take(63)
        .collect();
    let name = name.trim_matches('-').to_string();
    if name.is_empty() {
        "policy".to_string()
    } else {
        name
    }
}

/// Loads `module_ref` (a `.wasm` path or `builtin:NAME`) as the only policy of a
/// set: enforce mode, failurePolicy Fail, every kind and operation, `settings`
/// (validated by the policy), and lookups allowed for `context_kinds`.
pub fn load(
    loader: &Loader<'_>,
    module_ref: &str,
    settings: Option<&serde_json::Value>,
    context_kinds: &[ObjectKind],
) -> Result<PolicySet, SingleError> {
    if let Some(s) = settings
        && !s.is_object()
    {
        return Err(SingleError::Settings(format!(
            "settings are a JSON object, not {s}"
        )));
    }
    let name = policy_name(module_ref);
    let document = serde_json::json!({
        "apiVersion": "policy.plate.dev/v1alpha1",
        "kind": "PolicySet",
        "metadata": {"name": "plate-policy-run"},
        "spec": {"policies": [{
            "name": name,
            "module": module_ref,
            "mode": "enforce",
            "failurePolicy": "Fail",
            "match": {"kinds": ["*"], "operations": ["*"]},
            "settings": settings.cloned().unwrap_or_else(|| serde_json::json!({})),
            "context": context_kinds,
        }]},
    });
    // JSON is YAML: the set goes through the loader like any file. Its problems
    // are told without positions in this generated text.
    loader
        .load_str(module_ref, &document.to_string(), Some(Path::new(".")))
        .map_err(|e| {
            SingleError::Load(
                e.problems
                    .iter()
                    .map(|p| p.message.clone())
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })
}

/// The one object of `file` (`-`: standard input).
pub fn read_object(file: &str) -> Result<Located, SingleError> {
    let (name, text) = if file == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|source| {
            SingleError::Read {
                file: "<stdin>".into(),
                source,
            }
        })?;
        ("<stdin>".to_string(), text)
    } else {
        let text = std::fs::read_to_string(file).map_err(|source| SingleError::Read {
            file: file.to_string(),
            source,
        })?;
        (file.to_string(), text)
    };
    let mut objects = manifest::read_objects(&name, &text)?;
    if objects.len() != 1 {
        return Err(SingleError::NotOne {
            file: name,
            count: objects.len(),
        });
    }
    Ok(objects.remove(0))
}

/// The request the object makes when it is created, as `check` builds it.
pub fn request_bytes(file: &str, object: &Located) -> Result<Vec<u8>, SingleError> {
    let spec = RequestSpec {
        operation: "CREATE",
        namespace: None,
        old_object: None,
        uid: "plate-policy-run",
    };
    let bytes = manifest::to_request(&object.value, &spec).map_err(|e| SingleError::Request {
        file: file.to_string(),
        line: object.line,
        message: e.to_string(),
    })?;
    review::parse_request(&bytes).map_err(|e| SingleError::Request {
        file: file.to_string(),
        line: object.line,
        message: e.to_string(),
    })?;
    Ok(bytes)
}

/// One decision of `set` on the request, in environment `env`, in `slot`.
pub fn decide(
    set: &PolicySet,
    request: &review::Review<'_>,
    env: Option<&str>,
    objects: &Arc<dyn ObjectSource>,
    slot: &EvaluationSlot,
) -> Decision {
    let context = Context {
        objects,
        environment: env,
        deadline: Instant::now() + Duration::from_secs(30),
        slot: Some(slot),
        run_evaluations: None,
    };
    admission::decide(set, request, &context)
}

/// Median and 99th percentile (nearest rank) of `samples`; zero when empty.
pub fn median_and_p99(samples: &mut [Duration]) -> (Duration, Duration) {
    if samples.is_empty() {
        return (Duration::ZERO, Duration::ZERO);
    }
    samples.sort_unstable();
    let n = samples.len();
    let median = if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2
    };
    // Nearest rank: the smallest sample with at least 99% of samples at or below it.
    let rank = (n * 99).div_ceil(100).max(1);
    (median, samples[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_module() {
        assert_eq!(policy_name("builtin:no-latest-tag"), "no-latest-tag");
        assert_eq!(
            policy_name("target/wasm32-unknown-unknown/release/require_owner.wasm"),
            "require-owner"
        );
        assert_eq!(policy_name("/tmp/_.wasm"), "policy");
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let ms = Duration::from_millis;
        let mut samples: Vec<Duration> = (1..=100).rev().map(ms).collect();
        assert_eq!(median_and_p99(&mut samples), (ms(50) + ms(1) / 2, ms(99)));
        let mut three = vec![ms(3), ms(1), ms(2)];
        assert_eq!(median_and_p99(&mut three), (ms(2), ms(3)));
        assert_eq!(median_and_p99(&mut []), (Duration::ZERO, Duration::ZERO));
    }
}
