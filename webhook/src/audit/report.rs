//! Policy reports: one per audited resource, in the shared format Policy Reporter
//! and Kyverno read. OpenReports (`openreports.io/v1alpha1` Report for namespaced
//! objects, ClusterReport for cluster-scoped ones) by default; the older
//! `wgpolicyk8s.io/v1alpha2` PolicyReport and ClusterPolicyReport (what Kubewarden
//! writes) on request. A report is named by its resource's uid and owned by it
//! (ownerReference), so the garbage collector deletes it with the resource; one
//! report per resource keeps each small, whatever a namespace holds.
//!
//! A report carries the SHA-256 of its content (results without timestamps, scope,
//! summary) in an annotation: the auditor writes a report only when that changes,
//! also across restarts (it reads the annotations back at start).

use super::{ObjectVerdict, PolicyResult};
use crate::policy_set::Mode;
use kube::api::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

/// The label every report plate-policy writes carries.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "plate-policy");
/// The annotation holding the content digest.
pub const CONTENT_ANNOTATION: &str = "policy.plate.dev/content-sha256";
/// `source` of every result.
pub const SOURCE: &str = "plate-policy";

/// Which report API to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ReportApi {
    /// openreports.io/v1alpha1 Report and ClusterReport.
    #[default]
    Openreports,
    /// wgpolicyk8s.io/v1alpha2 PolicyReport and ClusterPolicyReport.
    Wgpolicyk8s,
}

impl ReportApi {
    fn group_version(self) -> (&'static str, &'static str) {
        match self {
            ReportApi::Openreports => ("openreports.io", "v1alpha1"),
            ReportApi::Wgpolicyk8s => ("wgpolicyk8s.io", "v1alpha2"),
        }
    }

    /// The report resource for objects that are namespaced or not.
    pub fn resource(self, namespaced: bool) -> ApiResource {
        let (group, version) = self.group_version();
        let (kind, plural) = match (self, namespaced) {
            (ReportApi::Openreports, true) => ("Report", "reports"),
            (ReportApi::Openreports, false) => ("ClusterReport", "clusterreports"),
            (ReportApi::Wgpolicyk8s, true) => ("PolicyReport", "policyreports"),
            (ReportApi::Wgpolicyk8s, false) => ("ClusterPolicyReport", "clusterpolicyreports"),
        };
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
    }
}

/// What a result's severity is: how much it matters by the policy's mode.
fn severity(mode: Mode) -> &'static str {
    match mode {
        Mode::Enforce => "high",
        Mode::Audit => "medium",
        Mode::Warn => "low",
    }
}

fn result_json(r: &PolicyResult, environment: Option<&str>) -> Value {
    let mut properties = serde_json::Map::new();
    properties.insert("mode".into(), r.mode.as_str().into());
    if let Some(env) = environment {
        properties.insert("environment".into(), env.into());
    }
    if let Some(path) = &r.path {
        properties.insert("path".into(), path.clone().into());
    }
    json!({
        "policy": r.policy,
        // The violation key names the rule that failed; a pass or error is the policy's.
        "rule": r.key.clone().unwrap_or_else(|| r.policy.clone()),
        "result": r.result,
        "message": r.message,
        "severity": severity(r.mode),
        "source": SOURCE,
        "scored": true,
        "properties": properties,
    })
}

/// The report document for `verdict` (its timestamps `now`, seconds since the
/// epoch) and the digest of its content.
pub fn document(api: ReportApi, verdict: &ObjectVerdict, now: i64) -> (Value, String) {
    let env = verdict.environment.as_deref();
    let mut results: Vec<Value> = verdict
        .results
        .iter()
        .map(|r| result_json(r, env))
        .collect();
    let count = |what: &str| verdict.results.iter().filter(|r| r.result == what).count();
    let summary = json!({
        "pass": count("pass"),
        "fail": count("fail"),
        "warn": count("warn"),
        "error": count("error"),
        "skip": 0,
    });
    let mut scope = json!({
        "apiVersion": verdict.api_version,
        "kind": verdict.kind,
        "name": verdict.name,
        "uid": verdict.uid,
    });
    if let Some(ns) = &verdict.namespace {
        scope["namespace"] = ns.clone().into();
    }
    let digest = {
        let content = json!({"scope": scope, "summary": summary, "results": results});
        let bytes = serde_json::to_vec(&content).unwrap_or_default();
        let sum = ring::digest::digest(&ring::digest::SHA256, &bytes);
        sum.as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    for r in &mut results {
        r["timestamp"] = json!({"seconds": now, "nanos": 0});
    }
    let resource = api.resource(verdict.namespace.is_some());
    let mut metadata = json!({
        "name": verdict.uid,
        "labels": {MANAGED_BY.0: MANAGED_BY.1},
        "annotations": {CONTENT_ANNOTATION: digest},
        "ownerReferences": [{
            "apiVersion": verdict.api_version,
            "kind": verdict.kind,
            "name": verdict.name,
            "uid": verdict.uid,
        }],
    });
    if let Some(ns) = &verdict.namespace {
        metadata["namespace"] = ns.clone().into();
    }
    let mut report = json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": metadata,
        "scope": scope,
        "summary": summary,
        "results": results,
    });
    if api == ReportApi::Openreports {
        report["source"] = SOURCE.into();
    }
    (report, digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(results: Vec<PolicyResult>) -> ObjectVerdict {
        ObjectVerdict {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some("plate-prod".into()),
            name: "api".into(),
            uid: "1234-abcd".into(),
            environment: Some("prod".into()),
            results,
        }
    }

    fn fail() -> PolicyResult {
        PolicyResult {
            policy: "no-latest-tag".into(),
            mode: Mode::Enforce,
            result: "fail",
            key: Some("container:api".into()),
            message: "m".into(),
            path: Some("spec.template.spec.containers[0].image".into()),
        }
    }

    #[test]
    fn a_report_names_its_resource_owns_nothing_but_it_and_counts_results() {
        let (report, _) = document(
            ReportApi::Openreports,
            &verdict(vec![fail()]),
            1_700_000_000,
        );
        assert_eq!(report["apiVersion"], "openreports.io/v1alpha1");
        assert_eq!(report["kind"], "Report");
        assert_eq!(report["metadata"]["name"], "1234-abcd");
        assert_eq!(report["metadata"]["namespace"], "plate-prod");
        assert_eq!(report["metadata"]["ownerReferences"][0]["uid"], "1234-abcd");
        assert_eq!(
            report["metadata"]["ownerReferences"][0]["kind"],
            "Deployment"
        );
        assert_eq!(report["scope"]["name"], "api");
        assert_eq!(report["summary"]["fail"], 1);
        assert_eq!(report["summary"]["pass"], 0);
        let result = &report["results"][0];
        assert_eq!(result["rule"], "container:api");
        assert_eq!(result["source"], "plate-policy");
        assert_eq!(result["properties"]["environment"], "prod");
        assert_eq!(
            result["properties"]["path"],
            "spec.template.spec.containers[0].image"
        );
        assert_eq!(result["timestamp"]["seconds"], 1_700_000_000);
        let (old, _) = document(ReportApi::Wgpolicyk8s, &verdict(vec![fail()]), 0);
        assert_eq!(old["apiVersion"], "wgpolicyk8s.io/v1alpha2");
        assert_eq!(old["kind"], "PolicyReport");
        assert!(old.get("source").is_none());
    }

    #[test]
    fn the_digest_changes_with_content_not_with_time() {
        let (_, a) = document(ReportApi::Openreports, &verdict(vec![fail()]), 1);
        let (_, b) = document(ReportApi::Openreports, &verdict(vec![fail()]), 2);
        assert_eq!(a, b);
        let mut pass = fail();
        pass.result = "pass";
        let (_, c) = document(ReportApi::Openreports, &verdict(vec![pass]), 1);
        assert_ne!(a, c);
    }
}
