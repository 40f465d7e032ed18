//! `plate-policy check`: evaluates manifests as if they were being created in an
//! environment, for CI pipelines and pre-commit hooks. Reads files, directories and
//! stdin; reports every violation with the file and line of its object (and of the
//! field, where the policy names one) as text, JSON, JUnit or GitHub annotations;
//! objects no policy looks at are reported as skipped, with the reason.

use super::output::{self, Tone};
use super::{EXIT_BAD_INPUT, ModuleCacheArgs, PolicySetArg};
use crate::admission::{self, Context, Decision, Effect};
use crate::manifest::{self, Located, RequestSpec};
use crate::objects::ObjectSource;
use crate::policy_set::{Loader, Mode, PolicySet};
use crate::review;
use serde::Serialize;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One line per finding, `FILE:LINE: VERDICT  POLICY  OBJECT  MESSAGE`.
    Text,
    /// One JSON document: every object with its findings, and a summary.
    Json,
    /// JUnit XML: a test suite per file, a test case per object.
    Junit,
    /// GitHub Actions workflow commands (`::error file=F,line=L::message`).
    Github,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 nothing would be denied (with --fail-on-warn: and nothing \
warned); 1 something would be denied (or warned, with --fail-on-warn); 2 bad input (unreadable \
file, invalid YAML, invalid policy set, unknown environment)."
)]
pub struct CheckArgs {
    /// Manifests: a file (multi-document YAML, a List, `helm template` output, JSON,
    /// an AdmissionReview), a directory (every *.yaml, *.yml and *.json in it, recursively)
    /// or `-` for standard input. Repeat for several.
    #[arg(short = 'f', long = "file", value_name = "FILE|DIR|-", required = true)]
    pub files: Vec<String>,
    /// The environment the objects are deployed to (e.g. prod, stg).
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// Objects policies may look up (e.g. ClusterIssuers), from manifest files.
    #[arg(long = "context", value_name = "FILE")]
    pub context: Vec<PathBuf>,
    /// Put every namespaced object in this namespace (default: its own
    /// metadata.namespace, else `default`).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// How to report.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Also exit 1 when an object would only be allowed with warnings.
    #[arg(long)]
    pub fail_on_warn: bool,
    #[command(flatten)]
    pub policy_set: PolicySetArg,
    #[command(flatten)]
    pub module_cache: ModuleCacheArgs,
}

/// What a policy found about one object.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub policy: String,
    pub mode: &'static str,
    /// `deny`, `warn` or `audit`: what it does to the request.
    pub verdict: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The line of the field in the manifest, else of the object.
    pub line: u64,
}

/// One object and what the policy set makes of it.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectReport {
    pub file: String,
    /// The line the object starts at.
    pub line: u64,
    /// `Kind/namespace/name` (`Kind/name` when cluster-scoped).
    pub object: String,
    /// `denied`, `warned`, `allowed` or `skipped`.
    pub result: &'static str,
    /// Why it was skipped: no policy looked at it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    pub objects: usize,
    pub denied: usize,
    pub warned: usize,
    pub allowed: usize,
    pub skipped: usize,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    environment: &'a str,
    summary: &'a Summary,
    objects: &'a [ObjectReport],
}

pub fn run(args: &CheckArgs) -> u8 {
    let sources = match read_sources(&args.files) {
        Ok(sources) => sources,
        Err(e) => {
            crate::errorln!("{e}");
            return EXIT_BAD_INPUT;
        }
    };
    // Every file is read before anything is judged: all bad input is reported at once.
    let mut documents = Vec::new();
    let mut bad = false;
    for (name, text) in &sources {
        match manifest::read_objects(name, text) {
            Ok(objects) => documents.extend(objects.into_iter().map(|o| (name.as_str(), o))),
            Err(e) => {
                crate::errorln!("{e}");
                bad = true;
            }
        }
    }
    if bad {
        return EXIT_BAD_INPUT;
    }
    let (engine, cache) = match super::engine_and_cache(&args.module_cache) {
        Ok(made) => made,
        Err(code) => return code,
    };
    let loader = Loader {
        engine: &engine,
        cache: &cache,
    };
    let set = match load_set(&loader, &args.policy_set.policies) {
        Ok(set) => set,
        Err(e) => {
            crate::errorln!("{e}");
            return EXIT_BAD_INPUT;
        }
    };
    let Some(context_objects) = super::context_files(&args.context) else {
        return EXIT_BAD_INPUT;
    };
    let objects: Arc<dyn ObjectSource> = Arc::new(context_objects);
    let known = set.environments.known_environments();
    if !known.contains(&args.env) {
        crate::errorln!(
            "--env {:?} is not an environment of the policy set (known: {})",
            args.env,
            known.join(", ")
        );
        return EXIT_BAD_INPUT;
    }
    let Some(slot) = engine.evaluation_slot_blocking() else {
        crate::errorln!("the policy engine has no sandbox to run in");
        return 1;
    };
    let mut reports = Vec::with_capacity(documents.len());
    for (i, (file, located)) in documents.iter().enumerate() {
        match judge(&set, &objects, &slot, args, file, located, i) {
            Ok(report) => reports.push(report),
            Err(message) => {
                crate::errorln!("{message}");
                bad = true;
            }
        }
    }
    if bad {
        return EXIT_BAD_INPUT;
    }
    let mut summary = Summary {
        objects: reports.len(),
        ..Summary::default()
    };
    for r in &reports {
        match r.result {
            "denied" => summary.denied += 1,
            "warned" => summary.warned += 1,
            "skipped" => summary.skipped += 1,
            _ => summary.allowed += 1,
        }
    }
    let written = match args.output {
        OutputFormat::Text => write_text(&reports, &summary, &args.env),
        OutputFormat::Json => write_json(&reports, &summary, &args.env),
        OutputFormat::Junit => write_junit(&reports, args.fail_on_warn),
        OutputFormat::Github => write_github(&reports, &summary, &args.env),
    };
    let failed = summary.denied > 0 || (args.fail_on_warn && summary.warned > 0);
    super::output::finish(written.map(|()| u8::from(failed)))
}

/// Decides one object and reports it.
fn judge(
    set: &PolicySet,
    objects: &Arc<dyn ObjectSource>,
    slot: &crate::engine::EvaluationSlot,
    args: &CheckArgs,
    file: &str,
    located: &Located,
    i: usize,
) -> Result<ObjectReport, String> {
    let uid = format!("plate-policy-check-{i}");
    let spec = RequestSpec {
        operation: "CREATE",
        namespace: args.namespace.as_deref(),
        old_object: None,
        uid: &uid,
    };
    let at = |e: &dyn std::fmt::Display| {
        format!("{file}:{}: document {}: {e}", located.line, located.index)
    };
    let bytes = manifest::to_request(&located.value, &spec).map_err(|e| at(&e))?;
    let request = review::parse_request(&bytes).map_err(|e| at(&e))?;
    let context = Context {
        objects,
        environment: Some(&args.env),
        deadline: Instant::now() + Duration::from_secs(10),
        slot: Some(slot),
        run_evaluations: None,
    };
    let decision = admission::decide(set, &request, &context);
    let reason = decision
        .outcomes
        .is_empty()
        .then(|| admission::unmatched_reason(set, &request, Some(&args.env)))
        .flatten();
    Ok(ObjectReport {
        file: file.to_string(),
        line: located.line,
        object: object_ref(&request),
        result: result_of(&decision, reason.is_some()),
        findings: findings(&decision, located),
        reason,
    })
}

fn result_of(decision: &Decision, skipped: bool) -> &'static str {
    if skipped {
        "skipped"
    } else if !decision.allowed {
        "denied"
    } else if !decision.warning_details.is_empty() {
        "warned"
    } else {
        "allowed"
    }
}

/// Strips serde_json's ` at line L column C`: a position in the JSON the host built,
/// which means nothing to the author of the manifest (the object's line is reported).
fn without_json_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i)
            if message[i + 9..]
                .split_once(" column ")
                .is_some_and(|(l, c)| {
                    l.chars().all(|ch| ch.is_ascii_digit())
                        && c.chars().take_while(|ch| ch.is_ascii_digit()).count() > 0
                }) =>
        {
            let rest = &message[i + 9..];
            let after_column = rest
                .split_once(" column ")
                .map(|(_, c)| c.trim_start_matches(|ch: char| ch.is_ascii_digit()))
                .unwrap_or("");
            format!("{}{after_column}", &message[..i])
        }
        _ => message.to_string(),
    }
}

fn findings(decision: &Decision, located: &Located) -> Vec<Finding> {
    let mut out = Vec::new();
    for outcome in &decision.outcomes {
        let verdict = |denies: bool| {
            if denies {
                "deny"
            } else if outcome.mode == Mode::Audit {
                "audit"
            } else {
                "warn"
            }
        };
        match &outcome.effect {
            Effect::Pass => {}
            Effect::Violations(violations) => {
                for v in violations {
                    let line = v
                        .path
                        .as_deref()
                        .and_then(|p| located.fields.line_of(p))
                        .unwrap_or(located.line);
                    out.push(Finding {
                        policy: outcome.policy.to_string(),
                        mode: outcome.mode.as_str(),
                        verdict: verdict(outcome.denies()),
                        message: v.message.clone(),
                        key: Some(v.key.clone()),
                        path: v.path.clone(),
                        line,
                    });
                }
            }
            Effect::Failed {
                failure,
                fail_closed,
            } => {
                let policy = if *fail_closed { "Fail" } else { "Ignore" };
                out.push(Finding {
                    policy: outcome.policy.to_string(),
                    mode: outcome.mode.as_str(),
                    verdict: if *fail_closed { "deny" } else { "warn" },
                    message: without_json_position(&format!(
                        "policy {failure} (failurePolicy {policy})"
                    )),
                    key: None,
                    path: None,
                    line: located.line,
                });
            }
        }
        for advice in &outcome.advice {
            out.push(Finding {
                policy: outcome.policy.to_string(),
                mode: outcome.mode.as_str(),
                verdict: "warn",
                message: advice.clone(),
                key: None,
                path: None,
                line: located.line,
            });
        }
    }
    out
}

fn summary_line(summary: &Summary, env: &str) -> String {
    let skipped = if summary.skipped > 0 {
        format!(", {} skipped (no policy applies)", summary.skipped)
    } else {
        String::new()
    };
    format!(
        "checked {} object(s) for {env}: {} denied, {} allowed with warnings{skipped}",
        summary.objects, summary.denied, summary.warned
    )
}

fn write_text(reports: &[ObjectReport], summary: &Summary, env: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for r in reports {
        for f in &r.findings {
            let verdict = format!("{:<5}", f.verdict.to_ascii_uppercase());
            let tone = match f.verdict {
                "deny" => Tone::Bad,
                "warn" => Tone::Warning,
                _ => Tone::Quiet,
            };
            writeln!(
                out,
                "{}:{}: {} {}  {}  {}",
                r.file,
                f.line,
                output::tone(&verdict, tone),
                f.policy,
                r.object,
                f.message
            )?;
        }
        if let Some(reason) = &r.reason {
            writeln!(
                out,
                "{}:{}: {}  {}  {reason}",
                r.file,
                r.line,
                output::tone("SKIP", Tone::Quiet),
                r.object
            )?;
        }
    }
    writeln!(out, "{}", summary_line(summary, env))?;
    out.flush()
}

fn write_json(reports: &[ObjectReport], summary: &Summary, env: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let report = Report {
        environment: env,
        summary,
        objects: reports,
    };
    // Encoded first: a write error inside serde_json would lose its kind (BrokenPipe).
    let json = serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?;
    writeln!(out, "{json}")?;
    out.flush()
}

fn write_junit(reports: &[ObjectReport], fail_on_warn: bool) -> std::io::Result<()> {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut report = Report::new("plate-policy check");
    let mut suites: Vec<TestSuite> = Vec::new();
    for r in reports {
        if suites.last().is_none_or(|s| s.name.as_str() != r.file) {
            suites.push(TestSuite::new(r.file.clone()));
        }
        let lines: Vec<String> = r
            .findings
            .iter()
            .map(|f| {
                format!(
                    "{}:{}: {} [{}] {}",
                    r.file, f.line, f.verdict, f.policy, f.message
                )
            })
            .collect();
        let failing = r.result == "denied" || (fail_on_warn && r.result == "warned");
        let status = if failing {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(format!("{} {}", r.object, r.result));
            s.set_description(lines.join("\n"));
            s
        } else if r.result == "skipped" {
            let mut s = TestCaseStatus::skipped();
            s.set_message(r.reason.clone().unwrap_or_default());
            s
        } else {
            TestCaseStatus::success()
        };
        let mut case = TestCase::new(format!("{} ({}:{})", r.object, r.file, r.line), status);
        if !failing && !lines.is_empty() {
            case.set_system_out(lines.join("\n"));
        }
        if let Some(suite) = suites.last_mut() {
            suite.add_test_case(case);
        }
    }
    report.add_test_suites(suites);
    let xml = report.to_string().map_err(std::io::Error::other)?;
    let mut out = std::io::stdout().lock();
    out.write_all(xml.as_bytes())?;
    out.flush()
}

/// GitHub workflow command escaping: data and property values.
fn github_escape(text: &str, property: bool) -> String {
    let mut out = text
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A");
    if property {
        out = out.replace(':', "%3A").replace(',', "%2C");
    }
    out
}

fn write_github(reports: &[ObjectReport], summary: &Summary, env: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for r in reports {
        for f in &r.findings {
            let command = match f.verdict {
                "deny" => "error",
                "warn" => "warning",
                _ => "notice",
            };
            writeln!(
                out,
                "::{command} file={},line={},title={}::{}",
                github_escape(&r.file, true),
                f.line,
                github_escape(&format!("{} ({})", f.policy, r.object), true),
                github_escape(&f.message, false)
            )?;
        }
        if let Some(reason) = &r.reason {
            writeln!(
                out,
                "::notice file={},line={},title={}::{}",
                github_escape(&r.file, true),
                r.line,
                github_escape(&format!("skipped ({})", r.object), true),
                github_escape(reason, false)
            )?;
        }
    }
    writeln!(out, "{}", summary_line(summary, env))?;
    out.flush()
}

/// The files to read, with the names reports give them: files as given, directories
/// walked for *.yaml, *.yml and *.json (sorted), `-` as `<stdin>`.
fn read_sources(files: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut stdin_read = false;
    for file in files {
        if file == "-" {
            if stdin_read {
                return Err("-f - is given twice; standard input can be read once".into());
            }
            stdin_read = true;
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("cannot read standard input: {e}"))?;
            out.push(("<stdin>".to_string(), text));
            continue;
        }
        let path = Path::new(file);
        if path.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut found).map_err(|e| format!("{file}: cannot list: {e}"))?;
            if found.is_empty() {
                return Err(format!("{file}: holds no *.yaml, *.yml or *.json file"));
            }
            found.sort();
            for p in found {
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| format!("{}: cannot read: {e}", p.display()))?;
                out.push((p.display().to_string(), text));
            }
        } else {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{file}: cannot read: {e}"))?;
            out.push((file.clone(), text));
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            out.push(path);
        }
    }
    Ok(())
}

pub fn load_set(loader: &Loader<'_>, file: &Option<PathBuf>) -> Result<PolicySet, String> {
    match file {
        Some(path) => loader.load_file(path).map_err(|e| e.to_string()),
        None => loader.builtin().map_err(|e| e.to_string()),
    }
}

/// `Kind/namespace/name` (`Kind/name` for cluster-scoped objects).
fn object_ref(request: &review::Review<'_>) -> String {
    if request.namespace.is_empty() {
        format!("{}/{}", request.kind, request.name)
    } else {
        format!("{}/{}/{}", request.kind, request.namespace, request.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_positions_are_dropped_from_policy_messages() {
        assert_eq!(
            without_json_position(
                "cannot read the pod spec: invalid type: integer `7`, expected a sequence at line 1 column 456"
            ),
            "cannot read the pod spec: invalid type: integer `7`, expected a sequence"
        );
        assert_eq!(
            without_json_position("x at line 3 column 4 (failurePolicy Fail)"),
            "x (failurePolicy Fail)"
        );
        assert_eq!(without_json_position("at line nothing"), "at line nothing");
    }

    #[test]
    fn github_commands_are_escaped() {
        assert_eq!(github_escape("a:b,c%\nd", true), "a%3Ab%2Cc%25%0Ad");
        assert_eq!(github_escape("a:b,c%\nd", false), "a:b,c%25%0Ad");
    }
}
