//! `plate-policy audit`: what already exists in a cluster, judged by the same
//! policies on the same decision path as admission, `check` and `test`
//! (`admission::decide`). Each object is judged as it exists, as if it were being
//! created now, in its namespace's environment, resolved exactly as admission
//! resolves it (namespace labels, then name patterns).
//!
//! The scan lists, page by page (`limit`), every kind the audited policies name in
//! `match.kinds` (a `group/*` selector: every kind of the group the cluster
//! serves; `*` is not listed, so that high-churn kinds such as Events and Leases
//! are never swept up), plus every Namespace (environments) and every object of the
//! kinds the policies may look up (`context`). Objects are judged as each page
//! arrives and dropped; only the findings are kept.
//!
//! Listing is async (kube); judging is synchronous and runs between pages, outside
//! the runtime, as the one-shot commands evaluate (a WASI guest's host calls run
//! their own small runtime).

pub mod lease;
pub mod limit;
pub mod metrics;
pub mod report;
pub mod watch;

use crate::admission::{self, Context, Effect};
use crate::engine::Engine;
use crate::manifest::{self, RequestSpec};
use crate::objects::{ObjectSource, StaticObjects};
use crate::policy_set::{Mode, PolicySet};
use crate::review;
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::discovery::{Discovery, Scope};
use kube::{Api, Client};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Objects per list request, unless `--page-size` says otherwise.
pub const DEFAULT_PAGE_SIZE: u32 = 500;

/// Why the audit could not run.
#[derive(Debug, Error)]
pub enum AuditError {
    #[error(
        "cannot discover the cluster's API ({0}); is the cluster reachable and the kubeconfig right?"
    )]
    Discovery(String),
    #[error("cannot list {what}: {why}")]
    List { what: String, why: String },
    #[error("the policy engine has no sandbox to run in")]
    NoSlot,
}

/// One thing a policy found wrong with an existing object.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditResult {
    /// `Kind/namespace/name` (`Kind/name` when cluster-scoped).
    pub resource: String,
    /// The object's environment (None: its namespace resolves to none).
    pub environment: Option<String>,
    pub policy: String,
    pub mode: &'static str,
    /// `fail` (a violation of an enforce- or audit-mode policy; with mode enforce,
    /// admission would deny the object today), `warn` (a violation of a warn-mode
    /// policy), or `error` (the policy could not judge it).
    pub result: &'static str,
    /// The violation key (`container:api`); None for an error.
    pub key: Option<String>,
    pub message: String,
    /// The field (`spec.template.spec.containers[0].image`), when the policy names it.
    pub path: Option<String>,
}

/// A policy or a kind the audit did not look at, and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Skipped {
    /// `policy NAME` or a kind (`cert-manager.io/Certificate`).
    pub what: String,
    pub reason: String,
}

/// Counts of the whole scan.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Objects judged (listed and matched by at least one audited policy).
    pub objects: usize,
    /// Objects listed.
    pub listed: usize,
    /// Violations of enforce-mode policies: admission would deny these objects.
    pub enforce_violations: usize,
    /// Violations of warn- and audit-mode policies.
    pub other_violations: usize,
    /// Evaluations that gave no verdict.
    pub errors: usize,
}

/// The audit's findings.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub summary: Summary,
    pub results: Vec<AuditResult>,
    pub skipped: Vec<Skipped>,
}

/// What to scan with.
pub struct Options {
    pub page_size: u32,
}

/// A kind to list, as the cluster serves it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// One page of the objects of `listed`, and the token of the next.
async fn list_page(
    client: &Client,
    listed: &Listed,
    page_size: u32,
    continue_token: Option<String>,
) -> Result<(Vec<DynamicObject>, Option<String>), AuditError> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &listed.resource);
    let mut params = ListParams::default().limit(page_size);
    if let Some(token) = continue_token {
        params = params.continue_token(&token);
    }
    let list = api.list(&params).await.map_err(|e| AuditError::List {
        what: describe(&listed.resource),
        why: list_failure(&e),
    })?;
    let token = list.metadata.continue_.filter(|t| !t.is_empty());
    Ok((list.items, token))
}

/// `apps/v1 deployments`, `v1 namespaces`.
fn describe(resource: &ApiResource) -> String {
    format!("{} {}", resource.api_version, resource.plural)
}

/// What a failed list means for a person.
fn list_failure(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if status.code == 403 => format!(
            "forbidden ({}); the audit needs get and list on every kind its policies match, on Namespaces and on their context kinds",
            status.message
        ),
        other => other.to_string(),
    }
}

/// The object as the JSON admission would see: its kind set, managedFields gone.
pub fn to_value(mut object: DynamicObject, resource: &ApiResource) -> serde_json::Value {
    object.types = Some(kube::api::TypeMeta {
        api_version: resource.api_version.clone(),
        kind: resource.kind.clone(),
    });
    object.metadata.managed_fields = None;
    serde_json::to_value(&object).unwrap_or(serde_json::Value::Null)
}

/// What an audit looks at: the audited policies (a set of them), the kinds to list
/// and the kinds policies may look up; and what it leaves out, with the reason.
pub struct Plan {
    pub set: PolicySet,
    /// (API group, kind) named by the audited policies; kind `*`: the whole group.
    pub kinds: BTreeSet<(String, String)>,
    /// (API group, kind) the audited policies may look up.
    pub context_kinds: BTreeSet<(String, String)>,
    pub skipped: Vec<Skipped>,
}

/// Decides which policies audit and which kinds that means.
pub fn plan(set: &PolicySet) -> Plan {
    let mut skipped = Vec::new();
    let mut audited = Vec::new();
    for policy in &set.policies {
        if !policy.audit {
            skipped.push(Skipped {
                what: format!("policy {}", policy.name),
                reason: "audit: false in the policy set (it judges an operation, not an object)"
                    .into(),
            });
        } else if !policy
            .matcher
            .operation_matches(review::Operation::Create, "")
        {
            skipped.push(Skipped {
                what: format!("policy {}", policy.name),
                reason: "it does not match CREATE, and the audit judges each object as if it were created now; set audit: false".into(),
            });
        } else {
            audited.push(policy.name.to_string());
        }
    }
    // Every name comes from the set itself.
    let set = set.only(&audited).unwrap_or_else(|_| PolicySet {
        source: set.source.clone(),
        name: set.name.clone(),
        environments: set.environments.clone(),
        policies: Vec::new(),
    });
    let mut kinds = BTreeSet::new();
    for policy in &set.policies {
        for selector in &policy.matcher.kinds {
            match &selector.group {
                None => skipped.push(Skipped {
                    what: format!("policy {} kinds: *", policy.name),
                    reason: "matches every kind: the audit lists only kinds named in match.kinds (or group/*), so high-churn kinds such as Events and Leases are never swept up".into(),
                }),
                Some(group) => {
                    kinds.insert((group.clone(), selector.kind.clone()));
                }
            }
        }
    }
    let context_kinds = set
        .policies
        .iter()
        .flat_map(|p| p.context.iter())
        .map(|k| {
            let group = k.api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
            (group.to_string(), k.kind.clone())
        })
        .collect();
    Plan {
        set,
        kinds,
        context_kinds,
        skipped,
    }
}

/// The kinds of `plan` as the cluster serves them, found by API discovery; kinds
/// it does not serve are added to `skipped`.
pub struct Served {
    /// Kinds to list and judge.
    pub audited: Vec<Listed>,
    /// Kinds policies may look up.
    pub context: Vec<Listed>,
    pub namespaces: Vec<Listed>,
}

/// Discovery of `plan`'s kinds.
pub async fn discover(
    client: &Client,
    plan: &Plan,
    skipped: &mut Vec<Skipped>,
) -> Result<Served, AuditError> {
    let groups: BTreeSet<&str> = plan
        .kinds
        .iter()
        .chain(&plan.context_kinds)
        .map(|(g, _)| g.as_str())
        .chain([""])
        .collect();
    let groups: Vec<&str> = groups.into_iter().collect();
    let discovery = Discovery::new(client.clone())
        .filter(&groups)
        .run()
        .await
        .map_err(|e| AuditError::Discovery(e.to_string()))?;
    let find = |group: &str, kind: &str| -> Vec<Listed> {
        discovery
            .groups()
            .filter(|g| g.name() == group)
            .flat_map(|g| {
                g.recommended_resources()
                    .into_iter()
                    .filter(|(ar, caps)| {
                        (kind == "*" || ar.kind == kind)
                            && !ar.plural.contains('/')
                            && caps.supports_operation(kube::discovery::verbs::LIST)
                    })
                    .map(|(resource, caps)| Listed {
                        resource,
                        namespaced: caps.scope == Scope::Namespaced,
                    })
            })
            .collect()
    };
    let mut audited = Vec::new();
    for (group, kind) in &plan.kinds {
        let found = find(group, kind);
        if found.is_empty() {
            skipped.push(Skipped {
                what: if group.is_empty() {
                    kind.clone()
                } else {
                    format!("{group}/{kind}")
                },
                reason: "the cluster does not serve this kind (no such API: a CRD not installed?)"
                    .into(),
            });
        }
        audited.extend(found);
    }
    let context = plan
        .context_kinds
        .iter()
        .flat_map(|(g, k)| find(g, k))
        .collect();
    Ok(Served {
        audited,
        context,
        namespaces: find("", "Namespace"),
    })
}

/// Runs a whole one-shot audit: discovery, namespaces, context objects, then each
/// kind. `runtime` runs the listing; judging happens on this thread between pages.
pub fn scan(
    runtime: &tokio::runtime::Runtime,
    client: &Client,
    set: &PolicySet,
    engine: &Engine,
    options: &Options,
) -> Result<Report, AuditError> {
    let plan = plan(set);
    let mut report = Report {
        skipped: plan.skipped.clone(),
        ..Report::default()
    };
    let served = runtime.block_on(discover(client, &plan, &mut report.skipped))?;

    // Namespaces (their labels are the environments) and context objects.
    let mut known = StaticObjects::default();
    for listed in &served.namespaces {
        each_object(runtime, client, listed, options.page_size, |object| {
            let name = object.metadata.name.clone().unwrap_or_default();
            let labels: BTreeMap<String, String> =
                object.metadata.labels.clone().unwrap_or_default();
            known.insert_namespace(&name, &labels);
        })?;
    }
    for listed in &served.context {
        each_object(runtime, client, listed, options.page_size, |object| {
            let value = to_value(object, &listed.resource);
            if let Err(e) = known.insert(&value) {
                tracing::warn!(error = %e, "a context object cannot be used");
            }
        })?;
    }
    let objects: Arc<dyn ObjectSource> = Arc::new(known);
    let slot = engine
        .evaluation_slot_blocking()
        .ok_or(AuditError::NoSlot)?;
    for listed in &served.audited {
        // Each page is judged as it arrives (outside the runtime) and dropped.
        each_object(runtime, client, listed, options.page_size, |object| {
            report.summary.listed += 1;
            let value = to_value(object, &listed.resource);
            if let Some(verdict) = judge(&plan.set, &objects, &slot, &value, listed.namespaced) {
                add(&mut report, &verdict);
            }
        })?;
    }
    Ok(report)
}

/// Lists every object of `listed`, page by page, handing each to `each`.
fn each_object(
    runtime: &tokio::runtime::Runtime,
    client: &Client,
    listed: &Listed,
    page_size: u32,
    mut each: impl FnMut(DynamicObject),
) -> Result<(), AuditError> {
    let mut token = None;
    loop {
        let (items, next) = runtime.block_on(list_page(client, listed, page_size, token))?;
        for item in items {
            each(item);
        }
        match next {
            Some(next) => token = Some(next),
            None => return Ok(()),
        }
    }
}

/// What one policy made of one object.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyResult {
    pub policy: String,
    pub mode: Mode,
    /// `pass`, `fail`, `warn` or `error` (the policy-report results).
    pub result: &'static str,
    pub key: Option<String>,
    pub message: String,
    pub path: Option<String>,
}

/// Everything the matching policies made of one object, and what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectVerdict {
    pub api_version: String,
    pub kind: String,
    /// None for cluster-scoped objects.
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    pub environment: Option<String>,
    /// One `pass` per policy that found nothing, one row per violation otherwise.
    pub results: Vec<PolicyResult>,
}

impl ObjectVerdict {
    /// `Kind/namespace/name` (`Kind/name` when cluster-scoped).
    pub fn resource(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{ns}/{}", self.kind, self.name),
            None => format!("{}/{}", self.kind, self.name),
        }
    }
}

/// The result of a violation of a policy in `mode`: the policy-report vocabulary.
fn violation_result(mode: Mode) -> &'static str {
    match mode {
        Mode::Warn => "warn",
        Mode::Enforce | Mode::Audit => "fail",
    }
}

/// Judges one object (as the API server serves it, with apiVersion and kind) as
/// if it were created now; None when no audited policy matches it or it cannot be
/// made into a request (logged).
pub fn judge(
    set: &PolicySet,
    objects: &Arc<dyn ObjectSource>,
    slot: &crate::engine::EvaluationSlot,
    value: &serde_json::Value,
    namespaced: bool,
) -> Option<ObjectVerdict> {
    let text = |pointer: &str| {
        value
            .pointer(pointer)
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    };
    let namespace = if namespaced {
        text("/metadata/namespace")
    } else {
        None
    };
    let spec = RequestSpec {
        operation: "CREATE",
        namespace: namespace.as_deref(),
        old_object: None,
        uid: "plate-policy-audit",
    };
    let bytes = manifest::to_request(value, &spec)
        .map_err(|e| tracing::warn!(error = %e, "an object cannot be judged"))
        .ok()?;
    let request = review::parse_request(&bytes)
        .map_err(|e| tracing::warn!(error = %e, "an object cannot be judged"))
        .ok()?;
    let context = Context {
        objects,
        environment: None,
        deadline: Instant::now() + Duration::from_secs(10),
        slot: Some(slot),
        run_evaluations: None,
    };
    let decision = admission::decide(set, &request, &context);
    // Policies that take the object but not its environment: a pass (nothing they
    // enforce here is violated), so a relabelled namespace turns a fail into a pass.
    let elsewhere: Vec<&crate::policy_set::Policy> = set
        .policies
        .iter()
        .filter(|p| {
            p.matcher.matches(
                &request.group,
                &request.kind,
                review::Operation::Create,
                &request.namespace,
                "",
            ) && !decision.outcomes.iter().any(|o| o.policy == p.name)
        })
        .map(|p| &**p)
        .collect();
    if decision.outcomes.is_empty() && elsewhere.is_empty() {
        return None;
    }
    let mut results = Vec::new();
    for outcome in &decision.outcomes {
        let policy = outcome.policy.to_string();
        match &outcome.effect {
            Effect::Pass => results.push(PolicyResult {
                policy,
                mode: outcome.mode,
                result: "pass",
                key: None,
                message: "no violation".into(),
                path: None,
            }),
            Effect::Violations(violations) => {
                results.extend(violations.iter().map(|v| PolicyResult {
                    policy: policy.clone(),
                    mode: outcome.mode,
                    result: violation_result(outcome.mode),
                    key: Some(v.key.clone()),
                    message: v.message.clone(),
                    path: v.path.clone(),
                }))
            }
            Effect::Failed { failure, .. } => results.push(PolicyResult {
                message: format!("policy {policy:?} {failure}"),
                policy,
                mode: outcome.mode,
                result: "error",
                key: None,
                path: None,
            }),
        }
    }
    let environment = decision.environment.as_deref().unwrap_or("none");
    results.extend(elsewhere.into_iter().map(|p| PolicyResult {
        policy: p.name.to_string(),
        mode: p.mode,
        result: "pass",
        key: None,
        message: format!("does not apply in environment {environment}"),
        path: None,
    }));
    Some(ObjectVerdict {
        api_version: text("/apiVersion").unwrap_or_default(),
        kind: request.kind.to_string(),
        namespace,
        name: request.name.to_string(),
        uid: text("/metadata/uid").unwrap_or_default(),
        environment: decision.environment.clone(),
        results,
    })
}

/// Adds one object's findings (not its passes) to a one-shot report.
fn add(report: &mut Report, verdict: &ObjectVerdict) {
    report.summary.objects += 1;
    let resource = verdict.resource();
    for r in verdict.results.iter().filter(|r| r.result != "pass") {
        match (r.result, r.mode) {
            ("error", _) => report.summary.errors += 1,
            (_, Mode::Enforce) => report.summary.enforce_violations += 1,
            _ => report.summary.other_violations += 1,
        }
        report.results.push(AuditResult {
            resource: resource.clone(),
            environment: verdict.environment.clone(),
            policy: r.policy.clone(),
            mode: r.mode.as_str(),
            result: r.result,
            key: r.key.clone(),
            message: r.message.clone(),
            path: r.path.clone(),
        });
    }
}
