//! Hot reload: watches the policy-set file, the modules it names and the TLS files,
//! and swaps in new versions between requests. Directories are watched, not files,
//! so the atomic `..data` symlink swap of mounted ConfigMaps and Secrets is seen.
//! A new version that does not load is logged and the running one keeps serving.
//! A reloaded set that names modules in new directories gets those watched too.

use super::tls::ReloadableCert;
use super::{AppState, ServeError, ServeOptions};
use crate::engine::Engine;
use crate::policy_set::{Loader, ModuleCache, PolicySet};
use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
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

/// Keeps the watcher alive; dropping it stops watching.
pub struct Watchers {
    _watcher: Arc<Mutex<notify::RecommendedWatcher>>,
}

/// The directories whose changes mean a reload.
struct Watched {
    policy: RwLock<BTreeSet<PathBuf>>,
    cert: BTreeSet<PathBuf>,
}

/// The policy-set file's directory and every directory a module of `set` is in.
fn policy_dirs(path: &Path, set: &PolicySet) -> BTreeSet<PathBuf> {
    let mut dirs = BTreeSet::from([dir_of(path)]);
    for policy in &set.policies {
        let remote = policy.module_ref.starts_with(crate::oci::SCHEME);
        if !remote
            && !policy
                .module_ref
                .starts_with(crate::policy_set::BUILTIN_PREFIX)
        {
            dirs.insert(dir_of(&dir_of(path).join(&policy.module_ref)));
        }
    }
    dirs
}

pub fn start(
    options: &ServeOptions,
    state: Arc<AppState>,
    engine: Arc<Engine>,
    cache: Arc<ModuleCache>,
    cert: Arc<ReloadableCert>,
) -> Result<Watchers, ServeError> {
    let (tx, mut rx) = mpsc::unbounded_channel::<What>();
    let policy = match &options.policies {
        Some(path) => policy_dirs(path, &state.policy_set.load()),
        None => BTreeSet::new(),
    };
    let watched = Arc::new(Watched {
        policy: RwLock::new(policy.clone()),
        cert: [dir_of(&options.tls_cert), dir_of(&options.tls_key)].into(),
    });

    let handler_watched = Arc::clone(&watched);
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        let policy = handler_watched
            .policy
            .read()
            .unwrap_or_else(|p| p.into_inner());
        for path in &event.paths {
            let dir = dir_of(path);
            if policy.contains(&dir) {
                let _ = tx.send(What::PolicySet);
            }
            if handler_watched.cert.contains(&dir) {
                let _ = tx.send(What::Certificate);
            }
        }
    })
    .map_err(|e| ServeError::Watch(e.to_string()))?;
    let watcher = Arc::new(Mutex::new(watcher));
    for dir in policy.iter().chain(watched.cert.iter()) {
        watch_dir(&watcher, dir).map_err(ServeError::Watch)?;
    }

    let policies_path = options.policies.clone();
    let reload_watcher = Arc::clone(&watcher);
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
            if reload_set
                && let Some(path) = policies_path.clone()
                && reload_policy_set(&state, &engine, &cache, path.clone()).await
            {
                // Modules the new set names may live in directories not yet watched.
                let wanted = policy_dirs(&path, &state.policy_set.load());
                let new: Vec<PathBuf> = {
                    let mut current = watched.policy.write().unwrap_or_else(|p| p.into_inner());
                    let new = wanted.difference(&current).cloned().collect();
                    current.clone_from(&wanted);
                    new
                };
                for dir in new {
                    match watch_dir(&reload_watcher, &dir) {
                        Ok(()) => {
                            tracing::info!(dir = %dir.display(), "watching a new module directory")
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot watch a new module directory; its changes need a change of the policy set to be seen")
                        }
                    }
                }
            }
        }
    });
    Ok(Watchers { _watcher: watcher })
}

fn watch_dir(watcher: &Mutex<notify::RecommendedWatcher>, dir: &Path) -> Result<(), String> {
    watcher
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(|e| format!("{}: {e}", dir.display()))
}

/// Loads the set at `path` and swaps it in; true when it did.
async fn reload_policy_set(
    state: &AppState,
    engine: &Arc<Engine>,
    cache: &Arc<ModuleCache>,
    path: PathBuf,
) -> bool {
    let engine = Arc::clone(engine);
    let cache = Arc::clone(cache);
    let loaded = tokio::task::spawn_blocking(move || {
        Loader {
            engine: &engine,
            cache: &cache,
        }
        .load_file(&path)
    })
    .await;
    match loaded {
        Ok(Ok(set)) => {
            let missing = super::missing_context_kinds(state, &set);
            if !missing.is_empty() {
                state.metrics.reload("policy_set", false);
                let kinds: Vec<String> = missing.iter().map(ToString::to_string).collect();
                tracing::error!(
                    kinds = %kinds.join(", "),
                    "new policy set rejected: it looks up kinds the running server has no cache for; restart to add context kinds (the last good set keeps serving)"
                );
                return false;
            }
            let count = set.policies.len();
            state.metrics.policy_set_loaded(&set);
            state.metrics.reload("policy_set", true);
            // One atomic pointer swap: a request sees the old set or the new one.
            state.policy_set.store(Arc::new(set));
            tracing::info!(policies = count, "policy set reloaded");
            true
        }
        Ok(Err(e)) => {
            state.metrics.reload("policy_set", false);
            tracing::error!(error = %e, "new policy set rejected; the last good one keeps serving");
            false
        }
        Err(e) => {
            state.metrics.reload("policy_set", false);
            tracing::error!(error = %e, "policy set reload failed");
            false
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
