//! Context caches for `serve`: one `kube` reflector (list + watch) per kind that some
//! policy lists under `context`, so lookups are answered from memory and never call
//! the API server on the request path.

use crate::engine::{ContextKind, ContextObjects};
use crate::manifest::plural;
use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

struct KindCache {
    store: Store<DynamicObject>,
    resource: ApiResource,
    synced: Arc<AtomicBool>,
}

pub struct ContextCache {
    kinds: HashMap<ContextKind, KindCache>,
}

impl ContextCache {
    /// Starts a reflector per kind on the current tokio runtime.
    pub fn start(client: &Client, kinds: &[ContextKind]) -> ContextCache {
        let mut caches = HashMap::new();
        for kind in kinds {
            let (group, version) = kind
                .api_version
                .split_once('/')
                .unwrap_or(("", kind.api_version.as_str()));
            let gvk = GroupVersionKind::gvk(group, version, &kind.kind);
            let resource = ApiResource::from_gvk_with_plural(&gvk, &plural(&kind.kind));
            let writer = reflector::store::Writer::<DynamicObject>::new(resource.clone());
            let store = writer.as_reader();
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            let stream = reflector::reflector(
                writer,
                watcher(api, watcher::Config::default()).default_backoff(),
            );
            let label = kind.to_string();
            tokio::spawn(async move {
                let mut stream = std::pin::pin!(stream);
                while let Some(event) = stream.next().await {
                    if let Err(e) = event {
                        tracing::warn!(kind = %label, error = %e, "context watch failed; retrying (is the kind installed and may plate-policy list it?)");
                    }
                }
            });
            let synced = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&synced);
            let ready = store.clone();
            let label = kind.to_string();
            tokio::spawn(async move {
                if ready.wait_until_ready().await.is_ok() {
                    flag.store(true, Ordering::Release);
                    tracing::info!(kind = %label, objects = ready.len(), "context cache synced");
                }
            });
            caches.insert(
                kind.clone(),
                KindCache {
                    store,
                    resource,
                    synced,
                },
            );
        }
        ContextCache { kinds: caches }
    }

    pub fn kinds(&self) -> Vec<ContextKind> {
        self.kinds.keys().cloned().collect()
    }

    /// The kinds whose first list has not completed yet.
    pub fn unsynced(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .kinds
            .iter()
            .filter(|(_, c)| !c.synced.load(Ordering::Acquire))
            .map(|(k, _)| k.to_string())
            .collect();
        out.sort();
        out
    }
}

impl ContextObjects for ContextCache {
    fn get(&self, kind: &ContextKind, namespace: &str, name: &str) -> Option<Vec<u8>> {
        let cache = self.kinds.get(kind)?;
        let mut key = ObjectRef::new_with(name, cache.resource.clone());
        if !namespace.is_empty() {
            key = key.within(namespace);
        }
        let object = cache.store.get(&key)?;
        serde_json::to_vec(&*object).ok()
    }
}
