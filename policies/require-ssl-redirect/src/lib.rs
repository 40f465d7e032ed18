//! Policy `require-ssl-redirect`: an Ingress must not switch off the HTTP-to-HTTPS
//! redirect. plate-llm's staging values set `ingress.kubernetes.io/ssl-redirect:
//! "false"`; that setting must not reach prod, where it would serve users plain HTTP.
//! A violation is any annotation listed in `annotations` (default: the ingress-nginx
//! and the legacy `ingress.kubernetes.io` keys) whose value is false as the
//! controllers read it (`strconv.ParseBool`: `false`, `f`, `0`), ignoring case and
//! surrounding spaces.
//!
//! Independently, with `warnWithoutTls` (default true) an Ingress without any
//! `spec.tls` entry gets a warning, whatever the policy's mode (it is not a
//! violation): cert-manager issues no certificate for its hosts, and the controller
//! serves them with its default one.

use plate_policy_sdk::k8s::is_qualified_name;
use plate_policy_sdk::{PolicySettings, ValidationRequest, Verdict, Violation};
use serde::Deserialize;
use serde::de::IgnoredAny;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Annotation keys that turn the redirect off when set to false.
    pub annotations: Vec<String>,
    /// Warn about an Ingress with no `spec.tls` entry.
    pub warn_without_tls: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            annotations: [
                "nginx.ingress.kubernetes.io/ssl-redirect",
                "ingress.kubernetes.io/ssl-redirect",
            ]
            .map(String::from)
            .to_vec(),
            warn_without_tls: true,
        }
    }
}

impl PolicySettings for Settings {
    fn validate(&self) -> Result<(), String> {
        if self.annotations.is_empty() {
            return Err(
                "annotations is empty: list at least one annotation key (usually \"nginx.ingress.kubernetes.io/ssl-redirect\")"
                    .into(),
            );
        }
        for (i, key) in self.annotations.iter().enumerate() {
            if !is_qualified_name(key) {
                return Err(format!(
                    "annotations[{i}]: {key:?} is not a valid annotation key ([prefix/]name: a DNS subdomain prefix, a name of at most 63 letters, digits, - _ .)"
                ));
            }
            if self.annotations[..i].contains(key) {
                return Err(format!("annotations[{i}]: {key:?} is listed twice"));
            }
        }
        Ok(())
    }
}

/// True when an ingress controller reads `value` as false.
fn is_false(value: &str) -> bool {
    let value = value.trim();
    ["false", "f", "0"]
        .iter()
        .any(|f| value.eq_ignore_ascii_case(f))
}

#[derive(Deserialize, Default)]
struct Ingress {
    #[serde(default, deserialize_with = "plate_policy_sdk::nullable")]
    metadata: Metadata,
    #[serde(default, deserialize_with = "plate_policy_sdk::nullable")]
    spec: IngressSpec,
}

#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(default, deserialize_with = "plate_policy_sdk::nullable")]
    annotations: BTreeMap<String, Option<String>>,
}

#[derive(Deserialize, Default)]
struct IngressSpec {
    #[serde(default, deserialize_with = "plate_policy_sdk::nullable")]
    tls: Vec<IgnoredAny>,
}

pub fn validate(req: &ValidationRequest<Settings>) -> Verdict {
    if req.request.kind.kind != "Ingress" {
        return Verdict::allow();
    }
    let ingress: Ingress = match req.request.object::<Ingress>() {
        Ok(Some(ingress)) => ingress,
        Ok(None) => return Verdict::allow(),
        Err(e) => return Verdict::error(e),
    };
    let env = req.environment_name();
    let settings = &req.settings;
    let mut violations = Vec::new();
    for key in &settings.annotations {
        if let Some(Some(value)) = ingress.metadata.annotations.get(key)
            && is_false(value)
        {
            violations.push(
                Violation::new(
                    format!("annotation:{key}"),
                    format!(
                        "annotation {key:?} is {value:?}, so plain HTTP is not redirected to HTTPS in {env} (a staging setting); remove it or set it to \"true\""
                    ),
                )
                .at(format!("metadata.annotations[{key}]"))
                .summary(format!("{key}={value:?} turns HTTPS redirect off; remove it")),
            );
        }
    }
    let mut verdict = Verdict::from_violations(violations);
    // Kept under Kubernetes' 119-character warning limit with the `[policy] ` prefix.
    if settings.warn_without_tls && ingress.spec.tls.is_empty() {
        verdict = verdict.with_warning(format!(
            "spec.tls is empty, so its hosts get no certificate in {env}; add a tls entry with a secretName"
        ));
    }
    verdict
}

#[cfg(feature = "standalone")]
plate_policy_sdk::export_policy!(validate, Settings);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn false_values() {
        for value in ["false", "False", "FALSE", " false ", "fAlSe", "f", "0"] {
            assert!(is_false(value), "{value:?}");
        }
        for value in ["true", "", "no", "off", "falsey", "1"] {
            assert!(!is_false(value), "{value:?}");
        }
    }

    #[test]
    fn settings_validation() {
        assert!(Settings::default().validate().is_ok());
        let empty = Settings {
            annotations: Vec::new(),
            warn_without_tls: true,
        };
        assert!(empty.validate().is_err());
        let twice = Settings {
            annotations: vec!["a.io/x".into(), "a.io/x".into()],
            warn_without_tls: true,
        };
        assert!(twice.validate().is_err());
    }
}
