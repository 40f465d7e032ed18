//! The decision path shared by `serve`, `check` and `test`: an AdmissionRequest in,
//! the environment resolved once, the matching policies evaluated in fresh sandboxes
//! (within the request's deadline), their verdicts combined by mode and failure
//! policy into one [`Decision`], and that into an AdmissionResponse.

use crate::engine::{ContextObjects, EvalError, Limits, LookupScope, LookupStats};
use crate::environment::{EnvironmentSource, Labels, NamespaceLabels};
use crate::policy_set::{FailurePolicy, Mode, Operation, Policy, PolicySet};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ADMISSION_API_VERSION: &str = "admission.k8s.io/v1";

/// Kubernetes advises warnings under 120 characters; longer ones are cut here.
pub const MAX_WARNING_CHARS: usize = 119;

/// What one policy's verdict did to the request.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// No violation.
    Pass,
    /// An enforce-mode violation: the request is denied.
    Deny(String),
    /// A warn-mode violation: allowed with a warning.
    Warn(String),
    /// An audit-mode violation: allowed, recorded in logs and metrics.
    Audit(String),
    /// The policy failed and its failurePolicy is Fail: denied.
    FailClosed(EvalError),
    /// The policy failed and its failurePolicy is Ignore: allowed with a warning.
    FailOpen(EvalError),
    /// The request's deadline passed before this policy ran: treated as a failure.
    DeadlineExceeded { fail_closed: bool },
}

impl Effect {
    /// The metric `result` label: pass, deny, warn, error, timeout.
    pub fn result_label(&self) -> &'static str {
        match self {
            Effect::Pass => "pass",
            Effect::Deny(_) => "deny",
            Effect::Warn(_) | Effect::Audit(_) => "warn",
            Effect::FailClosed(e) | Effect::FailOpen(e) if e.is_timeout() => "timeout",
            Effect::FailClosed(_) | Effect::FailOpen(_) => "error",
            Effect::DeadlineExceeded { .. } => "timeout",
        }
    }

    pub fn denies(&self) -> bool {
        matches!(
            self,
            Effect::Deny(_)
                | Effect::FailClosed(_)
                | Effect::DeadlineExceeded { fail_closed: true }
        )
    }
}

/// One policy's part in a decision.
#[derive(Debug, Clone)]
pub struct PolicyOutcome {
    pub policy: Arc<str>,
    pub mode: Mode,
    pub effect: Effect,
    /// Warnings the policy returned alongside its verdict.
    pub warnings: Vec<String>,
    pub duration: Duration,
    /// Context lookups the evaluation made.
    pub lookups: LookupStats,
}

impl PolicyOutcome {
    /// The line that explains a denial: `[policy] message`.
    pub fn denial(&self) -> Option<String> {
        let text = match &self.effect {
            Effect::Deny(message) => message.clone(),
            Effect::FailClosed(e) => format!(
                "policy {:?} {e}; the request is denied because its failurePolicy is Fail",
                &*self.policy
            ),
            Effect::DeadlineExceeded { fail_closed: true } => format!(
                "policy {:?} did not run before the request's deadline; the request is denied because its failurePolicy is Fail",
                &*self.policy
            ),
            _ => return None,
        };
        Some(format!("[{}] {text}", self.policy))
    }

    /// The warnings this outcome adds to the response (full length).
    pub fn response_warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .warnings
            .iter()
            .map(|w| format!("[{}] {w}", self.policy))
            .collect();
        match &self.effect {
            // One warning per violation (policies put one per line).
            Effect::Warn(message) => out.extend(
                message
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|line| format!("[{}] {line}", self.policy)),
            ),
            Effect::FailOpen(e) => {
                out.push(format!("[{}] policy failed (ignored): {e}", self.policy))
            }
            Effect::DeadlineExceeded { fail_closed: false } => out.push(format!(
                "[{}] policy skipped (ignored): request deadline passed",
                self.policy
            )),
            _ => {}
        }
        out
    }
}

/// The combined answer for one request.
#[derive(Debug, Clone)]
pub struct Decision {
    pub allowed: bool,
    pub environment: Option<String>,
    pub environment_source: EnvironmentSource,
    pub outcomes: Vec<PolicyOutcome>,
}

impl Decision {
    /// Every denying policy's message, one per line.
    pub fn denial_message(&self) -> Option<String> {
        let lines: Vec<String> = self
            .outcomes
            .iter()
            .filter_map(PolicyOutcome::denial)
            .collect();
        (!lines.is_empty()).then(|| lines.join("\n"))
    }

    /// Every warning, full length.
    pub fn warnings(&self) -> Vec<String> {
        self.outcomes
            .iter()
            .flat_map(PolicyOutcome::response_warnings)
            .collect()
    }

    /// The metric `decision` label: allowed, denied, warned, error.
    pub fn label(&self) -> &'static str {
        let failed = self.outcomes.iter().any(|o| {
            matches!(
                o.effect,
                Effect::FailClosed(_) | Effect::FailOpen(_) | Effect::DeadlineExceeded { .. }
            )
        });
        if failed {
            "error"
        } else if !self.allowed {
            "denied"
        } else if !self.warnings().is_empty() {
            "warned"
        } else {
            "allowed"
        }
    }

    /// The AdmissionResponse: uid echoed, 403 with every denial message, warnings cut
    /// to Kubernetes' advised length.
    pub fn to_response(&self, request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        let mut response = AdmissionResponse::from(request);
        if let Some(message) = self.denial_message().filter(|_| !self.allowed) {
            response = response.deny(message);
            response.result.code = 403;
            response.result.reason = "Forbidden".into();
        }
        let warnings: Vec<String> = self.warnings().iter().map(|w| shorten(w)).collect();
        if !warnings.is_empty() {
            response.warnings = Some(warnings);
        }
        response
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

/// How to decide: where namespace labels come from, and optional overrides.
pub struct Context<'a> {
    pub namespaces: &'a dyn NamespaceLabels,
    /// Force this environment (`check --env`, test cases that name one).
    pub environment: Option<&'a str>,
    /// Objects policies may look up (each only the kinds its entry lists).
    pub objects: &'a Arc<dyn ContextObjects>,
    /// The request's JSON as received, if there is one; otherwise it is encoded.
    pub raw_request: Option<&'a [u8]>,
    /// The request must be decided by this instant; later policies fail.
    pub deadline: Instant,
}

/// Decides one request against `set`.
pub fn decide(
    set: &PolicySet,
    request: &AdmissionRequest<DynamicObject>,
    context: &Context<'_>,
) -> Decision {
    let group = request.kind.group.as_str();
    let kind = request.kind.kind.as_str();
    let namespace = request.namespace.as_deref().unwrap_or("");
    let is_namespace = group.is_empty() && kind == "Namespace";
    // For a Namespace the request's namespace is its own name.
    let namespace = if is_namespace && namespace.is_empty() {
        request.name.as_str()
    } else {
        namespace
    };
    let labels: Option<Labels> = if is_namespace {
        // A Namespace under review is judged by its own (new) labels.
        request
            .object
            .as_ref()
            .or(request.old_object.as_ref())
            .map(|o| Arc::new(o.metadata.labels.clone().unwrap_or_default()))
    } else if namespace.is_empty() {
        None
    } else {
        context.namespaces.labels(namespace)
    };
    let (environment, source) = match context.environment {
        Some(env) => (Some(env.to_string()), EnvironmentSource::Given),
        None if namespace.is_empty() => (None, EnvironmentSource::Unresolved),
        None => set.environments.resolve(namespace, labels.as_deref()),
    };
    let operation = match request.operation {
        kube::core::admission::Operation::Create => Operation::Create,
        kube::core::admission::Operation::Update => Operation::Update,
        kube::core::admission::Operation::Delete => Operation::Delete,
        kube::core::admission::Operation::Connect => Operation::Connect,
    };
    let subresource = request.sub_resource.as_deref().unwrap_or("");
    let selected: Vec<&Arc<Policy>> = set
        .policies
        .iter()
        .filter(|p| p.applies_in(environment.as_deref()))
        .filter(|p| {
            p.matcher
                .matches(group, kind, operation, namespace, subresource)
        })
        .collect();

    let mut outcomes = Vec::with_capacity(selected.len());
    if !selected.is_empty() {
        let tail = input_tail(
            request,
            context.raw_request,
            environment.as_deref(),
            labels.as_deref(),
        );
        for policy in selected {
            outcomes.push(evaluate(policy, &tail, context));
        }
    }
    // Warnings are cut to Kubernetes' advised length; the log keeps the full text.
    for o in &outcomes {
        match &o.effect {
            Effect::Audit(message) => {
                tracing::info!(policy = &*o.policy, %message, "audit-mode violation")
            }
            Effect::Warn(message) => {
                tracing::info!(policy = &*o.policy, %message, "warn-mode violation")
            }
            _ => {}
        }
    }
    Decision {
        allowed: !outcomes.iter().any(|o| o.effect.denies()),
        environment,
        environment_source: source,
        outcomes,
    }
}

/// The part of the ABI input shared by every policy of a request:
/// `,"environment":..,"namespaceLabels":..,"request":..}`. Each policy's input is
/// `{"settings":<its settings>` followed by this.
fn input_tail(
    request: &AdmissionRequest<DynamicObject>,
    raw_request: Option<&[u8]>,
    environment: Option<&str>,
    labels: Option<&BTreeMap<String, String>>,
) -> Vec<u8> {
    let empty = BTreeMap::new();
    let mut tail = Vec::with_capacity(1024);
    tail.extend_from_slice(b",\"environment\":");
    // Serializing strings, maps and kube's own request type cannot fail.
    let _ = serde_json::to_writer(&mut tail, &environment);
    tail.extend_from_slice(b",\"namespaceLabels\":");
    let _ = serde_json::to_writer(&mut tail, labels.unwrap_or(&empty));
    tail.extend_from_slice(b",\"request\":");
    match raw_request {
        Some(raw) => tail.extend_from_slice(raw),
        None => {
            if serde_json::to_writer(&mut tail, request).is_err() {
                tail.extend_from_slice(b"null");
            }
        }
    }
    tail.push(b'}');
    tail
}

fn evaluate(policy: &Policy, tail: &[u8], context: &Context<'_>) -> PolicyOutcome {
    let start = Instant::now();
    let deadline = context.deadline;
    let mut lookups = LookupStats::default();
    let outcome = |effect, warnings, stats: &LookupStats| PolicyOutcome {
        policy: Arc::clone(&policy.name),
        mode: policy.mode,
        effect,
        warnings,
        duration: start.elapsed(),
        lookups: stats.clone(),
    };
    let fail_closed = policy.failure_policy == FailurePolicy::Fail;
    let remaining = deadline.saturating_duration_since(start);
    if remaining.is_zero() {
        return outcome(
            Effect::DeadlineExceeded { fail_closed },
            Vec::new(),
            &lookups,
        );
    }
    // The policy gets its own limit or what is left of the request's, whichever is less.
    let limits = Limits {
        timeout_ms: policy.limits.timeout_ms.min(
            u64::try_from(remaining.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
        ),
        memory_mib: policy.limits.memory_mib,
    };
    let head = [b"{\"settings\":".as_slice(), &policy.settings_json, tail];
    // Every evaluation gets a scope, so a lookup by a policy with no `context` is
    // refused, logged and counted like any other refusal.
    let scope = Some(LookupScope {
        policy: Arc::clone(&policy.name),
        allowed: Arc::clone(&policy.context),
        objects: Arc::clone(context.objects),
        stats: LookupStats::default(),
    });
    let (result, stats) = policy.module.evaluate_with(&head, &limits, scope);
    lookups = stats;
    match result {
        Ok(verdict) if verdict.allowed => outcome(Effect::Pass, verdict.warnings, &lookups),
        Ok(verdict) => {
            let message = verdict
                .message
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "the policy denied the request without a message".into());
            let effect = match policy.mode {
                Mode::Enforce => Effect::Deny(message),
                Mode::Warn => Effect::Warn(message),
                Mode::Audit => Effect::Audit(message),
            };
            outcome(effect, verdict.warnings, &lookups)
        }
        Err(e) => {
            tracing::warn!(policy = &*policy.name, error = %e, "policy evaluation failed");
            if fail_closed {
                outcome(Effect::FailClosed(e), Vec::new(), &lookups)
            } else {
                outcome(Effect::FailOpen(e), Vec::new(), &lookups)
            }
        }
    }
}

/// The envelope of an AdmissionReview, checked before the request is decoded so the
/// error names the first thing that is wrong.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(borrow, default)]
    request: Option<&'a serde_json::value::RawValue>,
}

/// A decoded AdmissionReview and where its `request` lies in the body, so policies
/// get the request exactly as the API server sent it, without re-encoding.
pub struct ParsedReview {
    pub request: AdmissionRequest<DynamicObject>,
    pub raw_request: std::ops::Range<usize>,
}

/// Parses and checks an AdmissionReview body; the error says what is wrong.
pub fn parse_review(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, String> {
    parse_review_raw(body).map(|parsed| parsed.request)
}

/// [`parse_review`], also returning the byte range of the raw `request`.
pub fn parse_review_raw(body: &[u8]) -> Result<ParsedReview, String> {
    let envelope: Envelope<'_> =
        serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    match envelope.kind.as_deref() {
        Some("AdmissionReview") => {}
        Some(other) => return Err(format!("kind is {other:?}, expected \"AdmissionReview\"")),
        None => return Err("kind is missing, expected \"AdmissionReview\"".into()),
    }
    match envelope.api_version.as_deref() {
        Some(ADMISSION_API_VERSION) => {}
        other => {
            return Err(format!(
                "apiVersion {:?} is not supported; send {ADMISSION_API_VERSION} (admissionReviewVersions: [v1])",
                other.unwrap_or("")
            ));
        }
    }
    let raw = match envelope.request {
        Some(raw) if raw.get() != "null" => raw.get(),
        _ => return Err("the AdmissionReview has no request".into()),
    };
    // The raw text is a slice of `body` (the envelope borrows it).
    let start = (raw.as_ptr() as usize).saturating_sub(body.as_ptr() as usize);
    let raw_request = start..start + raw.len();
    let mut request: AdmissionRequest<DynamicObject> = match serde_json::from_str(raw) {
        Ok(request) => request,
        Err(e) => {
            // Name the most common omission precisely.
            let uid_missing = serde_json::from_str::<UidOnly>(raw)
                .map(|r| r.uid.is_none())
                .unwrap_or(false);
            return Err(if uid_missing {
                "request.uid is missing or empty".into()
            } else {
                format!("request is not a valid AdmissionRequest: {e}")
            });
        }
    };
    if request.uid.is_empty() {
        return Err("request.uid is missing or empty".into());
    }
    request.types = kube::core::TypeMeta {
        api_version: ADMISSION_API_VERSION.into(),
        kind: "AdmissionReview".into(),
    };
    Ok(ParsedReview {
        request,
        raw_request,
    })
}

#[derive(serde::Deserialize)]
struct UidOnly {
    #[serde(default)]
    uid: Option<String>,
}
