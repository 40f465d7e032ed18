//! `plate-policy audit`: judges what already exists in a cluster with the policy set
//! (see the `audit` module) and prints a table, JSON or JUnit. Exit 0 when no
//! enforce-mode violation exists, 1 when one does, 2 on usage or connection errors.

use super::{EXIT_BAD_INPUT, ModuleCacheArgs, PolicySetArg};
use crate::audit::{self, AuditResult, Options, Report};
use crate::policy_set::Loader;
use crate::{errorln, outln};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditOutput {
    /// One row per finding: resource, environment, policy, mode, key, message, path.
    Table,
    /// One JSON document: summary, results, skipped.
    Json,
    /// JUnit XML: a test case per policy and resource, failed for enforce-mode violations.
    Junit,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 no enforce-mode violation exists; 1 one does (admission would deny the object today); 2 usage or connection errors (no cluster, no permission, bad policy set)."
)]
pub struct AuditArgs {
    /// kubeconfig of the cluster; default: KUBECONFIG, ~/.kube/config or in-cluster.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, value_name = "NAME")]
    pub kube_context: Option<String>,
    /// How to report.
    #[arg(long, short = 'o', value_enum, default_value_t = AuditOutput::Table)]
    pub output: AuditOutput,
    /// Objects per list request (the API server's `limit`).
    #[arg(long, value_name = "N", default_value_t = audit::DEFAULT_PAGE_SIZE, value_parser = clap::value_parser!(u32).range(1..))]
    pub page_size: u32,
    /// Keep auditing: watch the cluster and keep one policy report per resource true
    /// (docs/audit.md); runs until stopped.
    #[arg(long)]
    pub watch: bool,
    /// With --watch: a full pass every this many seconds besides the watches.
    #[arg(long, value_name = "SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub resync_interval: u64,
    /// With --watch: API requests per second the audit may make (lists, report
    /// writes; 0: no bound).
    #[arg(long, value_name = "QPS", default_value_t = 20.0)]
    pub qps: f64,
    /// With --watch: requests allowed at once above --qps.
    #[arg(long, value_name = "N", default_value_t = 40)]
    pub burst: u32,
    /// With --watch: the policy report API to write.
    #[arg(long, value_enum, default_value_t = audit::report::ReportApi::Openreports)]
    pub report_api: audit::report::ReportApi,
    /// With --watch: where /metrics, /healthz and /readyz are served.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:9090")]
    pub metrics_addr: std::net::SocketAddr,
    /// With --watch: the namespace of the Lease replicas elect a leader with
    /// [default: POD_NAMESPACE]; without one (and without POD_NAMESPACE) there is
    /// no election: run a single audit process.
    #[arg(long, value_name = "NS", env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// With --watch: the Lease's name.
    #[arg(long, value_name = "NAME", default_value = "plate-policy-audit")]
    pub lease_name: String,
    /// With --watch: this replica's identity in the Lease [default: POD_NAME, else the host name].
    #[arg(long, value_name = "ID", env = "POD_NAME")]
    pub identity: Option<String>,
    #[command(flatten)]
    pub policy_set: PolicySetArg,
    #[command(flatten)]
    pub module_cache: ModuleCacheArgs,
}

pub fn run(args: &AuditArgs) -> u8 {
    if args.watch {
        return watch(args);
    }
    let (engine, cache) = match super::engine_and_cache(&args.module_cache) {
        Ok(made) => made,
        Err(code) => return code,
    };
    let loader = Loader {
        engine: &engine,
        cache: &cache,
    };
    let set = match super::check::load_set(&loader, &args.policy_set.policies) {
        Ok(set) => set,
        Err(e) => {
            errorln!("{e}");
            return EXIT_BAD_INPUT;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            errorln!("cannot start the async runtime: {e}");
            return 1;
        }
    };
    let client = match runtime.block_on(client(args)) {
        Ok(client) => client,
        Err(e) => {
            errorln!("{e}");
            return EXIT_BAD_INPUT;
        }
    };
    let options = Options {
        page_size: args.page_size,
    };
    let report = match audit::scan(&runtime, &client, &set, &engine, &options) {
        Ok(report) => report,
        Err(e) => {
            errorln!("{e}");
            return EXIT_BAD_INPUT;
        }
    };
    let written = match args.output {
        AuditOutput::Table => write_table(&report),
        AuditOutput::Json => serde_json::to_string_pretty(&report)
            .map_err(std::io::Error::other)
            .and_then(|json| outln!("{json}")),
        AuditOutput::Junit => write_junit(&report),
    };
    super::output::finish(written.map(|()| u8::from(report.summary.enforce_violations > 0)))
}

/// `audit --watch`: runs until stopped or the lease is lost (exit 1: the pod restarts
/// as a follower).
fn watch(args: &AuditArgs) -> u8 {
    let (engine, cache) = match super::engine_and_cache(&args.module_cache) {
        Ok(made) => made,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            errorln!("cannot start the async runtime: {e}");
            return 1;
        }
    };
    let lease = args.lease_namespace.as_ref().map(|namespace| {
        let identity = args
            .identity
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("plate-policy-audit-{}", std::process::id()));
        audit::lease::LeaseConfig {
            namespace: namespace.clone(),
            name: args.lease_name.clone(),
            identity,
            duration: std::time::Duration::from_secs(15),
        }
    });
    let options = audit::watch::WatchOptions {
        policies: args.policy_set.policies.clone(),
        resync: std::time::Duration::from_secs(args.resync_interval),
        report_api: args.report_api,
        qps: args.qps,
        burst: args.burst,
        page_size: args.page_size,
        lease,
        metrics_addr: args.metrics_addr,
    };
    let result = runtime.block_on(async {
        let client = client(args).await.map_err(|e| (EXIT_BAD_INPUT, e))?;
        audit::watch::run(
            client,
            std::sync::Arc::new(engine),
            std::sync::Arc::new(cache),
            options,
        )
        .await
        .map_err(|e| (1, e.to_string()))
    });
    match result {
        Ok(()) => 0,
        Err((code, message)) => {
            errorln!("{message}");
            code
        }
    }
}

/// The kube client of `--kubeconfig`/`--kube-context`, or the usual inference.
async fn client(args: &AuditArgs) -> Result<kube::Client, String> {
    let options = kube::config::KubeConfigOptions {
        context: args.kube_context.clone(),
        ..Default::default()
    };
    let config = match &args.kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("--kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| format!("--kubeconfig {}: {e}", path.display()))?
        }
        None if args.kube_context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| format!("cannot read the kubeconfig: {e}"))?,
        None => kube::Config::infer().await.map_err(|e| {
            format!("no cluster configured ({e}): give --kubeconfig FILE, set KUBECONFIG, or run in a pod")
        })?,
    };
    kube::Client::try_from(config).map_err(|e| format!("cannot make a client for the cluster: {e}"))
}

fn write_table(report: &Report) -> std::io::Result<()> {
    let header = [
        "RESOURCE",
        "ENVIRONMENT",
        "POLICY",
        "MODE",
        "RESULT",
        "KEY",
        "PATH",
        "MESSAGE",
    ];
    let rows: Vec<[String; 8]> = report
        .results
        .iter()
        .map(|r: &AuditResult| {
            [
                r.resource.clone(),
                r.environment.clone().unwrap_or_else(|| "-".into()),
                r.policy.clone(),
                r.mode.to_string(),
                r.result.to_string(),
                r.key.clone().unwrap_or_else(|| "-".into()),
                r.path.clone().unwrap_or_else(|| "-".into()),
                r.message.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out
    };
    if !rows.is_empty() {
        outln!("{}", line(&header.map(str::to_string)))?;
        for row in &rows {
            outln!("{}", line(row))?;
        }
        outln!()?;
    }
    for skipped in &report.skipped {
        outln!("SKIP  {}: {}", skipped.what, skipped.reason)?;
    }
    let s = &report.summary;
    outln!(
        "audited {} object(s) of {} listed: {} enforce-mode violation(s), {} other violation(s), {} error(s)",
        s.objects,
        s.listed,
        s.enforce_violations,
        s.other_violations,
        s.errors
    )
}

fn write_junit(report: &Report) -> std::io::Result<()> {
    use quick_junit::{NonSuccessKind, Report as Junit, TestCase, TestCaseStatus, TestSuite};
    let mut suite = TestSuite::new("plate-policy audit");
    for r in &report.results {
        let name = format!(
            "{} {} {}",
            r.policy,
            r.resource,
            r.key.as_deref().unwrap_or("")
        );
        let status = match r.result {
            "fail" => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status.set_message(r.message.clone());
                status
            }
            "error" => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
                status.set_message(r.message.clone());
                status
            }
            _ => TestCaseStatus::success(),
        };
        let mut case = TestCase::new(name, status);
        case.set_classname(r.resource.clone());
        suite.add_test_case(case);
    }
    let mut junit = Junit::new("plate-policy audit");
    junit.add_test_suite(suite);
    let xml = junit.to_string().map_err(std::io::Error::other)?;
    outln!("{xml}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn clap_accepts_the_documented_flags() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "plate-policy",
            "audit",
            "--kubeconfig",
            "k.yaml",
            "-o",
            "json",
            "--page-size",
            "50",
        ]);
        assert!(cli.is_ok(), "{cli:?}");
        let zero = crate::cli::Cli::try_parse_from(["plate-policy", "audit", "--page-size", "0"]);
        assert!(zero.is_err());
    }
}
