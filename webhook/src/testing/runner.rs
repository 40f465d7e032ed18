//! Runs test suites through the same decision path as the server: each case becomes
//! an AdmissionRequest, decided against the suite's policy set, and the decision is
//! compared with the expectation. A mismatch is a failure, never a silent pass.

use super::suite::{Case, ContextItem, Expect, SuiteFile};
use crate::admission::{self, Context, Decision};
use crate::engine::Engine;
use crate::manifest::{self, RequestSpec};
use crate::objects::{ObjectSource, StaticObjects};
use crate::policy_set::{Loader, Policy, PolicySet, first_line};
use crate::review;
use regex::Regex;
use serde_saphyr::Spanned;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one case may take, as the server's default request deadline.
const CASE_DEADLINE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub enum Status {
    Passed,
    /// The decision did not match the expectation.
    Failed(String),
    /// The case could not run (bad file, bad settings): bad input.
    Error(String),
}

#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The suite file, as given.
    pub suite: String,
    pub name: String,
    pub line: u64,
    pub status: Status,
    pub duration: Duration,
    /// What was decided (None when the case could not run).
    pub verdict: Option<CaseVerdict>,
}

/// What a case's decision was, policy by policy: `test --output json`, where two
/// implementations of a policy (Rust and Go) are compared case for case.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CaseVerdict {
    pub allowed: bool,
    /// Every denying line, as the response's message.
    pub denial: Option<String>,
    /// Warnings in full.
    pub warnings: Vec<String>,
    pub policies: Vec<PolicyVerdict>,
}

/// One policy's part in a case's decision.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PolicyVerdict {
    pub policy: String,
    pub mode: &'static str,
    /// pass, deny, warn, error or timeout (the metric's `result`).
    pub result: &'static str,
    pub violations: Vec<plate_policy_sdk::Violation>,
    /// Warnings the policy gave beside its violations.
    pub advice: Vec<String>,
    /// Why it gave no verdict.
    pub failure: Option<String>,
}

impl CaseVerdict {
    fn of(decision: &Decision) -> CaseVerdict {
        CaseVerdict {
            allowed: decision.allowed,
            denial: decision.denial.clone(),
            warnings: decision.warning_details.clone(),
            policies: decision
                .outcomes
                .iter()
                .map(|o| PolicyVerdict {
                    policy: o.policy.to_string(),
                    mode: o.mode.as_str(),
                    result: o.result_label(),
                    violations: o.violations().to_vec(),
                    advice: o.advice.clone(),
                    failure: match &o.effect {
                        admission::Effect::Failed { failure, .. } => Some(failure.to_string()),
                        _ => None,
                    },
                })
                .collect(),
        }
    }
}

/// A whole suite file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SuiteError(pub String);

pub struct Runner<'a> {
    loader: Loader<'a>,
    /// The set of suites that name no `policySet`: the built-in one (loaded when
    /// first needed) or `test --policies FILE`.
    default_set: Option<PolicySet>,
    /// Context objects every case sees (`test --context FILE...`).
    shared_context: StaticObjects,
}

impl<'a> Runner<'a> {
    pub fn new(loader: Loader<'a>) -> Self {
        Runner {
            loader,
            default_set: None,
            shared_context: StaticObjects::default(),
        }
    }

    /// Objects every case may look up, in addition to its own `context`.
    pub fn with_context(mut self, objects: StaticObjects) -> Self {
        self.shared_context = objects;
        self
    }

    /// Suites that name no `policySet` run against `set` instead of the built-in one.
    pub fn with_default_set(mut self, set: PolicySet) -> Self {
        self.default_set = Some(set);
        self
    }

    /// Finds suites: files as given; in directories, every `*.yaml`/`*.yml` whose
    /// parent directory is named `tests` (so fixtures beside them are not suites).
    pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, SuiteError> {
        let mut found = Vec::new();
        for path in paths {
            if path.is_dir() {
                walk(path, &mut found)
                    .map_err(|e| SuiteError(format!("{}: cannot list: {e}", path.display())))?;
            } else if path.exists() {
                found.push(path.clone());
            } else {
                return Err(SuiteError(format!(
                    "{}: no such file or directory",
                    path.display()
                )));
            }
        }
        found.sort();
        found.dedup();
        Ok(found)
    }

    pub fn run_suite(&mut self, path: &Path) -> Result<Vec<CaseResult>, SuiteError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| SuiteError(format!("{file}: cannot read: {e}")))?;
        let suite: SuiteFile = serde_saphyr::from_str(&text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(":{}:{}", l.line(), l.column()))
                .unwrap_or_default();
            SuiteError(format!("{file}{at}: {}", first_line(&e.to_string())))
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let set = self.policy_set(&suite, &base, &file)?;
        let mut names = suite.policies.clone();
        names.extend(suite.policy.clone());
        let set = if names.is_empty() {
            set
        } else {
            set.only(&names)
                .map_err(|e| SuiteError(format!("{file}: {e}")))?
        };
        let mut results = Vec::with_capacity(suite.cases.len());
        for (i, case) in suite.cases.iter().enumerate() {
            let start = Instant::now();
            let (status, verdict) = match run_case(
                self.loader.engine,
                &set,
                case,
                &base,
                i,
                &self.shared_context,
            ) {
                Ok((status, verdict)) => (status, Some(verdict)),
                Err(e) => (Status::Error(e), None),
            };
            results.push(CaseResult {
                suite: file.clone(),
                name: case.value.name.clone(),
                line: case.referenced.line(),
                status,
                duration: start.elapsed(),
                verdict,
            });
        }
        Ok(results)
    }

    fn policy_set(
        &mut self,
        suite: &SuiteFile,
        base: &Path,
        file: &str,
    ) -> Result<PolicySet, SuiteError> {
        match &suite.policy_set {
            Some(rel) => self
                .loader
                .load_file(&base.join(rel))
                .map_err(|e| SuiteError(format!("{file}: policySet: {e}"))),
            None => {
                if self.default_set.is_none() {
                    let set = self
                        .loader
                        .builtin()
                        .map_err(|e| SuiteError(format!("the built-in policy set: {e}")))?;
                    self.default_set = Some(set);
                }
                match &self.default_set {
                    Some(set) => Ok(PolicySet {
                        source: set.source.clone(),
                        name: set.name.clone(),
                        environments: set.environments.clone(),
                        policies: set.policies.clone(),
                    }),
                    None => Err(SuiteError("the policy set did not load".into())),
                }
            }
        }
    }
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|n| n == "target" || n == ".git")
            {
                continue;
            }
            walk(&path, found)?;
        } else {
            let yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
            let in_tests = path
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|n| n == "tests");
            if yaml && in_tests {
                found.push(path);
            }
        }
    }
    Ok(())
}

fn run_case(
    engine: &Engine,
    set: &PolicySet,
    case: &Spanned<Case>,
    base: &Path,
    index: usize,
    shared_context: &StaticObjects,
) -> Result<(Status, CaseVerdict), String> {
    let case = &case.value;
    let object = match (&case.object, &case.file) {
        (Some(object), None) => object.clone(),
        (None, Some(rel)) => load_object(&base.join(rel))?,
        (Some(_), Some(_)) => return Err("give either object or file, not both".into()),
        (None, None) => return Err("the case has neither object nor file".into()),
    };
    let operation = case.operation.as_deref().unwrap_or("CREATE");
    let uid = format!("plate-policy-test-{index}");
    let bytes = manifest::to_request(
        &object,
        &RequestSpec {
            operation,
            namespace: case.namespace.as_deref(),
            old_object: case.old_object.as_ref(),
            uid: &uid,
        },
    )
    .map_err(|e| e.to_string())?;
    let request = review::parse_request(&bytes).map_err(|e| e.to_string())?;
    if let Some(env) = &case.environment {
        let known = set.environments.known_environments();
        if !known.contains(env) {
            return Err(format!(
                "environment {env:?} is not an environment of the policy set (known: {})",
                known.join(", ")
            ));
        }
    }
    let set = with_overrides(set, case)?;
    let mut objects = shared_context.clone();
    if let Some(labels) = &case.namespace_labels
        && !request.namespace.is_empty()
    {
        objects.insert_namespace(&request.namespace, labels);
    }
    for item in &case.context {
        match item {
            ContextItem::File(rel) => objects
                .insert_file(&base.join(rel))
                .map_err(|e| e.to_string())?,
            ContextItem::Object(map) => objects
                .insert(&serde_json::Value::Object(map.clone()))
                .map_err(|e| e.to_string())?,
        }
    }
    let objects: Arc<dyn ObjectSource> = Arc::new(objects);
    let slot = engine
        .evaluation_slot_blocking()
        .ok_or("the policy engine has no sandbox to run in")?;
    let context = Context {
        objects: &objects,
        environment: case.environment.as_deref(),
        deadline: Instant::now() + CASE_DEADLINE,
        slot: Some(&slot),
        run_evaluations: None,
    };
    let decision = admission::decide(&set, &request, &context);
    Ok((compare(case, &decision)?, CaseVerdict::of(&decision)))
}

/// The single object of a case file.
fn load_object(path: &Path) -> Result<serde_json::Value, String> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{file}: cannot read: {e}"))?;
    let mut objects = manifest::read_objects(&file, &text).map_err(|e| e.to_string())?;
    match objects.len() {
        1 => Ok(objects.remove(0).value),
        0 => Err(format!("{file}: holds no object")),
        n => Err(format!(
            "{file}: holds {n} objects; a case tests exactly one"
        )),
    }
}

/// The set with the case's settings and mode applied to every policy in it.
fn with_overrides(set: &PolicySet, case: &Case) -> Result<PolicySet, String> {
    if case.settings.is_none() && case.mode.is_none() && case.allow_existing_violations.is_none() {
        return Ok(PolicySet {
            source: set.source.clone(),
            name: set.name.clone(),
            environments: set.environments.clone(),
            policies: set.policies.clone(),
        });
    }
    let mut policies = Vec::with_capacity(set.policies.len());
    for policy in &set.policies {
        let mut changed: Policy = Policy::clone(policy);
        if let Some(settings) = &case.settings {
            if !settings.is_object() {
                return Err("settings must be a mapping".into());
            }
            changed.settings_json =
                crate::policy_set::settings_document(&changed.module_ref, settings);
            match changed
                .module
                .validate_settings(&changed.settings_json, &changed.limits)
            {
                Ok(Ok(())) => {}
                Ok(Err(message)) => {
                    return Err(format!(
                        "policy {:?} rejected the case's settings: {message}",
                        &*policy.name
                    ));
                }
                Err(e) => return Err(format!("policy {:?} {e}", &*policy.name)),
            }
        }
        if let Some(mode) = case.mode {
            changed.mode = mode;
        }
        if let Some(allow) = case.allow_existing_violations {
            changed.allow_existing_violations = allow;
        }
        policies.push(Arc::new(changed));
    }
    Ok(PolicySet {
        source: set.source.clone(),
        name: set.name.clone(),
        environments: set.environments.clone(),
        policies,
    })
}

fn compare(case: &Case, decision: &Decision) -> Result<Status, String> {
    // What kubectl shows must say what is wrong: a warning Kubernetes would cut is
    // a failure of the policy's summary, whatever the case expects.
    if decision.cut_warnings > 0 {
        let cut: Vec<&String> = decision
            .warnings
            .iter()
            .filter(|w| {
                w.chars().count() == crate::admission::MAX_WARNING_CHARS && w.ends_with("...")
            })
            .collect();
        return Ok(Status::Failed(format!(
            "{} warning(s) over {} characters, cut in the response: {cut:?}; give the violation a shorter summary",
            decision.cut_warnings,
            crate::admission::MAX_WARNING_CHARS
        )));
    }
    let actual = if !decision.allowed {
        Expect::Deny
    } else if !decision.warning_details.is_empty() {
        Expect::Warn
    } else {
        Expect::Allow
    };
    // Messages are compared in full (the response's warnings are their short forms).
    let text = match actual {
        Expect::Deny => decision.denial.clone().unwrap_or_default(),
        Expect::Warn => decision.warning_details.join("\n"),
        Expect::Allow => String::new(),
    };
    if actual != case.expect {
        let detail = if text.is_empty() {
            String::new()
        } else {
            format!(": {text}")
        };
        return Ok(Status::Failed(format!(
            "expected {}, got {}{detail}",
            case.expect.as_str(),
            actual.as_str()
        )));
    }
    if let Some(needle) = &case.message
        && !text.contains(needle.as_str())
    {
        return Ok(Status::Failed(format!(
            "expected {} with a message containing {needle:?}, got: {text:?}",
            case.expect.as_str()
        )));
    }
    if let Some(pattern) = &case.message_regex {
        let re =
            Regex::new(pattern).map_err(|e| format!("messageRegex {pattern:?} is invalid: {e}"))?;
        if !re.is_match(&text) {
            return Ok(Status::Failed(format!(
                "expected {} with a message matching /{pattern}/, got: {text:?}",
                case.expect.as_str()
            )));
        }
    }
    Ok(Status::Passed)
}
