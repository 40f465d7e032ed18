//! Prometheus metrics (SPEC section 6), registered once per server. Label values are
//! bounded: kinds are those the policy set matches (else `other`), environments
//! those it defines (else `unknown`), policies those it loads; no object names, and
//! namespaces only when `--metrics-namespace-label` is set. Every series whose label
//! values the policy set determines exists at zero from the moment the set is
//! loaded, so dashboards and alerts have data before the first request.

use crate::admission::{Decision, Effect, Failure};
use crate::policy_set::{Mode, Operation, Policy, PolicySet};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::time::Duration;

/// 0.25 ms to 10 s: admission sits in the API server's write path, so the low end
/// matters; the high end covers the longest timeoutSeconds the API server allows.
const DURATION_BUCKETS: &[f64] = &[
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Values of the `decision` label: those of [`Decision::label`], and `too_large`
/// for a review over `--max-body-bytes`, denied before any policy ran.
pub const DECISIONS: &[&str] = &["allowed", "denied", "warned", "error", "too_large"];

/// Values of `plate_policy_bad_requests_total`'s `status` label.
pub const BAD_REQUEST_STATUSES: &[u16] = &[400, 413, 415];

/// The `environment` label of a request whose namespace has no environment.
const UNKNOWN_ENVIRONMENT: &str = "unknown";

const LOOKUP_RESULTS: &[&str] = &["found", "not_found", "refused"];

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    evaluations: IntCounterVec,
    evaluation_duration: HistogramVec,
    bad_requests: IntCounterVec,
    policies_loaded: IntGauge,
    namespace_cache_entries: IntGauge,
    certificate_expiry: IntGauge,
    reloads: IntCounterVec,
    lookups: IntCounterVec,
    violations: IntCounterVec,
    /// `namespace` label on request counts (opt-in: one series per namespace).
    namespace_requests: Option<IntCounterVec>,
    /// Set once at start; kept so the registry's collector has an owner.
    _build_info: IntGaugeVec,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot register metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

impl Metrics {
    pub fn new(namespace_label: bool) -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "plate_policy_admission_requests_total",
                "Admission requests answered, by decision (allowed, denied, warned, error; too_large: over --max-body-bytes, denied unread).",
            ),
            &["kind", "operation", "environment", "decision"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "plate_policy_admission_duration_seconds",
                "Time from receiving an AdmissionReview to having its answer.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["kind"],
        )?;
        let evaluations = IntCounterVec::new(
            Opts::new(
                "plate_policy_policy_evaluations_total",
                "Policy evaluations by result (pass, deny, warn, error, timeout).",
            ),
            &["policy", "environment", "mode", "result"],
        )?;
        let evaluation_duration = HistogramVec::new(
            HistogramOpts::new(
                "plate_policy_policy_evaluation_duration_seconds",
                "Time of one policy evaluation, sandbox creation included.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["policy"],
        )?;
        let bad_requests = IntCounterVec::new(
            Opts::new(
                "plate_policy_bad_requests_total",
                "Requests rejected before evaluation (HTTP status 400, 413, 415).",
            ),
            &["status"],
        )?;
        let policies_loaded = IntGauge::new(
            "plate_policy_policies_loaded",
            "Policies in the active policy set.",
        )?;
        let namespace_cache_entries = IntGauge::new(
            "plate_policy_namespace_cache_entries",
            "Namespaces in the namespace cache (0 without a cluster).",
        )?;
        let certificate_expiry = IntGauge::new(
            "plate_policy_tls_certificate_expiry_timestamp_seconds",
            "notAfter of the serving certificate in use, as a Unix timestamp.",
        )?;
        let reloads = IntCounterVec::new(
            Opts::new(
                "plate_policy_reloads_total",
                "Hot reloads of the policy set and the TLS certificate, by result.",
            ),
            &["what", "result"],
        )?;
        let lookups = IntCounterVec::new(
            Opts::new(
                "plate_policy_context_lookups_total",
                "Context lookups by policies, by result (found, not_found, refused: the kind is not in the policy's context list).",
            ),
            &["policy", "result"],
        )?;
        let violations = IntCounterVec::new(
            Opts::new(
                "plate_policy_violations_total",
                "Violations found by policies (one per violation of a verdict; those an UPDATE did not introduce are not counted when the policy allows existing violations).",
            ),
            &["policy", "environment", "mode"],
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "plate_policy_build_info",
                "Always 1; the version label says which build runs.",
            ),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let namespace_requests = if namespace_label {
            let c = IntCounterVec::new(
                Opts::new(
                    "plate_policy_admission_requests_by_namespace_total",
                    "Admission requests by namespace and decision (enabled by --metrics-namespace-label).",
                ),
                &["namespace", "decision"],
            )?;
            registry.register(Box::new(c.clone()))?;
            Some(c)
        } else {
            None
        };
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_duration.clone()),
            Box::new(evaluations.clone()),
            Box::new(evaluation_duration.clone()),
            Box::new(bad_requests.clone()),
            Box::new(policies_loaded.clone()),
            Box::new(namespace_cache_entries.clone()),
            Box::new(certificate_expiry.clone()),
            Box::new(reloads.clone()),
            Box::new(lookups.clone()),
            Box::new(violations.clone()),
            Box::new(build_info.clone()),
        ] {
            registry.register(c)?;
        }
        for status in BAD_REQUEST_STATUSES {
            bad_requests.with_label_values(&[&status.to_string()]);
        }
        for what in ["policy_set", "certificate"] {
            for result in ["success", "failure"] {
                reloads.with_label_values(&[what, result]);
            }
        }
        Ok(Metrics {
            registry,
            requests,
            request_duration,
            evaluations,
            evaluation_duration,
            bad_requests,
            policies_loaded,
            namespace_cache_entries,
            certificate_expiry,
            reloads,
            lookups,
            violations,
            namespace_requests,
            _build_info: build_info,
        })
    }

    /// Records one answered request.
    pub fn record(
        &self,
        set: &PolicySet,
        kind: &str,
        operation: &str,
        namespace: &str,
        decision: &Decision,
        elapsed: Duration,
    ) {
        let kind = kind_label(set, kind);
        let environment = environment_label(set, decision.environment.as_deref());
        let label = decision.label;
        self.requests
            .with_label_values(&[kind, operation, environment, label])
            .inc();
        self.request_duration
            .with_label_values(&[kind])
            .observe(elapsed.as_secs_f64());
        if let Some(by_ns) = &self.namespace_requests {
            by_ns.with_label_values(&[namespace, label]).inc();
        }
        for outcome in &decision.outcomes {
            let result = outcome.result_label();
            self.evaluations
                .with_label_values(&[&*outcome.policy, environment, outcome.mode.as_str(), result])
                .inc();
            let violations = outcome.violations().len();
            if violations > 0 {
                self.violations
                    .with_label_values(&[&*outcome.policy, environment, outcome.mode.as_str()])
                    .inc_by(violations as u64);
            }
            for (result, count) in [
                ("found", outcome.lookups.found),
                ("not_found", outcome.lookups.not_found),
                ("refused", outcome.lookups.refused),
            ] {
                if count > 0 {
                    self.lookups
                        .with_label_values(&[&*outcome.policy, result])
                        .inc_by(u64::from(count));
                }
            }
            // A policy that never ran has no duration to report.
            if !matches!(
                outcome.effect,
                Effect::Failed {
                    failure: Failure::Deadline,
                    ..
                }
            ) {
                self.evaluation_duration
                    .with_label_values(&[&*outcome.policy])
                    .observe(outcome.duration.as_secs_f64());
            }
        }
    }

    /// Records a review over the body limit, denied from its head alone.
    pub fn too_large(
        &self,
        set: &PolicySet,
        kind: &str,
        operation: &str,
        environment: Option<&str>,
        elapsed: Duration,
    ) {
        let kind = kind_label(set, kind);
        let environment = environment_label(set, environment);
        self.requests
            .with_label_values(&[kind, operation, environment, "too_large"])
            .inc();
        self.request_duration
            .with_label_values(&[kind])
            .observe(elapsed.as_secs_f64());
    }

    pub fn bad_request(&self, status: u16) {
        self.bad_requests
            .with_label_values(&[&status.to_string()])
            .inc();
    }

    /// A set became active: its size, and a zero series for every label combination
    /// it can produce (series of an earlier set stay, as counters do).
    pub fn policy_set_loaded(&self, set: &PolicySet) {
        self.policies_loaded.set(set.policies.len() as i64);
        let mut environments = set.environments.known_environments();
        environments.push(UNKNOWN_ENVIRONMENT.to_string());
        for policy in &set.policies {
            let kinds = policy
                .matcher
                .kinds
                .iter()
                .map(|k| k.kind.as_str())
                .filter(|k| *k != "*");
            for kind in kinds {
                self.request_duration.with_label_values(&[kind]);
                for operation in operations(policy) {
                    for environment in &environments {
                        for decision in DECISIONS {
                            self.requests.with_label_values(&[
                                kind,
                                operation,
                                environment,
                                decision,
                            ]);
                        }
                    }
                }
            }
            self.initialize_policy(policy, &environments);
        }
    }

    /// Zero series of one policy: evaluations by the results its mode can give,
    /// violations, durations, lookups.
    fn initialize_policy(&self, policy: &Policy, known: &[String]) {
        let name = &*policy.name;
        let mode = policy.mode.as_str();
        let violation = if policy.mode == Mode::Enforce {
            "deny"
        } else {
            "warn"
        };
        // A policy that names environments runs only there.
        let environments: &[String] = if policy.environments.is_empty() {
            known
        } else {
            &policy.environments
        };
        for environment in environments {
            for result in ["pass", violation, "error", "timeout"] {
                self.evaluations
                    .with_label_values(&[name, environment, mode, result]);
            }
            self.violations
                .with_label_values(&[name, environment, mode]);
        }
        self.evaluation_duration.with_label_values(&[name]);
        // Without a context list every lookup is refused.
        let lookups: &[&str] = if policy.context.is_empty() {
            &["refused"]
        } else {
            LOOKUP_RESULTS
        };
        for result in lookups {
            self.lookups.with_label_values(&[name, result]);
        }
    }

    pub fn reload(&self, what: &str, ok: bool) {
        self.reloads
            .with_label_values(&[what, if ok { "success" } else { "failure" }])
            .inc();
    }

    pub fn set_certificate_expiry(&self, der: &[u8]) {
        if let Some(not_after) = certificate_not_after(der) {
            self.certificate_expiry.set(not_after);
        }
    }

    pub fn set_namespace_cache_entries(&self, entries: usize) {
        self.namespace_cache_entries.set(entries as i64);
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> Result<String, MetricsError> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// The `kind` label: a kind some policy names, else `other`.
fn kind_label<'a>(set: &PolicySet, kind: &'a str) -> &'a str {
    if set.matches_kind(kind) {
        kind
    } else {
        "other"
    }
}

/// The `environment` label: one the set defines, `other`, or `unknown` for none.
fn environment_label<'a>(set: &PolicySet, environment: Option<&'a str>) -> &'a str {
    match environment {
        Some(env) if set.environments.is_known(env) => env,
        Some(_) => "other",
        None => UNKNOWN_ENVIRONMENT,
    }
}

/// The request operations a policy matches, as the `operation` label writes them.
fn operations(policy: &Policy) -> Vec<&'static str> {
    let mut all: Vec<&'static str> = policy
        .matcher
        .operations
        .iter()
        .flat_map(|o| match o {
            Operation::All => vec!["CREATE", "UPDATE", "DELETE", "CONNECT"],
            one => vec![one.as_str()],
        })
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// notAfter of a DER certificate as a Unix timestamp.
pub fn certificate_not_after(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}
