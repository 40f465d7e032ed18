//! Policy `require-namespace-labels`: every Namespace carries the environment label
//! (default `environment`) with one of the allowed values, so every other policy
//! knows which environment's rules apply inside it.

use plate_policy_sdk::k8s::is_qualified_name;
use plate_policy_sdk::{PolicySettings, ValidationRequest, Verdict, Violation};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// The label that must be present.
    pub label: String,
    /// Allowed values; empty means any non-empty value.
    pub allowed_values: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            label: "environment".to_string(),
            allowed_values: ["production", "development", "staging"]
                .map(String::from)
                .to_vec(),
        }
    }
}

impl PolicySettings for Settings {
    fn validate(&self) -> Result<(), String> {
        if !is_qualified_name(&self.label) {
            return Err(format!(
                "label: {:?} is not a valid label key ([prefix/]name: a DNS subdomain prefix, a name of at most 63 letters, digits, - _ .)",
                self.label
            ));
        }
        if let Some(i) = self.allowed_values.iter().position(|v| v.is_empty()) {
            return Err(format!("allowedValues[{i}] is empty"));
        }
        Ok(())
    }
}

#[derive(Deserialize, Default)]
struct Namespace {
    #[serde(default, deserialize_with = "plate_policy_sdk::nullable")]
    metadata: Metadata,
}

#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(default, deserialize_with = "plate_policy_sdk::nullable")]
    name: String,
    #[serde(default, deserialize_with = "plate_policy_sdk::nullable")]
    labels: BTreeMap<String, String>,
}

pub fn validate(req: &ValidationRequest<Settings>) -> Verdict {
    if req.request.kind.kind != "Namespace" {
        return Verdict::allow();
    }
    let namespace: Namespace = match req.request.object::<Namespace>() {
        Ok(Some(ns)) => ns,
        Ok(None) => return Verdict::allow(),
        Err(e) => return Verdict::error(e),
    };
    let settings = &req.settings;
    let label = &settings.label;
    let name = &namespace.metadata.name;
    let allowed = settings.allowed_values.join(", ");
    let violation = |message: String, summary: String| {
        Verdict::deny(
            Violation::new(format!("label:{label}"), message)
                .at(format!("metadata.labels[{label}]"))
                .summary(summary),
        )
    };
    match namespace.metadata.labels.get(label) {
        None => violation(
            if allowed.is_empty() {
                format!(
                    "namespace {name:?} has no {label:?} label; add one so the right environment's rules apply"
                )
            } else {
                format!(
                    "namespace {name:?} has no {label:?} label; add {label}=<one of {allowed}> so the right environment's rules apply"
                )
            },
            format!(
                "{name}: no {label} label; add {label}=<{}>",
                allowed.replace(", ", "|")
            ),
        ),
        Some(value) if value.is_empty() => violation(
            if allowed.is_empty() {
                format!("namespace {name:?} has an empty {label:?} label; give it a value")
            } else {
                format!(
                    "namespace {name:?} has an empty {label:?} label; set it to one of {allowed}"
                )
            },
            format!("{name}: empty {label} label"),
        ),
        Some(value)
            if !settings.allowed_values.is_empty()
                && !settings.allowed_values.iter().any(|v| v == value) =>
        {
            violation(
                format!(
                    "namespace {name:?} has {label}={value:?}, which is not an allowed value; use one of {allowed}"
                ),
                format!("{name}: {label}={value:?} is not one of {allowed}"),
            )
        }
        Some(_) => Verdict::allow(),
    }
}

#[cfg(feature = "standalone")]
plate_policy_sdk::export_policy!(validate, Settings);
