//! `plate-policy serve` end to end: the real binary on loopback ports, spoken to over
//! real TLS. Verdicts, bad input, hot reload, certificate rotation by Secret-style
//! symlink swap, graceful shutdown, mTLS. What needs a cluster (namespace labels, the
//! ClusterIssuer cache, the chart) is tested through a real kube-apiserver in
//! tests/cluster.rs.

mod support;

use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use support::h2::H2;
use support::https::{Connection, client_config, http_get};
use support::process::Server;
use support::{Hostile, eventually, repo_root};

const STARTUP: Duration = Duration::from_secs(60);

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
}

fn fixture(name: &str) -> Value {
    let path = repo_root().join("tests/fixtures").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The Pod review fixture, moved to `namespace` with `image`.
fn pod_review(uid: &str, namespace: &str, image: &str) -> Vec<u8> {
    let mut review = fixture("review-pod-latest.json");
    review["request"]["uid"] = json!(uid);
    review["request"]["namespace"] = json!(namespace);
    review["request"]["object"]["metadata"]["namespace"] = json!(namespace);
    review["request"]["object"]["spec"]["containers"][0]["image"] = json!(image);
    review.to_string().into_bytes()
}

fn deployment_review(uid: &str, namespace: &str, image: &str) -> Vec<u8> {
    let mut review = fixture("review-pod-latest.json");
    review["request"]["uid"] = json!(uid);
    review["request"]["kind"] = json!({"group": "apps", "version": "v1", "kind": "Deployment"});
    review["request"]["resource"] =
        json!({"group": "apps", "version": "v1", "resource": "deployments"});
    review["request"]["namespace"] = json!(namespace);
    review["request"]["name"] = json!("plate-api");
    review["request"]["object"] = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "plate-api", "namespace": namespace},
        "spec": {"template": {"spec": {"containers": [{"name": "api", "image": image}]}}}
    });
    review.to_string().into_bytes()
}

fn response(conn: &mut Connection, body: &[u8]) -> Value {
    let r = conn
        .review(body)
        .unwrap_or_else(|e| panic!("request failed: {e}"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["response"].clone()
}

fn dev_server(dir: &Path, extra: &[&str]) -> (Server, Arc<rustls::ClientConfig>) {
    let mut args = vec!["--dev", "--certs-dir", "certs"];
    args.extend_from_slice(extra);
    let server = Server::start(&args, dir);
    server.wait_ready(STARTUP);
    let config = client_config(&dir.join("certs/ca.crt"), None);
    (server, config)
}

fn connect(server: &Server, config: &Arc<rustls::ClientConfig>) -> Connection {
    Connection::open(server.addr, config).unwrap_or_else(|e| panic!("connect: {e}"))
}

#[test]
fn dev_mode_answers_reviews() {
    let dir = temp_dir();
    let (server, config) = dev_server(dir.path(), &[]);
    let mut conn = connect(&server, &config);

    let denied = response(
        &mut conn,
        &pod_review(
            "uid-1",
            "plate-prod",
            "harbor.cocdev.co.kr/plate/plate-api:latest",
        ),
    );
    assert_eq!(denied["uid"], "uid-1");
    assert_eq!(denied["allowed"], false);
    assert_eq!(denied["status"]["code"], 403);
    let message = denied["status"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("[no-latest-tag] container \"web\" uses image \"harbor.cocdev.co.kr/plate/plate-api:latest\""), "{message}");

    let allowed = response(
        &mut conn,
        &pod_review(
            "uid-2",
            "plate-stg",
            "harbor.cocdev.co.kr/plate/plate-api:latest",
        ),
    );
    assert_eq!(allowed["uid"], "uid-2");
    assert_eq!(allowed["allowed"], true);
    assert!(allowed.get("warnings").is_none(), "{allowed}");

    let pinned = response(&mut conn, &pod_review("uid-3", "plate-prod", "nginx:1.25"));
    assert_eq!(pinned["allowed"], true);

    // Shaped exactly like the example in the Kubernetes documentation.
    let docs = response(
        &mut conn,
        fixture("review-k8s-docs-example.json")
            .to_string()
            .as_bytes(),
    );
    assert_eq!(docs["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(docs["allowed"], true);

    let mut ns = fixture("review-pod-latest.json");
    ns["request"]["uid"] = json!("uid-ns");
    ns["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "Namespace"});
    ns["request"]["namespace"] = json!("fe-web-prod");
    ns["request"]["name"] = json!("fe-web-prod");
    ns["request"]["object"] =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fe-web-prod"}});
    let unlabeled = response(&mut conn, ns.to_string().as_bytes());
    assert_eq!(unlabeled["allowed"], false);
    assert!(
        unlabeled["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("has no \"environment\" label")
    );
    ns["request"]["object"]["metadata"]["labels"] = json!({"environment": "production"});
    assert_eq!(
        response(&mut conn, ns.to_string().as_bytes())["allowed"],
        true
    );
}

fn policy_set(dir: &Path, file: &str, no_latest_mode: &str, extra: &str) -> PathBuf {
    let text = format!(
        "apiVersion: policy.plate.dev/v1alpha1\nkind: PolicySet\nmetadata: {{name: test}}\nspec:\n  policies:\n    - name: no-latest-tag\n      module: builtin:no-latest-tag\n      environments: [prod]\n      mode: {no_latest_mode}\n      match:\n        kinds: [Pod, apps/Deployment]\n{extra}"
    );
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join(file);
    // Replace atomically, as kubelet does for a mounted ConfigMap.
    std::fs::rename(&tmp, &path).unwrap_or_else(|e| panic!("{e}"));
    path
}

#[test]
fn warnings_come_from_warn_mode_and_ignored_failures() {
    let dir = temp_dir();
    std::fs::write(dir.path().join("trap.wasm"), Hostile::Trap.wasm())
        .unwrap_or_else(|e| panic!("{e}"));
    let extra = "    - name: trapper\n      module: trap.wasm\n      failurePolicy: Ignore\n      match: {kinds: [Pod]}\n";
    policy_set(dir.path(), "policies.yaml", "warn", extra);
    let (server, config) = dev_server(dir.path(), &["--policies", "policies.yaml"]);
    let mut conn = connect(&server, &config);
    let r = response(&mut conn, &pod_review("w-1", "plate-prod", "nginx"));
    assert_eq!(r["allowed"], true, "{r}");
    let warnings: Vec<&str> = r["warnings"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    // The response carries the violation's short form.
    assert_eq!(
        warnings[0], "[no-latest-tag] web: nginx is untagged (\"latest\"); pin a version or digest",
        "{warnings:?}"
    );
    assert!(
        warnings[1].starts_with("[trapper] policy failed (ignored): trapped"),
        "{warnings:?}"
    );
    for w in &warnings {
        assert!(
            w.chars().count() < 120,
            "warning over 119 characters: {w:?}"
        );
    }
}

#[test]
fn bad_requests_get_clear_errors_and_disturb_nothing() {
    let dir = temp_dir();
    let (server, config) = dev_server(dir.path(), &["--max-body-bytes", "65536"]);
    let good = pod_review("good", "plate-prod", "nginx:latest");

    let huge = vec![b' '; 100_000];
    let r = connect(&server, &config)
        .review(&huge)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 413);

    let r = connect(&server, &config)
        .post("/validate", "text/plain", &good)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 415);
    assert!(String::from_utf8_lossy(&r.body).contains("application/json"));

    let cases: [(&[u8], &str); 6] = [
        (b"{not json", "not valid JSON"),
        (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#, "has no request"),
        (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"kind":{"group":"","version":"v1","kind":"Pod"}}}"#, "uid is missing"),
        (br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}"#, "admission.k8s.io/v1beta1"),
        (br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}"#, "expected \"AdmissionReview\""),
        (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","kind":{"kind":"Pod"},"operation":"EXPLODE"}}"#, "request.operation: unknown variant `EXPLODE`"),
    ];
    let mut conn = connect(&server, &config);
    for (body, needle) in cases {
        let r = conn.review(body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(body));
        let error = r.json()["error"].as_str().unwrap_or_default().to_string();
        assert!(error.contains(needle), "{needle:?} not in {error:?}");
    }
    let metrics = metrics_text(&server);
    for (status, count) in [("413", 1), ("415", 1), ("400", 6)] {
        let line = format!("plate_policy_bad_requests_total{{status=\"{status}\"}} {count}");
        assert!(metrics.contains(&line), "missing {line:?} in:\n{metrics}");
    }
    // The same connection and a new one still get verdicts.
    assert_eq!(response(&mut conn, &good)["allowed"], false);
    assert_eq!(
        response(&mut connect(&server, &config), &good)["uid"],
        "good"
    );
}

#[test]
fn an_http2_body_over_the_limit_gets_the_413_answer_not_a_reset_stream() {
    let dir = temp_dir();
    let (server, config) = dev_server(dir.path(), &["--max-body-bytes", "65536"]);
    let mut h2 = H2::connect(server.addr, &config);
    // 8 MiB in 16 KiB DATA frames, more than the server's 1 MiB flow-control
    // window: the server is over its limit long before the client has sent
    // everything, with and without a declared length.
    let huge = vec![b' '; 8 << 20];
    for declared in [false, true] {
        let r = h2
            .post(&huge, 16 << 10, declared)
            .unwrap_or_else(|e| panic!("HTTP/2 client, length declared {declared}: {e}"));
        // The server read the stream to its end: no reset while the client sent.
        assert_eq!(r.sent, Ok(()), "length declared {declared}");
        assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
        let error = r.json()["error"].as_str().unwrap_or_default().to_string();
        assert!(
            error.contains("8388608 bytes, over the limit of 65536 bytes (--max-body-bytes)"),
            "{error}"
        );
    }
    // The connection is fine: the next stream gets its verdict.
    let good = pod_review("after-413", "plate-prod", "nginx:latest");
    let r = h2
        .post(&good, 16 << 10, true)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["response"]["uid"], "after-413");
    assert!(
        metrics_text(&server).contains("plate_policy_bad_requests_total{status=\"413\"} 2"),
        "{}",
        metrics_text(&server)
    );
}

/// An UPDATE of a Pod whose object and oldObject carry `padding` bytes each, in an
/// annotation, with its fields in the API server's order (uid and kind first: the
/// order of Go's AdmissionRequest struct; `json!` would sort them).
fn padded_update(uid: &str, padding: usize) -> Vec<u8> {
    let object = |image: &str| {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "plate-prod",
                         "annotations": {"padding": "x".repeat(padding)}},
            "spec": {"containers": [{"name": "web", "image": image}]}
        })
    };
    format!(
        r#"{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{{"uid":{},"kind":{{"group":"","version":"v1","kind":"Pod"}},"resource":{{"group":"","version":"v1","resource":"pods"}},"name":"web","namespace":"plate-prod","operation":"UPDATE","userInfo":{{"username":"admin","groups":["system:authenticated"]}},"object":{},"oldObject":{}}}}}"#,
        json!(uid),
        object("nginx:latest"),
        object("nginx:1.25")
    )
    .into_bytes()
}

fn assert_denied_for_size(response: &Value, uid: &str, size: usize, limit: usize) {
    assert_eq!(response["uid"], uid, "{response}");
    assert_eq!(response["allowed"], false, "{response}");
    assert_eq!(response["status"]["code"], 413, "{response}");
    assert_eq!(response["status"]["reason"], "RequestEntityTooLarge");
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("plate-policy cannot check this request (UPDATE Pod plate-prod/web)")
            && message.contains(&format!(
                "its AdmissionReview is {size} bytes, over the limit of {limit} bytes"
            ))
            && message.contains("denied rather than admitted unchecked"),
        "{message}"
    );
}

#[test]
fn a_review_over_the_body_limit_is_denied_as_a_review_over_http1_and_http2() {
    let dir = temp_dir();
    let limit = 65536;
    let (server, config) = dev_server(dir.path(), &["--max-body-bytes", &limit.to_string()]);
    let big = padded_update("big-h1", 200_000);
    // HTTP/1.1 with Content-Length, as the API server sends it.
    let mut conn = connect(&server, &config);
    let r = conn.review(&big).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_denied_for_size(&r.json()["response"], "big-h1", big.len(), limit);
    // The body was read to its end: the same connection goes on.
    let good = pod_review("after-big", "plate-prod", "nginx:1.25");
    assert_eq!(response(&mut conn, &good)["allowed"], true);
    // HTTP/2, streamed without a length: the size is counted as it is drained.
    let big = padded_update("big-h2", 200_000);
    let mut h2 = H2::connect(server.addr, &config);
    let r = h2
        .post(&big, 16 << 10, false)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.sent, Ok(()));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_denied_for_size(&r.json()["response"], "big-h2", big.len(), limit);
    // Counted as its own decision, with the labels its head gave.
    let metrics = metrics_text(&server);
    assert!(
        metrics.contains("plate_policy_admission_requests_total{decision=\"too_large\",environment=\"prod\",kind=\"Pod\",operation=\"UPDATE\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("plate_policy_bad_requests_total{status=\"413\"} 0"),
        "{metrics}"
    );
    // A review just within the limit is decided by the policies as usual.
    let within = padded_update("within", 0);
    let padding = (limit - within.len()) / 2;
    let within = padded_update("within", padding);
    assert!(within.len() <= limit);
    let r = response(&mut connect(&server, &config), &within);
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 403, "{r}");
}

/// The largest review measured for objects etcd stores (docs/security.md): an
/// UPDATE with object and oldObject of env values that Go's JSON encoder writes
/// as \u003c, 6 bytes for each stored byte. The default limit reads it whole and
/// the policies decide it.
#[test]
fn the_largest_review_of_a_storable_object_is_decided_by_the_policies() {
    let dir = temp_dir();
    let (server, config) = dev_server(dir.path(), &["--request-timeout-ms", "10000"]);
    let env: Vec<String> = (0..1552)
        .map(|i| format!(r#"{{"name":"V{i}","value":"{}"}}"#, r"\u003c".repeat(1000)))
        .collect();
    let object = |image: &str| {
        format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"web","namespace":"plate-prod"}},"spec":{{"containers":[{{"name":"web","image":"{image}","env":[{}]}}]}}}}"#,
            env.join(",")
        )
    };
    let body = format!(
        r#"{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{{"uid":"largest","kind":{{"group":"","version":"v1","kind":"Pod"}},"resource":{{"group":"","version":"v1","resource":"pods"}},"name":"web","namespace":"plate-prod","operation":"UPDATE","userInfo":{{"username":"admin"}},"object":{},"oldObject":{}}}}}"#,
        object("nginx:latest"),
        object("nginx:1.25")
    );
    assert!(body.len() > 18_600_000, "{} bytes", body.len());
    let r = connect(&server, &config)
        .review(body.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200);
    let response = &r.json()["response"];
    assert_eq!(response["uid"], "largest");
    assert_eq!(response["allowed"], false, "{response}");
    assert_eq!(response["status"]["code"], 403, "{response}");
    let message = response["status"]["message"].as_str().unwrap_or_default();
    // The policy's own verdict, not a time or memory limit.
    assert!(
        message.starts_with("[no-latest-tag] container \"web\" uses image \"nginx:latest\""),
        "{message}"
    );
}

#[test]
fn policy_set_hot_reload_swaps_good_sets_and_keeps_the_last_good_one() {
    let dir = temp_dir();
    policy_set(dir.path(), "policies.yaml", "enforce", "");
    let (mut server, config) = dev_server(dir.path(), &["--policies", "policies.yaml"]);
    let review = pod_review("reload", "plate-prod", "nginx:latest");
    let mut conn = connect(&server, &config);
    assert_eq!(response(&mut conn, &review)["allowed"], false);

    policy_set(dir.path(), "policies.yaml", "warn", "");
    eventually(
        Duration::from_secs(30),
        "the warn-mode set to take effect",
        || {
            let r = response(&mut conn, &review);
            (r["allowed"] == true && r["warnings"].is_array()).then_some(())
        },
    );
    server.wait_for_log("policy set reloaded", Duration::from_secs(10));

    // A broken file is rejected with file and line; the warn-mode set keeps serving.
    let bad = dir.path().join(".bad.tmp");
    std::fs::write(&bad, "apiVersion: policy.plate.dev/v1alpha1\nkind: PolicySet\nspec:\n  policies:\n    - name: x\n      modul: builtin:no-latest-tag\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(&bad, dir.path().join("policies.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let line = server.wait_for_log("new policy set rejected", Duration::from_secs(30));
    assert!(line.contains("policies.yaml:6"), "{line}");
    assert!(line.contains("modul"), "{line}");
    let r = response(&mut conn, &review);
    assert_eq!(r["allowed"], true);
    assert!(r["warnings"].is_array(), "{r}");
    let metrics = metrics_text(&server);
    assert!(
        metrics.contains("plate_policy_reloads_total{result=\"success\",what=\"policy_set\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("plate_policy_reloads_total{result=\"failure\",what=\"policy_set\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_reload_that_names_a_module_in_a_new_directory_watches_it() {
    let dir = temp_dir();
    policy_set(dir.path(), "policies.yaml", "enforce", "");
    let (server, config) = dev_server(dir.path(), &["--policies", "policies.yaml"]);
    let mut conn = connect(&server, &config);
    let review = deployment_review("newdir", "plate-stg", "nginx:1.25");
    assert_eq!(response(&mut conn, &review)["allowed"], true);
    // The new set names mods/gate.wasm, a directory the server did not watch.
    let mods = dir.path().join("mods");
    std::fs::create_dir(&mods).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(mods.join("gate.wasm"), Hostile::AllowAll.wasm())
        .unwrap_or_else(|e| panic!("{e}"));
    let extra =
        "    - name: gate\n      module: mods/gate.wasm\n      match: {kinds: [apps/Deployment]}\n";
    policy_set(dir.path(), "policies.yaml", "enforce", extra);
    eventually(Duration::from_secs(30), "the set with gate to load", || {
        metrics_text(&server)
            .contains("plate_policy_policies_loaded 2")
            .then_some(())
    });
    assert_eq!(response(&mut conn, &review)["allowed"], true);
    // Changing only the module (not the policy set) is picked up.
    let tmp = mods.join(".gate.tmp");
    std::fs::write(&tmp, Hostile::DenyAll.wasm()).unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(&tmp, mods.join("gate.wasm")).unwrap_or_else(|e| panic!("{e}"));
    let denied = eventually(
        Duration::from_secs(30),
        "the new module to take effect",
        || {
            let r = response(&mut conn, &review);
            (r["allowed"] == false).then_some(r)
        },
    );
    assert!(
        denied["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("[gate] denied by the test policy"),
        "{denied}"
    );
}

fn metrics_text(server: &Server) -> String {
    let (status, text) = http_get(server.health, "/metrics").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, 200);
    text
}

fn expiry(metrics: &str) -> String {
    metrics
        .lines()
        .find(|l| l.starts_with("plate_policy_tls_certificate_expiry_timestamp_seconds "))
        .unwrap_or_default()
        .to_string()
}

/// A directory laid out like a mounted Secret: `tls.crt -> ..data/tls.crt`,
/// `..data -> ..<version>`; `swap` replaces `..data` atomically.
struct SecretVolume {
    dir: PathBuf,
    version: usize,
}

impl SecretVolume {
    fn new(dir: &Path, source: &Path) -> SecretVolume {
        let mut volume = SecretVolume {
            dir: dir.to_path_buf(),
            version: 0,
        };
        volume.swap(source);
        for name in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        volume
    }

    fn swap(&mut self, source: &Path) {
        self.version += 1;
        let version = format!("..v{}", self.version);
        let target = self.dir.join(&version);
        std::fs::create_dir_all(&target).unwrap_or_else(|e| panic!("{e}"));
        for name in ["tls.crt", "tls.key"] {
            std::fs::copy(source.join(name), target.join(name)).unwrap_or_else(|e| panic!("{e}"));
        }
        let tmp = self.dir.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&version, &tmp).unwrap_or_else(|e| panic!("{e}"));
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap_or_else(|e| panic!("{e}"));
    }
}

fn certs(dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_plate-policy"))
        .args(["certs", "--out"])
        .arg(&out)
        .args(["--dns", "localhost", "--dns", "127.0.0.1"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    out
}

#[test]
fn certificate_rotation_by_symlink_swap_drops_no_request() {
    let dir = temp_dir();
    let first = certs(dir.path(), "first");
    let second = certs(dir.path(), "second");
    let mount = dir.path().join("tls");
    std::fs::create_dir_all(&mount).unwrap_or_else(|e| panic!("{e}"));
    let mut volume = SecretVolume::new(&mount, &first);
    let mut server = Server::start(
        &[
            "--dev",
            "--tls-cert",
            "tls/tls.crt",
            "--tls-key",
            "tls/tls.key",
        ],
        dir.path(),
    );
    server.wait_ready(STARTUP);
    let old_ca = client_config(&first.join("ca.crt"), None);
    let new_ca = client_config(&second.join("ca.crt"), None);

    // A client keeps one connection busy through the rotation.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let addr = server.addr;
    let (flag, count) = (Arc::clone(&stop), Arc::clone(&sent));
    let config = Arc::clone(&old_ca);
    let busy = std::thread::spawn(move || -> Result<(), String> {
        let mut conn = Connection::open(addr, &config).map_err(|e| e.to_string())?;
        let review = pod_review("busy", "plate-stg", "nginx:latest");
        while !flag.load(Ordering::Relaxed) {
            let r = conn
                .review(&review)
                .map_err(|e| format!("request {} failed: {e}", count.load(Ordering::Relaxed)))?;
            if r.status != 200 {
                return Err(format!("status {}", r.status));
            }
            count.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    });
    eventually(Duration::from_secs(10), "the busy client to start", || {
        (sent.load(Ordering::Relaxed) > 5).then_some(())
    });

    let expiry_before = expiry(&metrics_text(&server));
    assert!(!expiry_before.is_empty());
    volume.swap(&second);
    server.wait_for_log("TLS certificate reloaded", Duration::from_secs(30));
    let second_pem = std::fs::read(second.join("tls.crt")).unwrap_or_else(|e| panic!("{e}"));
    let second_der = rustls::pki_types::CertificateDer::pem_slice_iter(&second_pem)
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("no certificate in the second pair"));
    let not_after = plate_policy::metrics::certificate_not_after(&second_der).unwrap_or_default();
    assert_eq!(
        expiry(&metrics_text(&server)),
        format!("plate_policy_tls_certificate_expiry_timestamp_seconds {not_after}"),
        "the expiry gauge did not follow the new certificate (was {expiry_before})"
    );
    let rotated = eventually(
        Duration::from_secs(10),
        "new handshakes to use the new certificate",
        || Connection::open(server.addr, &new_ca).ok(),
    );
    assert!(!rotated.server_cert().is_empty());
    // A fresh client config: one that talked before would resume its TLS session
    // and skip certificate verification.
    let old_ca_fresh = client_config(&first.join("ca.crt"), None);
    assert!(
        Connection::open(server.addr, &old_ca_fresh).is_err(),
        "the old certificate is still served"
    );

    // A broken pair (key of another certificate) is rejected; the new one stays.
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(second.join("tls.crt"), broken.join("tls.crt")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(first.join("tls.key"), broken.join("tls.key")).unwrap_or_else(|e| panic!("{e}"));
    volume.swap(&broken);
    server.wait_for_log("new TLS certificate rejected", Duration::from_secs(30));
    let new_ca_fresh = client_config(&second.join("ca.crt"), None);
    let mut still = Connection::open(server.addr, &new_ca_fresh)
        .unwrap_or_else(|e| panic!("the good pair was dropped: {e}"));
    assert_eq!(
        response(&mut still, &pod_review("after", "plate-stg", "nginx"))["allowed"],
        true
    );

    let before = sent.load(Ordering::Relaxed);
    eventually(
        Duration::from_secs(10),
        "the open connection to keep working",
        || (sent.load(Ordering::Relaxed) > before + 5).then_some(()),
    );
    stop.store(true, Ordering::Relaxed);
    let result = busy
        .join()
        .unwrap_or_else(|_| Err("client thread panicked".into()));
    assert_eq!(result, Ok(()), "a request on the open connection failed");
}

#[test]
fn sigterm_answers_in_flight_requests_then_exits_0() {
    let dir = temp_dir();
    std::fs::write(dir.path().join("slow.wasm"), Hostile::InfiniteLoop.wasm())
        .unwrap_or_else(|e| panic!("{e}"));
    // In-flight requests take the slow policy's 3 s; the shutdown delay is 1 s.
    let extra = "    - name: slow\n      module: slow.wasm\n      failurePolicy: Ignore\n      timeoutMs: 3000\n      match: {kinds: [Pod]}\n";
    policy_set(dir.path(), "policies.yaml", "enforce", extra);
    let (mut server, config) = dev_server(
        dir.path(),
        &[
            "--policies",
            "policies.yaml",
            "--request-timeout-ms",
            "10000",
            "--shutdown-delay-secs",
            "1",
        ],
    );
    let mut clients = Vec::new();
    for i in 0..4 {
        let mut conn = connect(&server, &config);
        conn.send(
            "/validate",
            "application/json",
            &pod_review(&format!("inflight-{i}"), "plate-stg", "nginx"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        clients.push(conn);
    }
    for _ in 0..4 {
        server.wait_for_log("admission request received", Duration::from_secs(30));
    }
    server.signal("TERM");
    // First unready, while still accepting: a new client is still answered.
    eventually(
        Duration::from_secs(10),
        "readyz to say shutting down",
        || {
            http_get(server.health, "/readyz")
                .ok()
                .filter(|(status, body)| *status == 503 && body.contains("shutting down"))
        },
    );
    let quick = deployment_review("during-delay", "plate-stg", "nginx:1.25");
    let answered = response(&mut connect(&server, &config), &quick);
    assert_eq!(answered["uid"], "during-delay", "{answered}");
    // Then no longer accepting, while the in-flight requests are still running.
    eventually(Duration::from_secs(10), "the listener to close", || {
        Connection::open(server.addr, &config)
            .is_err()
            .then_some(())
    });
    assert!(
        !server.log_text().contains("all connections closed"),
        "the listener closed only after draining"
    );
    for (i, conn) in clients.iter_mut().enumerate() {
        let r = conn
            .receive()
            .unwrap_or_else(|e| panic!("in-flight request {i} was dropped: {e}"));
        assert_eq!(r.status, 200);
        let body = r.json();
        assert_eq!(body["response"]["uid"], format!("inflight-{i}"));
        assert!(
            body["response"]["warnings"]
                .to_string()
                .contains("time limit"),
            "{body}"
        );
    }
    assert_eq!(server.wait_exit(Duration::from_secs(30)), Some(0));
}

#[test]
fn client_ca_requires_a_client_certificate() {
    let dir = temp_dir();
    let pki = certs(dir.path(), "pki");
    let server = Server::start(
        &[
            "--dev",
            "--tls-cert",
            "pki/tls.crt",
            "--tls-key",
            "pki/tls.key",
            "--client-ca",
            "pki/ca.crt",
        ],
        dir.path(),
    );
    server.wait_ready(STARTUP);
    let anonymous = client_config(&pki.join("ca.crt"), None);
    let refused = Connection::open(server.addr, &anonymous)
        .and_then(|mut c| c.review(&pod_review("anon", "plate-stg", "nginx")));
    assert!(
        refused.is_err(),
        "a client without a certificate was served"
    );

    let other = certs(dir.path(), "other");
    let stranger = client_config(
        &pki.join("ca.crt"),
        Some((&other.join("client.crt"), &other.join("client.key"))),
    );
    let refused = Connection::open(server.addr, &stranger)
        .and_then(|mut c| c.review(&pod_review("stranger", "plate-stg", "nginx")));
    assert!(
        refused.is_err(),
        "a client certificate from another CA was accepted"
    );

    let trusted = client_config(
        &pki.join("ca.crt"),
        Some((&pki.join("client.crt"), &pki.join("client.key"))),
    );
    let mut conn = Connection::open(server.addr, &trusted).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        response(&mut conn, &pod_review("mtls", "plate-stg", "nginx"))["uid"],
        "mtls"
    );
}

#[test]
fn silent_and_slow_clients_are_disconnected() {
    let dir = temp_dir();
    let (server, config) = dev_server(dir.path(), &["--client-timeout-secs", "1"]);
    // Handshake, then say nothing: the connection is closed, not kept forever.
    let mut silent = connect(&server, &config);
    let started = std::time::Instant::now();
    assert!(
        silent.receive().is_err(),
        "a silent connection got an answer"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "closed only after {:?}",
        started.elapsed()
    );

    // Headers promising a body that never comes: 408 or a closed connection.
    let mut slow = connect(&server, &config);
    slow.send_head("/validate", "application/json", 1000)
        .unwrap_or_else(|e| panic!("{e}"));
    // The server must answer 408 or close the connection, within the limit: an
    // error from reading is fine only if it is the server closing, not a timeout of
    // ours (Connection reads with a 30 s timeout; the client limit is 1 s).
    let started = std::time::Instant::now();
    match slow.receive() {
        Ok(r) => assert_eq!(r.status, 408, "{}", String::from_utf8_lossy(&r.body)),
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the server neither answered nor closed: {e}"
        ),
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "a body that never came held the connection for {:?}",
        started.elapsed()
    );
    // Honest clients are still served.
    let mut conn = connect(&server, &config);
    assert_eq!(
        response(&mut conn, &pod_review("after", "plate-stg", "nginx"))["uid"],
        "after"
    );
}
