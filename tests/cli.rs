//! The `test` and `check` commands through the real binary: verdicts, exit codes,
//! and a clear error (file, line, field) with exit code 2 for every kind of bad input.

mod support;

use std::path::Path;
use support::command::{code, plate_policy, s, stderr, stdout, temp_dir, with_stdin, write};
use support::{Hostile, hostile_set, repo_root};

#[test]
fn check_denies_latest_in_prod_and_allows_it_in_stg() {
    let prod = plate_policy(&["check", "-f", "examples/plate-prod.yaml", "--env", "prod"]);
    let out = stdout(&prod);
    assert_eq!(code(&prod), 1, "{out}{}", stderr(&prod));
    assert!(
        out.contains("DENY  no-latest-tag  Deployment/plate-prod/plate-api  container \"api\" uses image \"harbor.cocdev.co.kr/plate/plate-api:latest\""),
        "{out}"
    );
    assert!(
        !out.contains("DENY  no-latest-tag  Deployment/plate-prod/plate-web"),
        "nginx:1.25 is pinned: {out}"
    );
    // The advisory rule reports Docker Hub without denying.
    assert!(
        out.contains("WARN  trusted-registries  Deployment/plate-prod/plate-web"),
        "{out}"
    );
    assert!(
        out.contains("require-namespace-labels  Namespace/fe-web-prod"),
        "{out}"
    );

    let stg = plate_policy(&["check", "-f", "examples/plate-prod.yaml", "--env", "stg"]);
    assert!(!stdout(&stg).contains("no-latest-tag"), "{}", stdout(&stg));
}

#[test]
fn check_reads_an_admission_review_from_stdin() {
    let review = std::fs::read_to_string(repo_root().join("tests/fixtures/review-pod-latest.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = with_stdin(&["check", "-f", "-", "--env", "prod"], &review);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("DENY  no-latest-tag  Pod/plate-prod/web"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn check_exits_2_on_bad_input_naming_file_and_line() {
    let dir = temp_dir();
    let missing = dir.path().join("missing.yaml");
    let out = plate_policy(&["check", "-f", s(&missing), "--env", "prod"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("missing.yaml: cannot read"),
        "{}",
        stderr(&out)
    );

    let bad = write(
        dir.path(),
        "bad.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: [unclosed\n",
    );
    let out = plate_policy(&["check", "-f", s(&bad), "--env", "prod"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("bad.yaml:3:"), "{}", stderr(&out));

    let kindless = write(
        dir.path(),
        "kindless.yaml",
        "apiVersion: v1\nkind: Pod\n---\napiVersion: v1\nmetadata: {name: x}\n",
    );
    let out = plate_policy(&["check", "-f", s(&kindless), "--env", "prod"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("kindless.yaml:4: document 2: the object has no kind"),
        "{}",
        stderr(&out)
    );

    let scalar = write(dir.path(), "scalar.yaml", "just a string\n");
    let out = plate_policy(&["check", "-f", s(&scalar), "--env", "prod"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("expected a Kubernetes object"),
        "{}",
        stderr(&out)
    );

    let out = plate_policy(&[
        "check",
        "-f",
        "examples/plate-prod.yaml",
        "--env",
        "production",
    ]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("\"production\" is not an environment"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn shipped_suites_pass() {
    let out = plate_policy(&["test", "policies"]);
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{text}{}", stderr(&out));
    let summary = text.lines().last().unwrap_or_default();
    assert!(summary.ends_with("passed, 0 failed"), "{summary}");
    for policy in [
        "no-latest-tag",
        "no-staging-issuer",
        "require-namespace-labels",
    ] {
        assert!(
            text.contains(&format!("policies/{policy}/tests/")),
            "no suite ran for {policy}"
        );
    }
}

const WRONG_SUITE: &str = r#"policy: no-latest-tag
cases:
  - name: latest in prod is wrongly expected to pass
    environment: prod
    object:
      apiVersion: v1
      kind: Pod
      metadata: {name: p, namespace: plate-prod}
      spec:
        containers: [{name: app, image: "nginx:latest"}]
    expect: allow
  - name: right expectation, wrong message
    environment: prod
    object:
      apiVersion: v1
      kind: Pod
      metadata: {name: p, namespace: plate-prod}
      spec:
        containers: [{name: app, image: "nginx:latest"}]
    expect: deny
    message: "this text is not in the message"
  - name: a correct case
    environment: stg
    object:
      apiVersion: v1
      kind: Pod
      metadata: {name: p, namespace: plate-stg}
      spec:
        containers: [{name: app, image: "nginx:latest"}]
    expect: allow
"#;

#[test]
fn a_wrong_expectation_fails_the_run() {
    let dir = temp_dir();
    let suite = write(dir.path(), "tests/wrong.yaml", WRONG_SUITE);
    let junit = dir.path().join("report.xml");
    let out = plate_policy(&["test", s(&suite), "--output", "junit", s(&junit)]);
    let text = stdout(&out);
    assert_eq!(code(&out), 1, "{text}");
    assert!(text.contains("FAIL"), "{text}");
    assert!(text.contains("expected allow, got deny"), "{text}");
    assert!(
        text.contains(
            "expected deny with a message containing \"this text is not in the message\""
        ),
        "{text}"
    );
    assert!(text.contains("PASS"), "{text}");
    assert!(text.trim_end().ends_with("1 passed, 2 failed"), "{text}");
    let xml = std::fs::read_to_string(&junit).unwrap_or_else(|e| panic!("junit report: {e}"));
    assert!(xml.contains("tests=\"3\""), "{xml}");
    assert!(xml.contains("failures=\"2\""), "{xml}");
    assert!(
        xml.contains("latest in prod is wrongly expected to pass"),
        "{xml}"
    );
}

#[test]
fn bad_suites_exit_2() {
    let dir = temp_dir();
    let malformed = write(
        dir.path(),
        "tests/malformed.yaml",
        "policy: no-latest-tag\ncases:\n  - name: x\n    expect: [\n",
    );
    let out = plate_policy(&["test", s(&malformed)]);
    assert_eq!(code(&out), 2, "{}", stdout(&out));
    assert!(stdout(&out).contains("malformed.yaml:"), "{}", stdout(&out));

    let unknown = write(
        dir.path(),
        "tests/unknown.yaml",
        "policy: no-latest-tag\ncases:\n  - name: x\n    expected: allow\n",
    );
    let out = plate_policy(&["test", s(&unknown)]);
    assert_eq!(code(&out), 2);
    assert!(stdout(&out).contains("expected"), "{}", stdout(&out));

    let missing_fixture = write(
        dir.path(),
        "tests/missing.yaml",
        "policy: no-latest-tag\ncases:\n  - name: x\n    file: fixtures/nope.yaml\n    expect: allow\n",
    );
    let out = plate_policy(&["test", s(&missing_fixture)]);
    assert_eq!(code(&out), 2);
    assert!(
        stdout(&out).contains("nope.yaml: cannot read"),
        "{}",
        stdout(&out)
    );

    let bad_settings = write(
        dir.path(),
        "tests/settings.yaml",
        "policy: no-latest-tag\ncases:\n  - name: x\n    settings: {forbiddenTags: []}\n    object: {apiVersion: v1, kind: Pod, metadata: {name: p}}\n    expect: allow\n",
    );
    let out = plate_policy(&["test", s(&bad_settings)]);
    assert_eq!(code(&out), 2);
    assert!(
        stdout(&out).contains("forbiddenTags is empty"),
        "{}",
        stdout(&out)
    );
}

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: plate-prod}\nspec:\n  containers: [{name: a, image: nginx:1.25}]\n";

#[test]
fn failing_policies_take_their_failure_outcome() {
    let dir = temp_dir();
    let set = hostile_set(
        dir.path(),
        &[
            ("looper", Hostile::InfiniteLoop, "Fail"),
            ("hog", Hostile::MemoryHog, "Ignore"),
            ("trapper", Hostile::Trap, "Ignore"),
            ("fine", Hostile::AllowAll, "Fail"),
        ],
    );
    let pod = write(dir.path(), "pod.yaml", POD);
    let out = plate_policy(&[
        "check",
        "-f",
        s(&pod),
        "--env",
        "prod",
        "--policies",
        s(&set),
    ]);
    let text = stdout(&out);
    assert_eq!(code(&out), 1, "{text}{}", stderr(&out));
    assert!(text.contains("DENY  looper  Pod/plate-prod/p  policy exceeded its time limit of 50 ms (failurePolicy Fail)"), "{text}");
    assert!(text.contains("WARN  hog  Pod/plate-prod/p  policy exceeded its memory limit of 8 MiB (failurePolicy Ignore)"), "{text}");
    assert!(
        text.contains("WARN  trapper  Pod/plate-prod/p  policy trapped"),
        "{text}"
    );
    assert!(!text.contains("fine"), "the healthy policy passes: {text}");
}

#[test]
fn bad_policy_sets_name_file_line_and_field() {
    let dir = temp_dir();
    let pod = write(dir.path(), "pod.yaml", POD);
    let check = |set: &Path| {
        plate_policy(&[
            "check",
            "-f",
            s(&pod),
            "--env",
            "prod",
            "--policies",
            s(set),
        ])
    };

    let unknown = write(
        dir.path(),
        "unknown.yaml",
        "apiVersion: policy.plate.dev/v1alpha1\nkind: PolicySet\nspec:\n  policies:\n    - name: a\n      module: builtin:no-latest-tag\n      match: {kinds: [Pod]}\n      timeout: 5\n",
    );
    let out = check(&unknown);
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(err.contains("unknown.yaml:8:"), "{err}");
    assert!(err.contains("timeout"), "{err}");

    let settings = write(
        dir.path(),
        "settings.yaml",
        "apiVersion: policy.plate.dev/v1alpha1\nkind: PolicySet\nspec:\n  policies:\n    - name: a\n      module: builtin:no-latest-tag\n      match: {kinds: [Pod]}\n      settings:\n        forbiddenTags: []\n",
    );
    let err = stderr(&check(&settings));
    assert!(err.contains("settings.yaml:9:"), "{err}");
    assert!(
        err.contains(
            "spec.policies[0].settings: policy \"a\" rejected its settings: forbiddenTags is empty"
        ),
        "{err}"
    );

    write(dir.path(), "notwasm.wasm", "hello");
    let not_wasm = write(
        dir.path(),
        "notwasm.yaml",
        "apiVersion: policy.plate.dev/v1alpha1\nkind: PolicySet\nspec:\n  policies:\n    - name: a\n      module: notwasm.wasm\n      match: {kinds: [Pod]}\n",
    );
    let err = stderr(&check(&not_wasm));
    assert!(err.contains("notwasm.yaml:6:"), "{err}");
    assert!(
        err.contains("notwasm.wasm is not a WebAssembly module"),
        "{err}"
    );

    let missing = write(
        dir.path(),
        "missing.yaml",
        "apiVersion: policy.plate.dev/v1alpha1\nkind: PolicySet\nspec:\n  policies:\n    - name: a\n      module: gone.wasm\n      match: {kinds: [Pod]}\n",
    );
    let err = stderr(&check(&missing));
    assert!(err.contains("missing.yaml:6:"), "{err}");
    assert!(err.contains("cannot read module"), "{err}");

    std::fs::write(dir.path().join("wasi.wasm"), Hostile::ImportsWasi.wasm())
        .unwrap_or_else(|e| panic!("{e}"));
    let wasi = write(
        dir.path(),
        "wasi.yaml",
        "apiVersion: policy.plate.dev/v1alpha1\nkind: PolicySet\nspec:\n  policies:\n    - name: a\n      module: wasi.wasm\n      match: {kinds: [Pod]}\n    - name: b\n      module: builtin:nope\n      environments: [qa]\n      match: {kinds: [pod]}\n      timeoutMs: 0\n",
    );
    let err = stderr(&check(&wasi));
    for needle in [
        "wasi.yaml:6:",
        "imports \"wasi_snapshot_preview1\".\"sock_open\"",
        "there is no built-in module \"nope\"",
        "environment \"qa\" is not defined",
        "spec.policies[1].match",
        "spec.policies[1].timeoutMs",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in: {err}");
    }
}
