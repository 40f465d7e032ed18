//! The cluster as `serve` sees it: one `kube` watcher (list + watch) per kind it
//! needs (Namespaces always, plus every `context` kind of the policy set), each
//! keeping an in-memory store of the objects already serialized. Requests are
//! answered from these stores and never call the API server. A watch that fails
//! logs, backs off and retries; until its first list completes the kind is unsynced
//! (readiness waits for it) and its objects are unknown.

use super::{ObjectKind, ObjectSource, StoredObject};
use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// (namespace, name); the namespace is empty for cluster-scoped objects.
type Key = (String, String);

struct KindStore {
    objects: RwLock<HashMap<Key, StoredObject>>,
    synced: AtomicBool,
}

impl KindStore {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Key, StoredObject>> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.objects.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Key, StoredObject>> {
        self.objects.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// An object of a watched kind that changed after its first list (`name` `*`: the
/// kind was listed again, after a watch restart, so any of its objects may have).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub kind: ObjectKind,
    pub namespace: String,
    pub name: String,
}

type Notify = tokio::sync::mpsc::UnboundedSender<Changed>;

/// Watched kinds and their stores. Dropping it stops its watches.
pub struct ClusterObjects {
    kinds: HashMap<ObjectKind, Arc<KindStore>>,
    watches: Vec<tokio::task::AbortHandle>,
}

impl Drop for ClusterObjects {
    fn drop(&mut self) {
        for watch in &self.watches {
            watch.abort();
        }
    }
}

impl ClusterObjects {
    /// Starts a watcher per kind (Namespaces included) on the current tokio runtime.
    /// Resource names come from the API server's discovery, falling back to the
    /// English plural of the kind when discovery cannot answer (the kind is not
    /// installed yet: its watch then retries until it is).
    pub fn start(client: &Client, kinds: &[ObjectKind]) -> ClusterObjects {
        ClusterObjects::start_notifying(client, kinds, None)
    }

    /// [`start`](Self::start), also telling `changes` of every object that changes
    /// after its kind's first list (the audit re-judges what depends on it).
    pub fn start_notifying(
        client: &Client,
        kinds: &[ObjectKind],
        changes: Option<Notify>,
    ) -> ClusterObjects {
        let mut all: Vec<ObjectKind> = kinds.to_vec();
        all.push(ObjectKind::namespace());
        all.sort();
        all.dedup();
        let mut stores = HashMap::new();
        let mut watches = Vec::new();
        for kind in all {
            let store = Arc::new(KindStore {
                objects: RwLock::new(HashMap::new()),
                synced: AtomicBool::new(false),
            });
            let task = tokio::spawn(watch(
                client.clone(),
                kind.clone(),
                Arc::clone(&store),
                changes.clone(),
            ));
            watches.push(task.abort_handle());
            stores.insert(kind, store);
        }
        ClusterObjects {
            kinds: stores,
            watches,
        }
    }

    /// The kinds watched (Namespaces included).
    pub fn kinds(&self) -> Vec<ObjectKind> {
        let mut kinds: Vec<ObjectKind> = self.kinds.keys().cloned().collect();
        kinds.sort();
        kinds
    }

    /// The kinds whose first list has not completed yet.
    pub fn unsynced(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .kinds
            .iter()
            .filter(|(_, s)| !s.synced.load(Ordering::Acquire))
            .map(|(k, _)| k.to_string())
            .collect();
        out.sort();
        out
    }

    /// The names of the Namespaces in the store.
    pub fn namespace_names(&self) -> Vec<String> {
        self.kinds
            .get(&ObjectKind::namespace())
            .map(|s| s.read().keys().map(|(_, name)| name.clone()).collect())
            .unwrap_or_default()
    }

    /// Objects of `kind` in the store.
    pub fn count(&self, kind: &ObjectKind) -> usize {
        self.kinds.get(kind).map_or(0, |s| s.read().len())
    }
}

impl ObjectSource for ClusterObjects {
    fn get(&self, kind: &ObjectKind, namespace: &str, name: &str) -> Option<StoredObject> {
        let store = self.kinds.get(kind)?;
        store
            .read()
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }
}

fn key_of(object: &DynamicObject) -> Key {
    (object.namespace().unwrap_or_default(), object.name_any())
}

fn stored(object: &DynamicObject) -> StoredObject {
    StoredObject::from_value(serde_json::to_value(object).unwrap_or_default())
}

/// How long discovery may take before the plural name is used instead.
const DISCOVERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The kind's resource as the API server names it (discovery), or by the English
/// plural of the kind when discovery cannot answer.
async fn resource(client: &Client, kind: &ObjectKind) -> ApiResource {
    let (group, version) = kind.group_version();
    let gvk = GroupVersionKind::gvk(group, version, &kind.kind);
    match tokio::time::timeout(
        DISCOVERY_TIMEOUT,
        kube::discovery::pinned_kind(client, &gvk),
    )
    .await
    {
        Ok(Ok((resource, _))) => resource,
        Ok(Err(e)) => {
            tracing::warn!(kind = %kind, error = %e, "discovery does not know the kind; watching it by its plural name");
            ApiResource::from_gvk_with_plural(&gvk, &crate::manifest::plural(&kind.kind))
        }
        Err(_) => {
            tracing::warn!(kind = %kind, "discovery did not answer; watching the kind by its plural name");
            ApiResource::from_gvk_with_plural(&gvk, &crate::manifest::plural(&kind.kind))
        }
    }
}

/// Keeps `store` equal to what the API server has, until the runtime stops.
async fn watch(client: Client, kind: ObjectKind, store: Arc<KindStore>, changes: Option<Notify>) {
    let tell = |namespace: String, name: String| {
        if let Some(changes) = &changes {
            let _ = changes.send(Changed {
                kind: kind.clone(),
                namespace,
                name,
            });
        }
    };
    let label = kind.to_string();
    let resource = resource(&client, &kind).await;
    let api: Api<DynamicObject> = Api::all_with(client, &resource);
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    // A (re-)list builds a fresh map and swaps it in whole at its end.
    let mut relist: Option<HashMap<Key, StoredObject>> = None;
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => relist = Some(HashMap::new()),
            Ok(watcher::Event::InitApply(object)) => {
                if let Some(map) = relist.as_mut() {
                    map.insert(key_of(&object), stored(&object));
                }
            }
            Ok(watcher::Event::InitDone) => {
                let map = relist.take().unwrap_or_default();
                let count = map.len();
                *store.write() = map;
                if !store.synced.swap(true, Ordering::AcqRel) {
                    tracing::info!(kind = %label, objects = count, "cache synced");
                } else {
                    tell(String::new(), "*".into());
                }
            }
            Ok(watcher::Event::Apply(object)) => {
                let key = key_of(&object);
                store.write().insert(key.clone(), stored(&object));
                tell(key.0, key.1);
            }
            Ok(watcher::Event::Delete(object)) => {
                let key = key_of(&object);
                store.write().remove(&key);
                tell(key.0, key.1);
            }
            Err(e) => {
                tracing::warn!(kind = %label, error = %e, "watch failed; retrying (is the kind installed, and may plate-policy list and watch it?)");
            }
        }
    }
}
