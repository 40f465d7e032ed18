//! Metrics as an operator sees them: a real Prometheus server (Debian package,
//! installed by scripts/test.sh) scrapes the real binary every second; every panel
//! query of the shipped Grafana dashboard must return data and every alert
//! expression must parse; promtool accepts the scraped text and the rules file; and
//! 1,000 namespaces do not become 1,000 series.

mod support;

use serde_json::{Value, json};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::https::{Connection, client_config, http_get};
use support::process::Server;
use support::{Hostile, eventually, repo_root};

const DASHBOARD: &str = "charts/plate-policy/dashboards/plate-policy.json";
const RULES: &str = "charts/plate-policy/alerts/plate-policy.rules.yaml";

fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let path = Path::new(dir).join(name);
        if path.is_file() {
            return path;
        }
    }
    panic!("{name} is not installed: scripts/test.sh installs it (apt-get install prometheus)");
}

struct Prometheus {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(dir: &Path, target: SocketAddr) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: plate-policy\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = Command::new(tool("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start prometheus: {e}"));
        let prometheus = Prometheus { child, addr };
        eventually(Duration::from_secs(60), "prometheus to be ready", || {
            matches!(http_get(addr, "/-/ready"), Ok((200, _))).then_some(())
        });
        prometheus
    }

    /// Runs an instant query; returns the API's JSON answer.
    fn query(&self, expr: &str) -> Value {
        let (status, body) = http_get(self.addr, &format!("/api/v1/query?query={}", encode(expr)))
            .unwrap_or_else(|e| panic!("query {expr}: {e}"));
        let answer: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{expr}: {e}: {body}"));
        assert_eq!(status, 200, "query {expr} failed: {body}");
        answer
    }

    fn result(&self, expr: &str) -> Vec<Value> {
        let answer = self.query(expr);
        assert_eq!(answer["status"], "success", "{expr}: {answer}");
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every `expr` of every panel (rows included).
fn panel_queries(panels: &[Value], out: &mut Vec<(String, String)>) {
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("?").to_string();
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                out.push((title.clone(), expr.to_string()));
            }
        }
        if let Some(nested) = panel["panels"].as_array() {
            panel_queries(nested, out);
        }
    }
}

fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("${job}", ".*")
        .replace("$job", ".*")
}

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
    let server = Server::start(
        &[
            "--dev",
            "--certs-dir",
            "certs",
            "--policies",
            "policies.yaml",
        ],
        dir.path(),
    );
    server.wait_ready(Duration::from_secs(60));
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
    for (title, expr) in &queries {
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

#[test]
fn a_thousand_namespaces_do_not_become_a_thousand_series() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let server = Server::start(&["--dev", "--certs-dir", "certs"], dir.path());
    server.wait_ready(Duration::from_secs(60));
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
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("plate_policy_"))
        .collect();
    let requests: Vec<&&str> = series
        .iter()
        .filter(|l| l.starts_with("plate_policy_admission_requests_total{"))
        .collect();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].ends_with(" 1000"), "{requests:?}");
    assert!(!text.contains("team-"), "a namespace leaked into a label");
    assert!(
        series.len() < 120,
        "{} plate_policy series after 1,000 namespaces",
        series.len()
    );
}
