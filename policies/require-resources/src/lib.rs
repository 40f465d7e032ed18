//! Policy `require-resources`: every container and init container declares the
//! resource requests in `requests` (default CPU and memory), so the scheduler can
//! place the pod and it is not the first evicted under pressure, and the limits in
//! `limits` (default none). plate-web's prod values comment out the backend
//! container's resources; this policy is what notices.
//!
//! A limit without a request counts as the request: Kubernetes copies the limit into
//! the request when defaulting a Pod, so the Pod is placed with it. Ephemeral
//! containers are not checked: Kubernetes does not let them have resources.
//! Covers every pod-bearing kind.

use plate_policy_sdk::workload::{ContainerSection, containers_under_review};
use plate_policy_sdk::{PolicySettings, ValidationRequest, Verdict, Violation};
use serde::Deserialize;
use serde::de::IgnoredAny;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Resources every container must request (`cpu`, `memory`, `nvidia.com/gpu`, ...).
    pub requests: Vec<String>,
    /// Resources every container must limit.
    pub limits: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            requests: ["cpu", "memory"].map(String::from).to_vec(),
            limits: Vec::new(),
        }
    }
}

impl PolicySettings for Settings {
    fn validate(&self) -> Result<(), String> {
        if self.requests.is_empty() && self.limits.is_empty() {
            return Err(
                "requests and limits are both empty: nothing would be checked (usually requests: [cpu, memory])"
                    .into(),
            );
        }
        for (setting, names) in [("requests", &self.requests), ("limits", &self.limits)] {
            for (i, name) in names.iter().enumerate() {
                if name.is_empty() {
                    return Err(format!("{setting}[{i}] is empty"));
                }
                if name.chars().any(char::is_whitespace) {
                    return Err(format!(
                        "{setting}[{i}]: {name:?} contains a space; a resource name has none"
                    ));
                }
                if names[..i].contains(name) {
                    return Err(format!("{setting}[{i}]: {name:?} is listed twice"));
                }
            }
        }
        Ok(())
    }
}

/// A container's `resources`; quantities are only checked for presence (`null` is absent).
#[derive(Deserialize, Default)]
struct Resources {
    #[serde(default, deserialize_with = "plate_policy_sdk::nullable")]
    requests: BTreeMap<String, Option<IgnoredAny>>,
    #[serde(default, deserialize_with = "plate_policy_sdk::nullable")]
    limits: BTreeMap<String, Option<IgnoredAny>>,
}

impl Resources {
    fn has_request(&self, name: &str) -> bool {
        matches!(self.requests.get(name), Some(Some(_))) || self.has_limit(name)
    }

    fn has_limit(&self, name: &str) -> bool {
        matches!(self.limits.get(name), Some(Some(_)))
    }
}

/// How a resource reads in a sentence.
fn display_name(name: &str) -> &str {
    match name {
        "cpu" => "CPU",
        other => other,
    }
}

/// `a`, `a or b`, `a, b or c`.
fn or_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

fn missing_message(who: &str, requests: &[&str], limits: &[&str]) -> String {
    let names = |list: &[&str]| or_list(&list.iter().map(|n| display_name(n)).collect::<Vec<_>>());
    let mut what = Vec::new();
    if !requests.is_empty() {
        what.push(format!("no {} request", names(requests)));
    }
    if !limits.is_empty() {
        what.push(format!("no {} limit", names(limits)));
    }
    let fields: Vec<String> = requests
        .iter()
        .map(|n| format!("resources.requests.{n}"))
        .chain(limits.iter().map(|n| format!("resources.limits.{n}")))
        .collect();
    let pronoun = if fields.len() == 1 { "it" } else { "them" };
    let purpose = match (requests.is_empty(), limits.is_empty()) {
        (false, true) => "so the scheduler can place it",
        (true, false) => "to cap what it can use",
        _ => "so the scheduler can place it and what it uses is capped",
    };
    format!(
        "{who} sets {} ({}); set {pronoun} {purpose}",
        what.join(" and "),
        fields.join(", ")
    )
}

/// `api: no CPU, memory request`: the short form for warnings.
fn missing_summary(name: &str, requests: &[&str], limits: &[&str]) -> String {
    let names = |list: &[&str]| {
        list.iter()
            .map(|n| display_name(n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut what = Vec::new();
    if !requests.is_empty() {
        what.push(format!("no {} request", names(requests)));
    }
    if !limits.is_empty() {
        what.push(format!("no {} limit", names(limits)));
    }
    format!("{name}: {}; set resources", what.join(", "))
}

pub fn validate(req: &ValidationRequest<Settings>) -> Verdict {
    let list = match containers_under_review(&req.request) {
        Ok(list) => list,
        Err(e) => return Verdict::error(e),
    };
    let settings = &req.settings;
    let mut violations = Vec::new();
    for container in &list {
        if container.section == ContainerSection::EphemeralContainers {
            continue;
        }
        let who = container.describe();
        let resources = match container.resources.as_deref() {
            None => Resources::default(),
            Some(raw) => match Option::<Resources>::deserialize(raw) {
                Ok(resources) => resources.unwrap_or_default(),
                Err(e) => {
                    return Verdict::error(format!("cannot read the resources of {who}: {e}"));
                }
            },
        };
        let missing_requests: Vec<&str> = settings
            .requests
            .iter()
            .map(String::as_str)
            .filter(|n| !resources.has_request(n))
            .collect();
        let missing_limits: Vec<&str> = settings
            .limits
            .iter()
            .map(String::as_str)
            .filter(|n| !resources.has_limit(n))
            .collect();
        if !missing_requests.is_empty() || !missing_limits.is_empty() {
            violations.push(
                Violation::new(
                    container.key(),
                    missing_message(&who, &missing_requests, &missing_limits),
                )
                .at(container.field_path("resources"))
                .summary(missing_summary(
                    &container.name,
                    &missing_requests,
                    &missing_limits,
                )),
            );
        }
    }
    Verdict::from_violations(violations)
}

#[cfg(feature = "standalone")]
plate_policy_sdk::export_policy!(validate, Settings);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        assert_eq!(
            missing_message("container \"backend\"", &["cpu", "memory"], &[]),
            "container \"backend\" sets no CPU or memory request (resources.requests.cpu, resources.requests.memory); set them so the scheduler can place it"
        );
        assert_eq!(
            missing_message("init container \"migrate\"", &[], &["memory"]),
            "init container \"migrate\" sets no memory limit (resources.limits.memory); set it to cap what it can use"
        );
        assert_eq!(
            missing_message(
                "container \"a\"",
                &["cpu", "memory", "nvidia.com/gpu"],
                &["memory"]
            ),
            "container \"a\" sets no CPU, memory or nvidia.com/gpu request and no memory limit (resources.requests.cpu, resources.requests.memory, resources.requests.nvidia.com/gpu, resources.limits.memory); set them so the scheduler can place it and what it uses is capped"
        );
    }

    #[test]
    fn settings_validation() {
        assert!(Settings::default().validate().is_ok());
        let bad = [
            (vec![], vec![]),
            (vec!["cpu".to_string(), String::new()], vec![]),
            (vec!["cpu".to_string(), "cpu".to_string()], vec![]),
            (vec![], vec!["memory".to_string(), "memory".to_string()]),
            (vec!["c pu".to_string()], vec![]),
        ];
        for (requests, limits) in bad {
            let settings = Settings { requests, limits };
            assert!(settings.validate().is_err(), "{settings:?}");
        }
        let extended = Settings {
            requests: vec!["cpu".into(), "nvidia.com/gpu".into()],
            limits: vec!["memory".into()],
        };
        assert!(extended.validate().is_ok());
    }
}
