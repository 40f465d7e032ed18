//! Metrics as an operator sees them: a real Prometheus server (Debian package,
//! installed by scripts/test.sh) scrapes the real binary every second; every panel
//! query of the shipped Grafana dashboard must return data and every alert
//! expression must parse; promtool accepts the scraped text and the rules file; and
//! 1,000 namespaces do not become 1,000 series. And before any request, every series
//! the policy set determines is already there at zero (scraped directly).

mod support;

use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::https::{Connection, client_config, http_get};
use support::process::Server;
use support::{Hostile, eventually, repo_root};

use support::prometheus::{DASHBOARD, Prometheus, RULES, panel_queries, substitute, tool};

fn review(uid: &str, group: &str, kind: &str, namespace: &str, object: Value) -> Vec<u8> {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": format!("{}s", kind.to_lowercase())},
            "name": "x",
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "test"},
            "object": object,
        }
    })
    .to_string()
    .into_bytes()
}

fn pod(uid: &str, namespace: &str, image: &str) -> Vec<u8> {
    let object = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "namespace": namespace},
        "spec": {"containers": [{"name": "app", "image": image}]}});
    review(uid, "", "Pod", namespace, object)
}

const POLICY_SET: &str = "apiVersion: policy.plate.dev/v1alpha1
kind: PolicySet
metadata: {name: metrics-test}
spec:
  policies:
    - name: no-latest-tag
      module: builtin:no-latest-tag
      environments: [prod]
      match: {kinds: [Pod]}
    - name: no-staging-issuer
      module: builtin:no-staging-issuer
      environments: [prod]
      mode: warn
      match: {kinds: [networking.k8s.io/Ingress]}
    - name: trapper
      module: trap.wasm
      failurePolicy: Ignore
      match: {kinds: [ConfigMap]}
    - name: looper
      module: loop.wasm
      failurePolicy: Ignore
      timeoutMs: 20
      match: {kinds: [Secret]}
";

#[test]
fn dashboard_queries_return_data_from_a_real_prometheus() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("trap.wasm"), Hostile::Trap.wasm())
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("loop.wasm"), Hostile::InfiniteLoop.wasm())
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("policies.yaml"), POLICY_SET).unwrap_or_else(|e| panic!("{e}"));
    let server = Server::dev_with_policies(dir.path(), &[]);
    let config = client_config(&dir.path().join("certs/ca.crt"), None);
    let mut conn = Connection::open(server.addr, &config).unwrap_or_else(|e| panic!("{e}"));
    let mut send = |body: Vec<u8>| -> Value {
        let r = conn.review(&body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status, 200);
        r.json()["response"].clone()
    };
    // allowed, denied, warned, a policy error (trap) and a timeout.
    assert_eq!(send(pod("a", "plate-prod", "nginx:1.25"))["allowed"], true);
    assert_eq!(
        send(pod("d", "plate-prod", "nginx:latest"))["allowed"],
        false
    );
    let ingress = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "x", "namespace": "plate-prod", "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt-staging"}}});
    assert!(
        send(review(
            "w",
            "networking.k8s.io",
            "Ingress",
            "plate-prod",
            ingress
        ))["warnings"]
            .is_array()
    );
    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "plate-prod"}});
    assert!(
        send(review("e", "", "ConfigMap", "plate-prod", config_map))["warnings"]
            .to_string()
            .contains("trapped")
    );
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x", "namespace": "plate-prod"}});
    assert!(
        send(review("t", "", "Secret", "plate-prod", secret))["warnings"]
            .to_string()
            .contains("time limit")
    );
    let bad = conn
        .post("/validate", "text/plain", b"{}")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bad.status, 415);

    // promtool accepts what we expose.
    let (status, text) = http_get(server.health, "/metrics").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, 200);
    let mut promtool = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(mut stdin) = promtool.stdin.take() {
        use std::io::Write;
        stdin
            .write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let checked = promtool
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    let prometheus = Prometheus::start(dir.path(), server.health);
    // Two scrapes after the traffic, so rate() over the last minute has data.
    eventually(
        Duration::from_secs(60),
        "two scrapes with the timeout counted",
        || {
            let r = prometheus.result("count_over_time(plate_policy_policy_evaluations_total{result=\"timeout\"}[1m]) >= 2");
            (!r.is_empty()).then_some(())
        },
    );

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join(DASHBOARD))
            .unwrap_or_else(|e| panic!("{DASHBOARD}: {e}")),
    )
    .unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"));
    let mut queries = Vec::new();
    panel_queries(
        dashboard["panels"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default(),
        &mut queries,
    );
    assert!(
        queries.len() >= 10,
        "the dashboard has only {} queries",
        queries.len()
    );
    let mut empty = Vec::new();
    // The audit's panels read the audit process's metrics, which needs a cluster: the
    // cluster suite runs them against a real audit (tests/cluster.rs,
    // audit_dashboard_panels_and_alert_have_data_from_a_real_audit).
    for (title, expr) in queries
        .iter()
        .filter(|(_, e)| !e.contains("plate_policy_audit_"))
    {
        if prometheus.result(&substitute(expr)).is_empty() {
            empty.push(format!("{title}: {expr}"));
        }
    }
    assert!(
        empty.is_empty(),
        "panel queries without data:\n{}",
        empty.join("\n")
    );

    // Every alert expression parses and evaluates.
    let rules_path = repo_root().join(RULES);
    let rules: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(&rules_path).unwrap_or_else(|e| panic!("{RULES}: {e}")),
    )
    .unwrap_or_else(|e| panic!("{RULES}: {e}"));
    let mut alerts = 0;
    for group in rules["groups"].as_array().into_iter().flatten() {
        for rule in group["rules"].as_array().into_iter().flatten() {
            let expr = rule["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("rule without expr: {rule}"));
            let answer = prometheus.query(expr);
            assert_eq!(answer["status"], "success", "{}: {answer}", rule["alert"]);
            alerts += 1;
        }
    }
    assert!(alerts >= 4, "only {alerts} alert rules");
    let checked = Command::new(tool("promtool"))
        .args(["check", "rules"])
        .arg(&rules_path)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        checked.status.success(),
        "promtool check rules: {}",
        String::from_utf8_lossy(&checked.stdout)
    );
}

/// The alerts' timing, by promtool's rule unit tests (tests/alerts/*.test.yaml): an
/// alert `for: 1h` must not fire after 59 minutes and must after the hour.
#[test]
fn alert_rule_unit_tests_pass() {
    let dir = repo_root().join("tests/alerts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".test.yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no rule unit tests in {}", dir.display());
    let out = Command::new(tool("promtool"))
        .args(["test", "rules"])
        .args(&files)
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every sample of a scrape, by name and labels (`name{labels}`).
fn samples(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| l.starts_with("plate_policy_"))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

const FIRST_SCRAPE_SET: &str = "apiVersion: policy.plate.dev/v1alpha1
kind: PolicySet
metadata: {name: first-scrape}
spec:
  policies:
    - name: no-latest-tag
      module: builtin:no-latest-tag
      environments: [prod]
      match: {kinds: [Pod, apps/Deployment]}
    - name: no-staging-issuer
      module: builtin:no-staging-issuer
      mode: warn
      match: {kinds: [networking.k8s.io/Ingress], operations: ['*']}
      context:
        - {apiVersion: cert-manager.io/v1, kind: ClusterIssuer}
";

#[test]
fn every_spec_metric_has_its_series_at_zero_before_the_first_request() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("policies.yaml"), FIRST_SCRAPE_SET)
        .unwrap_or_else(|e| panic!("{e}"));
    let server = Server::dev_with_policies(dir.path(), &[]);
    let (status, text) = http_get(server.health, "/metrics").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, 200);
    let before = samples(&text);
    let value = |series: &str| -> f64 {
        *before
            .get(series)
            .unwrap_or_else(|| panic!("no series {series} in the first scrape:\n{text}"))
    };
    // SPEC section 6, every metric, with the label values the set determines.
    for env in ["prod", "stg", "unknown"] {
        for operation in ["CREATE", "UPDATE"] {
            for decision in ["allowed", "denied", "warned", "error", "too_large"] {
                for kind in ["Pod", "Deployment", "Ingress"] {
                    assert_eq!(
                        value(&format!(
                            "plate_policy_admission_requests_total{{decision=\"{decision}\",environment=\"{env}\",kind=\"{kind}\",operation=\"{operation}\"}}"
                        )),
                        0.0
                    );
                }
            }
        }
    }
    // operations: ['*'] on the Ingress policy: every operation.
    assert_eq!(
        value(
            "plate_policy_admission_requests_total{decision=\"allowed\",environment=\"prod\",kind=\"Ingress\",operation=\"DELETE\"}"
        ),
        0.0
    );
    for kind in ["Pod", "Deployment", "Ingress"] {
        assert_eq!(
            value(&format!(
                "plate_policy_admission_duration_seconds_count{{kind=\"{kind}\"}}"
            )),
            0.0
        );
    }
    for result in ["pass", "deny", "error", "timeout"] {
        assert_eq!(
            value(&format!(
                "plate_policy_policy_evaluations_total{{environment=\"prod\",mode=\"enforce\",policy=\"no-latest-tag\",result=\"{result}\"}}"
            )),
            0.0
        );
    }
    for env in ["prod", "stg", "unknown"] {
        for result in ["pass", "warn", "error", "timeout"] {
            assert_eq!(
                value(&format!(
                    "plate_policy_policy_evaluations_total{{environment=\"{env}\",mode=\"warn\",policy=\"no-staging-issuer\",result=\"{result}\"}}"
                )),
                0.0
            );
        }
        assert_eq!(
            value(&format!(
                "plate_policy_violations_total{{environment=\"{env}\",mode=\"warn\",policy=\"no-staging-issuer\"}}"
            )),
            0.0
        );
    }
    for policy in ["no-latest-tag", "no-staging-issuer"] {
        assert_eq!(
            value(&format!(
                "plate_policy_policy_evaluation_duration_seconds_count{{policy=\"{policy}\"}}"
            )),
            0.0
        );
    }
    for result in ["found", "not_found", "refused"] {
        assert_eq!(
            value(&format!(
                "plate_policy_context_lookups_total{{policy=\"no-staging-issuer\",result=\"{result}\"}}"
            )),
            0.0
        );
    }
    for status in ["400", "413", "415"] {
        assert_eq!(
            value(&format!(
                "plate_policy_bad_requests_total{{status=\"{status}\"}}"
            )),
            0.0
        );
    }
    assert_eq!(value("plate_policy_policies_loaded"), 2.0);
    assert_eq!(value("plate_policy_namespace_cache_entries"), 0.0);
    assert!(value("plate_policy_tls_certificate_expiry_timestamp_seconds") > 1.7e9);
    assert!(
        before
            .iter()
            .any(|(k, v)| k.starts_with("plate_policy_build_info{version=") && *v == 1.0)
    );
    // Only what can happen: an enforce policy never warns, a policy named for prod
    // never runs in stg.
    let impossible = [
        "plate_policy_policy_evaluations_total{environment=\"prod\",mode=\"enforce\",policy=\"no-latest-tag\",result=\"warn\"}",
        "plate_policy_policy_evaluations_total{environment=\"stg\",mode=\"enforce\",policy=\"no-latest-tag\",result=\"pass\"}",
        "plate_policy_policy_evaluations_total{environment=\"prod\",mode=\"warn\",policy=\"no-staging-issuer\",result=\"deny\"}",
    ];
    for series in impossible {
        assert!(!before.contains_key(series), "{series} exists");
    }

    // A request counts in a series that was already there: no series is new.
    let config = client_config(&dir.path().join("certs/ca.crt"), None);
    let mut conn = Connection::open(server.addr, &config).unwrap_or_else(|e| panic!("{e}"));
    let r = conn
        .review(&pod("first", "plate-prod", "nginx:latest"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.json()["response"]["allowed"], false);
    let (_, text) = http_get(server.health, "/metrics").unwrap_or_else(|e| panic!("{e}"));
    let after = samples(&text);
    let new: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert!(
        new.is_empty(),
        "series new after the first request: {new:?}"
    );
    assert_eq!(after.get("plate_policy_admission_requests_total{decision=\"denied\",environment=\"prod\",kind=\"Pod\",operation=\"CREATE\"}"), Some(&1.0));
}

#[test]
fn a_thousand_namespaces_do_not_become_a_thousand_series() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let server = Server::start(&["--dev", "--certs-dir", "certs"], dir.path());
    server.wait_ready(Duration::from_secs(60));
    let (_, text) = http_get(server.health, "/metrics").unwrap_or_else(|e| panic!("{e}"));
    let before = samples(&text);
    let config = client_config(&dir.path().join("certs/ca.crt"), None);
    let mut conn = Connection::open(server.addr, &config).unwrap_or_else(|e| panic!("{e}"));
    for i in 0..1000 {
        let r = conn
            .review(&pod(
                &format!("n{i}"),
                &format!("team-{i}-prod"),
                "nginx:1.25",
            ))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status, 200);
    }
    let (_, text) = http_get(server.health, "/metrics").unwrap_or_else(|e| panic!("{e}"));
    let after = samples(&text);
    let counted: Vec<(&String, &f64)> = after
        .iter()
        .filter(|(k, v)| k.starts_with("plate_policy_admission_requests_total{") && **v > 0.0)
        .collect();
    assert_eq!(counted.len(), 1, "{counted:?}");
    assert_eq!(*counted[0].1, 1000.0, "{counted:?}");
    assert!(!text.contains("team-"), "a namespace leaked into a label");
    // Every series existed before the traffic (the set determines them all).
    let new: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert!(new.is_empty(), "series added by 1,000 namespaces: {new:?}");
}
