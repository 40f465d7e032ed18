//! `plate-policy test [PATH...]`: runs policy test suites, prints one line per case
//! and a summary, optionally writes JUnit XML.

use super::EXIT_BAD_INPUT;
use crate::policy_set::Loader;
use crate::testing::{CaseResult, Runner, Status, junit};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Suite files, or directories searched for `tests/*.yaml` (default: policies).
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// `--output junit FILE` also writes a JUnit XML report (FILE `-` is stdout).
    #[arg(long, num_args = 2, value_names = ["FORMAT", "FILE"])]
    pub output: Vec<String>,
    /// Objects every case may look up (e.g. ClusterIssuers), from manifest files.
    #[arg(long = "context", value_name = "FILE")]
    pub context: Vec<PathBuf>,
    #[command(flatten)]
    pub module_cache: super::ModuleCacheArgs,
}

pub fn run(args: &TestArgs) -> u8 {
    let junit_file = match args.output.as_slice() {
        [] => None,
        [format, file] if format == "junit" => Some(file.clone()),
        [format, _] => {
            eprintln!("error: --output {format:?} is not a format; use --output junit FILE");
            return EXIT_BAD_INPUT;
        }
        _ => {
            eprintln!("error: --output takes a format and a file: --output junit FILE");
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
            eprintln!("error: no test suites found in {}", display(&paths));
            return EXIT_BAD_INPUT;
        }
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    let Some(engine) = super::cli_engine() else {
        return 1;
    };
    let cache = match args.module_cache.cache() {
        Ok(cache) => cache,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    let Some(context) = super::context_files(&args.context) else {
        return EXIT_BAD_INPUT;
    };
    let mut runner = Runner::new(Loader {
        engine: &engine,
        cache: &cache,
    })
    .with_context(context);
    let mut results: Vec<CaseResult> = Vec::new();
    for suite in &suites {
        match runner.run_suite(suite) {
            Ok(cases) => {
                for case in &cases {
                    print_case(case);
                }
                results.extend(cases);
            }
            Err(e) => {
                println!("ERROR {e}");
                results.push(CaseResult {
                    suite: suite.display().to_string(),
                    name: "(the suite file)".into(),
                    line: 0,
                    status: Status::Error(e.to_string()),
                    duration: std::time::Duration::ZERO,
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
    if let Some(file) = junit_file {
        match junit::report(&results)
            .map_err(|e| e.to_string())
            .and_then(|xml| write_report(&file, &xml))
        {
            Ok(()) => {}
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_BAD_INPUT;
            }
        }
    }
    println!();
    if errors > 0 {
        println!("{errors} could not run (bad input)");
    }
    println!("{passed} passed, {} failed", failed + errors);
    if errors > 0 {
        EXIT_BAD_INPUT
    } else if failed > 0 {
        1
    } else {
        0
    }
}

fn print_case(case: &CaseResult) {
    match &case.status {
        Status::Passed => println!("PASS  {}:{}  {}", case.suite, case.line, case.name),
        Status::Failed(why) => {
            println!("FAIL  {}:{}  {}", case.suite, case.line, case.name);
            println!("      {why}");
        }
        Status::Error(why) => {
            println!("ERROR {}:{}  {}", case.suite, case.line, case.name);
            println!("      {why}");
        }
    }
}

fn write_report(file: &str, xml: &str) -> Result<(), String> {
    if file == "-" {
        println!("{xml}");
        Ok(())
    } else {
        std::fs::write(file, xml).map_err(|e| format!("cannot write {file}: {e}"))
    }
}

fn display(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
