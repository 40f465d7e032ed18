//! `plate-policy test [PATH...]`: runs policy test suites, prints one line per case
//! and a summary, optionally writes JUnit XML.

use super::EXIT_BAD_INPUT;
use super::output::{self, Tone};
use crate::policy_set::Loader;
use crate::testing::{CaseResult, Runner, Status, junit};
use crate::{errorln, outln};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Suite files, or directories searched for `tests/*.yaml` (default: policies).
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// `--output junit FILE` also writes a JUnit XML report, `--output json FILE`
    /// every case with its decision policy by policy (FILE `-` is stdout).
    #[arg(long, num_args = 2, value_names = ["FORMAT", "FILE"])]
    pub output: Vec<String>,
    /// Objects every case may look up (e.g. ClusterIssuers), from manifest files.
    #[arg(long = "context", value_name = "FILE")]
    pub context: Vec<PathBuf>,
    /// Policy set for the suites that name no `policySet` (default: the built-in set).
    #[arg(long = "policies", value_name = "FILE")]
    pub policies: Option<PathBuf>,
    #[command(flatten)]
    pub module_cache: super::ModuleCacheArgs,
}

pub fn run(args: &TestArgs) -> u8 {
    let report = match args.output.as_slice() {
        [] => None,
        [format, file] if format == "junit" => Some(Report::Junit(file.clone())),
        [format, file] if format == "json" => Some(Report::Json(file.clone())),
        [format, _] => {
            errorln!(
                "--output {format:?} is not a format; use --output junit FILE or --output json FILE"
            );
            return EXIT_BAD_INPUT;
        }
        _ => {
            errorln!("--output takes a format and a file: --output junit FILE");
            return EXIT_BAD_INPUT;
        }
    };
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from("policies")]
    } else {
        args.paths.clone()
    };
    let suites = match Runner::discover(&paths) {
        Ok(s) if s.is_empty() => {
            errorln!("no test suites found in {}", display(&paths));
            return EXIT_BAD_INPUT;
        }
        Ok(s) => s,
        Err(e) => {
            errorln!("{e}");
            return EXIT_BAD_INPUT;
        }
    };
    let (engine, cache) = match super::engine_and_cache(&args.module_cache) {
        Ok(made) => made,
        Err(code) => return code,
    };
    let Some(context) = super::context_files(&args.context) else {
        return EXIT_BAD_INPUT;
    };
    let loader = Loader {
        engine: &engine,
        cache: &cache,
    };
    let default_set = match &args.policies {
        Some(file) => match loader.load_file(file) {
            Ok(set) => Some(set),
            Err(e) => {
                errorln!("{e}");
                return EXIT_BAD_INPUT;
            }
        },
        None => None,
    };
    let mut runner = Runner::new(loader).with_context(context);
    if let Some(set) = default_set {
        runner = runner.with_default_set(set);
    }
    output::finish(run_suites(&mut runner, &suites, report.as_ref()))
}

/// A report written besides the lines: JUnit XML or JSON, to a file or `-`.
enum Report {
    Junit(String),
    Json(String),
}

/// One case in `--output json`.
#[derive(serde::Serialize)]
struct JsonCase<'a> {
    suite: &'a str,
    name: &'a str,
    line: u64,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    verdict: Option<&'a crate::testing::CaseVerdict>,
}

fn json_report(results: &[CaseResult]) -> Result<String, serde_json::Error> {
    let cases: Vec<JsonCase<'_>> = results
        .iter()
        .map(|r| {
            let (status, reason) = match &r.status {
                Status::Passed => ("passed", None),
                Status::Failed(why) => ("failed", Some(why.as_str())),
                Status::Error(why) => ("error", Some(why.as_str())),
            };
            JsonCase {
                suite: &r.suite,
                name: &r.name,
                line: r.line,
                status,
                reason,
                verdict: r.verdict.as_ref(),
            }
        })
        .collect();
    serde_json::to_string_pretty(&cases)
}

/// Runs every suite, printing as it goes; the exit code, or the error that stopped
/// the printing.
fn run_suites(
    runner: &mut Runner<'_>,
    suites: &[PathBuf],
    report: Option<&Report>,
) -> std::io::Result<u8> {
    let mut results: Vec<CaseResult> = Vec::new();
    for suite in suites {
        match runner.run_suite(suite) {
            Ok(cases) => {
                for case in &cases {
                    print_case(case)?;
                }
                results.extend(cases);
            }
            Err(e) => {
                outln!("{} {e}", output::tone("ERROR", Tone::Bad))?;
                results.push(CaseResult {
                    suite: suite.display().to_string(),
                    name: "(the suite file)".into(),
                    line: 0,
                    status: Status::Error(e.to_string()),
                    duration: std::time::Duration::ZERO,
                    verdict: None,
                });
            }
        }
    }
    let passed = results
        .iter()
        .filter(|r| matches!(r.status, Status::Passed))
        .count();
    let failed = results
        .iter()
        .filter(|r| matches!(r.status, Status::Failed(_)))
        .count();
    let errors = results
        .iter()
        .filter(|r| matches!(r.status, Status::Error(_)))
        .count();
    if let Some(report) = report {
        let (file, text) = match report {
            Report::Junit(file) => (file, junit::report(&results).map_err(|e| e.to_string())),
            Report::Json(file) => (file, json_report(&results).map_err(|e| e.to_string())),
        };
        let text = match text {
            Ok(text) => text,
            Err(e) => {
                errorln!("cannot make the report: {e}");
                return Ok(EXIT_BAD_INPUT);
            }
        };
        if file == "-" {
            outln!("{text}")?;
        } else if let Err(e) = std::fs::write(file, &text) {
            errorln!("cannot write {file}: {e}");
            return Ok(EXIT_BAD_INPUT);
        }
    }
    outln!()?;
    if errors > 0 {
        outln!("{errors} could not run (bad input)")?;
    }
    outln!("{passed} passed, {} failed", failed + errors)?;
    Ok(if errors > 0 {
        EXIT_BAD_INPUT
    } else if failed > 0 {
        1
    } else {
        0
    })
}

fn print_case(case: &CaseResult) -> std::io::Result<()> {
    let at = format!("{}:{}  {}", case.suite, case.line, case.name);
    match &case.status {
        Status::Passed => outln!("{}  {at}", output::tone("PASS", Tone::Good)),
        Status::Failed(why) => {
            outln!("{}  {at}", output::tone("FAIL", Tone::Bad))?;
            outln!("      {why}")
        }
        Status::Error(why) => {
            outln!("{} {at}", output::tone("ERROR", Tone::Bad))?;
            outln!("      {why}")
        }
    }
}

fn display(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
