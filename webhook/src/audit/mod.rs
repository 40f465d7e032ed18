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
    /// `fail` (an enforce-mode violation: admission would deny it), `warn`, `audit`
    /// (the modes that allow), or `error` (the policy could not judge it).
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
pub struct Summary {
    /// Objects judged (listed and matched by at least one audited policy).
    pub objects: usize,
    /// Objects listed.
    pub listed: usize,
    /// Enforce-mode violations (result `fail`).
    pub failures: usize,
    pub warnings: usize,
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
struct Listed {
    resource: ApiResource,
    namespaced: bool,
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
fn to_value(mut object: DynamicObject, resource: &ApiResource) -> serde_json::Value {
    object.types = Some(kube::api::TypeMeta {
        api_version: resource.api_version.clone(),
        kind: resource.kind.clone(),
    });
    object.metadata.managed_fields = None;
    serde_json::to_value(&object).unwrap_or(serde_json::Value::Null)
}

/// Runs a whole audit: discovery, namespaces, context objects, then each kind.
/// `runtime` runs the listing; judging happens on this thread between pages.
pub fn scan(
    runtime: &tokio::runtime::Runtime,
    client: &Client,
    set: &PolicySet,
    engine: &Engine,
    options: &Options,
) -> Result<Report, AuditError> {
    let mut report = Report::default();
    // Which policies audit, and which say they do not.
    let mut audited = Vec::new();
    for policy in &set.policies {
        if policy.audit {
            audited.push(policy.name.to_string());
        } else {
            report.skipped.push(Skipped {
                what: format!("policy {}", policy.name),
                reason: "audit: false in the policy set (it judges an operation, not an object)"
                    .into(),
            });
        }
    }
    let set = set.only(&audited).map_err(|e| AuditError::List {
        what: "the policy set".into(),
        why: e.to_string(),
    })?;
    for policy in &set.policies {
        let judges_create = policy
            .matcher
            .operation_matches(review::Operation::Create, "");
        if !judges_create {
            report.skipped.push(Skipped {
                what: format!("policy {}", policy.name),
                reason: "it does not match CREATE, and the audit judges each object as if it were created now; set audit: false".into(),
            });
        }
    }

    // The kinds to list: each named kind once.
    let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
    for policy in &set.policies {
        for selector in &policy.matcher.kinds {
            match &selector.group {
                None => report.skipped.push(Skipped {
                    what: format!("policy {} kinds: *", policy.name),
                    reason: "matches every kind: the audit lists only kinds named in match.kinds (or group/*), so high-churn kinds such as Events and Leases are never swept up".into(),
                }),
                Some(group) => {
                    wanted.insert((group.clone(), selector.kind.clone()));
                }
            }
        }
    }
    let context_kinds: BTreeSet<(String, String)> = set
        .policies
        .iter()
        .flat_map(|p| p.context.iter())
        .map(|k| {
            let group = k.api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
            (group.to_string(), k.kind.clone())
        })
        .collect();
    let groups: BTreeSet<&str> = wanted
        .iter()
        .chain(&context_kinds)
        .map(|(g, _)| g.as_str())
        .chain([""])
        .collect();
    let groups: Vec<&str> = groups.into_iter().collect();
    let discovery = runtime
        .block_on(Discovery::new(client.clone()).filter(&groups).run())
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

    // Namespaces (their labels are the environments) and context objects.
    let mut known = StaticObjects::default();
    let namespaces = find("", "Namespace");
    for listed in &namespaces {
        each_object(runtime, client, listed, options.page_size, |object| {
            let name = object.metadata.name.clone().unwrap_or_default();
            let labels: BTreeMap<String, String> =
                object.metadata.labels.clone().unwrap_or_default();
            known.insert_namespace(&name, &labels);
        })?;
    }
    for (group, kind) in &context_kinds {
        for listed in find(group, kind) {
            each_object(runtime, client, &listed, options.page_size, |object| {
                let value = to_value(object, &listed.resource);
                if let Err(e) = known.insert(&value) {
                    tracing::warn!(error = %e, "a context object cannot be used");
                }
            })?;
        }
    }
    let objects: Arc<dyn ObjectSource> = Arc::new(known);
    let slot = engine
        .evaluation_slot_blocking()
        .ok_or(AuditError::NoSlot)?;

    for (group, kind) in &wanted {
        let found = find(group, kind);
        if found.is_empty() {
            let what = if group.is_empty() {
                kind.clone()
            } else {
                format!("{group}/{kind}")
            };
            report.skipped.push(Skipped {
                what,
                reason: "the cluster does not serve this kind (no such API: a CRD not installed?)"
                    .into(),
            });
            continue;
        }
        for listed in found {
            // Each page is judged as it arrives (outside the runtime) and dropped.
            each_object(runtime, client, &listed, options.page_size, |object| {
                report.summary.listed += 1;
                let value = to_value(object, &listed.resource);
                judge(
                    &set,
                    &objects,
                    &slot,
                    &value,
                    listed.namespaced,
                    &mut report,
                );
            })?;
        }
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

/// Judges one object and adds what the policies found.
fn judge(
    set: &PolicySet,
    objects: &Arc<dyn ObjectSource>,
    slot: &crate::engine::EvaluationSlot,
    value: &serde_json::Value,
    namespaced: bool,
    report: &mut Report,
) {
    let namespace = value
        .pointer("/metadata/namespace")
        .and_then(serde_json::Value::as_str);
    let spec = RequestSpec {
        operation: "CREATE",
        namespace: if namespaced { namespace } else { None },
        old_object: None,
        uid: "plate-policy-audit",
    };
    let request = match manifest::to_request(value, &spec) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!(error = %e, "an object cannot be judged");
            return;
        }
    };
    let request = match review::parse_request(&request) {
        Ok(request) => request,
        Err(e) => {
            tracing::warn!(error = %e, "an object cannot be judged");
            return;
        }
    };
    let context = Context {
        objects,
        environment: None,
        deadline: Instant::now() + Duration::from_secs(10),
        slot: Some(slot),
    };
    let decision = admission::decide(set, &request, &context);
    if decision.outcomes.is_empty() {
        return;
    }
    report.summary.objects += 1;
    let resource = if request.namespace.is_empty() {
        format!("{}/{}", request.kind, request.name)
    } else {
        format!("{}/{}/{}", request.kind, request.namespace, request.name)
    };
    for outcome in &decision.outcomes {
        let result = match (&outcome.effect, outcome.mode) {
            (Effect::Pass, _) => continue,
            (Effect::Violations(_), Mode::Enforce) => "fail",
            (Effect::Violations(_), Mode::Warn) => "warn",
            (Effect::Violations(_), Mode::Audit) => "audit",
            (Effect::Failed { .. }, _) => "error",
        };
        let row = |key: Option<String>, message: String, path: Option<String>| AuditResult {
            resource: resource.clone(),
            environment: decision.environment.clone(),
            policy: outcome.policy.to_string(),
            mode: outcome.mode.as_str(),
            result,
            key,
            message,
            path,
        };
        match &outcome.effect {
            Effect::Violations(violations) => {
                for v in violations {
                    match result {
                        "fail" => report.summary.failures += 1,
                        _ => report.summary.warnings += 1,
                    }
                    report.results.push(row(
                        Some(v.key.clone()),
                        v.message.clone(),
                        v.path.clone(),
                    ));
                }
            }
            Effect::Failed { failure, .. } => {
                report.summary.errors += 1;
                report.results.push(row(
                    None,
                    format!("policy {:?} {failure}", &*outcome.policy),
                    None,
                ));
            }
            Effect::Pass => {}
        }
    }
}
