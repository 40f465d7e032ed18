//! `plate-policy check` for pipelines, through the binary: several files,
//! directories and stdin; text, JSON, JUnit and GitHub output giving the same
//! verdicts; the lines of objects and fields; skipped objects with their reason;
//! Lists in Lists; `--fail-on-warn`; and errors that point at the user's text.

mod support;

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use support::command::{code, plate_policy, s, stderr, stdout, temp_dir, with_stdin, write};

/// A directory of manifests: a prod Deployment running latest (denied), a
/// kube-system Pod no policy looks at (skipped), a List in a List whose inner Pod
/// runs an untagged image (denied), and a warn-only Deployment (warned).
fn manifests(dir: &Path) {
    write(
        dir,
        "apps/api.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  namespace: plate-prod\nspec:\n  template:\n    spec:\n      containers:\n        - name: api\n          image: harbor.cocdev.co.kr/plate/api:latest\n          resources: {requests: {cpu: 1, memory: 1Gi}}\n",
    );
    write(
        dir,
        "apps/system.yml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: dns, namespace: kube-system}\nspec: {containers: [{name: c, image: coredns}]}\n",
    );
    write(
        dir,
        "nested/list.json",
        r#"{"apiVersion": "v1", "kind": "List", "items": [
  {"apiVersion": "v1", "kind": "List", "items": [
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "inner", "namespace": "plate-prod"},
     "spec": {"containers": [{"name": "c", "image": "harbor.cocdev.co.kr/plate/job", "resources": {"requests": {"cpu": 1, "memory": 1}}}]}}
  ]}
]}
"#,
    );
    write(
        dir,
        "web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: plate-prod\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          image: nginx:1.25\n",
    );
    write(dir, "README.md", "not a manifest, not read\n");
}

fn json_report(dir: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["check", "-f", s(dir), "--env", "prod", "--output", "json"];
    args.extend_from_slice(extra);
    let out = plate_policy(&args);
    let report = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", stdout(&out), stderr(&out)));
    (code(&out), report)
}

/// (object, result) of every object in a JSON report.
fn results(report: &Value) -> BTreeSet<(String, String)> {
    report["objects"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            (
                o["object"].as_str().unwrap_or_default().to_string(),
                o["result"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_directory_is_read_recursively_and_every_object_is_reported() {
    let dir = temp_dir();
    manifests(dir.path());
    let (exit, report) = json_report(dir.path(), &[]);
    assert_eq!(exit, 1, "{report}");
    let expected: BTreeSet<(String, String)> = [
        ("Deployment/plate-prod/api", "denied"),
        ("Pod/kube-system/dns", "skipped"),
        ("Pod/plate-prod/inner", "denied"),
        ("Deployment/plate-prod/web", "warned"),
    ]
    .iter()
    .map(|(o, r)| (o.to_string(), r.to_string()))
    .collect();
    assert_eq!(results(&report), expected);
    assert_eq!(report["summary"]["objects"], 4);
    assert_eq!(report["summary"]["skipped"], 1);
    let skipped = report["objects"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["result"] == "skipped")
        .cloned()
        .unwrap_or_default();
    assert!(
        skipped["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("namespace \"kube-system\" is excluded"),
        "{skipped}"
    );
}

#[test]
fn findings_name_the_file_and_the_line_of_the_field() {
    let dir = temp_dir();
    manifests(dir.path());
    let (_, report) = json_report(dir.path(), &[]);
    let api = report["objects"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["object"] == "Deployment/plate-prod/api")
        .cloned()
        .unwrap_or_default();
    assert!(
        api["file"]
            .as_str()
            .unwrap_or_default()
            .ends_with("apps/api.yaml"),
        "{api}"
    );
    assert_eq!(api["line"], 1);
    let finding = &api["findings"][0];
    assert_eq!(finding["policy"], "no-latest-tag");
    assert_eq!(finding["key"], "container:api");
    assert_eq!(finding["path"], "spec.template.spec.containers[0].image");
    // The image is on line 11 of apps/api.yaml.
    assert_eq!(finding["line"], 11, "{finding}");
}

#[test]
fn every_output_format_gives_the_same_verdicts() {
    let dir = temp_dir();
    manifests(dir.path());
    let (_, report) = json_report(dir.path(), &[]);
    let expected = results(&report);
    let run = |format: &str| {
        let out = plate_policy(&["check", "-f", s(dir.path()), "--env", "prod", "-o", format]);
        assert_eq!(code(&out), 1, "{format}: {}", stderr(&out));
        stdout(&out)
    };

    // Text: one line per finding or skip, `FILE:LINE: VERDICT  POLICY  OBJECT  MESSAGE`.
    let text = run("text");
    let mut from_text: BTreeSet<(String, String)> = BTreeSet::new();
    for line in text.lines().filter(|l| l.contains(": ")) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (verdict, object) = match fields.as_slice() {
            [_, "SKIP", object, ..] => ("skipped", *object),
            [_, "DENY", _, object, ..] => ("denied", *object),
            [_, "WARN", _, object, ..] => ("warned", *object),
            _ => continue,
        };
        // An object is denied if any line denies it.
        if verdict == "denied" {
            from_text.retain(|(o, _)| o != object);
        } else if from_text.iter().any(|(o, _)| o == object) {
            continue;
        }
        from_text.insert((object.to_string(), verdict.to_string()));
    }
    assert_eq!(from_text, expected, "text:\n{text}");
    assert!(
        text.ends_with("checked 4 object(s) for prod: 2 denied, 1 allowed with warnings, 1 skipped (no policy applies)\n"),
        "{text}"
    );

    // JUnit: a test case per object; failures are the denied ones, skipped the skipped.
    let xml = run("junit");
    let mut reader = quick_xml::Reader::from_str(&xml);
    let mut from_junit: BTreeSet<(String, String)> = BTreeSet::new();
    let mut current: Option<String> = None;
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Start(e)) | Ok(quick_xml::events::Event::Empty(e)) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                let attr = |key: &str| {
                    e.attributes()
                        .filter_map(Result::ok)
                        .find(|a| a.key.as_ref() == key.as_bytes())
                        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
                };
                match name.as_str() {
                    "testcase" => {
                        let case = attr("name").unwrap_or_default();
                        let object = case.split(' ').next().unwrap_or_default().to_string();
                        // Until a child says otherwise, a case passed (allowed or warned).
                        from_junit.insert((object.clone(), "passed".into()));
                        current = Some(object);
                    }
                    "failure" | "skipped" => {
                        if let Some(object) = &current {
                            from_junit.retain(|(o, _)| o != object);
                            let result = if name == "failure" {
                                "denied"
                            } else {
                                "skipped"
                            };
                            from_junit.insert((object.clone(), result.into()));
                        }
                    }
                    _ => {}
                }
            }
            Ok(quick_xml::events::Event::Eof) => break,
            Err(e) => panic!("JUnit is not XML: {e}\n{xml}"),
            _ => {}
        }
    }
    let expected_junit: BTreeSet<(String, String)> = expected
        .iter()
        .map(|(o, r)| {
            let r = if r == "warned" || r == "allowed" {
                "passed"
            } else {
                r
            };
            (o.clone(), r.to_string())
        })
        .collect();
    assert_eq!(from_junit, expected_junit, "junit:\n{xml}");

    // GitHub: an ::error per denying finding, ::warning per warning, ::notice per skip.
    let github = run("github");
    // `::error file=F,line=L,title=POLICY (OBJECT)::MESSAGE`
    let object_of = |line: &str| {
        let title = line
            .split_once("title=")
            .map(|(_, t)| t)
            .unwrap_or_default();
        let title = title.split_once(")::").map(|(t, _)| t).unwrap_or_default();
        title
            .split_once(" (")
            .map(|(_, o)| o.to_string())
            .unwrap_or_default()
    };
    let errors: BTreeSet<String> = github
        .lines()
        .filter(|l| l.starts_with("::error "))
        .map(object_of)
        .collect();
    let denied: BTreeSet<String> = expected
        .iter()
        .filter(|(_, r)| r == "denied")
        .map(|(o, _)| o.clone())
        .collect();
    assert_eq!(errors, denied, "github:\n{github}");
    assert!(
        github
            .lines()
            .any(|l| l.starts_with("::warning ") && l.contains("Deployment/plate-prod/web")),
        "{github}"
    );
    assert!(
        github
            .lines()
            .any(|l| l.starts_with("::notice ") && l.contains("Pod/kube-system/dns")),
        "{github}"
    );
    assert!(
        github
            .lines()
            .any(|l| l.starts_with("::error file=") && l.contains("api.yaml,line=11,")),
        "the error names file and line: {github}"
    );
}

#[test]
fn several_inputs_and_stdin_and_fail_on_warn() {
    let dir = temp_dir();
    manifests(dir.path());
    let web = dir.path().join("web.yaml");
    // Only a warning: exit 0, or 1 with --fail-on-warn.
    let out = plate_policy(&["check", "-f", s(&web), "--env", "prod"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let out = plate_policy(&["check", "-f", s(&web), "--env", "prod", "--fail-on-warn"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    // Several -f and stdin together.
    let api = std::fs::read_to_string(dir.path().join("apps/api.yaml")).unwrap_or_default();
    let out = with_stdin(
        &[
            "check",
            "-f",
            s(&web),
            "-f",
            "-",
            "--env",
            "prod",
            "-o",
            "json",
        ],
        &api,
    );
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap_or_default();
    let files: BTreeSet<String> = report["objects"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| o["file"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(files.len(), 2, "{report}");
    assert!(files.contains("<stdin>"), "{files:?}");
    assert_eq!(code(&out), 1);
    // A directory without manifests is bad input, said once.
    let empty = temp_dir();
    let out = plate_policy(&["check", "-f", s(empty.path()), "--env", "prod"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("holds no *.yaml, *.yml or *.json file"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).is_empty(),
        "problems go to stderr only: {}",
        stdout(&out)
    );
}

#[test]
fn yaml_1_1_booleans_in_string_fields_point_at_the_line_and_say_what_to_do() {
    let dir = temp_dir();
    let n = write(
        dir.path(),
        "n.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: n\n",
    );
    let out = plate_policy(&["check", "-f", s(&n), "--env", "prod"]);
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(
        err.contains("n.yaml:4: metadata.name: expected a string, found a boolean (YAML 1.1 reads n as false; quote it)"),
        "{err}"
    );
    assert!(
        !err.contains("AdmissionReview"),
        "a manifest is not called an AdmissionReview: {err}"
    );
}

#[test]
fn the_help_documents_the_exit_codes() {
    let out = plate_policy(&["check", "--help"]);
    let help = stdout(&out);
    for needle in [
        "Exit codes: 0",
        "1 something would be denied",
        "2 bad input",
        "--fail-on-warn",
        "--output",
    ] {
        assert!(help.contains(needle), "{needle:?} not in:\n{help}");
    }
}
