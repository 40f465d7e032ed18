//! Policies written in Go, end to end through the real binary: the Go port of
//! trusted-registries decides every case of the shared suites exactly as the Rust
//! one does; a misbehaving Go policy is contained by the same limits as a Rust one
//! (time, memory, panics, exits, deadlocks, floods of output, attempts to reach
//! files, environment or network), alone and under load through the server; its
//! output reaches the log with the policy's name, bounded; lookups work; and a
//! corrupt compiled-module cache entry is rebuilt, never trusted.
//!
//! The Go modules are built from this repository's sources with the machine's Go
//! (tests/support/go.rs).

mod support;

use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::command::{plate_policy, stderr, stdout};
use support::https::{Connection, client_config};
use support::process::Server;

fn path_str(p: &Path) -> &str {
    p.to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 path {}", p.display()))
}

/// The built-in policy set with trusted-registries' module replaced by `module`.
fn set_with_trusted_registries(dir: &Path, module: &Path) -> std::path::PathBuf {
    let builtin = std::fs::read_to_string(support::repo_root().join("policies/policies.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let needle = "module: builtin:trusted-registries";
    assert!(builtin.contains(needle), "the built-in set changed shape");
    let set = builtin.replace(needle, &format!("module: {}", module.display()));
    let file = dir.join("policies.yaml");
    std::fs::write(&file, set).unwrap_or_else(|e| panic!("{e}"));
    file
}

fn read_json(file: &Path) -> Value {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

#[test]
fn go_and_rust_trusted_registries_decide_every_shared_case_alike() {
    let go = support::go::trusted_registries();
    let cache = support::go::module_cache();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let set = set_with_trusted_registries(dir.path(), &go);
    let (rust_json, go_json) = (dir.path().join("rust.json"), dir.path().join("go.json"));

    let rust = plate_policy(&[
        "test",
        "policies/trusted-registries",
        "--output",
        "json",
        path_str(&rust_json),
    ]);
    assert_eq!(rust.status.code(), Some(0), "{}", stdout(&rust));
    let go_run = plate_policy(&[
        "test",
        "policies/trusted-registries",
        "--policies",
        path_str(&set),
        "--module-cache",
        path_str(&cache),
        "--output",
        "json",
        path_str(&go_json),
    ]);
    assert_eq!(
        go_run.status.code(),
        Some(0),
        "the Go module fails the shared suite:\n{}{}",
        stdout(&go_run),
        stderr(&go_run)
    );

    let (rust_cases, go_cases) = (read_json(&rust_json), read_json(&go_json));
    let (rust_cases, go_cases) = (
        rust_cases.as_array().cloned().unwrap_or_default(),
        go_cases.as_array().cloned().unwrap_or_default(),
    );
    assert!(
        rust_cases.len() >= 90,
        "only {} cases in the shared suites",
        rust_cases.len()
    );
    assert_eq!(rust_cases.len(), go_cases.len());
    let mut violations = 0;
    for (rust_case, go_case) in rust_cases.iter().zip(&go_cases) {
        assert_eq!(rust_case["status"], "passed", "{rust_case}");
        // Verdict, denial, warnings, and each policy's violations (key, message,
        // path, summary), advice and failure: byte for byte.
        assert_eq!(
            rust_case, go_case,
            "case {} differs between Rust and Go",
            rust_case["name"]
        );
        for policy in rust_case["verdict"]["policies"]
            .as_array()
            .into_iter()
            .flatten()
        {
            violations += policy["violations"].as_array().map_or(0, Vec::len);
        }
    }
    assert!(
        violations >= 30,
        "the suites compared only {violations} violations"
    );
}

/// `plate-policy run` of the hostile Go module with `behaviour` on the 3-container
/// Deployment.
fn run_hostile(behaviour: &str, extra: &[&str]) -> (Option<i32>, String) {
    let module = support::go::hostile();
    let cache = support::go::module_cache();
    let settings = json!({ "behaviour": behaviour }).to_string();
    let mut args = vec![
        "run",
        path_str(&module),
        "-f",
        "examples/plate-api-deployment.yaml",
        "--env",
        "prod",
        "--settings",
        &settings,
        "--module-cache",
        path_str(&cache),
        "-o",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = plate_policy(&args);
    (
        out.status.code(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

#[test]
fn a_go_policy_is_contained_whatever_it_does() {
    // (behaviour, exit code of `run`, what its output must say)
    let table: &[(&str, i32, &str)] = &[
        ("allow", 0, "\"allowed\": true"),
        ("loop", 2, "exceeded its time limit of 250 ms"),
        ("sleep", 2, "exceeded its time limit of 250 ms"),
        ("memory", 2, "exceeded its memory limit of 64 MiB"),
        (
            "panic",
            2,
            "trapped: panic: runtime error: index out of range",
        ),
        ("exit", 2, "exited with status 3 before answering"),
        (
            "deadlock",
            2,
            "fatal error: all goroutines are asleep - deadlock!",
        ),
        // A megabyte on each stream: allowed, the output bounded in the log.
        ("output", 0, "\"allowed\": true"),
        // Files, environment, arguments, network: it would deny, naming what it reached.
        ("escape", 0, "\"allowed\": true"),
        // A fresh sandbox per evaluation: a global counter starts again.
        ("state", 1, "call 1 of this sandbox"),
    ];
    for (behaviour, code, needle) in table {
        let (got, output) = run_hostile(behaviour, &[]);
        assert_eq!(got, Some(*code), "{behaviour}: {output}");
        assert!(
            output.contains(needle),
            "{behaviour}: expected {needle:?} in:\n{output}"
        );
    }
}

#[test]
fn a_go_policy_reports_violations_with_key_path_summary_and_warnings() {
    let (code, output) = run_hostile("deny", &[]);
    assert_eq!(code, Some(1), "{output}");
    let verdict: Value = serde_json::from_str(&output).unwrap_or_else(|e| panic!("{e}: {output}"));
    assert_eq!(verdict["allowed"], false);
    let violation = &verdict["violations"][0];
    assert_eq!(violation["key"], "label:team");
    assert_eq!(violation["path"], "metadata.labels");
    assert_eq!(violation["summary"], "no team label");
    assert_eq!(verdict["warnings"], json!(["advice from Go"]));
}

#[test]
fn a_go_policy_reads_context_objects_through_the_lookup_import() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let issuer = dir.path().join("issuer.yaml");
    std::fs::write(
        &issuer,
        "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata: {name: letsencrypt-prod}\nspec:\n  acme: {server: 'https://acme-v02.api.letsencrypt.org/directory'}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (code, output) = run_hostile("lookup", &["--context", path_str(&issuer)]);
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains("found=true server=https://acme-v02.api.letsencrypt.org/directory"),
        "{output}"
    );
    // Without the kind in its context, the host refuses and says how to allow it.
    let (code, output) = run_hostile("lookup", &[]);
    assert_eq!(code, Some(2), "{output}");
    assert!(
        output.contains("lookup of cert-manager.io/v1 ClusterIssuer refused"),
        "{output}"
    );
}

fn review(uid: &str, kind: &str) -> Vec<u8> {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": kind},
            "resource": {"group": "", "version": "v1", "resource": format!("{}s", kind.to_lowercase())},
            "name": "x",
            "namespace": "plate-prod",
            "operation": "CREATE",
            "userInfo": {"username": "test"},
            "object": {"apiVersion": "v1", "kind": kind, "metadata": {"name": "x"}},
        }
    })
    .to_string()
    .into_bytes()
}

/// (policy name, behaviour, kind it validates, what its warning must say)
const HOSTILE_GO: &[(&str, &str, &str, &str)] = &[
    (
        "go-looper",
        "loop",
        "ConfigMap",
        "exceeded its time limit of 100 ms",
    ),
    (
        "go-sleeper",
        "sleep",
        "Secret",
        "exceeded its time limit of 100 ms",
    ),
    (
        "go-hog",
        "memory",
        "Service",
        "exceeded its memory limit of 32 MiB",
    ),
    (
        "go-panicker",
        "panic",
        "ServiceAccount",
        "panic: runtime error",
    ),
    ("go-exiter", "exit", "Endpoints", "exited with status 3"),
];

/// A policy set of the hostile Go module under several names, plus one honest Go
/// entry (behaviour deny, enforce) for Pods and one chatty entry for LimitRanges.
fn hostile_go_set(dir: &Path) {
    let module = support::go::hostile();
    let mut yaml = format!(
        "apiVersion: policy.plate.dev/v1alpha1\nkind: PolicySet\nmetadata: {{name: go}}\nspec:\n  policies:\n    - name: go-honest\n      module: {m}\n      settings: {{behaviour: deny}}\n      match: {{kinds: [Pod]}}\n    - name: go-chatty\n      module: {m}\n      settings: {{behaviour: output}}\n      match: {{kinds: [LimitRange]}}\n",
        m = module.display()
    );
    for (name, behaviour, kind, _) in HOSTILE_GO {
        yaml.push_str(&format!(
            "    - name: {name}\n      module: {m}\n      settings: {{behaviour: {behaviour}}}\n      failurePolicy: Ignore\n      timeoutMs: 100\n      memoryMiB: 32\n      match: {{kinds: [{kind}]}}\n",
            m = module.display()
        ));
    }
    std::fs::write(dir.join("policies.yaml"), yaml).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn hostile_go_policies_under_load_fail_alone_and_output_is_logged_bounded() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    hostile_go_set(dir.path());
    let cache = support::go::module_cache();
    let mut server = Server::dev_with_policies(
        dir.path(),
        &[
            "--request-timeout-ms",
            "30000",
            "--module-cache",
            path_str(&cache),
        ],
    );
    let config = client_config(&dir.path().join("certs/ca.crt"), None);
    let addr = server.addr;
    let deadline = Instant::now() + Duration::from_secs(5);

    let mut attackers = Vec::new();
    for (name, _, kind, needle) in HOSTILE_GO {
        let config = Arc::clone(&config);
        let body = review(name, kind);
        attackers.push(std::thread::spawn(
            move || -> Result<(u32, Duration), String> {
                let mut conn = Connection::open(addr, &config).map_err(|e| e.to_string())?;
                let (mut count, mut slowest) = (0u32, Duration::ZERO);
                while Instant::now() < deadline {
                    let start = Instant::now();
                    let r = conn.review(&body).map_err(|e| format!("{name}: {e}"))?;
                    slowest = slowest.max(start.elapsed());
                    let answer = r.json();
                    if r.status != 200 || answer["response"]["allowed"] != true {
                        return Err(format!("{name}: {answer}"));
                    }
                    let warnings = answer["response"]["warnings"].to_string();
                    if !warnings.contains(needle) {
                        return Err(format!("{name}: expected {needle:?} in {warnings}"));
                    }
                    count += 1;
                }
                Ok((count, slowest))
            },
        ));
    }

    // Meanwhile the honest Go policy answers right, with its violation.
    let mut conn = Connection::open(addr, &config).unwrap_or_else(|e| panic!("{e}"));
    let mut honest = 0;
    while Instant::now() < deadline {
        let denied = conn
            .review(&review("honest", "Pod"))
            .unwrap_or_else(|e| panic!("{e}"));
        let answer = denied.json();
        assert_eq!(answer["response"]["allowed"], false, "{answer}");
        let message = answer["response"]["status"]["message"].to_string();
        assert!(
            message.contains("[go-honest]") && message.contains("no \\\"team\\\" label"),
            "{message}"
        );
        honest += 1;
    }
    assert!(honest > 5, "only {honest} honest requests were answered");
    for attacker in attackers {
        let (count, slowest) = attacker
            .join()
            .unwrap_or_else(|_| Err("attacker panicked".into()))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(count > 0);
        // The policies' limit is 100 ms, the request deadline 30 s (loose bound for
        // a 2-core machine running the clients and the server).
        assert!(
            slowest < Duration::from_millis(2000),
            "a hostile request took {slowest:?}"
        );
    }

    // A megabyte on each stream: the answer is allowed, the log gets the policy's
    // name and at most the bounded part, and says how much was dropped.
    let chatty = conn
        .review(&review("chatty", "LimitRange"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(chatty.json()["response"]["allowed"], true);
    let line = server.wait_for_log("\"policy\":\"go-chatty\"", Duration::from_secs(10));
    let entry: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let fields = &entry["fields"];
    assert_eq!(fields["message"], "policy output", "{line}");
    let kept = fields["output"].as_str().map_or(0, str::len);
    assert!(kept > 0 && kept <= 16 << 10, "kept {kept} bytes: {line}");
    assert_eq!(fields["dropped_bytes"], (1 << 20) - (16 << 10), "{line}");
}

#[test]
fn a_corrupt_compiled_module_in_the_cache_is_rebuilt_not_trusted() {
    let module = support::go::trusted_registries();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cache = dir.path().join("cache");
    let bench = || {
        let out = plate_policy(&[
            "bench",
            path_str(&module),
            "-f",
            "examples/plate-api-deployment.yaml",
            "-n",
            "1",
            "--module-cache",
            path_str(&cache),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out)
    };
    let first = bench();
    assert!(first.contains("(compiled)"), "{first}");
    assert!(bench().contains("(from the module cache)"));

    // Flip one byte of the compiled code in every entry.
    for entry in std::fs::read_dir(&cache).unwrap_or_else(|e| panic!("{e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let mut bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
        let at = bytes.len() / 2;
        bytes[at] ^= 0x40;
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));
    }
    let after = bench();
    assert!(
        after.contains("(compiled)") && after.contains("allowed"),
        "a corrupt entry must be compiled again: {after}"
    );
    // ... and written again, sound.
    assert!(bench().contains("(from the module cache)"));
}
