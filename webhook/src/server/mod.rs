//! `plate-policy serve`: the HTTPS admission endpoint, the plain-HTTP health port,
//! hot reload of the policy set and the certificate, and graceful shutdown.

pub mod answer;
pub mod body;
mod handler;
mod reload;
pub mod tls;

use crate::engine::{CacheDirError, Engine, EngineConfig, EngineError};
use crate::metrics::{Metrics, MetricsError};
use crate::objects::reflector::ClusterObjects;
use crate::objects::{NoObjects, ObjectKind, ObjectSource};
use crate::policy_set::{Loader, ModuleCache, PolicySet, PolicySetError};
use arc_swap::ArcSwap;
use axum::Router;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

/// A TLS handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTP/2 connections are pinged this often and closed when a ping goes unanswered.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(30);

/// After a failed accept (e.g. out of file descriptors), wait before retrying
/// instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Where namespace labels come from.
#[derive(Debug, Clone)]
pub enum NamespaceSource {
    /// No cluster: environments from name patterns only (`--dev`).
    None,
    /// A `kube` reflector; the kubeconfig file, or the usual inference
    /// (KUBECONFIG, ~/.kube/config, in-cluster service account).
    Kube { kubeconfig: Option<PathBuf> },
}

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    pub health_addr: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub client_ca: Option<PathBuf>,
    /// A policy set file, watched and hot-reloaded; None: the built-in set.
    pub policies: Option<PathBuf>,
    pub namespaces: NamespaceSource,
    /// Server-side deadline of one admission request.
    pub request_deadline: Duration,
    pub max_body_bytes: usize,
    /// After SIGTERM, how long to keep accepting while unready (endpoints take a
    /// moment to stop routing here), before draining.
    pub shutdown_delay: Duration,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub drain_timeout: Duration,
    pub max_concurrent_evaluations: u32,
    /// Open connections at most; further clients wait in the listen queue.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers (also the idle time
    /// of a kept-alive connection) and, beyond the request deadline, its body.
    pub client_timeout: Duration,
    /// Add a per-namespace request counter (one series per namespace).
    pub metrics_namespace_label: bool,
    /// Directory for compiled policy code and pulled OCI modules that survives
    /// restarts (faster start; a start without the registry).
    pub module_cache: Option<PathBuf>,
    /// Docker config.json with registry credentials for oci:// modules.
    pub registry_config: Option<PathBuf>,
}

#[derive(Debug, Error)]
pub enum ServeError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the policy set does not load:\n{0}")]
    PolicySet(#[from] PolicySetError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot connect to the Kubernetes API: {0}")]
    Kube(String),
    #[error("cannot watch files for changes: {0}")]
    Watch(String),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    ModuleCache(#[from] CacheDirError),
    #[error(transparent)]
    RegistryConfig(#[from] crate::oci::auth::AuthError),
    #[error("loading the policy set stopped: {0}")]
    Load(String),
    #[error("cannot install the signal handler: {0}")]
    Signal(std::io::Error),
}

/// What request handlers share.
pub struct AppState {
    pub policy_set: ArcSwap<PolicySet>,
    /// The engine: its evaluation slots bound concurrent evaluations.
    pub engine: Arc<Engine>,
    /// Namespaces and the objects policies may look up.
    pub objects: Arc<dyn ObjectSource>,
    /// The same objects as watched from a cluster, for readiness (None without one).
    pub cluster: Option<Arc<ClusterObjects>>,
    pub request_deadline: Duration,
    /// Largest body read whole (`--max-body-bytes`); see `body`.
    pub max_body_bytes: usize,
    pub shutting_down: AtomicBool,
    pub metrics: Metrics,
}

impl AppState {
    /// Ready: policies loaded (always, once serving), caches synced, not draining.
    pub fn readiness(&self) -> Result<(), String> {
        if self.shutting_down.load(Ordering::Acquire) {
            return Err("shutting down".into());
        }
        if let Some(cluster) = &self.cluster {
            let unsynced = cluster.unsynced();
            if !unsynced.is_empty() {
                return Err(format!("caches not synced yet: {}", unsynced.join(", ")));
            }
        }
        Ok(())
    }
}

/// Runs the server until SIGTERM/SIGINT, then drains and returns.
pub async fn serve(options: ServeOptions) -> Result<(), ServeError> {
    let engine = Arc::new(Engine::new(&EngineConfig {
        max_concurrent_instances: options.max_concurrent_evaluations,
    })?);
    let auth = match &options.registry_config {
        Some(path) => crate::oci::DockerConfig::read(path)?,
        None => crate::oci::DockerConfig::default(),
    };
    let cache = Arc::new(
        match &options.module_cache {
            Some(dir) => ModuleCache::with_dir(dir.clone())?,
            None => ModuleCache::default(),
        }
        .with_registry_auth(auth),
    );
    // Off the async workers: loading compiles modules and may pull from registries.
    let set = {
        let (engine, cache, policies) = (
            Arc::clone(&engine),
            Arc::clone(&cache),
            options.policies.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let loader = Loader {
                engine: &engine,
                cache: &cache,
            };
            match &policies {
                Some(path) => loader.load_file(path),
                None => loader.builtin(),
            }
        })
        .await
        .map_err(|e| ServeError::Load(e.to_string()))??
    };
    tracing::info!(source = %set.source, policies = set.policies.len(), "policy set loaded");

    let cert = Arc::new(tls::ReloadableCert::load(
        options.tls_cert.clone(),
        options.tls_key.clone(),
    )?);
    let tls_config = tls::server_config(Arc::clone(&cert), options.client_ca.as_deref())?;

    let metrics = Metrics::new(options.metrics_namespace_label)?;
    metrics.policy_set_loaded(&set);
    if let Some(leaf) = cert.leaf() {
        metrics.set_certificate_expiry(&leaf);
    }

    let (objects, cluster): (Arc<dyn ObjectSource>, _) = match &options.namespaces {
        NamespaceSource::None => {
            if !set.context_kinds().is_empty() {
                tracing::warn!("no cluster: context lookups answer \"not found\"");
            }
            (Arc::new(NoObjects), None)
        }
        NamespaceSource::Kube { kubeconfig } => {
            let client = kube_client(kubeconfig.as_ref()).await?;
            // Watchers for Namespaces and for the kinds some policy may look up.
            let cluster = Arc::new(ClusterObjects::start(&client, &set.context_kinds()));
            (Arc::clone(&cluster) as Arc<dyn ObjectSource>, Some(cluster))
        }
    };

    let state = Arc::new(AppState {
        policy_set: ArcSwap::from_pointee(set),
        engine: Arc::clone(&engine),
        objects,
        cluster,
        request_deadline: options.request_deadline,
        max_body_bytes: options.max_body_bytes,
        shutting_down: AtomicBool::new(false),
        metrics,
    });

    let _watchers = reload::start(
        &options,
        Arc::clone(&state),
        Arc::clone(&engine),
        Arc::clone(&cache),
        Arc::clone(&cert),
    )?;

    // A request (body included) must complete within its deadline plus this margin:
    // a client that stops sending its body does not hold a connection forever.
    let request_timeout = options.request_deadline + options.client_timeout;
    let webhook = Router::new()
        .route("/validate", axum::routing::post(handler::validate))
        .layer(axum::middleware::from_fn(move |req, next| {
            handler::time_limit(request_timeout, req, next)
        }))
        .with_state(Arc::clone(&state));
    let health = handler::health_router(Arc::clone(&state));

    let listener = TcpListener::bind(options.addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: options.addr,
            source,
        })?;
    let health_listener = TcpListener::bind(options.health_addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: options.health_addr,
            source,
        })?;
    tracing::info!(
        addr = %listener.local_addr().unwrap_or(options.addr),
        health = %health_listener.local_addr().unwrap_or(options.health_addr),
        "serving"
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut health_stop = stop_rx.clone();
    let health_task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = health_stop.wait_for(|stop| *stop).await;
        };
        if let Err(e) = axum::serve(health_listener, health)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "health server failed");
        }
    });

    // On SIGTERM: unready at once (endpoints stop routing here), still accepting for
    // the shutdown delay (routing takes that long to change), then stop accepting
    // and drain what is in flight.
    let unready_state = Arc::clone(&state);
    let shutdown_delay = options.shutdown_delay;
    let stop_accepting = async move {
        wait_for_signal().await?;
        unready_state.shutting_down.store(true, Ordering::Release);
        tracing::info!(delay = ?shutdown_delay, "shutting down: unready, still accepting during the shutdown delay");
        tokio::time::sleep(shutdown_delay).await;
        Ok(())
    };
    let graceful = GracefulShutdown::new();
    accept_loop(
        listener,
        TlsAcceptor::from(tls_config),
        webhook,
        &graceful,
        stop_accepting,
        Arc::new(Semaphore::new(options.max_connections.max(1))),
        options.client_timeout,
    )
    .await?;

    tracing::info!(timeout = ?options.drain_timeout, "shutting down: no longer accepting; draining in-flight requests");
    match tokio::time::timeout(options.drain_timeout, graceful.shutdown()).await {
        Ok(()) => tracing::info!("all connections closed"),
        Err(_) => tracing::warn!("drain timeout passed; closing the remaining connections"),
    }
    let _ = stop_tx.send(true);
    let _ = health_task.await;
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    graceful: &GracefulShutdown,
    stop: impl Future<Output = Result<(), std::io::Error>>,
    connections: Arc<Semaphore>,
    client_timeout: Duration,
) -> Result<(), ServeError> {
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            accepted = accept_within_limit(&listener, &connections) => {
                let (tcp, peer, permit) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::warn!(error = %e, backoff = ?ACCEPT_BACKOFF, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let service = TowerToHyperService::new(app.clone());
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    // ALPN already chose the protocol: no sniffing, which would wait
                    // on a silent client without any timeout.
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                    let io = TokioIo::new(tls);
                    let result = if h2 {
                        let mut builder = http2::Builder::new(TokioExecutor::new());
                        builder
                            .timer(TokioTimer::new())
                            .keep_alive_interval(H2_KEEP_ALIVE)
                            .keep_alive_timeout(client_timeout);
                        watcher.watch(builder.serve_connection(io, service)).await
                    } else {
                        let mut builder = http1::Builder::new();
                        builder
                            .timer(TokioTimer::new())
                            .header_read_timeout(client_timeout);
                        watcher.watch(builder.serve_connection(io, service)).await
                    };
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    drop(permit);
                });
            }
            stopped = &mut stop => {
                return stopped.map_err(ServeError::Signal);
            }
        }
    }
}

/// Accepts a connection once fewer than the maximum are open; the permit lives as
/// long as the connection.
async fn accept_within_limit(
    listener: &TcpListener,
    connections: &Arc<Semaphore>,
) -> std::io::Result<(
    tokio::net::TcpStream,
    SocketAddr,
    tokio::sync::OwnedSemaphorePermit,
)> {
    let permit = Arc::clone(connections)
        .acquire_owned()
        .await
        .map_err(std::io::Error::other)?;
    let (tcp, peer) = listener.accept().await?;
    Ok((tcp, peer, permit))
}

/// Context kinds `set` needs that the running watchers do not cover (without a
/// cluster, lookups answer "not found" for every kind, so nothing is missing).
pub fn missing_context_kinds(state: &AppState, set: &PolicySet) -> Vec<ObjectKind> {
    let Some(cluster) = &state.cluster else {
        return Vec::new();
    };
    let running = cluster.kinds();
    set.context_kinds()
        .into_iter()
        .filter(|k| !running.contains(k))
        .collect()
}

async fn wait_for_signal() -> Result<(), std::io::Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    Ok(())
}

async fn kube_client(kubeconfig: Option<&PathBuf>) -> Result<kube::Client, ServeError> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| ServeError::Kube(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| ServeError::Kube(format!("{}: {e}", path.display())))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| ServeError::Kube(format!("{e} (use --dev to run without a cluster)")))?,
    };
    kube::Client::try_from(config).map_err(|e| ServeError::Kube(e.to_string()))
}
