//! `plate-policy serve`: flags of the admission webhook server.

use super::EXIT_BAD_INPUT;
use crate::certs;
use crate::server::{self, NamespaceSource, ServeOptions};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Development mode: no cluster (environments from namespace name patterns), dev
    /// certificates from --certs-dir (created if missing), listening on 127.0.0.1.
    #[arg(long)]
    pub dev: bool,
    /// HTTPS address of the admission endpoint (POST /validate).
    #[arg(long, value_name = "ADDR")]
    pub addr: Option<SocketAddr>,
    /// Plain-HTTP address of /healthz, /readyz and /metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// PEM certificate chain of the server (reloaded when it changes).
    #[arg(long, value_name = "FILE", required_unless_present = "dev")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the server (reloaded when it changes).
    #[arg(long, value_name = "FILE", required_unless_present = "dev")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA bundle (PEM).
    #[arg(long, value_name = "FILE")]
    pub client_ca: Option<PathBuf>,
    /// Policy set file, hot-reloaded; default: the built-in set.
    #[arg(long = "policies", value_name = "FILE")]
    pub policies: Option<PathBuf>,
    /// kubeconfig for the namespace cache; default: KUBECONFIG, ~/.kube/config or in-cluster.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Where --dev keeps its certificates.
    #[arg(long, value_name = "DIR", default_value = "certs-dev")]
    pub certs_dir: PathBuf,
    /// Server-side deadline of one admission request, in ms (keep it below the
    /// webhook's timeoutSeconds).
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub request_timeout_ms: u64,
    /// Largest request body read whole, in bytes. A larger AdmissionReview is denied
    /// (HTTP 200, code 413 in its status) rather than left to failurePolicy; a larger
    /// body that is no review gets 413. The default covers the largest review the
    /// API server sends for objects etcd can store (docs/security.md).
    #[arg(long, value_name = "BYTES", default_value_t = 20 << 20)]
    pub max_body_bytes: usize,
    /// After SIGTERM, how long to stay unready but still accepting requests before
    /// draining, in seconds: the time endpoints take to stop routing here.
    /// Default: 5, or 0 with --dev.
    #[arg(long, value_name = "SECONDS")]
    pub shutdown_delay_secs: Option<u64>,
    /// After SIGTERM (and the shutdown delay), how long in-flight requests may take
    /// to finish, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 20)]
    pub drain_timeout_secs: u64,
    /// Sandboxes that may run at once (the engine's instance pool).
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub max_concurrent_evaluations: u32,
    /// Open client connections at most (the API server keeps a few per replica).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_connections: usize,
    /// Seconds a client may take to send a request's headers (also how long an idle
    /// kept-alive connection stays open) and, beyond --request-timeout-ms, its body.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub client_timeout_secs: u64,
    /// Keep compiled policy code in DIR so a restart skips compiling (must be
    /// writable only by this server: its files are loaded as native code).
    #[arg(long, value_name = "DIR")]
    pub module_cache: Option<PathBuf>,
    /// Registry credentials for oci:// modules: a Docker config.json (the
    /// .dockerconfigjson of a kubernetes.io/dockerconfigjson Secret). Pulled modules
    /// are kept in --module-cache, so a restart needs no registry for them.
    #[arg(long, value_name = "FILE")]
    pub registry_config: Option<PathBuf>,
    /// Also count requests per namespace (one metric series per namespace: mind the
    /// cardinality in large clusters).
    #[arg(long)]
    pub metrics_namespace_label: bool,
}

pub fn run(args: &ServeArgs) -> u8 {
    let options = match options(args) {
        Ok(options) => options,
        Err(e) => {
            crate::errorln!("{e}");
            return EXIT_BAD_INPUT;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            crate::errorln!("cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(server::serve(options)) {
        Ok(()) => 0,
        Err(e) => {
            // Once: serve's output is its log (text or JSON), so no second `error:` line.
            tracing::error!(error = %e, "server failed");
            // Bad input (policy set, certificate files) is 2, as for the other commands.
            match e {
                server::ServeError::PolicySet(_)
                | server::ServeError::Tls(_)
                | server::ServeError::RegistryConfig(_) => EXIT_BAD_INPUT,
                _ => 1,
            }
        }
    }
}

fn options(args: &ServeArgs) -> Result<ServeOptions, String> {
    let local = |port: u16| -> SocketAddr {
        if args.dev {
            SocketAddr::from(([127, 0, 0, 1], port))
        } else {
            SocketAddr::from(([0, 0, 0, 0], port))
        }
    };
    let (tls_cert, tls_key) = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        (None, None) if args.dev => {
            let (files, created) =
                certs::ensure_dev_certs(&args.certs_dir).map_err(|e| e.to_string())?;
            if created {
                tracing::info!(dir = %files.dir.display(), "created development certificates");
            } else {
                tracing::info!(dir = %files.dir.display(), "using development certificates");
            }
            (files.server_cert, files.server_key)
        }
        _ => return Err("give both --tls-cert and --tls-key".into()),
    };
    Ok(ServeOptions {
        addr: args.addr.unwrap_or_else(|| local(8443)),
        health_addr: args.metrics_addr.unwrap_or_else(|| local(9090)),
        tls_cert,
        tls_key,
        client_ca: args.client_ca.clone(),
        policies: args.policies.clone(),
        namespaces: if args.dev && args.kubeconfig.is_none() {
            NamespaceSource::None
        } else {
            NamespaceSource::Kube {
                kubeconfig: args.kubeconfig.clone(),
            }
        },
        request_deadline: Duration::from_millis(args.request_timeout_ms.max(1)),
        max_body_bytes: args.max_body_bytes,
        shutdown_delay: Duration::from_secs(args.shutdown_delay_secs.unwrap_or(if args.dev {
            0
        } else {
            5
        })),
        drain_timeout: Duration::from_secs(args.drain_timeout_secs),
        max_concurrent_evaluations: args.max_concurrent_evaluations.max(1),
        metrics_namespace_label: args.metrics_namespace_label,
        module_cache: args.module_cache.clone(),
        registry_config: args.registry_config.clone(),
        max_connections: args.max_connections,
        client_timeout: Duration::from_secs(args.client_timeout_secs.max(1)),
    })
}
