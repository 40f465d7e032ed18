//! The decision path shared by `serve`, `check`, `test` (and audit): a parsed
//! [`Review`] in, the environment resolved once, the matching policies evaluated in
//! fresh sandboxes within the request's deadline, violations an UPDATE did not
//! introduce dropped where the policy set allows it, and the outcomes combined by
//! mode and failure policy into one [`Decision`], whose answer (denial message,
//! warnings, metric label) is computed once.

use crate::engine::{EvalError, EvaluationSlot, Limits, LookupScope, LookupStats};
use crate::environment::EnvironmentSource;
use crate::objects::{Labels, ObjectSource};
use crate::policy_set::{FailurePolicy, Mode, Policy, PolicySet};
use crate::review::{Operation, Review};
use plate_policy_sdk::Violation;
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Kubernetes advises warnings under 120 characters; longer ones are cut here.
pub const MAX_WARNING_CHARS: usize = 119;

/// In unit tests, a policy with this name panics inside the host while it is
/// evaluated: how the tests prove a panic becomes a failure outcome.
#[cfg(test)]
pub const PANIC_TRIGGER_POLICY: &str = "test-host-panic";

/// In unit tests, a request with this uid makes `decide` itself panic (outside any
/// policy): how the server's tests prove such a panic still gets an answer.
#[cfg(test)]
pub const PANIC_TRIGGER_UID: &str = "test-decide-panic";

/// Why a policy gave no verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The sandbox reported it (trap, limit, bad verdict, ...).
    Eval(EvalError),
    /// The request's deadline passed before the policy could run.
    Deadline,
    /// plate-policy itself failed while evaluating it (a bug; logged with its cause).
    Internal(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Eval(e) => write!(f, "{e}"),
            Failure::Deadline => write!(f, "did not run before the request's deadline"),
            Failure::Internal(cause) => write!(
                f,
                "could not be evaluated because plate-policy failed internally ({cause})"
            ),
        }
    }
}

/// What one policy's verdict did to the request.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// No violation (or only ones the old object already had).
    Pass,
    /// Violations; what they do is the outcome's mode: enforce denies, warn warns,
    /// audit records.
    Violations(Vec<Violation>),
    /// No verdict; `fail_closed` (failurePolicy Fail) denies, otherwise a warning.
    Failed { failure: Failure, fail_closed: bool },
}

/// One policy's part in a decision.
#[derive(Debug, Clone)]
pub struct PolicyOutcome {
    pub policy: Arc<str>,
    pub mode: Mode,
    pub effect: Effect,
    /// Advice the policy returned alongside its verdict (not violations).
    pub advice: Vec<String>,
    /// Violations dropped because the old object of an UPDATE already had them.
    pub existing: usize,
    pub duration: Duration,
    /// Context lookups the evaluation made.
    pub lookups: LookupStats,
}

impl PolicyOutcome {
    /// The metric `result` label: pass, deny, warn, error, timeout.
    pub fn result_label(&self) -> &'static str {
        match &self.effect {
            Effect::Pass => "pass",
            Effect::Violations(_) if self.mode == Mode::Enforce => "deny",
            Effect::Violations(_) => "warn",
            Effect::Failed {
                failure: Failure::Eval(EvalError::Timeout(_)) | Failure::Deadline,
                ..
            } => "timeout",
            Effect::Failed { .. } => "error",
        }
    }

    pub fn denies(&self) -> bool {
        match &self.effect {
            Effect::Pass => false,
            Effect::Violations(_) => self.mode == Mode::Enforce,
            Effect::Failed { fail_closed, .. } => *fail_closed,
        }
    }

    pub fn violations(&self) -> &[Violation] {
        match &self.effect {
            Effect::Violations(v) => v,
            _ => &[],
        }
    }

    fn failure_text(&self, failure: &Failure) -> String {
        format!("policy {:?} {failure}", &*self.policy)
    }

    /// Lines that explain a denial: `[policy] message`.
    fn denial_lines(&self, out: &mut Vec<String>) {
        if !self.denies() {
            return;
        }
        match &self.effect {
            Effect::Violations(violations) => out.extend(
                violations
                    .iter()
                    .map(|v| format!("[{}] {}", self.policy, v.message)),
            ),
            Effect::Failed { failure, .. } => out.push(format!(
                "[{}] {}; the request is denied because its failurePolicy is Fail",
                self.policy,
                self.failure_text(failure)
            )),
            Effect::Pass => {}
        }
    }

    /// Warnings this outcome adds, as (full text, short form for the response).
    fn warning_lines(&self, out: &mut Vec<(String, String)>) {
        for advice in &self.advice {
            let text = format!("[{}] {advice}", self.policy);
            out.push((text.clone(), text));
        }
        match &self.effect {
            Effect::Violations(violations) if self.mode == Mode::Warn => {
                out.extend(violations.iter().map(|v| {
                    let full = format!("[{}] {}", self.policy, v.message);
                    let short = match &v.summary {
                        Some(summary) => format!("[{}] {summary}", self.policy),
                        None => full.clone(),
                    };
                    (full, short)
                }))
            }
            Effect::Failed {
                failure,
                fail_closed: false,
            } => {
                let text = match failure {
                    Failure::Deadline => format!(
                        "[{}] policy skipped (ignored): request deadline passed",
                        self.policy
                    ),
                    other => format!("[{}] policy failed (ignored): {other}", self.policy),
                };
                out.push((text.clone(), text));
            }
            _ => {}
        }
    }
}

/// The combined answer for one request; its texts and label are computed once.
#[derive(Debug, Clone)]
pub struct Decision {
    pub allowed: bool,
    pub environment: Option<String>,
    pub environment_source: EnvironmentSource,
    pub outcomes: Vec<PolicyOutcome>,
    /// Every denying line, joined by newlines (None when nothing denies).
    pub denial: Option<String>,
    /// Warnings in full: what `check`, `test` and the log show.
    pub warning_details: Vec<String>,
    /// Warnings as the response carries them: short forms, cut to
    /// [`MAX_WARNING_CHARS`].
    pub warnings: Vec<String>,
    /// How many of them had to be cut (their short form was too long).
    pub cut_warnings: usize,
    /// The metric `decision` label: allowed, denied, warned, error.
    pub label: &'static str,
}

impl Decision {
    fn new(
        environment: Option<String>,
        environment_source: EnvironmentSource,
        outcomes: Vec<PolicyOutcome>,
    ) -> Decision {
        let allowed = !outcomes.iter().any(PolicyOutcome::denies);
        let mut denial_lines = Vec::new();
        let mut warning_lines = Vec::new();
        for outcome in &outcomes {
            outcome.denial_lines(&mut denial_lines);
            outcome.warning_lines(&mut warning_lines);
        }
        let failed = outcomes
            .iter()
            .any(|o| matches!(o.effect, Effect::Failed { .. }));
        let label = if failed {
            "error"
        } else if !allowed {
            "denied"
        } else if !warning_lines.is_empty() {
            "warned"
        } else {
            "allowed"
        };
        let cut_warnings = warning_lines
            .iter()
            .filter(|(_, short)| short.chars().count() > MAX_WARNING_CHARS)
            .count();
        let (warning_details, warnings) = warning_lines
            .into_iter()
            .map(|(full, short)| (full, shorten(&short)))
            .unzip();
        Decision {
            allowed,
            environment,
            environment_source,
            denial: (!denial_lines.is_empty()).then(|| denial_lines.join("\n")),
            outcomes,
            warning_details,
            warnings,
            cut_warnings,
            label,
        }
    }

    /// The response review for request `uid`.
    pub fn response(&self, uid: &str) -> Vec<u8> {
        crate::review::encode_response(
            uid,
            self.allowed,
            self.denial.as_deref().filter(|_| !self.allowed),
            &self.warnings,
        )
    }
}

/// Cuts `text` to [`MAX_WARNING_CHARS`] characters, marking the cut with `...`.
pub fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_WARNING_CHARS {
        return text.to_string();
    }
    let kept: String = text.chars().take(MAX_WARNING_CHARS - 3).collect();
    format!("{kept}...")
}

/// How to decide: what objects (namespaces, context) are known, and overrides.
pub struct Context<'a> {
    /// Namespaces (for environments) and the objects policies may look up.
    pub objects: &'a Arc<dyn ObjectSource>,
    /// Force this environment (`check --env`, test cases that name one).
    pub environment: Option<&'a str>,
    /// The request must be decided by this instant; later policies fail.
    pub deadline: Instant,
    /// The engine slot evaluations run in; None: none was free before the
    /// deadline, so every matching policy gets its failure outcome.
    pub slot: Option<&'a EvaluationSlot>,
    /// Runs a request's evaluations (all of them, in one call) when some policy
    /// matches; None runs them directly. The server passes tokio's `block_in_place`,
    /// which hands the worker's other tasks to another thread while guests run: that
    /// hand-off wakes a thread (~13 µs in the server, ~40 µs at the client on this
    /// VM), so a request no policy matches must not pay it.
    pub run_evaluations: Option<fn(&mut dyn FnMut())>,
}

/// Decides one request against `set`.
pub fn decide(set: &PolicySet, review: &Review<'_>, context: &Context<'_>) -> Decision {
    #[cfg(test)]
    if review.uid == PANIC_TRIGGER_UID {
        panic!("test-only trigger: a panic in decide");
    }
    let namespace = review.environment_namespace();
    let labels: Option<Labels> = if review.is_namespace() {
        // A Namespace under review is judged by its own (new) labels.
        review.own_labels()
    } else if namespace.is_empty() {
        None
    } else {
        context.objects.namespace_labels(namespace)
    };
    let (environment, source) = match context.environment {
        Some(env) => (Some(env.to_string()), EnvironmentSource::Given),
        None if namespace.is_empty() => (None, EnvironmentSource::Unresolved),
        None => set.environments.resolve(namespace, labels.as_deref()),
    };
    let selected: Vec<&Arc<Policy>> = set
        .policies
        .iter()
        .filter(|p| p.applies_in(environment.as_deref()))
        .filter(|p| {
            p.matcher.matches(
                &review.group,
                &review.kind,
                review.operation,
                namespace,
                &review.sub_resource,
            )
        })
        .collect();

    let mut outcomes = Vec::with_capacity(selected.len());
    if !selected.is_empty() {
        let inputs = Inputs::new(review, environment.as_deref(), labels.as_deref());
        let mut evaluate_all = || {
            for policy in &selected {
                let start = Instant::now();
                let outcome = catch_unwind(AssertUnwindSafe(|| evaluate(policy, &inputs, context)))
                .unwrap_or_else(|panic| {
                    let cause = panic_message(panic.as_ref());
                    tracing::error!(policy = &*policy.name, %cause, "plate-policy panicked while evaluating a policy; applying the policy's failure outcome");
                    outcome_of(
                        policy,
                        Effect::Failed {
                            failure: Failure::Internal(cause),
                            fail_closed: policy.failure_policy == FailurePolicy::Fail,
                        },
                        start,
                    )
                });
                outcomes.push(outcome);
            }
        };
        match context.run_evaluations {
            Some(run) => run(&mut evaluate_all),
            None => evaluate_all(),
        }
    }
    for o in &outcomes {
        // Warnings are cut in the response; the log keeps the full text.
        if let Effect::Violations(violations) = &o.effect
            && o.mode != Mode::Enforce
        {
            for v in violations {
                tracing::info!(policy = &*o.policy, mode = o.mode.as_str(), key = %v.key, message = %v.message, "{}-mode violation", o.mode.as_str());
            }
        }
    }
    Decision::new(environment, source, outcomes)
}

/// Why no policy of `set` judges `review` in `environment`, for reports of objects
/// that were skipped (not silently counted as allowed). None when some policy does.
pub fn unmatched_reason(
    set: &PolicySet,
    review: &Review<'_>,
    environment: Option<&str>,
) -> Option<String> {
    let namespace = review.environment_namespace();
    let kind = if review.group.is_empty() {
        review.kind.to_string()
    } else {
        format!("{}/{}", review.group, review.kind)
    };
    let in_env: Vec<&Arc<Policy>> = set
        .policies
        .iter()
        .filter(|p| p.applies_in(environment))
        .collect();
    if in_env.is_empty() {
        return Some(match environment {
            Some(env) => format!("no policy of the set applies in environment {env:?}"),
            None => "the namespace has no environment, and every policy names environments".into(),
        });
    }
    let for_kind: Vec<&&Arc<Policy>> = in_env
        .iter()
        .filter(|p| p.matcher.kind_matches(&review.group, &review.kind))
        .collect();
    if for_kind.is_empty() {
        return Some(format!("no policy matches the kind {kind}"));
    }
    let for_operation: Vec<&&&Arc<Policy>> = for_kind
        .iter()
        .filter(|p| {
            p.matcher
                .operation_matches(review.operation, &review.sub_resource)
        })
        .collect();
    if for_operation.is_empty() {
        return Some(format!(
            "no policy matches {} of {kind}",
            review.operation.as_str()
        ));
    }
    if for_operation
        .iter()
        .any(|p| p.matcher.namespace_matches(namespace))
    {
        return None;
    }
    let names: Vec<&str> = for_operation.iter().map(|p| &*p.name).collect();
    Some(format!(
        "namespace {namespace:?} is excluded by every policy matching {kind} ({})",
        names.join(", ")
    ))
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// The parts of the ABI input shared by every policy of a request: after
/// `{"settings":<its settings>` comes
/// `,"environment":..,"namespaceLabels":..,"request":<raw request>}`.
struct Inputs<'r> {
    review: &'r Review<'r>,
    /// `,"environment":..,"namespaceLabels":..,"request":`
    head: Vec<u8>,
    /// The request with `oldObject` as its object, made when first needed.
    before: std::cell::OnceCell<Option<Vec<u8>>>,
}

impl<'r> Inputs<'r> {
    fn new(
        review: &'r Review<'r>,
        environment: Option<&str>,
        labels: Option<&BTreeMap<String, String>>,
    ) -> Self {
        let empty = BTreeMap::new();
        let mut head = Vec::with_capacity(256);
        head.extend_from_slice(b",\"environment\":");
        // Serializing strings and string maps cannot fail.
        let _ = serde_json::to_writer(&mut head, &environment);
        head.extend_from_slice(b",\"namespaceLabels\":");
        let _ = serde_json::to_writer(&mut head, labels.unwrap_or(&empty));
        head.extend_from_slice(b",\"request\":");
        Inputs {
            review,
            head,
            before: std::cell::OnceCell::new(),
        }
    }

    fn before(&self) -> Option<&[u8]> {
        self.before
            .get_or_init(|| self.review.with_old_object_as_object())
            .as_deref()
    }
}

fn outcome_of(policy: &Policy, effect: Effect, start: Instant) -> PolicyOutcome {
    PolicyOutcome {
        policy: Arc::clone(&policy.name),
        mode: policy.mode,
        effect,
        advice: Vec::new(),
        existing: 0,
        duration: start.elapsed(),
        lookups: LookupStats::default(),
    }
}

/// The policy's own limit or what is left of the request's, whichever is less;
/// None when nothing is left.
fn limits_within(policy: &Policy, deadline: Instant) -> Option<Limits> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return None;
    }
    Some(Limits {
        timeout_ms: policy.limits.timeout_ms.min(
            u64::try_from(remaining.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
        ),
        memory_mib: policy.limits.memory_mib,
    })
}

fn evaluate(policy: &Policy, inputs: &Inputs<'_>, context: &Context<'_>) -> PolicyOutcome {
    #[cfg(test)]
    if &*policy.name == PANIC_TRIGGER_POLICY {
        panic!("test-only trigger: a host panic while evaluating {PANIC_TRIGGER_POLICY}");
    }
    let start = Instant::now();
    let fail_closed = policy.failure_policy == FailurePolicy::Fail;
    let failed = |failure| Effect::Failed {
        failure,
        fail_closed,
    };
    let (Some(slot), Some(limits)) = (context.slot, limits_within(policy, context.deadline)) else {
        return outcome_of(policy, failed(Failure::Deadline), start);
    };
    // Every evaluation gets a scope, so a lookup by a policy with no `context` is
    // refused, logged and counted like any other refusal.
    let scope = || LookupScope {
        policy: Arc::clone(&policy.name),
        allowed: Arc::clone(&policy.context),
        objects: Arc::clone(context.objects),
        stats: LookupStats::default(),
    };
    let run = |request: &[u8], limits: &Limits| {
        let input = [
            b"{\"settings\":".as_slice(),
            &policy.settings_json,
            &inputs.head,
            request,
            b"}",
        ];
        policy.module.evaluate(slot, &input, limits, Some(scope()))
    };
    let (result, mut lookups) = run(inputs.review.raw_request(), &limits);
    let verdict = match result {
        Ok(verdict) => verdict,
        Err(e) => {
            tracing::warn!(policy = &*policy.name, error = %e, "policy evaluation failed");
            let mut outcome = outcome_of(policy, failed(Failure::Eval(e)), start);
            outcome.lookups = lookups;
            return outcome;
        }
    };
    let mut violations = verdict.violations;
    let mut existing = 0;
    if !violations.is_empty()
        && policy.allow_existing_violations
        && inputs.review.operation == Operation::Update
        && let Some(before) = inputs.before()
        && let Some(limits) = limits_within(policy, context.deadline)
    {
        // What the object violated before this UPDATE. If that cannot be judged,
        // nothing is dropped: an unreadable old object hides nothing.
        let (old, old_lookups) = run(before, &limits);
        lookups.found += old_lookups.found;
        lookups.not_found += old_lookups.not_found;
        lookups.refused += old_lookups.refused;
        match old {
            Ok(old) => {
                let count = violations.len();
                violations.retain(|v| {
                    !old.violations
                        .iter()
                        .any(|o| o.key == v.key && o.message == v.message)
                });
                existing = count - violations.len();
            }
            Err(e) => {
                tracing::debug!(policy = &*policy.name, error = %e, "the old object could not be judged; every violation counts")
            }
        }
    }
    let effect = if violations.is_empty() {
        Effect::Pass
    } else {
        Effect::Violations(violations)
    };
    PolicyOutcome {
        policy: Arc::clone(&policy.name),
        mode: policy.mode,
        effect,
        advice: verdict.warnings,
        existing,
        duration: start.elapsed(),
        lookups,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, EngineConfig};
    use crate::manifest::{RequestSpec, to_request};
    use crate::objects::{NoObjects, StaticObjects};
    use crate::policy_set::{Loader, ModuleCache};
    use serde_json::{Value, json};
    use std::sync::OnceLock;

    fn engine() -> &'static (Engine, ModuleCache) {
        static ENGINE: OnceLock<(Engine, ModuleCache)> = OnceLock::new();
        ENGINE.get_or_init(|| {
            let engine = Engine::new(&EngineConfig {
                max_concurrent_instances: 8,
            })
            .unwrap_or_else(|e| panic!("{e}"));
            (engine, ModuleCache::default())
        })
    }

    /// A set of one built-in policy, `name` with `module`, in prod, with `extra`
    /// lines in its entry.
    fn set(name: &str, module: &str, extra: &str) -> PolicySet {
        let (engine, cache) = engine();
        let text = format!(
            "apiVersion: policy.plate.dev/v1alpha1\nkind: PolicySet\nspec:\n  policies:\n    - name: {name}\n      module: builtin:{module}\n      environments: [prod]\n{extra}      match:\n        kinds: [Pod, apps/Deployment, Namespace]\n"
        );
        Loader { engine, cache }
            .load_str("test.yaml", &text, None)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn deployment(images: &[(&str, &str)]) -> Value {
        let containers: Vec<Value> = images
            .iter()
            .map(|(name, image)| json!({"name": name, "image": image}))
            .collect();
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "plate-api", "namespace": "plate-prod"},
               "spec": {"template": {"spec": {"containers": containers}}}})
    }

    fn decide_on(
        set: &PolicySet,
        operation: &str,
        object: &Value,
        old: Option<&Value>,
    ) -> Decision {
        decide_with(set, operation, object, old, None)
    }

    /// [`decide_on`] with the server's hook around the evaluations.
    fn decide_with(
        set: &PolicySet,
        operation: &str,
        object: &Value,
        old: Option<&Value>,
        run_evaluations: Option<fn(&mut dyn FnMut())>,
    ) -> Decision {
        let bytes = to_request(
            object,
            &RequestSpec {
                operation,
                namespace: None,
                old_object: old,
                uid: "u",
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let review = crate::review::parse_request(&bytes).unwrap_or_else(|e| panic!("{e}"));
        let (engine, _) = engine();
        let slot = engine.evaluation_slot_blocking();
        let objects: Arc<dyn ObjectSource> = Arc::new(NoObjects);
        let context = Context {
            objects: &objects,
            environment: Some("prod"),
            deadline: Instant::now() + Duration::from_secs(5),
            slot: slot.as_ref(),
            run_evaluations,
        };
        decide(set, &review, &context)
    }

    thread_local! {
        static RUNS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    fn counted(evaluate: &mut dyn FnMut()) {
        RUNS.with(|runs| runs.set(runs.get() + 1));
        evaluate();
    }

    /// The server's `block_in_place` wraps the evaluations of a request some policy
    /// matches, once, and is never called for a request no policy matches.
    #[test]
    fn evaluations_are_wrapped_once_and_only_when_a_policy_matches() {
        let set = set("no-latest-tag", "no-latest-tag", "");
        let decide_object = |object: &Value| {
            RUNS.with(|runs| runs.set(0));
            let decision = decide_with(&set, "CREATE", object, None, Some(counted));
            (decision, RUNS.with(|runs| runs.get()))
        };
        let (judged, runs) = decide_object(&deployment(&[("api", "plate-api:latest")]));
        assert_eq!(runs, 1);
        // The policy ran inside the wrapper, and only there.
        assert_eq!(judged.outcomes.len(), 1, "{judged:?}");
        assert!(!judged.allowed, "{judged:?}");
        let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "plate-prod"}});
        let (unjudged, runs) = decide_object(&config_map);
        assert_eq!(runs, 0);
        assert!(unjudged.allowed && unjudged.outcomes.is_empty());
    }

    #[test]
    fn existing_violations_do_not_block_an_update_but_new_ones_do() {
        let set = set(
            "no-latest-tag",
            "no-latest-tag",
            "      allowExistingViolations: true\n",
        );
        let latest = deployment(&[("api", "plate-api:latest")]);
        // Unchanged violation: dropped, and counted as existing.
        let kept = decide_on(&set, "UPDATE", &latest, Some(&latest));
        assert!(kept.allowed, "{:?}", kept.denial);
        assert_eq!(kept.outcomes[0].existing, 1);
        assert_eq!(kept.outcomes[0].effect, Effect::Pass);
        // CREATE is always judged in full.
        assert!(!decide_on(&set, "CREATE", &latest, None).allowed);
        // Another latest image in the same container is a new violation.
        let switched = deployment(&[("api", "redis:latest")]);
        let decision = decide_on(&set, "UPDATE", &switched, Some(&latest));
        assert!(!decision.allowed);
        // A new latest sidecar is denied, for the sidecar only.
        let sidecar = deployment(&[("api", "plate-api:latest"), ("proxy", "envoy:latest")]);
        let decision = decide_on(&set, "UPDATE", &sidecar, Some(&latest));
        let keys: Vec<&str> = decision.outcomes[0]
            .violations()
            .iter()
            .map(|v| v.key.as_str())
            .collect();
        assert_eq!(keys, ["container:proxy"]);
        assert_eq!(decision.outcomes[0].existing, 1);
        // Without the field every violation counts.
        let strict = self::set("no-latest-tag", "no-latest-tag", "");
        assert!(!decide_on(&strict, "UPDATE", &latest, Some(&latest)).allowed);
    }

    #[test]
    fn violations_carry_key_and_path_into_the_decision() {
        let set = set("no-latest-tag", "no-latest-tag", "");
        let decision = decide_on(
            &set,
            "CREATE",
            &deployment(&[("web", "ok:1"), ("api", "nginx")]),
            None,
        );
        let v = &decision.outcomes[0].violations()[0];
        assert_eq!(v.key, "container:api");
        assert_eq!(
            v.path.as_deref(),
            Some("spec.template.spec.containers[1].image")
        );
        assert_eq!(decision.label, "denied");
        assert_eq!(
            decision.denial.as_deref(),
            Some(format!("[no-latest-tag] {}", v.message).as_str())
        );
    }

    #[test]
    fn warnings_are_short_in_the_response_and_full_in_the_details() {
        let set = set(
            "trusted-registries",
            "trusted-registries",
            "      mode: warn\n",
        );
        let image = format!("docker.io/library/{}x:1", "very-long-name-".repeat(8));
        let decision = decide_on(&set, "CREATE", &deployment(&[("api", &image)]), None);
        assert!(decision.allowed);
        assert_eq!(decision.label, "warned");
        assert_eq!(decision.warnings.len(), 1);
        assert_eq!(decision.warning_details.len(), 1);
        let short = &decision.warnings[0];
        assert!(short.chars().count() <= MAX_WARNING_CHARS, "{short}");
        assert!(
            short.starts_with("[trusted-registries] api: docker.io/library/"),
            "{short}"
        );
        let full = &decision.warning_details[0];
        assert!(
            full.contains("push the image to a trusted registry"),
            "{full}"
        );
    }

    #[test]
    fn a_host_panic_is_the_policys_failure_outcome() {
        let fail = set(
            PANIC_TRIGGER_POLICY,
            "no-latest-tag",
            "      failurePolicy: Fail\n",
        );
        let decision = decide_on(&fail, "CREATE", &deployment(&[("api", "a:1")]), None);
        assert!(!decision.allowed);
        assert_eq!(decision.label, "error");
        let denial = decision.denial.unwrap_or_default();
        assert!(
            denial.contains("plate-policy failed internally"),
            "{denial}"
        );
        assert!(
            denial.contains("test-only trigger"),
            "the cause is kept: {denial}"
        );
        let ignore = set(
            PANIC_TRIGGER_POLICY,
            "no-latest-tag",
            "      failurePolicy: Ignore\n",
        );
        let decision = decide_on(&ignore, "CREATE", &deployment(&[("api", "a:1")]), None);
        assert!(decision.allowed);
        assert!(
            decision.warnings[0].contains("policy failed (ignored)"),
            "{:?}",
            decision.warnings
        );
    }

    #[test]
    fn without_a_slot_every_policy_gets_its_failure_outcome() {
        let set = set("no-latest-tag", "no-latest-tag", "");
        let bytes = to_request(
            &deployment(&[("api", "a:1")]),
            &RequestSpec {
                operation: "CREATE",
                namespace: None,
                old_object: None,
                uid: "u",
            },
        )
        .unwrap_or_default();
        let review = crate::review::parse_request(&bytes).unwrap_or_else(|e| panic!("{e}"));
        let objects: Arc<dyn ObjectSource> = Arc::new(NoObjects);
        let context = Context {
            objects: &objects,
            environment: Some("prod"),
            deadline: Instant::now() + Duration::from_secs(5),
            slot: None,
            run_evaluations: None,
        };
        let decision = decide(&set, &review, &context);
        assert!(!decision.allowed);
        assert_eq!(decision.outcomes[0].result_label(), "timeout");
        assert!(
            decision
                .denial
                .unwrap_or_default()
                .contains("did not run before the request's deadline")
        );
    }

    #[test]
    fn a_namespace_is_judged_by_its_own_labels_and_others_by_their_namespace() {
        let (engine, cache) = engine();
        let text = "apiVersion: policy.plate.dev/v1alpha1\nkind: PolicySet\nspec:\n  policies:\n    - name: nlt\n      module: builtin:no-latest-tag\n      environments: [prod]\n      match:\n        kinds: [Pod]\n";
        let set = Loader { engine, cache }
            .load_str("t.yaml", text, None)
            .unwrap_or_else(|e| panic!("{e}"));
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "apps"},
                         "spec": {"containers": [{"name": "c", "image": "x:latest"}]}});
        let bytes = to_request(
            &pod,
            &RequestSpec {
                operation: "CREATE",
                namespace: None,
                old_object: None,
                uid: "u",
            },
        )
        .unwrap_or_default();
        let review = crate::review::parse_request(&bytes).unwrap_or_else(|e| panic!("{e}"));
        let slot = engine.evaluation_slot_blocking();
        let run = |objects: StaticObjects| {
            let objects: Arc<dyn ObjectSource> = Arc::new(objects);
            let context = Context {
                objects: &objects,
                environment: None,
                deadline: Instant::now() + Duration::from_secs(5),
                slot: slot.as_ref(),
                run_evaluations: None,
            };
            decide(&set, &review, &context)
        };
        // "apps" matches no name pattern: its label decides.
        let mut prod = StaticObjects::default();
        prod.insert_namespace(
            "apps",
            &BTreeMap::from([("environment".into(), "production".into())]),
        );
        let decision = run(prod);
        assert_eq!(decision.environment.as_deref(), Some("prod"));
        assert_eq!(decision.environment_source, EnvironmentSource::Label);
        assert!(!decision.allowed);
        let decision = run(StaticObjects::default());
        assert_eq!(decision.environment, None);
        assert!(decision.allowed && decision.outcomes.is_empty());
        // A Namespace's own labels, not the cache's.
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps", "labels": {"environment": "production"}}});
        let bytes = to_request(
            &ns,
            &RequestSpec {
                operation: "CREATE",
                namespace: None,
                old_object: None,
                uid: "u",
            },
        )
        .unwrap_or_default();
        let review = crate::review::parse_request(&bytes).unwrap_or_else(|e| panic!("{e}"));
        let objects: Arc<dyn ObjectSource> = Arc::new(StaticObjects::default());
        let context = Context {
            objects: &objects,
            environment: None,
            deadline: Instant::now() + Duration::from_secs(5),
            slot: slot.as_ref(),
            run_evaluations: None,
        };
        let decision = decide(&set, &review, &context);
        assert_eq!(decision.environment.as_deref(), Some("prod"));
    }

    #[test]
    fn shorten_cuts_at_the_advised_length() {
        assert_eq!(shorten("short"), "short");
        let long = "é".repeat(200);
        let cut = shorten(&long);
        assert_eq!(cut.chars().count(), MAX_WARNING_CHARS);
        assert!(cut.ends_with("..."));
    }
}
