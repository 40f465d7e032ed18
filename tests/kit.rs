//! The policy kit through the binary: `new` scaffolds a crate that builds to wasm
//! outside the workspace, whose suite passes and which `check`, `run`, `inspect` and
//! `bench` then use; `run`, `inspect` and `bench` on built-in modules; `test
//! --policies` and suite files given by path.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::Hostile;
use support::command::{
    assert_bad_input, code, plate_policy, plate_policy_in, s, stderr, stdout, temp_dir, write,
};
use support::docs::{self, Block, Session};

const DEPLOYMENT: &str = "policies/no-latest-tag/tests/fixtures/plate-api-deployment.yaml";

/// `cargo build` of a scaffolded crate, as its author runs it: its own target
/// directory under `dir`, none of the outer build's flags, wrappers or lock, and
/// no network (the crates it needs are the ones the outer build fetched).
fn build_to_wasm(dir: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args([
            "build",
            "--target",
            "wasm32-unknown-unknown",
            "--release",
            "--offline",
            "-j",
            "2",
        ])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", dir.join("target"));
    for var in [
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "CARGO_LLVM_COV",
        "LLVM_PROFILE_FILE",
    ] {
        command.env_remove(var);
    }
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo: {e}"));
    assert!(
        out.status.success(),
        "cargo build of the scaffold failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Done-when of the kit: scaffold outside the workspace, build, run the
/// starter suite, check manifests with the module, by running the walkthrough of
/// docs/authoring.md as it is shown. Builds serde for wasm once (seconds to a
/// minute on two cores); everything else reuses that build.
#[test]
fn a_scaffolded_policy_builds_passes_its_suite_and_checks_manifests() {
    let tmp = temp_dir();
    let repo = support::repo_root()
        .canonicalize()
        .unwrap_or_else(|e| panic!("{e}"));
    let outside = tmp.path().canonicalize().unwrap_or_else(|e| panic!("{e}"));
    assert!(!outside.starts_with(&repo), "the temp dir must be outside");
    let sdk = repo.join("policies/sdk");

    // The walkthrough of docs/authoring.md, as shown there: `new`, `cargo build`,
    // the starter suite, a `check` of examples/authoring/shop.yaml.
    let walkthrough: Vec<Block> = docs::blocks(&repo.join("docs/authoring.md"))
        .into_iter()
        .filter(|b| b.lang == "console")
        .filter(|b| {
            b.marker
                .as_deref()
                .is_some_and(|m| m.starts_with("walkthrough"))
        })
        .collect();
    assert_eq!(walkthrough.len(), 3, "the walkthrough's blocks");
    let mut session = Session::new(outside.clone());
    session.cargo_build = Some(build_to_wasm);
    let drifts: Vec<String> = walkthrough
        .iter()
        .flat_map(|block| docs::run_block(block, &mut session))
        .collect();
    assert!(drifts.is_empty(), "{}", drifts.join("\n"));

    let crate_dir = outside.join("require-owner");
    assert_eq!(session.cwd, crate_dir);
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap_or_default();
    assert!(
        manifest.contains(&format!("plate-policy-sdk = {{ path = {:?} }}", s(&sdk))),
        "{manifest}"
    );
    let config = std::fs::read_to_string(crate_dir.join(".cargo/config.toml")).unwrap_or_default();
    assert!(config.contains("link-arg=-zstack-size=65536"), "{config}");
    let wasm = crate_dir.join("target/wasm32-unknown-unknown/release/require_owner.wasm");
    assert!(wasm.is_file(), "no {}", wasm.display());

    // What the module is.
    let out = plate_policy_in(&crate_dir, &["inspect", s(&wasm)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("abi version:     2\n"), "{text}");
    assert!(text.contains("context lookups: no\n"), "{text}");
    assert!(text.contains("plate_validate  "), "{text}");
    let kib = |k: u64| format!("{} pages ({k} KiB)", k / 64);
    assert!(
        text.contains(&kib(1024)),
        "the ABI's link flags give 1 MiB of initial memory: {text}"
    );

    // `check` with a set the test writes: team label required, in prod only.
    let work = outside.join("work");
    let set = write(
        &work,
        "owners.yaml",
        &format!(
            "apiVersion: policy.plate.dev/v1alpha1\nkind: PolicySet\nmetadata: {{name: owners}}\nspec:\n  environments:\n    label: environment\n    namePatterns: [{{pattern: \"*-prod\", environment: prod}}]\n  policies:\n    - name: owners\n      module: {}\n      environments: [prod]\n      match: {{kinds: [Pod, apps/Deployment]}}\n      settings: {{label: team}}\n",
            s(&wasm)
        ),
    );
    let manifests = write(
        &work,
        "shop.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  namespace: shop-prod\n  labels: {team: shop}\nspec: {}\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: worker\n  namespace: shop-prod\n  labels:\n    owner: someone\nspec: {}\n",
    );
    let out = plate_policy_in(
        &work,
        &[
            "check",
            "-f",
            "shop.yaml",
            "--env",
            "prod",
            "--policies",
            s(&set),
        ],
    );
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        stdout(&out),
        "shop.yaml:15: DENY  owners  Pod/shop-prod/worker  Pod/shop-prod/worker has no \"team\" label; add team=<who answers for it>\n\
         checked 2 object(s) for prod: 1 denied, 0 allowed with warnings\n"
    );
    assert_eq!(stderr(&out), "");

    // `run` and `bench` of the module on one object, with inline settings.
    let out = plate_policy_in(
        &work,
        &["run", s(&wasm), "-f", s(&manifests), "--env", "prod"],
    );
    assert_eq!(
        code(&out),
        2,
        "a file with two objects is not one: {}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("shop.yaml holds 2 objects"),
        "{}",
        stderr(&out)
    );
    write(
        &work,
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: w\n  namespace: shop-stg\n",
    );
    let out = plate_policy_in(
        &work,
        &[
            "run",
            s(&wasm),
            "-f",
            "pod.yaml",
            "--env",
            "stg",
            "-o",
            "json",
        ],
    );
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    let verdict: Value = serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(verdict["violations"][0]["key"], "label:owner", "{verdict}");
    assert_eq!(verdict["violations"][0]["line"], 4, "{verdict}");
    let out = plate_policy_in(
        &work,
        &[
            "bench",
            s(&wasm),
            "-f",
            "pod.yaml",
            "-n",
            "25",
            "--settings",
            r#"{"label":"team"}"#,
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("25 evaluations, each in a fresh sandbox: median "),
        "{}",
        stdout(&out)
    );
}

#[test]
fn new_uses_the_checkouts_sdk_inside_it_and_a_version_outside() {
    let tmp = temp_dir();
    let out = plate_policy_in(tmp.path(), &["new", "outside"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let manifest =
        std::fs::read_to_string(tmp.path().join("outside/Cargo.toml")).unwrap_or_default();
    assert!(
        manifest.contains(&format!(
            "plate-policy-sdk = \"{}\"",
            env!("CARGO_PKG_VERSION")
        )),
        "{manifest}"
    );
    let pinned = plate_policy_in(tmp.path(), &["new", "pinned", "--sdk-version", "0.9.1"]);
    assert_eq!(code(&pinned), 0, "{}", stderr(&pinned));
    let manifest =
        std::fs::read_to_string(tmp.path().join("pinned/Cargo.toml")).unwrap_or_default();
    assert!(
        manifest.contains("plate-policy-sdk = \"0.9.1\""),
        "{manifest}"
    );

    // Inside the checkout (its target/ is ignored by git): a relative path.
    let inside_root = support::repo_root().join("target");
    std::fs::create_dir_all(&inside_root).unwrap_or_else(|e| panic!("{e}"));
    let inside = tempfile::tempdir_in(&inside_root).unwrap_or_else(|e| panic!("{e}"));
    let out = plate_policy_in(inside.path(), &["new", "inner"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let manifest =
        std::fs::read_to_string(inside.path().join("inner/Cargo.toml")).unwrap_or_default();
    let path = manifest
        .lines()
        .find_map(|l| l.strip_prefix("plate-policy-sdk = { path = \""))
        .and_then(|rest| rest.strip_suffix("\" }"))
        .unwrap_or_else(|| panic!("no path dependency: {manifest}"));
    assert!(path.starts_with("../"), "{path}");
    let resolved = inside
        .path()
        .join("inner")
        .join(path)
        .canonicalize()
        .unwrap_or_default();
    assert_eq!(
        resolved,
        support::repo_root()
            .join("policies/sdk")
            .canonicalize()
            .unwrap_or_default()
    );
}

#[test]
fn new_refuses_bad_names_existing_directories_and_other_sdks() {
    let tmp = temp_dir();
    for (args, message) in [
        (vec!["new", "Bad_Name"], "\"Bad_Name\" is not a policy name"),
        (
            vec!["new", "x", "--sdk-path", "."],
            "holds no Cargo.toml of the plate-policy-sdk crate",
        ),
        (
            vec!["new", "x", "--sdk-path", "nowhere"],
            "--sdk-path nowhere: ",
        ),
    ] {
        let out = plate_policy_in(tmp.path(), &args);
        assert_eq!(code(&out), 2, "{args:?}");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
        assert!(!tmp.path().join("x").exists(), "{args:?} wrote nothing");
    }
    std::fs::create_dir(tmp.path().join("taken")).unwrap_or_else(|e| panic!("{e}"));
    let out = plate_policy_in(tmp.path(), &["new", "taken"]);
    assert_bad_input(&out, "taken already exists");
}

#[test]
fn run_prints_the_verdict_of_one_module_with_lines_and_settings() {
    let out = plate_policy(&[
        "run",
        "builtin:no-latest-tag",
        "-f",
        DEPLOYMENT,
        "--env",
        "prod",
    ]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "VIOLATION  container:api  {DEPLOYMENT}:19\n  message: container \"api\" uses image \"harbor.cocdev.co.kr/plate/plate-api:latest\": the \"latest\" tag is not allowed in prod; pin a version tag or a digest\n  path:    spec.template.spec.containers[0].image\n  summary: api: harbor.cocdev.co.kr/plate/plate-api:latest uses the \"latest\" tag; pin a version or digest\nno-latest-tag on Deployment/plate-prod/plate-api in prod: 1 violation\n"
        )
    );
    // Settings replace the policy's defaults, and the policy validates them.
    let out = plate_policy(&[
        "run",
        "builtin:no-latest-tag",
        "-f",
        DEPLOYMENT,
        "--env",
        "prod",
        "--settings",
        r#"{"exemptImages": ["harbor.cocdev.co.kr/plate/*"]}"#,
    ]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).ends_with("in prod: allowed\n"),
        "{}",
        stdout(&out)
    );
    let dir = temp_dir();
    let settings = write(dir.path(), "s.yaml", "forbiddenTags: []\n");
    let out = plate_policy(&[
        "run",
        "builtin:no-latest-tag",
        "-f",
        DEPLOYMENT,
        "--env",
        "prod",
        "--settings",
        &format!("@{}", s(&settings)),
    ]);
    assert_bad_input(&out, "rejected its settings: forbiddenTags is empty");
    for (settings, message) in [
        ("{nope", "--settings is not JSON"),
        ("[1]", "--settings: settings are a JSON object"),
    ] {
        let out = plate_policy(&[
            "run",
            "builtin:no-latest-tag",
            "-f",
            DEPLOYMENT,
            "--env",
            "prod",
            "--settings",
            settings,
        ]);
        assert_eq!(code(&out), 2);
        assert!(stderr(&out).contains(message), "{}", stderr(&out));
    }
    let out = plate_policy(&["run", "builtin:nope", "-f", DEPLOYMENT, "--env", "prod"]);
    assert_bad_input(&out, "there is no built-in module \"nope\"");
}

#[test]
fn run_answers_lookups_from_context_files_and_reports_failures() {
    let issuers = "policies/no-staging-issuer/tests/fixtures/cluster-issuers.yaml";
    let dir = temp_dir();
    let ingress = write(
        dir.path(),
        "ingress.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: c\n  namespace: plate-prod\n  annotations:\n    cert-manager.io/cluster-issuer: letsencrypt\nspec: {}\n",
    );
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "builtin:no-staging-issuer",
            "-f",
            s(&ingress),
            "--env",
            "prod",
            "-o",
            "json",
        ];
        args.extend_from_slice(extra);
        let out = plate_policy(&args);
        let verdict: Value = serde_json::from_str(&stdout(&out))
            .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&out), stderr(&out)));
        (code(&out), verdict)
    };
    let (exit, verdict) = run(&["--context", issuers]);
    assert_eq!(exit, 1, "{verdict}");
    let message = verdict["violations"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("whose ACME server https://acme-staging-v02"),
        "{verdict}"
    );
    assert_eq!(
        verdict["violations"][0]["line"], 7,
        "the annotation's line: {verdict}"
    );

    let wasm = dir.path().join("trap.wasm");
    std::fs::write(&wasm, Hostile::Trap.wasm()).unwrap_or_else(|e| panic!("{e}"));
    let out = plate_policy(&["run", s(&wasm), "-f", s(&ingress), "--env", "prod"]);
    assert_eq!(code(&out), 2);
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("trap: policy trapped"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn inspect_tells_abi_exports_imports_and_lookups() {
    let out = plate_policy(&["inspect", "builtin:no-staging-issuer", "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report["abi_version"], 2);
    assert_eq!(report["context_lookups"], true);
    assert_eq!(report["imports"][0]["name"], "plate.lookup_object");
    assert_eq!(report["imports"][0]["type"], "func (i32, i32) -> i64");
    let exports: Vec<&str> = report["exports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str())
        .collect();
    for name in [
        "memory",
        "plate_abi_version",
        "plate_alloc",
        "plate_validate",
        "plate_validate_settings",
    ] {
        assert!(exports.contains(&name), "{name}: {exports:?}");
    }
    let size = report["size"].as_u64().unwrap_or(0);
    assert!(size > 1000, "{report}");

    // A module with no import at all (the built-ins are one module, which imports
    // the lookup for no-staging-issuer).
    let plain = temp_dir();
    let allow_all = plain.path().join("allow-all.wasm");
    let wasm = wat::parse_file(support::repo_root().join("policies/testing/allow-all.wat"))
        .unwrap_or_else(|e| panic!("allow-all.wat: {e}"));
    std::fs::write(&allow_all, wasm).unwrap_or_else(|e| panic!("{e}"));
    let out = plate_policy(&["inspect", s(&allow_all)]);
    assert_eq!(code(&out), 0);
    assert!(
        stdout(&out).contains("context lookups: no\n"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("imports:         none\n"),
        "{}",
        stdout(&out)
    );

    // A module the host refuses is still described, with the reason.
    let dir = temp_dir();
    let wasi = dir.path().join("wasi.wasm");
    std::fs::write(&wasi, Hostile::ImportsWasi.wasm()).unwrap_or_else(|e| panic!("{e}"));
    let out = plate_policy(&["inspect", s(&wasi)]);
    assert_eq!(code(&out), 2);
    let text = stdout(&out);
    assert!(text.contains("abi version:     none: the host refuses it: it imports \"wasi_snapshot_preview1\".\"sock_open\""), "{text}");
    assert!(
        text.contains("wasi_snapshot_preview1.sock_open  func (i32, i32, i32) -> i32"),
        "{text}"
    );
    let v1 = dir.path().join("v1.wasm");
    std::fs::write(&v1, Hostile::AllowAll.wasm()).unwrap_or_else(|e| panic!("{e}"));
    let out = plate_policy(&["inspect", s(&v1)]);
    assert!(
        stdout(&out).contains("abi version:     1\n"),
        "{}",
        stdout(&out)
    );
    let junk = write(dir.path(), "junk.wasm", "not wasm");
    let out = plate_policy(&["inspect", s(&junk)]);
    assert_bad_input(&out, "is not a WebAssembly module");
}

#[test]
fn bench_prints_median_and_p99_of_fresh_evaluations() {
    let out = plate_policy(&[
        "bench",
        "builtin:no-latest-tag",
        "-f",
        DEPLOYMENT,
        "--env",
        "prod",
        "-n",
        "40",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!(
            "no-latest-tag on {DEPLOYMENT}: 1 violation(s), environment prod\n"
        )),
        "{text}"
    );
    assert!(text.contains("(precompiled)"), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("40 evaluations"))
        .unwrap_or_else(|| panic!("{text}"));
    let number = |after: &str| -> f64 {
        line.split(after)
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{after} in {line}"))
    };
    let (median, p99, min, max) = (
        number("median "),
        number("p99 "),
        number("min "),
        number("max "),
    );
    assert!(
        min > 0.0 && min <= median && median <= p99 && p99 <= max,
        "{line}"
    );
    let out = plate_policy(&[
        "bench",
        "builtin:no-latest-tag",
        "-f",
        DEPLOYMENT,
        "-n",
        "0",
    ]);
    assert_eq!(code(&out), 2);
}

#[test]
fn test_takes_a_policy_set_and_suite_files_from_the_command_line() {
    let suite = "policies/no-latest-tag/tests/platform.yaml";
    let out = plate_policy(&["test", suite]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    // The built-in set with no-latest-tag in warn mode: the deny cases now fail.
    let dir = temp_dir();
    let builtin = std::fs::read_to_string(support::repo_root().join("policies/policies.yaml"))
        .unwrap_or_default();
    let warned = builtin.replacen("mode: enforce", "mode: warn", 1);
    assert_ne!(warned, builtin);
    let set = write(dir.path(), "warned.yaml", &warned);
    let out = plate_policy(&["test", suite, "--policies", s(&set)]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("expected deny, got warn"),
        "{}",
        stdout(&out)
    );
    let broken = write(
        dir.path(),
        "broken.yaml",
        "apiVersion: policy.plate.dev/v1alpha1\nkind: Nope\n",
    );
    let out = plate_policy(&["test", suite, "--policies", s(&broken)]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains(s(&broken)), "{}", stderr(&out));

    // A suite file anywhere, not only in a directory named tests.
    let loose: PathBuf = write(
        dir.path(),
        "loose-suite.yml",
        "policy: no-latest-tag\ncases:\n  - name: latest in prod\n    environment: prod\n    object: {apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {containers: [{name: a, image: nginx}]}}\n    expect: deny\n",
    );
    let out = plate_policy(&["test", s(&loose)]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("1 passed, 0 failed"),
        "{}",
        stdout(&out)
    );
}

/// `go` as the walkthrough of docs/authoring-go.md shows it: the environment words,
/// then go's own arguments; test results are never taken from Go's cache.
fn run_go(dir: &Path, words: &[&str]) -> Vec<String> {
    let at = words.iter().position(|w| *w == "go").unwrap_or(0);
    let mut command = Command::new("go");
    let mut args: Vec<&str> = words[at + 1..].to_vec();
    if args.first() == Some(&"test") {
        args.insert(1, "-count=1");
    }
    command.args(&args).current_dir(dir);
    for word in &words[..at] {
        if let Some((key, value)) = word.split_once('=') {
            command.env(key, value);
        }
    }
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run go (Go policies need Go on PATH): {e}"));
    assert!(
        out.status.success(),
        "{words:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The Done-when of Go authoring: the walkthrough of docs/authoring-go.md, as
/// shown, outside the repository: `new --lang go`, `go build` to a WASI reactor,
/// `go test`, the starter suite, a `check`; then the module without a checkout
/// (the SDK copied in) builds too.
#[test]
fn a_scaffolded_go_policy_builds_with_go_passes_its_suite_and_checks_manifests() {
    let tmp = temp_dir();
    let repo = support::repo_root()
        .canonicalize()
        .unwrap_or_else(|e| panic!("{e}"));
    let outside = tmp.path().canonicalize().unwrap_or_else(|e| panic!("{e}"));
    assert!(!outside.starts_with(&repo), "the temp dir must be outside");

    let walkthrough: Vec<Block> = docs::blocks(&repo.join("docs/authoring-go.md"))
        .into_iter()
        .filter(|b| b.lang == "console")
        .filter(|b| {
            b.marker
                .as_deref()
                .is_some_and(|m| m.starts_with("walkthrough"))
        })
        .collect();
    assert_eq!(walkthrough.len(), 3, "the walkthrough's blocks");
    let mut session = Session::new(outside.clone());
    session.go = Some(run_go);
    let drifts: Vec<String> = walkthrough
        .iter()
        .flat_map(|block| docs::run_block(block, &mut session))
        .collect();
    assert!(drifts.is_empty(), "{}", drifts.join("\n"));
    let module_dir = outside.join("require-owner");
    let go_mod = std::fs::read_to_string(module_dir.join("go.mod")).unwrap_or_default();
    assert!(
        go_mod.contains(&format!(
            "replace policy.plate.dev/sdk => {}",
            s(&repo.join("policies/sdk-go"))
        )),
        "{go_mod}"
    );
    let out = plate_policy_in(&module_dir, &["inspect", "require-owner.wasm"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("abi version:     2\n"),
        "{}",
        stdout(&out)
    );

    // Outside a checkout, without --sdk-path: a copy of the SDK, and it builds.
    let out = plate_policy_in(&outside, &["new", "--lang", "go", "copied"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let copied = outside.join("copied");
    let go_mod = std::fs::read_to_string(copied.join("go.mod")).unwrap_or_default();
    assert!(
        go_mod.contains("replace policy.plate.dev/sdk => ./plate-sdk"),
        "{go_mod}"
    );
    run_go(
        &copied,
        &[
            "GOOS=wasip1",
            "GOARCH=wasm",
            "go",
            "build",
            "-buildmode=c-shared",
            "-o",
            "copied.wasm",
            ".",
        ],
    );
    assert!(copied.join("copied.wasm").is_file());
    // A Rust SDK version makes no sense for Go.
    let out = plate_policy_in(
        &outside,
        &["new", "--lang", "go", "x", "--sdk-version", "1.0.0"],
    );
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("--sdk-version is for Rust policies"),
        "{}",
        stderr(&out)
    );
}
