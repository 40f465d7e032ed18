//! `plate-policy audit --watch`: the continuous audit, as its own process (the
//! chart's audit Deployment), never inside the admission pods. The holder of the
//! audit's Lease (lease.rs) keeps one policy report per audited resource true to the
//! cluster:
//!
//! - a watch per audited kind re-judges an object whenever it changes (its first
//!   list is the first pass);
//! - a Namespace whose labels change has its objects listed and re-judged (their
//!   environment may have changed);
//! - a context object that changes (a ClusterIssuer) and a policy-set file that
//!   changes start a full pass, as does the periodic resync (`--resync-interval`);
//! - a report is written only when its content changes (reports carry their
//!   content digest, read back at start, so a restart rewrites nothing unchanged);
//!   a resource that no policy takes any more loses its report; a deleted resource's
//!   report goes with it (ownerReference, garbage collector).
//!
//! Memory holds what is needed to decide and to diff reports: per object its
//! report's digest and the violations it counts in the metric; Namespaces and
//! context objects (few) in the same caches admission uses; never whole audited
//! objects. API requests the audit makes (lists, report writes) wait for tokens of
//! the `--qps`/`--burst` bucket (limit.rs).

use super::lease::{self, LeaseConfig};
use super::limit::RateLimit;
use super::metrics::AuditMetrics;
use super::report::{self, CONTENT_ANNOTATION, MANAGED_BY, ReportApi};
use super::{AuditError, Listed, ObjectVerdict, Plan, judge, plan, to_value};
use crate::engine::Engine;
use crate::objects::reflector::{Changed, ClusterObjects};
use crate::objects::{ObjectKind, ObjectSource};
use crate::policy_set::{Loader, Mode, ModuleCache, PolicySet};
use futures::StreamExt;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often the policy-set file is checked for a change.
const POLICY_FILE_CHECK: Duration = Duration::from_secs(2);

/// The field manager of report writes (server-side apply).
const FIELD_MANAGER: &str = "plate-policy-audit";

/// What `audit --watch` runs with.
pub struct WatchOptions {
    /// The policy set file, re-read when it changes; None: the built-in set.
    pub policies: Option<PathBuf>,
    pub resync: Duration,
    pub report_api: ReportApi,
    pub qps: f64,
    pub burst: u32,
    pub page_size: u32,
    /// None: no leader election (a single audit process, e.g. on a laptop).
    pub lease: Option<LeaseConfig>,
    pub metrics_addr: SocketAddr,
}

/// Why the continuous audit stopped.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Lease(#[from] lease::LeaseError),
    #[error("lost the lease {0}: another replica audits now")]
    LostLease(String),
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    PolicySet(String),
    #[error(transparent)]
    MetricsRegistry(#[from] crate::metrics::MetricsError),
}

/// What is kept of one audited object.
struct Known {
    /// The digest of its report as written (None: no report written yet).
    digest: Option<String>,
    /// Its violations, as counted in the metric: (policy, environment, mode).
    counted: Vec<(String, Option<String>, Mode)>,
}

/// Work for the auditor.
enum Event {
    /// An audited object as a watch delivered it (kind index into `kinds`).
    Object(usize, Box<DynamicObject>),
    /// An audited object was deleted.
    Deleted(String),
    /// A watch of an audited kind finished its first list.
    Listed(usize),
}

/// Runs until the lease is lost or an unrecoverable error; returns why.
pub async fn run(
    client: Client,
    engine: Arc<Engine>,
    cache: Arc<ModuleCache>,
    options: WatchOptions,
) -> Result<(), WatchError> {
    let metrics = Arc::new(AuditMetrics::new()?);
    let ready = Arc::new(AtomicBool::new(false));
    serve_metrics(
        options.metrics_addr,
        Arc::clone(&metrics),
        Arc::clone(&ready),
    )
    .await?;

    // Leader election: wait to hold the lease, then keep renewing it.
    let (lost_tx, mut lost) = mpsc::unbounded_channel::<String>();
    if let Some(config) = options.lease.clone() {
        let renew = config.duration / 3;
        loop {
            if lease::try_acquire(&client, &config).await? {
                break;
            }
            tokio::time::sleep(renew).await;
        }
        tracing::info!(lease = %format!("{}/{}", config.namespace, config.name), identity = %config.identity, "holding the audit lease");
        let client = client.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(renew).await;
                match lease::try_acquire(&client, &config).await {
                    Ok(true) => {}
                    Ok(false) => {
                        let _ = lost_tx.send(format!("{}/{}", config.namespace, config.name));
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot renew the audit lease; retrying"),
                }
            }
        });
    }
    metrics.leader.set(1);

    let load = |engine: &Engine, cache: &ModuleCache| -> Result<PolicySet, WatchError> {
        let loader = Loader { engine, cache };
        match &options.policies {
            Some(path) => loader
                .load_file(path)
                .map_err(|e| WatchError::PolicySet(e.to_string())),
            None => loader
                .builtin()
                .map_err(|e| WatchError::PolicySet(e.to_string())),
        }
    };
    let mut set = tokio::task::block_in_place(|| load(&engine, &cache))?;
    let mut policy_file = options.policies.as_ref().and_then(|p| file_digest(p));
    let limit = Arc::new(RateLimit::new(options.qps, options.burst));
    let writes = Arc::new(Writes::default());
    let (failed_tx, mut failed) = mpsc::unbounded_channel::<(String, String)>();
    tokio::spawn(write_reports(
        client.clone(),
        options.report_api,
        Arc::clone(&writes),
        Arc::clone(&limit),
        Arc::clone(&metrics),
        failed_tx,
    ));
    let mut auditor = Auditor {
        client: client.clone(),
        engine: Arc::clone(&engine),
        metrics: Arc::clone(&metrics),
        report_api: options.report_api,
        limit,
        writes,
        page_size: options.page_size,
        known: HashMap::new(),
        namespaces: HashMap::new(),
    };
    auditor.read_reports().await;

    loop {
        // One generation: a plan, its watches, until the policy set changes.
        let plan = plan(&set);
        metrics.declare(&plan.set);
        let mut skipped = plan.skipped.clone();
        let served = super::discover(&client, &plan, &mut skipped).await?;
        for s in &skipped {
            tracing::info!(what = %s.what, reason = %s.reason, "the audit skips");
        }
        // Few objects in flight: each is a parsed JSON tree of several KiB.
        let (tx, mut events) = mpsc::channel::<Event>(64);
        let (changes_tx, mut changes) = mpsc::unbounded_channel::<Changed>();
        let context_kinds: Vec<ObjectKind> = served
            .context
            .iter()
            .map(|l| ObjectKind::new(&l.resource.api_version, &l.resource.kind))
            .collect();
        let objects = Arc::new(ClusterObjects::start_notifying(
            &client,
            &context_kinds,
            Some(changes_tx),
        ));
        // Environments and lookups must be known before anything is judged.
        wait_synced(&objects).await;
        for name in objects.namespace_names() {
            let fingerprint = labels_fingerprint(&objects, &name);
            auditor.namespaces.insert(name, fingerprint);
        }
        let mut watches = Vec::new();
        for (index, listed) in served.audited.iter().enumerate() {
            watches.push(tokio::spawn(watch_kind(
                client.clone(),
                listed.clone(),
                index,
                options.page_size,
                tx.clone(),
            )));
        }
        drop(tx);
        let mut first_pass = Pass::start(served.audited.len());
        if served.audited.is_empty() {
            // Nothing to list: the first pass is done as it starts.
            ready.store(true, Ordering::Release);
        }
        let mut resync =
            tokio::time::interval_at(tokio::time::Instant::now() + options.resync, options.resync);
        let mut file_check = tokio::time::interval(POLICY_FILE_CHECK);
        let reload = loop {
            tokio::select! {
                Some(name) = lost.recv() => return Err(WatchError::LostLease(name)),
                Some((uid, digest)) = failed.recv() => {
                    // Written again at the object's next judgement (a change, a resync).
                    if let Some(known) = auditor.known.get_mut(&uid)
                        && known.digest.as_deref() == Some(digest.as_str())
                    {
                        known.digest = None;
                    }
                }
                Some(event) = events.recv() => match event {
                    Event::Object(index, object) => {
                        if let Some(listed) = served.audited.get(index) {
                            auditor.judge_and_report(&plan, &objects, listed, *object).await;
                        }
                    }
                    Event::Deleted(uid) => auditor.forget(&uid),
                    Event::Listed(index) => {
                        if first_pass.listed(index) {
                            let took = first_pass.started.elapsed();
                            metrics.scan_duration.observe(took.as_secs_f64());
                            ready.store(true, Ordering::Release);
                            tracing::info!(objects = auditor.known.len(), seconds = took.as_secs_f64(), "first audit pass done");
                            release_freed_memory();
                        }
                    }
                },
                Some(changed) = changes.recv() => {
                    auditor.context_changed(&plan, &served.audited, &objects, changed).await;
                }
                _ = resync.tick() => {
                    let start = Instant::now();
                    auditor.full_pass(&plan, &served.audited, &objects).await;
                    metrics.scan_duration.observe(start.elapsed().as_secs_f64());
                    release_freed_memory();
                }
                _ = file_check.tick() => {
                    let Some(path) = &options.policies else { continue };
                    let now = file_digest(path);
                    if now.is_some() && now != policy_file {
                        match tokio::task::block_in_place(|| load(&engine, &cache)) {
                            Ok(new) => {
                                policy_file = now;
                                break new;
                            }
                            Err(e) => {
                                // The last good set keeps auditing.
                                tracing::warn!(error = %e, "the changed policy set does not load; auditing with the last good one");
                                policy_file = now;
                            }
                        }
                    }
                }
            }
        };
        tracing::info!("the policy set changed: auditing everything again with it");
        for watch in watches {
            watch.abort();
        }
        set = reload;
        // Everything is judged again by the new generation's first pass.
    }
}

/// Waits until every cache (Namespaces, context kinds) has completed its first
/// list, saying what it waits for now and then.
async fn wait_synced(objects: &ClusterObjects) {
    let start = Instant::now();
    let mut said = Instant::now();
    loop {
        let unsynced = objects.unsynced();
        if unsynced.is_empty() {
            return;
        }
        if said.elapsed() > Duration::from_secs(10) {
            tracing::warn!(kinds = %unsynced.join(", "), waited_s = start.elapsed().as_secs(), "waiting for caches before auditing (may the audit list and watch them?)");
            said = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A fingerprint of Namespace `name`'s labels.
fn labels_fingerprint(objects: &ClusterObjects, name: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let labels: BTreeMap<String, String> = objects
        .namespace_labels(name)
        .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    labels.hash(&mut h);
    h.finish()
}

/// Gives the pages a pass freed back to the system: glibc keeps freed heap pages in
/// its arenas, so after a first pass over many objects the process would otherwise
/// keep its peak resident size.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of the allocator to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Tracks the first list of every audited kind.
struct Pass {
    pending: Vec<bool>,
    started: Instant,
    done: bool,
}

impl Pass {
    fn start(kinds: usize) -> Pass {
        Pass {
            pending: vec![true; kinds],
            started: Instant::now(),
            done: false,
        }
    }

    /// Marks kind `index` listed; true exactly once, when the last one is.
    fn listed(&mut self, index: usize) -> bool {
        if let Some(p) = self.pending.get_mut(index) {
            *p = false;
        }
        if !self.done && self.pending.iter().all(|p| !p) {
            self.done = true;
            return true;
        }
        false
    }
}

fn file_digest(path: &std::path::Path) -> Option<Vec<u8>> {
    let bytes = std::fs::read(path).ok()?;
    Some(
        ring::digest::digest(&ring::digest::SHA256, &bytes)
            .as_ref()
            .to_vec(),
    )
}

/// The watch of one audited kind, feeding the auditor until aborted.
async fn watch_kind(
    client: Client,
    listed: Listed,
    index: usize,
    page_size: u32,
    events: mpsc::Sender<Event>,
) {
    let api: Api<DynamicObject> = Api::all_with(client, &listed.resource);
    let config = watcher::Config::default().page_size(page_size);
    let stream = watcher(api, config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        let sent = match event {
            Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                events.send(Event::Object(index, Box::new(object))).await
            }
            Ok(watcher::Event::Delete(object)) => {
                let uid = object.metadata.uid.clone().unwrap_or_default();
                events.send(Event::Deleted(uid)).await
            }
            Ok(watcher::Event::InitDone) => events.send(Event::Listed(index)).await,
            Ok(watcher::Event::Init) => Ok(()),
            Err(e) => {
                tracing::warn!(kind = %listed.resource.kind, error = %e, "audit watch failed; retrying (may the audit list and watch it?)");
                Ok(())
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

struct Auditor {
    client: Client,
    engine: Arc<Engine>,
    metrics: Arc<AuditMetrics>,
    report_api: ReportApi,
    limit: Arc<RateLimit>,
    /// Report writes waiting for a token (written by `write_reports`).
    writes: Arc<Writes>,
    page_size: u32,
    /// By uid.
    known: HashMap<String, Known>,
    /// Label fingerprints of the Namespaces, to tell a relabel from other changes.
    namespaces: HashMap<String, u64>,
}

impl Auditor {
    /// Reads the digests of the reports written before (by an earlier process).
    async fn read_reports(&mut self) {
        let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
        for namespaced in [true, false] {
            let api: Api<DynamicObject> =
                Api::all_with(self.client.clone(), &self.report_api.resource(namespaced));
            let mut token: Option<String> = None;
            loop {
                self.limit.acquire().await;
                let mut params = ListParams::default()
                    .labels(&selector)
                    .limit(self.page_size);
                if let Some(t) = &token {
                    params = params.continue_token(t);
                }
                let list = match api.list_metadata(&params).await {
                    Ok(list) => list,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read existing policy reports (are the CRDs installed?); every report will be written");
                        break;
                    }
                };
                for item in list.items {
                    let (Some(uid), Some(digest)) = (
                        item.metadata.name.clone(),
                        item.metadata
                            .annotations
                            .as_ref()
                            .and_then(|a| a.get(CONTENT_ANNOTATION))
                            .cloned(),
                    ) else {
                        continue;
                    };
                    self.known.insert(
                        uid,
                        Known {
                            digest: Some(digest),
                            counted: Vec::new(),
                        },
                    );
                }
                match list.metadata.continue_.filter(|t| !t.is_empty()) {
                    Some(next) => token = Some(next),
                    None => break,
                }
            }
        }
    }

    /// Judges one object and writes its report if its content changed.
    async fn judge_and_report(
        &mut self,
        plan: &Plan,
        objects: &Arc<ClusterObjects>,
        listed: &Listed,
        object: DynamicObject,
    ) {
        let uid = object.metadata.uid.clone().unwrap_or_default();
        let namespace = object.metadata.namespace.clone();
        let value = to_value(object, &listed.resource);
        let source: Arc<dyn ObjectSource> = Arc::clone(objects) as Arc<dyn ObjectSource>;
        let engine = Arc::clone(&self.engine);
        let verdict = tokio::task::block_in_place(|| {
            let slot = engine.evaluation_slot_blocking()?;
            judge(&plan.set, &source, &slot, &value, listed.namespaced)
        });
        drop(value);
        match verdict {
            Some(verdict) => self.report(&verdict).await,
            None => {
                self.unreport(&uid, listed.namespaced, namespace.as_deref())
                    .await
            }
        }
    }

    /// Counts `verdict`'s violations and writes its report when it changed.
    async fn report(&mut self, verdict: &ObjectVerdict) {
        let counted: Vec<(String, Option<String>, Mode)> = verdict
            .results
            .iter()
            .filter(|r| r.result == "fail" || r.result == "warn")
            .map(|r| (r.policy.clone(), verdict.environment.clone(), r.mode))
            .collect();
        let now = k8s_openapi::jiff::Timestamp::now().as_second();
        let (document, digest) = report::document(self.report_api, verdict, now);
        let entry = self.known.entry(verdict.uid.clone()).or_insert(Known {
            digest: None,
            counted: Vec::new(),
        });
        let was_counted = std::mem::replace(&mut entry.counted, counted);
        for (policy, env, mode) in &was_counted {
            self.metrics.count(policy, env.as_deref(), *mode, -1);
        }
        for (policy, env, mode) in &entry.counted {
            self.metrics.count(policy, env.as_deref(), *mode, 1);
        }
        let unchanged = entry.digest.as_deref() == Some(digest.as_str());
        entry.digest = Some(digest.clone());
        self.metrics.objects.set(self.known.len() as i64);
        if unchanged {
            return;
        }
        let document = match serde_json::value::to_raw_value(&document) {
            Ok(document) => document,
            Err(e) => {
                // A Value always serializes; kept as an error, not a panic.
                tracing::error!(report = %verdict.uid, error = %e, "cannot encode the policy report");
                return;
            }
        };
        self.writes
            .push(
                verdict.uid.clone(),
                Write::Apply {
                    namespace: verdict.namespace.clone(),
                    document,
                    digest,
                },
            )
            .await;
    }

    /// No policy takes the object (any more): its report goes.
    async fn unreport(&mut self, uid: &str, namespaced: bool, namespace: Option<&str>) {
        let Some(known) = self.known.remove(uid) else {
            return;
        };
        for (policy, env, mode) in &known.counted {
            self.metrics.count(policy, env.as_deref(), *mode, -1);
        }
        self.metrics.objects.set(self.known.len() as i64);
        if known.digest.is_none() {
            self.writes.cancel(uid);
            return;
        }
        self.writes
            .push(
                uid.to_string(),
                Write::Delete {
                    namespace: namespaced.then(|| namespace.unwrap_or_default().to_string()),
                },
            )
            .await;
    }

    /// The object is gone; the garbage collector deletes its report.
    fn forget(&mut self, uid: &str) {
        self.writes.cancel(uid);
        if let Some(known) = self.known.remove(uid) {
            for (policy, env, mode) in &known.counted {
                self.metrics.count(policy, env.as_deref(), *mode, -1);
            }
        }
        self.metrics.objects.set(self.known.len() as i64);
    }

    /// A Namespace or a context object changed: re-judge what depends on it.
    async fn context_changed(
        &mut self,
        plan: &Plan,
        audited: &[Listed],
        objects: &Arc<ClusterObjects>,
        changed: Changed,
    ) {
        if changed.kind == ObjectKind::namespace() && changed.name != "*" {
            let fingerprint = labels_fingerprint(objects, &changed.name);
            let before = self.namespaces.insert(changed.name.clone(), fingerprint);
            if before.is_none() || before == Some(fingerprint) {
                // New (its objects arrive through their watches) or not relabelled.
                return;
            }
            tracing::info!(namespace = %changed.name, "namespace relabelled: judging its objects again");
            for listed in audited.iter().filter(|l| l.namespaced) {
                self.relist(plan, objects, listed, Some(&changed.name))
                    .await;
            }
            // The Namespace itself may be audited too.
            for listed in audited.iter().filter(|l| l.resource.kind == "Namespace") {
                self.relist(plan, objects, listed, None).await;
            }
            return;
        }
        tracing::info!(kind = %changed.kind, name = %changed.name, "a context object changed: judging everything again");
        self.full_pass(plan, audited, objects).await;
    }

    /// Lists and judges every audited object.
    async fn full_pass(&mut self, plan: &Plan, audited: &[Listed], objects: &Arc<ClusterObjects>) {
        for listed in audited {
            self.relist(plan, objects, listed, None).await;
        }
    }

    /// Lists the objects of `listed` (in `namespace`, or all) and judges each.
    async fn relist(
        &mut self,
        plan: &Plan,
        objects: &Arc<ClusterObjects>,
        listed: &Listed,
        namespace: Option<&str>,
    ) {
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &listed.resource),
            None => Api::all_with(self.client.clone(), &listed.resource),
        };
        let mut token: Option<String> = None;
        loop {
            self.limit.acquire().await;
            let mut params = ListParams::default().limit(self.page_size);
            if let Some(t) = &token {
                params = params.continue_token(t);
            }
            let list = match api.list(&params).await {
                Ok(list) => list,
                Err(e) => {
                    tracing::warn!(kind = %listed.resource.kind, error = %e, "cannot list for the audit; the next resync tries again");
                    return;
                }
            };
            let next = list.metadata.continue_.clone().filter(|t| !t.is_empty());
            for object in list.items {
                self.judge_and_report(plan, objects, listed, object).await;
            }
            match next {
                Some(next) => token = Some(next),
                None => return,
            }
        }
    }
}

/// A report write waiting for its token.
enum Write {
    Apply {
        /// None for cluster-scoped resources.
        namespace: Option<String>,
        /// The report as JSON text: a `serde_json::Value` of the same report takes
        /// several times the memory, and a first pass may queue one per object.
        document: Box<serde_json::value::RawValue>,
        digest: String,
    },
    Delete {
        namespace: Option<String>,
    },
}

impl Write {
    /// What the write holds in memory, roughly: what the queue's budget counts.
    fn size(&self) -> usize {
        match self {
            Write::Apply {
                namespace,
                document,
                digest,
            } => {
                document.get().len()
                    + digest.len()
                    + namespace.as_ref().map_or(0, String::len)
                    + WRITE_OVERHEAD
            }
            Write::Delete { namespace } => {
                namespace.as_ref().map_or(0, String::len) + WRITE_OVERHEAD
            }
        }
    }
}

/// Per queued write, besides its text: the uid twice, map and queue slots.
const WRITE_OVERHEAD: usize = 192;

/// At most this many bytes of report writes wait for tokens; beyond it judging
/// waits for the writer. 16 MiB holds about 9,000 reports of 1.5 KB (a Deployment
/// judged by three policies), so a first pass on a cluster of that size lists and
/// judges at full speed while writes trickle out at `--qps`; on a larger cluster the
/// pass goes on at the write rate once the budget is full, and memory stays bounded:
/// with 32 MiB, a first pass over 20,000 objects ended at 103 MiB of RSS (the goal
/// is 100 MiB), with 16 MiB at 90 MiB (bench/audit.sh, docs/performance.md).
const WRITES_BUDGET: usize = 16 << 20;

/// Report writes waiting for a token, at most one per object (a newer judgement
/// replaces a waiting one), in the order objects first needed one, within a byte
/// budget (`WRITES_BUDGET`): judging does not wait for the API until the budget is
/// full, so a first pass lists and judges at full speed (its list's continue token
/// cannot expire while writes trickle out at `--qps`), and memory stays bounded.
struct Writes {
    queue: std::sync::Mutex<Queue>,
    budget: usize,
    /// A write was queued (the writer waits on it).
    wake: tokio::sync::Notify,
    /// A write left the queue (a full queue's pusher waits on it).
    room: tokio::sync::Notify,
}

#[derive(Default)]
struct Queue {
    order: std::collections::VecDeque<String>,
    waiting: HashMap<String, Write>,
    bytes: usize,
}

impl Default for Writes {
    fn default() -> Self {
        Writes::with_budget(WRITES_BUDGET)
    }
}

impl Writes {
    fn with_budget(budget: usize) -> Self {
        Writes {
            queue: std::sync::Mutex::new(Queue::default()),
            budget,
            wake: tokio::sync::Notify::new(),
            room: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // Queue operations cannot leave it inconsistent.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `write`, first waiting while the queue is over its budget (unless it
    /// replaces a waiting write of the same object, which frees as much as it takes).
    async fn push(&self, uid: String, write: Write) {
        loop {
            // Registered before the check, so a pop between the two is not missed.
            let room = self.room.notified();
            {
                let queue = self.lock();
                if queue.bytes < self.budget || queue.waiting.contains_key(&uid) {
                    break;
                }
            }
            room.await;
        }
        self.push_now(uid, write);
    }

    fn push_now(&self, uid: String, write: Write) {
        let mut queue = self.lock();
        queue.bytes += write.size();
        match queue.waiting.insert(uid.clone(), write) {
            Some(replaced) => queue.bytes -= replaced.size(),
            None => queue.order.push_back(uid),
        }
        drop(queue);
        self.wake.notify_one();
    }

    fn cancel(&self, uid: &str) {
        let mut queue = self.lock();
        if let Some(write) = queue.waiting.remove(uid) {
            queue.bytes -= write.size();
            drop(queue);
            self.room.notify_waiters();
        }
    }

    fn pop(&self) -> Option<(String, Write)> {
        let mut queue = self.lock();
        while let Some(uid) = queue.order.pop_front() {
            if let Some(write) = queue.waiting.remove(&uid) {
                queue.bytes -= write.size();
                drop(queue);
                self.room.notify_waiters();
                return Some((uid, write));
            }
        }
        None
    }

    /// Bytes of writes waiting.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

/// Writes reports as tokens allow; a failed apply is reported back so the object's
/// report is written again at its next judgement.
async fn write_reports(
    client: Client,
    api: ReportApi,
    writes: Arc<Writes>,
    limit: Arc<RateLimit>,
    metrics: Arc<AuditMetrics>,
    failed: mpsc::UnboundedSender<(String, String)>,
) {
    loop {
        let Some((uid, write)) = writes.pop() else {
            writes.wake.notified().await;
            continue;
        };
        limit.acquire().await;
        match write {
            Write::Apply {
                namespace,
                document,
                digest,
            } => {
                let resource = api.resource(namespace.is_some());
                let reports: Api<DynamicObject> = match &namespace {
                    Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
                    None => Api::all_with(client.clone(), &resource),
                };
                let params = PatchParams::apply(FIELD_MANAGER).force();
                match reports.patch(&uid, &params, &Patch::Apply(&document)).await {
                    Ok(_) => metrics.report_writes.with_label_values(&["success"]).inc(),
                    Err(e) => {
                        metrics.report_writes.with_label_values(&["error"]).inc();
                        tracing::warn!(report = %uid, error = %e, "cannot write the policy report; it will be written at the object's next change or resync");
                        let _ = failed.send((uid, digest));
                    }
                }
            }
            Write::Delete { namespace } => {
                let resource = api.resource(namespace.is_some());
                let reports: Api<DynamicObject> = match &namespace {
                    Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
                    None => Api::all_with(client.clone(), &resource),
                };
                if let Err(e) = reports.delete(&uid, &DeleteParams::default()).await {
                    tracing::debug!(report = %uid, error = %e, "cannot delete a policy report no policy needs");
                }
            }
        }
    }
}

/// `/metrics`, `/healthz` and `/readyz` (ready once the first pass is done) on `addr`.
async fn serve_metrics(
    addr: SocketAddr,
    metrics: Arc<AuditMetrics>,
    ready: Arc<AtomicBool>,
) -> Result<(), WatchError> {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| WatchError::Metrics { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = Arc::clone(&metrics);
                async move {
                    match metrics.encode() {
                        Ok(text) => (axum::http::StatusCode::OK, text),
                        Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                    }
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = Arc::clone(&ready);
                async move {
                    if ready.load(Ordering::Acquire) {
                        (axum::http::StatusCode::OK, "ready")
                    } else {
                        (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            "the first audit pass is not done",
                        )
                    }
                }
            }),
        );
    tracing::info!(metrics = %local, "serving audit metrics");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the audit's metrics server stopped");
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(digest: &str) -> Write {
        Write::Apply {
            namespace: None,
            document: serde_json::value::to_raw_value(&serde_json::json!({"report": digest}))
                .unwrap_or_default(),
            digest: digest.into(),
        }
    }

    fn digest_of(write: &Write) -> &str {
        match write {
            Write::Apply { digest, .. } => digest,
            Write::Delete { .. } => "delete",
        }
    }

    #[tokio::test]
    async fn a_newer_write_replaces_a_waiting_one_in_its_place_and_cancel_drops_it() {
        let writes = Writes::default();
        writes.push("a".into(), apply("a1")).await;
        writes.push("b".into(), apply("b1")).await;
        writes.push("a".into(), apply("a2")).await;
        writes
            .push("c".into(), Write::Delete { namespace: None })
            .await;
        writes.cancel("b");
        let popped: Vec<(String, String)> = std::iter::from_fn(|| writes.pop())
            .map(|(uid, w)| (uid, digest_of(&w).to_string()))
            .collect();
        assert_eq!(
            popped,
            [
                ("a".to_string(), "a2".to_string()),
                ("c".into(), "delete".into())
            ]
        );
        assert!(writes.pop().is_none());
        assert_eq!(writes.bytes(), 0, "the byte count follows what is queued");
    }

    #[tokio::test]
    async fn a_full_queue_makes_the_pusher_wait_until_a_write_leaves() {
        let one = apply("x0").size();
        let writes = Writes::with_budget(2 * one);
        writes.push("a".into(), apply("a1")).await;
        writes.push("b".into(), apply("b1")).await;
        // Over budget: a new object waits, a newer write of a waiting one does not.
        writes.push("a".into(), apply("a2")).await;
        let mut third = Box::pin(writes.push("c".into(), apply("c1")));
        assert!(
            futures::poll!(&mut third).is_pending(),
            "the third object waits for room"
        );
        assert_eq!(writes.pop().map(|(uid, _)| uid).as_deref(), Some("a"));
        assert!(futures::poll!(&mut third).is_ready(), "a pop makes room");
        let rest: Vec<String> = std::iter::from_fn(|| writes.pop())
            .map(|(u, _)| u)
            .collect();
        assert_eq!(rest, ["b", "c"]);
    }

    #[test]
    fn the_first_pass_is_done_once_every_kind_is_listed() {
        let mut pass = Pass::start(2);
        assert!(!pass.listed(0));
        assert!(!pass.listed(0));
        assert!(pass.listed(1));
        assert!(!pass.listed(1), "only once");
    }
}
