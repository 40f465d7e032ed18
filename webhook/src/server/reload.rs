//! Hot reload: watches the policy-set file, the modules it names and the TLS files,
//! and swaps in new versions between requests. Directories are watched, not files,
//! so the atomic `..data` symlink swap of mounted ConfigMaps and Secrets is seen.
//! A new version that does not load is logged and the running one keeps serving.

use super::tls::ReloadableCert;
use super::{AppState, ServeError, ServeOptions};
use crate::engine::Engine;
use crate::policy_set::{Loader, ModuleCache, PolicySet};
use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Changes arriving within this window are handled as one (an editor or kubelet
/// writes several files and renames for one update).
const SETTLE: Duration = Duration::from_millis(150);

#[derive(Debug, Clone, Copy)]
enum What {
    PolicySet,
    Certificate,
}

/// Keeps the watchers alive; dropping it stops watching.
pub struct Watchers {
    _watcher: Option<notify::RecommendedWatcher>,
}

pub fn start(
    options: &ServeOptions,
    state: Arc<AppState>,
    engine: Arc<Engine>,
    cache: Arc<ModuleCache>,
    cert: Arc<ReloadableCert>,
) -> Result<Watchers, ServeError> {
    let (tx, mut rx) = mpsc::unbounded_channel::<What>();
    let mut policy_dirs = BTreeSet::new();
    if let Some(path) = &options.policies {
        policy_dirs.insert(dir_of(path));
        let set = state.policy_set.load();
        for policy in &set.policies {
            if !policy
                .module_ref
                .starts_with(crate::policy_set::BUILTIN_PREFIX)
            {
                policy_dirs.insert(dir_of(&dir_of(path).join(&policy.module_ref)));
            }
        }
    }
    let cert_dirs: BTreeSet<PathBuf> = [dir_of(&options.tls_cert), dir_of(&options.tls_key)].into();

    let handler_policy_dirs = policy_dirs.clone();
    let handler_cert_dirs = cert_dirs.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        for path in &event.paths {
            let dir = dir_of(path);
            if handler_policy_dirs.contains(&dir) {
                let _ = tx.send(What::PolicySet);
            }
            if handler_cert_dirs.contains(&dir) {
                let _ = tx.send(What::Certificate);
            }
        }
    })
    .map_err(|e| ServeError::Watch(e.to_string()))?;
    for dir in policy_dirs.iter().chain(cert_dirs.iter()) {
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|e| ServeError::Watch(format!("{}: {e}", dir.display())))?;
    }

    let policies_path = options.policies.clone();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            tokio::time::sleep(SETTLE).await;
            let mut reload_set = matches!(first, What::PolicySet);
            let mut reload_cert = matches!(first, What::Certificate);
            while let Ok(more) = rx.try_recv() {
                match more {
                    What::PolicySet => reload_set = true,
                    What::Certificate => reload_cert = true,
                }
            }
            if reload_cert {
                match cert.reload() {
                    Ok(()) => {
                        tracing::info!(cert = %cert.cert_path.display(), "TLS certificate reloaded");
                        state.metrics.reload("certificate", true);
                        if let Some(leaf) = cert.leaf() {
                            state.metrics.set_certificate_expiry(&leaf);
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "new TLS certificate rejected; keeping the current one");
                        state.metrics.reload("certificate", false);
                    }
                }
            }
            if reload_set && let Some(path) = policies_path.clone() {
                reload_policy_set(&state, &engine, &cache, path).await;
            }
        }
    });
    Ok(Watchers {
        _watcher: Some(watcher),
    })
}

async fn reload_policy_set(
    state: &AppState,
    engine: &Arc<Engine>,
    cache: &Arc<ModuleCache>,
    path: PathBuf,
) {
    let engine = Arc::clone(engine);
    let cache = Arc::clone(cache);
    let loaded = tokio::task::spawn_blocking(move || -> Result<PolicySet, String> {
        Loader {
            engine: &engine,
            cache: &cache,
        }
        .load_file(&path)
        .map_err(|e| e.to_string())
    })
    .await;
    match loaded {
        Ok(Ok(set)) if !new_context_kinds(state, &set).is_empty() => {
            state.metrics.reload("policy_set", false);
            tracing::error!(
                kinds = %new_context_kinds(state, &set).join(", "),
                "new policy set rejected: it looks up kinds the running server has no cache for; restart to add context kinds (the last good set keeps serving)"
            );
        }
        Ok(Ok(set)) => {
            let count = set.policies.len();
            state.metrics.policy_set_loaded(&set);
            state.metrics.reload("policy_set", true);
            // One atomic pointer swap: a request sees the old set or the new one.
            state.policy_set.store(Arc::new(set));
            tracing::info!(policies = count, "policy set reloaded");
        }
        Ok(Err(e)) => {
            state.metrics.reload("policy_set", false);
            tracing::error!(error = %e, "new policy set rejected; the last good one keeps serving")
        }
        Err(e) => {
            state.metrics.reload("policy_set", false);
            tracing::error!(error = %e, "policy set reload failed")
        }
    }
}

/// The directory holding `path`, absolute and canonical, so that watched directories
/// and the paths in events compare equal.
fn dir_of(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let parent = absolute
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    std::fs::canonicalize(&parent).unwrap_or(parent)
}

/// Context kinds `set` needs that no running cache holds (without a cluster, lookups
/// answer "not found" for every kind, so nothing is missing).
fn new_context_kinds(state: &AppState, set: &PolicySet) -> Vec<String> {
    let Some(cache) = &state.context_cache else {
        return Vec::new();
    };
    let running = cache.kinds();
    set.context_kinds()
        .into_iter()
        .filter(|k| !running.contains(k))
        .map(|k| k.to_string())
        .collect()
}
