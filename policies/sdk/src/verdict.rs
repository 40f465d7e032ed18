//! A policy's answer (ABI v2): a list of violations, each with a stable key, a
//! message for a person, and where the policy knows it the field path and a short
//! form. The host makes deny messages, warnings, `check` results, metrics and audit
//! reports from this one list, and compares keys to find violations an UPDATE did
//! not introduce (`allowExistingViolations`).

use serde::{Deserialize, Serialize};

/// One thing wrong with the object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    /// Names *where* the problem is, the same for the same place across evaluations:
    /// `container:api`, `initContainer:migrate`, `annotation:cert-manager.io/issuer`,
    /// `label:environment`. Together with the message it identifies the violation.
    pub key: String,
    /// What is wrong and how to fix it: the object part, the offending value, the fix.
    pub message: String,
    /// The field, as a path into the object (`spec.template.spec.containers[0].image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A short form for places with little room (a Kubernetes warning is cut at 119
    /// characters): `api: docker.io/plate-api:latest is not from harbor.example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

impl Violation {
    /// A violation with its key and message; add the path with [`at`](Self::at)
    /// and a short form with [`summary`](Self::summary).
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Violation {
            key: key.into(),
            message: message.into(),
            path: None,
            summary: None,
        }
    }

    /// The field the violation is about.
    pub fn at(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// The short form shown where room is scarce (warnings).
    pub fn summary(mut self, summary: impl Into<String>) -> Self {
        self.summary = Some(summary.into());
        self
    }
}

/// A policy's answer. Violations make the request a violation of the policy; what
/// that does (deny, warn, audit) is the policy set's `mode`, decided by the host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// False exactly when `violations` is not empty (the host checks they agree).
    pub allowed: bool,
    /// What is wrong with the object; empty when it complies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<Violation>,
    /// Advice returned whatever the mode, even when allowed; not a violation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Set when the policy could not evaluate at all; the host applies the
    /// policy's failure outcome instead of reading the violations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Verdict {
    /// No violation: the object complies.
    pub fn allow() -> Self {
        Verdict {
            allowed: true,
            ..Verdict::default()
        }
    }

    /// One violation.
    pub fn deny(violation: Violation) -> Self {
        Verdict::from_violations(vec![violation])
    }

    /// Allowed when `violations` is empty, a violation otherwise.
    pub fn from_violations(violations: Vec<Violation>) -> Self {
        Verdict {
            allowed: violations.is_empty(),
            violations,
            ..Verdict::default()
        }
    }

    /// The policy could not evaluate (unreadable object, impossible state): the
    /// host applies the entry's `failurePolicy` and reports `message`.
    pub fn error(message: impl Into<String>) -> Self {
        Verdict {
            allowed: false,
            error: Some(message.into()),
            ..Verdict::default()
        }
    }

    /// Adds advice shown as a warning whatever the verdict and mode.
    pub fn with_warning(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }
}

/// The answer of `plate_validate_settings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsValidation {
    /// Whether the policy accepts its settings.
    pub valid: bool,
    /// Why not, for the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl SettingsValidation {
    /// The settings are accepted.
    pub fn valid() -> Self {
        SettingsValidation {
            valid: true,
            message: None,
        }
    }

    /// The settings are refused, with the reason.
    pub fn invalid(message: String) -> Self {
        SettingsValidation {
            valid: false,
            message: Some(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_serialize_as_documented() {
        let verdict = Verdict::deny(
            Violation::new("container:api", "bad image")
                .at("spec.containers[0].image")
                .summary("api: bad"),
        );
        let json = serde_json::to_string(&verdict).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"allowed":false,"violations":[{"key":"container:api","message":"bad image","path":"spec.containers[0].image","summary":"api: bad"}]}"#
        );
        assert_eq!(
            serde_json::to_string(&Verdict::allow()).unwrap_or_default(),
            r#"{"allowed":true}"#
        );
        assert!(Verdict::from_violations(Vec::new()).allowed);
    }
}
