//! Policy `require-namespace-labels`: every Namespace carries the environment label
//! (default `environment`) with one of the allowed values, so every other policy
//! knows which environment's rules apply inside it.

use plate_policy_sdk::{PolicySettings, ValidationRequest, Verdict, export_policy};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// The label that must be present.
    #[serde(default = "default_label")]
    pub label: String,
    /// Allowed values; empty means any non-empty value.
    #[serde(default = "default_values")]
    pub allowed_values: Vec<String>,
}

fn default_label() -> String {
    "environment".to_string()
}
fn default_values() -> Vec<String> {
    ["production", "development", "staging"]
        .map(String::from)
        .to_vec()
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            label: default_label(),
            allowed_values: default_values(),
        }
    }
}

impl PolicySettings for Settings {
    fn validate(&self) -> Result<(), String> {
        let (prefix, name) = match self.label.rsplit_once('/') {
            Some((prefix, name)) => (Some(prefix), name),
            None => (None, self.label.as_str()),
        };
        let name_ok = !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.ends_with(|c: char| c.is_ascii_alphanumeric());
        let prefix_ok = prefix.is_none_or(|p| !p.is_empty() && p.len() <= 253);
        if !name_ok || !prefix_ok {
            return Err(format!("label: {:?} is not a valid label key", self.label));
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
    match namespace.metadata.labels.get(label) {
        None => Verdict::deny(if allowed.is_empty() {
            format!(
                "namespace {name:?} has no {label:?} label; add one so the right environment's rules apply"
            )
        } else {
            format!(
                "namespace {name:?} has no {label:?} label; add {label}=<one of {allowed}> so the right environment's rules apply"
            )
        }),
        Some(value) if value.is_empty() => Verdict::deny(if allowed.is_empty() {
            format!("namespace {name:?} has an empty {label:?} label; give it a value")
        } else {
            format!("namespace {name:?} has an empty {label:?} label; set it to one of {allowed}")
        }),
        Some(value)
            if !settings.allowed_values.is_empty()
                && !settings.allowed_values.iter().any(|v| v == value) =>
        {
            Verdict::deny(format!(
                "namespace {name:?} has {label}={value:?}, which is not an allowed value; use one of {allowed}"
            ))
        }
        Some(_) => Verdict::allow(),
    }
}

export_policy!(validate, Settings);
