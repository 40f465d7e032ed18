//! The live cache of Namespaces' labels: a `kube` reflector (list + watch) that the
//! environment resolution reads on every request without calling the API server.
//! If the API server is unreachable the watcher logs, backs off and retries; until
//! the first list succeeds the cache is empty, so environments come from name patterns.

use crate::environment::{Labels, NamespaceLabels};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub struct NamespaceCache {
    store: Store<Namespace>,
    synced: Arc<AtomicBool>,
}

impl NamespaceCache {
    /// Starts the reflector on the current tokio runtime.
    pub fn start(client: Client) -> NamespaceCache {
        let (store, writer) = reflector::store::<Namespace>();
        let api: Api<Namespace> = Api::all(client);
        let stream = reflector::reflector(
            writer,
            watcher(api, watcher::Config::default()).default_backoff(),
        );
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                if let Err(e) = event {
                    tracing::warn!(error = %e, "namespace watch failed; retrying (environments fall back to name patterns for unknown namespaces)");
                }
            }
        });
        let synced = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&synced);
        let ready = store.clone();
        tokio::spawn(async move {
            if ready.wait_until_ready().await.is_ok() {
                flag.store(true, Ordering::Release);
                tracing::info!(namespaces = ready.len(), "namespace cache synced");
            }
        });
        NamespaceCache { store, synced }
    }

    /// True once the first list has completed.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    pub fn len(&self) -> usize {
        self.store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }
}

impl NamespaceLabels for NamespaceCache {
    fn labels(&self, namespace: &str) -> Option<Labels> {
        self.store
            .get(&ObjectRef::new(namespace))
            .map(|ns| Arc::new(ns.metadata.labels.clone().unwrap_or_default()))
    }
}
