//! Which requests a policy-set entry applies to: kinds, operations, namespaces,
//! subresources. Compiled once when the set loads; matching allocates nothing.

use super::model::{MatchSpec, Operation};
use crate::review;
use plate_policy_sdk::pattern::glob_match;
use thiserror::Error;

/// Why a kind selector is not one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{selector:?} is not a kind selector ({why}); write Kind, group/Kind, group/* or *")]
pub struct KindSelectorError {
    pub selector: String,
    pub why: &'static str,
}

/// Why a `match` section cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MatchError {
    #[error("kinds is empty: list the kinds this policy validates")]
    NoKinds,
    #[error("kinds[{index}]: {source}")]
    Kind {
        index: usize,
        source: KindSelectorError,
    },
    #[error("operations is empty: list CREATE, UPDATE, DELETE, CONNECT or *")]
    NoOperations,
    #[error("namespaces.{list}[{index}] is empty")]
    EmptyNamespacePattern { list: &'static str, index: usize },
}

/// A kind selector: `Kind`, `group/Kind`, `group/*`, `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindSelector {
    /// `None` matches every group (only for `*`).
    pub group: Option<String>,
    /// `*` matches every kind.
    pub kind: String,
}

impl KindSelector {
    pub fn parse(s: &str) -> Result<KindSelector, KindSelectorError> {
        let bad = |why: &'static str| KindSelectorError {
            selector: s.to_string(),
            why,
        };
        if s == "*" {
            return Ok(KindSelector {
                group: None,
                kind: "*".into(),
            });
        }
        let (group, kind) = match s.rsplit_once('/') {
            Some((group, kind)) => (group, kind),
            None => ("", s),
        };
        if kind.is_empty() {
            return Err(bad("no kind"));
        }
        if group.contains('/') {
            return Err(bad("a version does not belong here"));
        }
        if group.contains('*') {
            return Err(bad(
                "the group cannot be a pattern; use * alone for every kind",
            ));
        }
        if kind != "*" && kind.contains('*') {
            return Err(bad("a kind is a name or *, not a pattern"));
        }
        if kind != "*" && !kind.starts_with(|c: char| c.is_ascii_uppercase()) {
            return Err(bad("kinds start with an uppercase letter"));
        }
        if !kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '*') {
            return Err(bad("kinds are alphanumeric"));
        }
        if group == "core" || group == "v1" {
            return Err(bad(
                "the core group is written without a prefix: Pod, not core/Pod",
            ));
        }
        Ok(KindSelector {
            group: Some(group.to_string()),
            kind: kind.to_string(),
        })
    }

    pub fn matches(&self, group: &str, kind: &str) -> bool {
        self.group.as_deref().is_none_or(|g| g == group) && (self.kind == "*" || self.kind == kind)
    }
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub kinds: Vec<KindSelector>,
    pub operations: Vec<Operation>,
    include: Vec<String>,
    exclude: Vec<String>,
    subresources: Vec<String>,
}

impl Matcher {
    pub fn compile(spec: &MatchSpec) -> Result<Matcher, MatchError> {
        if spec.kinds.is_empty() {
            return Err(MatchError::NoKinds);
        }
        let kinds = spec
            .kinds
            .iter()
            .enumerate()
            .map(|(index, k)| {
                KindSelector::parse(k).map_err(|source| MatchError::Kind { index, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if spec.operations.is_empty() {
            return Err(MatchError::NoOperations);
        }
        for (list, patterns) in [
            ("include", &spec.namespaces.include),
            ("exclude", &spec.namespaces.exclude),
        ] {
            if let Some(index) = patterns.iter().position(|p| p.is_empty()) {
                return Err(MatchError::EmptyNamespacePattern { list, index });
            }
        }
        Ok(Matcher {
            kinds,
            operations: spec.operations.clone(),
            include: spec.namespaces.include.clone(),
            exclude: spec.namespaces.exclude.clone(),
            subresources: spec.subresources.clone(),
        })
    }

    /// Does a kind selector take `group`/`kind`?
    pub fn kind_matches(&self, group: &str, kind: &str) -> bool {
        self.kinds.iter().any(|k| k.matches(group, kind))
    }

    /// Does the entry take `operation` on `subresource` (empty: the main resource)?
    pub fn operation_matches(&self, operation: review::Operation, subresource: &str) -> bool {
        (subresource.is_empty() || self.subresources.iter().any(|s| s == subresource))
            && self.operations.iter().any(|o| o.matches(operation))
    }

    /// Do the namespace filters let `namespace` through (empty: cluster-scoped)?
    pub fn namespace_matches(&self, namespace: &str) -> bool {
        namespace.is_empty()
            || ((self.include.is_empty() || self.include.iter().any(|p| glob_match(p, namespace)))
                && !self.exclude.iter().any(|p| glob_match(p, namespace)))
    }

    /// Does the entry apply? `namespace` is the request's namespace (the name of a
    /// Namespace under review); empty for other cluster-scoped objects, which the
    /// namespace filters do not restrict.
    pub fn matches(
        &self,
        group: &str,
        kind: &str,
        operation: review::Operation,
        namespace: &str,
        subresource: &str,
    ) -> bool {
        self.operation_matches(operation, subresource)
            && self.kind_matches(group, kind)
            && self.namespace_matches(namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy_set::model::NamespaceFilter;
    use crate::review::Operation;

    fn spec(kinds: &[&str], include: &[&str], exclude: &[&str]) -> MatchSpec {
        MatchSpec {
            kinds: kinds.iter().map(|s| s.to_string()).collect(),
            operations: vec![super::Operation::Create, super::Operation::Update],
            namespaces: NamespaceFilter {
                include: include.iter().map(|s| s.to_string()).collect(),
                exclude: exclude.iter().map(|s| s.to_string()).collect(),
            },
            subresources: vec!["ephemeralcontainers".into()],
        }
    }

    #[test]
    fn kind_selectors() {
        let m = Matcher::compile(&spec(&["Pod", "apps/Deployment", "batch/*"], &[], &[]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(m.matches("", "Pod", Operation::Create, "a", ""));
        assert!(!m.matches("apps", "Pod", Operation::Create, "a", ""));
        assert!(m.matches("apps", "Deployment", Operation::Update, "a", ""));
        assert!(!m.matches("", "Deployment", Operation::Update, "a", ""));
        assert!(m.matches("batch", "CronJob", Operation::Create, "a", ""));
        assert!(!m.matches("", "Pod", Operation::Delete, "a", ""));
        assert!(m.matches("", "Pod", Operation::Update, "a", "ephemeralcontainers"));
        assert!(!m.matches("", "Pod", Operation::Update, "a", "status"));
    }

    #[test]
    fn namespace_filters() {
        let m = Matcher::compile(&spec(&["*"], &["plate-*"], &["plate-system"]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(m.matches("", "Pod", Operation::Create, "plate-prod", ""));
        assert!(!m.matches("", "Pod", Operation::Create, "plate-system", ""));
        assert!(!m.matches("", "Pod", Operation::Create, "other", ""));
        assert!(m.matches("", "ClusterRole", Operation::Create, "", ""));
    }

    #[test]
    fn operation_selectors() {
        let mut all = spec(&["Pod"], &[], &[]);
        all.operations = vec![super::Operation::All];
        let m = Matcher::compile(&all).unwrap_or_else(|e| panic!("{e}"));
        for op in [
            Operation::Create,
            Operation::Update,
            Operation::Delete,
            Operation::Connect,
        ] {
            assert!(m.matches("", "Pod", op, "a", ""), "{op:?}");
        }
        let mut delete = spec(&["Pod"], &[], &[]);
        delete.operations = vec![super::Operation::Delete];
        let m = Matcher::compile(&delete).unwrap_or_else(|e| panic!("{e}"));
        assert!(m.matches("", "Pod", Operation::Delete, "a", ""));
        assert!(!m.matches("", "Pod", Operation::Create, "a", ""));
        let mut none = spec(&["Pod"], &[], &[]);
        none.operations.clear();
        assert_eq!(
            Matcher::compile(&none).err(),
            Some(MatchError::NoOperations)
        );
        let empty = spec(&["Pod"], &["a", ""], &[]);
        assert_eq!(
            Matcher::compile(&empty).err(),
            Some(MatchError::EmptyNamespacePattern {
                list: "include",
                index: 1
            })
        );
    }

    #[test]
    fn bad_selectors_are_explained() {
        for bad in [
            "pod",
            "apps/v1/Deployment",
            "core/Pod",
            "",
            "apps/",
            "*/Pod",
            "De*ployment",
        ] {
            assert!(
                KindSelector::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }
}
