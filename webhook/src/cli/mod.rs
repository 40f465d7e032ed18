//! Command-line interface: argument parsing (clap) and one module per command.
//! Each command returns its process exit code; errors meant for the user are
//! printed by the command itself.

pub mod audit;
pub mod bench;
pub mod certs;
pub mod check;
pub mod completions;
pub mod inspect;
pub mod new;
pub mod oci;
pub mod output;
pub mod run;
pub mod serve;
pub mod test;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Exit code for bad input (unreadable file, invalid YAML, invalid policy set).
pub const EXIT_BAD_INPUT: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "plate-policy",
    version,
    about = "Kubernetes admission webhook whose policies are WebAssembly modules"
)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter (`info`, `plate_policy=debug`, ...); RUST_LOG overrides it.
    /// Default: `info` for serve; `warn` for the other commands, whose report already
    /// says what a policy's evaluation found (so the decision path does not log it again).
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    /// When to colour output: `auto` colours a terminal unless NO_COLOR is set.
    #[arg(long, global = true, value_enum, default_value_t = output::ColorChoice::Auto)]
    pub color: output::ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the admission webhook (HTTPS :8443 POST /validate; HTTP :9090 health and metrics).
    Serve(Box<serve::ServeArgs>),
    /// Run policy test suites; exit 0 only if every case passes (1: a case failed, 2: bad input).
    Test(test::TestArgs),
    /// Evaluate manifests against the policy set as if created in ENV; exit 1 if any would be denied.
    Check(check::CheckArgs),
    /// Write a development CA, serving certificate and client certificate.
    Certs(certs::CertsArgs),
    /// Judge what already exists in a cluster with the policy set; exit 1 if admission would deny something.
    Audit(Box<audit::AuditArgs>),
    /// Write a new policy (a Rust crate, or with --lang go a Go module) with a policy set and a test suite.
    New(new::NewArgs),
    /// Evaluate one module against one object, without a policy set; print its verdict.
    Run(Box<run::RunArgs>),
    /// Print a module's ABI version, exports, imports, size and whether it makes lookups; for an oci:// artifact also its digest and media types.
    Inspect(inspect::InspectArgs),
    /// Push a .wasm module to an OCI registry as a Wasm artifact; print its digest.
    Push(Box<oci::PushArgs>),
    /// Pull an oci:// module (digest checked, optionally its cosign signature) into the module cache or a file.
    Pull(Box<oci::PullArgs>),
    /// Time evaluations of one module on one object (median and p99, fresh sandbox each).
    Bench(Box<bench::BenchArgs>),
    /// Print a shell completion script (bash, zsh, fish) to stdout.
    Completions(completions::CompletionsArgs),
}

/// `--policies FILE`: a policy set instead of the built-in one.
#[derive(Debug, Clone, clap::Args)]
pub struct PolicySetArg {
    /// Policy set file (PolicySet YAML); default: the built-in set.
    #[arg(long = "policies", value_name = "FILE")]
    pub policies: Option<PathBuf>,
}

/// `--module-cache DIR` / `--no-module-cache` of the one-shot commands: compiled
/// code of policy files kept between runs (built-in policies ship precompiled).
#[derive(Debug, Clone, clap::Args)]
pub struct ModuleCacheArgs {
    /// Keep compiled policy code in DIR between runs [default: $XDG_CACHE_HOME/plate-policy/modules, or ~/.cache/plate-policy/modules].
    #[arg(long, value_name = "DIR")]
    pub module_cache: Option<PathBuf>,
    /// Compile policy files on every run instead of caching their code.
    #[arg(long, conflicts_with = "module_cache")]
    pub no_module_cache: bool,
    /// Registry credentials for oci:// modules: a Docker config.json [default: $DOCKER_CONFIG/config.json, or ~/.docker/config.json if it exists].
    #[arg(long, value_name = "FILE")]
    pub registry_config: Option<PathBuf>,
}

/// Why the module cache of a command cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum CacheArgsError {
    #[error(transparent)]
    Dir(#[from] crate::engine::CacheDirError),
    #[error(transparent)]
    Auth(#[from] crate::oci::auth::AuthError),
}

impl ModuleCacheArgs {
    /// The cache to load with. A default directory that cannot be made is only a
    /// warning (the run compiles); a directory given explicitly must work.
    pub fn cache(&self) -> Result<crate::policy_set::ModuleCache, CacheArgsError> {
        let auth = registry_config(self.registry_config.as_deref())?;
        Ok(self.dir_cache()?.with_registry_auth(auth))
    }

    fn dir_cache(&self) -> Result<crate::policy_set::ModuleCache, crate::engine::CacheDirError> {
        use crate::policy_set::ModuleCache;
        if self.no_module_cache {
            return Ok(ModuleCache::default());
        }
        if let Some(dir) = &self.module_cache {
            return ModuleCache::with_dir(dir.clone());
        }
        let Some(dir) = default_cache_dir() else {
            return Ok(ModuleCache::default());
        };
        match create_private_dir(&dir).and_then(|()| ModuleCache::with_dir(dir.clone())) {
            Ok(cache) => Ok(cache),
            Err(e) => {
                tracing::warn!(error = %e, "the default module cache cannot be used; compiling instead");
                Ok(ModuleCache::default())
            }
        }
    }
}

/// Credentials from `file`, else from the default Docker config if there is one.
pub fn registry_config(
    file: Option<&std::path::Path>,
) -> Result<crate::oci::DockerConfig, crate::oci::auth::AuthError> {
    match file
        .map(std::path::Path::to_path_buf)
        .or_else(crate::oci::auth::default_config_path)
    {
        Some(path) => crate::oci::DockerConfig::read(&path),
        None => Ok(crate::oci::DockerConfig::default()),
    }
}

/// `$XDG_CACHE_HOME/plate-policy/modules`, else `$HOME/.cache/plate-policy/modules`.
fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("plate-policy").join("modules"))
}

/// Creates `dir` readable and writable by this user only: its files are loaded as
/// native code.
fn create_private_dir(dir: &std::path::Path) -> Result<(), crate::engine::CacheDirError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| crate::engine::CacheDirError {
            dir: dir.to_path_buf(),
            source,
        })
}

/// The engine of the one-shot commands (`test`, `check`): a small instance pool.
/// Prints the error and returns None when it cannot start.
fn cli_engine() -> Option<crate::engine::Engine> {
    let config = crate::engine::EngineConfig {
        max_concurrent_instances: 8,
    };
    crate::engine::Engine::new(&config)
        .map_err(|e| crate::errorln!("{e}"))
        .ok()
}

/// The engine and module cache a command loads policies with; prints the error and
/// gives the exit code when either cannot be made.
fn engine_and_cache(
    module_cache: &ModuleCacheArgs,
) -> Result<(crate::engine::Engine, crate::policy_set::ModuleCache), u8> {
    let engine = cli_engine().ok_or(1u8)?;
    let cache = module_cache.cache().map_err(|e| {
        crate::errorln!("{e}");
        EXIT_BAD_INPUT
    })?;
    Ok((engine, cache))
}

/// Context objects from `--context` files; prints the error and returns None on bad input.
fn context_files(files: &[PathBuf]) -> Option<crate::objects::StaticObjects> {
    let mut objects = crate::objects::StaticObjects::default();
    for file in files {
        if let Err(e) = objects.insert_file(file) {
            crate::errorln!("--context {e}");
            return None;
        }
    }
    Some(objects)
}
