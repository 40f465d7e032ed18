//! Metrics of the continuous audit (`audit --watch`), on its own `/metrics`. Label
//! values are bounded by the policy set: policies, their environments, modes; no
//! object or namespace names. Every series the set determines exists at zero from
//! the first scrape.

use crate::metrics::MetricsError;
use crate::policy_set::{Mode, PolicySet};
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// The `environment` label of an object whose namespace resolves to none.
pub const NO_ENVIRONMENT: &str = "unknown";

pub struct AuditMetrics {
    registry: Registry,
    /// Violations that exist now, by policy, environment and mode.
    pub violations: IntGaugeVec,
    /// Objects judged by at least one policy, now.
    pub objects: IntGauge,
    /// Duration of full passes (the first, resyncs, policy-set reloads).
    pub scan_duration: Histogram,
    /// Report writes by result (`success`, `error`).
    pub report_writes: IntCounterVec,
    /// 1 while this process holds the audit's lease.
    pub leader: IntGauge,
}

impl AuditMetrics {
    pub fn new() -> Result<AuditMetrics, MetricsError> {
        let registry = Registry::new();
        let violations = IntGaugeVec::new(
            Opts::new(
                "plate_policy_audit_violations",
                "Violations that exist in the cluster now, found by the audit",
            ),
            &["policy", "environment", "mode"],
        )?;
        let objects = IntGauge::new(
            "plate_policy_audit_objects",
            "Objects the audit judges (matched by at least one audited policy)",
        )?;
        let scan_duration = Histogram::with_opts(
            HistogramOpts::new(
                "plate_policy_audit_scan_duration_seconds",
                "Duration of a full audit pass (list and judge every object)",
            )
            .buckets(vec![0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0]),
        )?;
        let report_writes = IntCounterVec::new(
            Opts::new(
                "plate_policy_audit_report_writes_total",
                "Policy reports written (only when their content changed), by result",
            ),
            &["result"],
        )?;
        let leader = IntGauge::new(
            "plate_policy_audit_leader",
            "1 while this process holds the audit's lease and audits",
        )?;
        registry.register(Box::new(violations.clone()))?;
        registry.register(Box::new(objects.clone()))?;
        registry.register(Box::new(scan_duration.clone()))?;
        registry.register(Box::new(report_writes.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        for result in ["success", "error"] {
            report_writes.with_label_values(&[result]);
        }
        Ok(AuditMetrics {
            registry,
            violations,
            objects,
            scan_duration,
            report_writes,
            leader,
        })
    }

    /// Every violations series `set` determines, at zero (existing ones kept).
    pub fn declare(&self, set: &PolicySet) {
        for policy in &set.policies {
            let environments: Vec<String> = if policy.environments.is_empty() {
                set.environments.known_environments()
            } else {
                policy.environments.clone()
            };
            for env in environments {
                self.violations.with_label_values(&[
                    &*policy.name,
                    env.as_str(),
                    policy.mode.as_str(),
                ]);
            }
        }
    }

    /// Adds `delta` to the violations of (`policy`, `environment`, `mode`).
    pub fn count(&self, policy: &str, environment: Option<&str>, mode: Mode, delta: i64) {
        self.violations
            .with_label_values(&[policy, environment.unwrap_or(NO_ENVIRONMENT), mode.as_str()])
            .add(delta);
    }

    pub fn encode(&self) -> Result<String, MetricsError> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}
