//! The `plate-policy` binary: parses the command line, sets up colour and logging,
//! runs the command and exits with its code.

use clap::Parser;
use plate_policy::cli::{
    Cli, Command, LogFormat, audit, bench, certs, check, completions, inspect, new, oci, output,
    run, serve, test,
};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// The one-shot commands report what the decision path finds (a failed
/// evaluation, a refused lookup) in their own output; its log lines, meant for the
/// server's record of requests, would print each problem a second time.
const ONE_SHOT_FILTER: &str = "warn,plate_policy::admission=off,plate_policy::engine::lookup=off";

fn main() -> ExitCode {
    let cli = Cli::parse();
    output::init(cli.color);
    let default_filter = match cli.command {
        Command::Serve(_) => "info",
        _ => ONE_SHOT_FILTER,
    };
    init_logging(
        cli.log_format,
        cli.log_level.as_deref().unwrap_or(default_filter),
    );
    let code = match &cli.command {
        Command::Test(args) => test::run(args),
        Command::Check(args) => check::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Certs(args) => certs::run(args),
        Command::New(args) => new::run(args),
        Command::Run(args) => run::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Push(args) => oci::push(args),
        Command::Pull(args) => oci::pull(args),
        Command::Bench(args) => bench::run(args),
        Command::Completions(args) => completions::run(args),
    };
    ExitCode::from(code)
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(output::stderr_colored())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
