//! Environments: which environment (`prod`, `stg`, ...) a namespace belongs to.
//! The namespace's environment label wins; an unlabeled namespace (or one whose
//! value is not mapped) falls back to name patterns, then to the configured default.

use plate_policy_sdk::pattern::glob_match;
use std::collections::{BTreeMap, HashMap};

/// How an environment was decided, for logs and docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvironmentSource {
    Label,
    NamePattern,
    Default,
    Given,
    Unresolved,
}

/// The policy set's `environments` section, compiled.
#[derive(Debug, Clone)]
pub struct EnvironmentResolver {
    pub label: String,
    values: HashMap<String, String>,
    patterns: Vec<(String, String)>,
    default: Option<String>,
}

impl EnvironmentResolver {
    pub fn new(
        label: String,
        values: HashMap<String, String>,
        patterns: Vec<(String, String)>,
        default: Option<String>,
    ) -> Self {
        EnvironmentResolver {
            label,
            values,
            patterns,
            default,
        }
    }

    /// Every environment name this configuration can produce.
    pub fn known_environments(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .values
            .values()
            .chain(self.patterns.iter().map(|(_, env)| env))
            .chain(self.default.iter())
            .cloned()
            .collect();
        all.sort();
        all.dedup();
        all
    }

    pub fn is_known(&self, environment: &str) -> bool {
        self.values.values().any(|e| e == environment)
            || self.patterns.iter().any(|(_, e)| e == environment)
            || self.default.as_deref() == Some(environment)
    }

    /// The environment of namespace `name` with `labels` (None when unknown).
    pub fn resolve(
        &self,
        name: &str,
        labels: Option<&BTreeMap<String, String>>,
    ) -> (Option<String>, EnvironmentSource) {
        if let Some(env) = labels
            .and_then(|l| l.get(&self.label))
            .and_then(|value| self.values.get(value))
        {
            return (Some(env.clone()), EnvironmentSource::Label);
        }
        if let Some((_, env)) = self.patterns.iter().find(|(p, _)| glob_match(p, name)) {
            return (Some(env.clone()), EnvironmentSource::NamePattern);
        }
        match &self.default {
            Some(env) => (Some(env.clone()), EnvironmentSource::Default),
            None => (None, EnvironmentSource::Unresolved),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform() -> EnvironmentResolver {
        EnvironmentResolver::new(
            "environment".into(),
            [
                ("production", "prod"),
                ("development", "stg"),
                ("staging", "stg"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            vec![
                ("*-prod".into(), "prod".into()),
                ("*-stg".into(), "stg".into()),
            ],
            None,
        )
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_wins_over_name() {
        let r = platform();
        let l = labels(&[("environment", "development")]);
        assert_eq!(
            r.resolve("looks-prod", Some(&l)),
            (Some("stg".into()), EnvironmentSource::Label)
        );
    }

    #[test]
    fn unlabeled_or_unmapped_falls_back_to_patterns() {
        let r = platform();
        assert_eq!(
            r.resolve("fe-web-prod", None),
            (Some("prod".into()), EnvironmentSource::NamePattern)
        );
        let odd = labels(&[("environment", "qa")]);
        assert_eq!(
            r.resolve("plate-stg", Some(&odd)),
            (Some("stg".into()), EnvironmentSource::NamePattern)
        );
        assert_eq!(
            r.resolve("misc", None),
            (None, EnvironmentSource::Unresolved)
        );
    }

    #[test]
    fn default_applies_last() {
        let mut r = platform();
        r.default = Some("prod".into());
        assert_eq!(
            r.resolve("misc", None),
            (Some("prod".into()), EnvironmentSource::Default)
        );
        assert_eq!(
            r.known_environments(),
            vec!["prod".to_string(), "stg".to_string()]
        );
    }
}
