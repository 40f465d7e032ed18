//! The `plate-policy` binary: parses the command line, sets up logging, runs the
//! command and exits with its code.

use clap::Parser;
use plate_policy::cli::{Cli, Command, LogFormat, certs, check, serve, test};
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    init_logging(
        cli.log_format,
        cli.log_level.as_deref().unwrap_or(default_level),
    );
    let code = match &cli.command {
        Command::Test(args) => test::run(args),
        Command::Check(args) => check::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Certs(args) => certs::run(args),
    };
    ExitCode::from(code)
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
