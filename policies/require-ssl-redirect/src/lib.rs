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

use plate_policy_sdk::{PolicySettings, ValidationRequest, Verdict, export_policy};
use serde::Deserialize;
use serde::de::IgnoredAny;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Annotation keys that turn the redirect off when set to false.
    #[serde(default = "default_annotations")]
    pub annotations: Vec<String>,
    /// Warn about an Ingress with no `spec.tls` entry.
    #[serde(default = "default_warn_without_tls")]
    pub warn_without_tls: bool,
}

fn default_annotations() -> Vec<String> {
    [
        "nginx.ingress.kubernetes.io/ssl-redirect",
        "ingress.kubernetes.io/ssl-redirect",
    ]
    .map(String::from)
    .to_vec()
}

fn default_warn_without_tls() -> bool {
    true
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            annotations: default_annotations(),
            warn_without_tls: default_warn_without_tls(),
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
            if !is_annotation_key(key) {
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

/// A Kubernetes annotation key: `[prefix/]name`, the prefix a DNS subdomain.
fn is_annotation_key(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    });
    name_ok && prefix_ok
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
            violations.push(format!(
                "annotation {key:?} is {value:?}, so plain HTTP is not redirected to HTTPS in {env} (a staging setting); remove it or set it to \"true\""
            ));
        }
    }
    let mut verdict = Verdict::deny_all(violations);
    // Kept under Kubernetes' 119-character warning limit with the `[policy] ` prefix.
    if settings.warn_without_tls && ingress.spec.tls.is_empty() {
        verdict = verdict.with_warning(format!(
            "spec.tls is empty, so its hosts get no certificate in {env}; add a tls entry with a secretName"
        ));
    }
    verdict
}

export_policy!(validate, Settings);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_keys() {
        for key in [
            "nginx.ingress.kubernetes.io/ssl-redirect",
            "ingress.kubernetes.io/ssl-redirect",
            "ssl-redirect",
            "example.com/A_b.c",
        ] {
            assert!(is_annotation_key(key), "{key}");
        }
        for key in [
            "",
            "/ssl-redirect",
            "nginx.ingress.kubernetes.io/",
            "Nginx.io/ssl-redirect",
            "a/b/c",
            "a..b/c",
            "-a.io/c",
            "a.io/-c",
            "a.io/has space",
        ] {
            assert!(!is_annotation_key(key), "{key}");
        }
    }

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
