//! The cluster harness's test side (docs/testing.md, "The cluster harness").
//!
//! `scripts/cluster.sh up` runs etcd, kube-apiserver and kube-controller-manager. This
//! module installs the chart with the real helm, then plays the two parts of a node the
//! harness does not have:
//! - **kubelet**: each webhook replica is `plate-policy serve` run with the container
//!   args of the Deployment the chart put into the API server, in its own network
//!   namespace (`plate-rN`, own address, same port), with the pod's volumes (the
//!   Secret and ConfigMap read back from the API server, written and updated the way
//!   kubelet's atomic writer does: `..data` symlink swaps), the chart's ServiceAccount
//!   token at /var/run/secrets/kubernetes.io/serviceaccount (a private mount namespace
//!   per replica) and the in-cluster environment. Readiness is probed as the
//!   Deployment's readinessProbe says; termination is preStop, SIGTERM, grace period.
//! - **EndpointSlice controller**: the Service's EndpointSlice holds the replicas
//!   that run, `ready` only while their probe passes, `terminating` from the moment
//!   the harness starts stopping one, gone once it has exited.
//!
//! The API server calls the replicas through that EndpointSlice
//! (`--enable-aggregator-routing`), with the caBundle of the chart's webhook
//! configuration, as it would call pods.
#![allow(dead_code)]

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// cert-manager's CRDs (Certificate, ClusterIssuer, ...) come from this module.
pub const CERT_MANAGER: &str = "github.com/cert-manager/cert-manager@v1.21.2";
/// ServiceMonitor and PrometheusRule CRDs come from this module.
pub const PROMETHEUS_OPERATOR: &str = "github.com/prometheus-operator/prometheus-operator@v0.85.0";
/// The policy report CRDs (Report, ClusterReport) come from this module.
pub const OPENREPORTS: &str = "github.com/openreports/reports-api@v0.2.1";

pub const RELEASE: &str = "plate-policy";
pub const RELEASE_NS: &str = "plate-system";
/// The Secret the test makes for `tls.mode=existingSecret`.
pub const TLS_SECRET: &str = "plate-policy-serving";
pub const WEBHOOK: &str = "validate.policy.plate.dev";

// ---------------------------------------------------------------------------------------
// The environment `scripts/cluster.sh up` wrote.

#[derive(Debug, Clone)]
pub struct Env {
    pub kubeconfig: PathBuf,
    pub bin: PathBuf,
    pub state: PathBuf,
    pub api_host: String,
    pub api_port: u16,
    pub ca: PathBuf,
    pub slots: usize,
    pub netns_prefix: String,
    pub net: String,
}

impl Env {
    pub fn load() -> Env {
        let out = Command::new("bash")
            .arg(super::repo_root().join("scripts/cluster.sh"))
            .arg("env")
            .output()
            .unwrap_or_else(|e| panic!("scripts/cluster.sh env: {e}"));
        assert!(
            out.status.success(),
            "the control plane is not up (run `bash scripts/cluster.sh up` first): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let vars: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let var = |k: &str| -> String {
            vars.get(k)
                .map(|v| v.to_string())
                .unwrap_or_else(|| panic!("cluster.sh env has no {k}"))
        };
        Env {
            kubeconfig: var("KUBECONFIG").into(),
            bin: var("PLATE_CLUSTER_BIN").into(),
            state: var("PLATE_CLUSTER_STATE").into(),
            api_host: var("PLATE_CLUSTER_API_HOST"),
            api_port: var("PLATE_CLUSTER_API_PORT").parse().unwrap_or(6443),
            ca: var("PLATE_CLUSTER_CA").into(),
            slots: var("PLATE_CLUSTER_SLOTS").parse().unwrap_or(0),
            netns_prefix: var("PLATE_CLUSTER_NETNS_PREFIX"),
            net: var("PLATE_CLUSTER_NET"),
        }
    }

    pub fn slot_ip(&self, slot: usize) -> String {
        format!("{}.{}", self.net, 10 + slot)
    }
}

// ---------------------------------------------------------------------------------------
// kubectl and helm, as a user runs them.

/// What a command printed, and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    pub command: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics with everything printed unless the command succeeded.
    pub fn success(self) -> Output {
        assert!(self.ok(), "{} failed:\n{}", self.command, self.text());
        self
    }

    /// Panics unless the command failed.
    pub fn failure(self) -> Output {
        assert!(
            !self.ok(),
            "{} succeeded, expected a failure:\n{}",
            self.command,
            self.text()
        );
        self
    }

    /// kubectl's `Warning: ...` lines (what the API server passed on from webhooks), in order.
    pub fn warnings(&self) -> Vec<String> {
        self.stderr
            .lines()
            .filter_map(|l| l.strip_prefix("Warning: "))
            .map(str::to_owned)
            .collect()
    }

    /// stdout and stderr, for failure messages.
    pub fn text(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn run(program: &Path, args: &[&str], stdin: Option<&str>, env: &Env) -> Output {
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .env("KUBECONFIG", &env.kubeconfig)
        // helm keeps its cache, config and data under these; keep them in the state dir.
        .env("HELM_CACHE_HOME", env.state.join("helm/cache"))
        .env("HELM_CONFIG_HOME", env.state.join("helm/config"))
        .env("HELM_DATA_HOME", env.state.join("helm/data"))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        pipe.write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("writing to {}: {e}", program.display()));
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    Output {
        command: format!(
            "{} {}",
            program.file_name().unwrap_or_default().to_string_lossy(),
            args.join(" ")
        ),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

pub fn kubectl(env: &Env, args: &[&str]) -> Output {
    run(&env.bin.join("kubectl"), args, None, env)
}

/// `kubectl ARGS -f -` with `manifest` on stdin.
pub fn kubectl_stdin(env: &Env, args: &[&str], manifest: &str) -> Output {
    let mut all = args.to_vec();
    all.extend(["-f", "-"]);
    run(&env.bin.join("kubectl"), &all, Some(manifest), env)
}

pub fn helm(env: &Env, args: &[&str]) -> Output {
    run(&env.bin.join("helm"), args, None, env)
}

// ---------------------------------------------------------------------------------------
// The kube client, blocking.

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
    })
}

pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

pub fn client(env: &Env) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(&env.kubeconfig)
        .unwrap_or_else(|e| panic!("{}: {e}", env.kubeconfig.display()));
    block_on(async {
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("kubeconfig: {e}"));
        kube::Client::try_from(config).unwrap_or_else(|e| panic!("kube client: {e}"))
    })
}

/// Polls `check` until it returns Some, every 100 ms, for at most `limit`.
pub fn poll<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `command` until `accept` holds for its output, every 100 ms, for at most
/// `limit`; panics with the last output otherwise.
pub fn poll_output(
    limit: Duration,
    what: &str,
    mut command: impl FnMut() -> Output,
    accept: impl Fn(&Output) -> bool,
) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        let out = command();
        if accept(&out) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {limit:?}; last: {}\n{}",
            out.command,
            out.text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------
// CRDs and TLS material.

/// The directory of a Go module, fetched through the module proxy into Go's module cache.
pub fn go_module_dir(module: &str) -> PathBuf {
    let out = Command::new("go")
        .args(["mod", "download", "-json", module])
        .output()
        .unwrap_or_else(|e| panic!("go mod download {module}: {e}"));
    let info: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "go mod download -json {module}: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let dir = info["Dir"]
        .as_str()
        .unwrap_or_else(|| panic!("go mod download {module}: no Dir in {info}"));
    PathBuf::from(dir)
}

/// The CRD files the chart's objects need: every cert-manager CRD, and prometheus-operator's
/// ServiceMonitor and PrometheusRule.
pub fn crd_files() -> Vec<PathBuf> {
    let cm = go_module_dir(CERT_MANAGER).join("deploy/crds");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&cm)
        .unwrap_or_else(|e| panic!("{}: {e}", cm.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let po = go_module_dir(PROMETHEUS_OPERATOR).join("example/prometheus-operator-crd");
    files.push(po.join("monitoring.coreos.com_servicemonitors.yaml"));
    files.push(po.join("monitoring.coreos.com_prometheusrules.yaml"));
    let reports = go_module_dir(OPENREPORTS).join("config/crd");
    files.push(reports.join("openreports.io_reports.yaml"));
    files.push(reports.join("openreports.io_clusterreports.yaml"));
    files
}

/// A CA and a serving certificate signed by it (P-256, openssl).
#[derive(Debug, Clone)]
pub struct Tls {
    pub dir: PathBuf,
    pub ca_pem: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

pub fn make_tls(dir: &Path, dns: &str, days: u32) -> Tls {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let sh = |script: &str| {
        let out = Command::new("sh")
            .args(["-ec", script])
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("sh: {e}"));
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sh(&format!(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
           -keyout ca.key -out ca.crt -subj '/CN=plate-policy-test-ca' -days {days} \
           -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout tls.key \
           -subj '/CN={dns}' -out tls.csr 2>/dev/null
         printf 'subjectAltName=DNS:{dns}\\nextendedKeyUsage=serverAuth\\nkeyUsage=critical,digitalSignature\\n' >ext
         openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days {days} \
           -sha256 -extfile ext -out tls.crt 2>/dev/null
         rm -f tls.csr ext"
    ));
    let ca = dir.join("ca.crt");
    Tls {
        dir: dir.to_path_buf(),
        ca_pem: std::fs::read_to_string(&ca).unwrap_or_else(|e| panic!("{}: {e}", ca.display())),
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
        ca,
    }
}

/// Creates or replaces the kubernetes.io/tls Secret `name` in `ns` with `tls`.
pub fn apply_tls_secret(env: &Env, ns: &str, name: &str, tls: &Tls) {
    let rendered = kubectl(
        env,
        &[
            "-n",
            ns,
            "create",
            "secret",
            "tls",
            name,
            "--cert",
            &tls.cert.to_string_lossy(),
            "--key",
            &tls.key.to_string_lossy(),
            "--dry-run=client",
            "-o",
            "yaml",
        ],
    )
    .success();
    kubectl_stdin(env, &["apply"], &rendered.stdout).success();
}

// ---------------------------------------------------------------------------------------
// kubelet: webhook replicas as pods.

/// What the harness needs of the Deployment's pod template.
#[derive(Debug, Clone)]
pub struct PodSpec {
    pub args: Vec<String>,
    /// mountPath -> volume
    pub mounts: Vec<(String, Volume)>,
    pub ports: BTreeMap<String, u16>,
    pub readiness_path: String,
    pub readiness_port: u16,
    pub readiness_period: Duration,
    pub readiness_failures: u32,
    pub prestop_sleep: Duration,
    pub grace: Duration,
    pub service_account: String,
}

#[derive(Debug, Clone)]
pub enum Volume {
    Secret(String),
    ConfigMap(String),
    EmptyDir(String),
}

impl PodSpec {
    /// Reads the pod template of Deployment `name` in `ns` from the API server.
    pub fn read(client: &kube::Client, ns: &str, name: &str) -> PodSpec {
        let deploy: Deployment = block_on(Api::namespaced(client.clone(), ns).get(name))
            .unwrap_or_else(|e| panic!("get deployment {ns}/{name}: {e}"));
        let v = serde_json::to_value(&deploy).unwrap_or_default();
        let spec = &v["spec"]["template"]["spec"];
        let c = &spec["containers"][0];
        let args: Vec<String> = c["args"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let mut volumes = BTreeMap::new();
        for vol in spec["volumes"].as_array().into_iter().flatten() {
            let name = vol["name"].as_str().unwrap_or_default().to_owned();
            let volume = if let Some(s) = vol["secret"]["secretName"].as_str() {
                Volume::Secret(s.to_owned())
            } else if let Some(m) = vol["configMap"]["name"].as_str() {
                Volume::ConfigMap(m.to_owned())
            } else {
                Volume::EmptyDir(name.clone())
            };
            volumes.insert(name, volume);
        }
        let mounts = c["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| {
                let vol = volumes.get(m["name"].as_str()?)?.clone();
                Some((m["mountPath"].as_str()?.to_owned(), vol))
            })
            .collect();
        let ports: BTreeMap<String, u16> = c["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                Some((
                    p["name"].as_str()?.to_owned(),
                    u16::try_from(p["containerPort"].as_u64()?).ok()?,
                ))
            })
            .collect();
        let probe = &c["readinessProbe"];
        let port_of = |p: &Value| -> u16 {
            p.as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .or_else(|| p.as_str().and_then(|n| ports.get(n).copied()))
                .unwrap_or_else(|| panic!("readiness probe port {p} is not a container port"))
        };
        let secs = |v: &Value, default: u64| Duration::from_secs(v.as_u64().unwrap_or(default));
        PodSpec {
            readiness_path: probe["httpGet"]["path"].as_str().unwrap_or("/").to_owned(),
            readiness_port: port_of(&probe["httpGet"]["port"]),
            readiness_period: secs(&probe["periodSeconds"], 10),
            readiness_failures: probe["failureThreshold"].as_u64().unwrap_or(3) as u32,
            prestop_sleep: secs(&c["lifecycle"]["preStop"]["sleep"]["seconds"], 0),
            grace: secs(&spec["terminationGracePeriodSeconds"], 30),
            service_account: spec["serviceAccountName"]
                .as_str()
                .unwrap_or("default")
                .to_owned(),
            args,
            mounts,
            ports,
        }
    }
}

/// Lifecycle of a replica as the EndpointSlice shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Terminating,
    Exited,
}

struct ReplicaState {
    phase: Phase,
    ready: bool,
    consecutive_failures: u32,
    /// volume dir -> the content last written there
    written: BTreeMap<PathBuf, BTreeMap<String, Vec<u8>>>,
}

/// One `plate-policy serve` process in network namespace `plate-r<slot>`.
pub struct Replica {
    pub slot: usize,
    pub ip: String,
    pub name: String,
    pub dir: PathBuf,
    pub pid: u32,
    child: Mutex<Child>,
    state: Mutex<ReplicaState>,
    pub log: Arc<Mutex<Vec<String>>>,
    spec: PodSpec,
    ns: String,
}

impl Replica {
    pub fn log_text(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Log lines so far containing every one of `needles`.
    pub fn log_lines_with(&self, needles: &[&str]) -> Vec<String> {
        self.log
            .lock()
            .map(|l| {
                l.iter()
                    .filter(|line| needles.iter().all(|n| line.contains(n)))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn ready(&self) -> bool {
        self.state
            .lock()
            .map(|s| s.ready && s.phase == Phase::Running)
            .unwrap_or(false)
    }

    pub fn exited(&self) -> bool {
        self.state
            .lock()
            .map(|s| s.phase == Phase::Exited)
            .unwrap_or(true)
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        let port = self
            .spec
            .ports
            .get("metrics")
            .copied()
            .unwrap_or(self.spec.readiness_port);
        format!("{}:{port}", self.ip)
            .parse()
            .unwrap_or_else(|e| panic!("address of {}: {e}", self.name))
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid.to_string()])
            .status()
            .unwrap_or_else(|e| panic!("kill: {e}"));
        assert!(status.success(), "kill -{signal} {} failed", self.pid);
    }

    fn poll_exit(&self) -> bool {
        let exited = self
            .child
            .lock()
            .map(|mut c| matches!(c.try_wait(), Ok(Some(_))))
            .unwrap_or(false);
        if exited && let Ok(mut s) = self.state.lock() {
            s.phase = Phase::Exited;
            s.ready = false;
        }
        exited
    }

    /// One readiness probe, as kubelet's httpGet does it (2xx/3xx is success).
    fn probe(&self) {
        let addr: SocketAddr = match format!("{}:{}", self.ip, self.spec.readiness_port).parse() {
            Ok(a) => a,
            Err(_) => return,
        };
        let ok = matches!(
            super::https::http_get(addr, &self.spec.readiness_path),
            Ok((200..=399, _))
        );
        if let Ok(mut s) = self.state.lock() {
            if ok {
                s.consecutive_failures = 0;
                s.ready = true;
            } else {
                s.consecutive_failures += 1;
                if s.consecutive_failures >= self.spec.readiness_failures {
                    s.ready = false;
                }
            }
        }
    }

    /// Writes the pod's Secret and ConfigMap volumes when their content changed, the way
    /// kubelet's atomic writer does: a new timestamped directory, `..data` swapped to it
    /// by rename, each key a symlink through `..data`.
    fn sync_volumes(&self, client: &kube::Client) {
        for (mount, volume) in &self.spec.mounts {
            let dir = volume_dir(&self.dir, mount);
            let content: Option<BTreeMap<String, Vec<u8>>> = match volume {
                Volume::Secret(name) => {
                    block_on(Api::<Secret>::namespaced(client.clone(), &self.ns).get_opt(name))
                        .ok()
                        .flatten()
                        .map(|s| {
                            s.data
                                .unwrap_or_default()
                                .into_iter()
                                .map(|(k, v)| (k, v.0))
                                .collect()
                        })
                }
                Volume::ConfigMap(name) => {
                    block_on(Api::<ConfigMap>::namespaced(client.clone(), &self.ns).get_opt(name))
                        .ok()
                        .flatten()
                        .map(|c| {
                            c.data
                                .unwrap_or_default()
                                .into_iter()
                                .map(|(k, v)| (k, v.into_bytes()))
                                .collect()
                        })
                }
                Volume::EmptyDir(_) => None,
            };
            let Some(content) = content else { continue };
            let Ok(mut state) = self.state.lock() else {
                continue;
            };
            if state.written.get(&dir) == Some(&content) {
                continue;
            }
            if let Err(e) = atomic_write(&dir, &content) {
                panic!("writing volume {}: {e}", dir.display());
            }
            state.written.insert(dir, content);
        }
    }
}

/// Where the replica's volume mounted at `mount` lives on the host.
/// Where the volume mounted at `mount` lives for a replica: the mount path under
/// `volumes/`, so that a path relative to one volume reaches another as it does in a
/// pod (`../registry-ca/ca.crt` from the policy set's directory).
fn volume_dir(root: &Path, mount: &str) -> PathBuf {
    root.join("volumes").join(mount.trim_start_matches('/'))
}

fn atomic_write(dir: &Path, content: &BTreeMap<String, Vec<u8>>) -> std::io::Result<()> {
    use std::os::unix::fs::symlink;
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    std::fs::create_dir_all(dir)?;
    let stamp = format!(
        "..{}_{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let new = dir.join(&stamp);
    std::fs::create_dir(&new)?;
    for (key, value) in content {
        std::fs::write(new.join(key), value)?;
    }
    let old = std::fs::read_link(dir.join("..data")).ok();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(&stamp, &tmp)?;
    std::fs::rename(&tmp, dir.join("..data"))?;
    for key in content.keys() {
        let link = dir.join(key);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(format!("..data/{key}"), &link)?;
        }
    }
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(())
}

/// Spawns children from one thread that lives as long as the test process, so that
/// PR_SET_PDEATHSIG (which fires when the spawning *thread* ends) kills every replica
/// exactly when the test process ends, whichever way it ends.
fn spawn(mut command: Command) -> std::io::Result<Child> {
    type Job = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::spawn(move || {
            for (mut command, reply) in rx {
                let _ = reply.send(command.spawn());
            }
        });
        Mutex::new(tx)
    });
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    sender
        .lock()
        .map_err(|_| std::io::Error::other("spawner poisoned"))?
        .send((command, tx))
        .map_err(|_| std::io::Error::other("spawner gone"))?;
    rx.recv()
        .map_err(|_| std::io::Error::other("spawner gone"))?
}

/// What the EndpointSlice last said about each replica: (address, ready, terminating).
type Endpoints = Vec<(String, bool, bool)>;

/// The replicas of one release and the Service whose EndpointSlice they fill.
pub struct Node {
    pub env: Env,
    client: kube::Client,
    pub ns: String,
    pub service: String,
    pub deployment: String,
    replicas: Mutex<Vec<Arc<Replica>>>,
    stop: Arc<AtomicBool>,
    /// Bumped each time the EndpointSlice was written: (generation, what it said).
    published: Arc<Mutex<(u64, Endpoints)>>,
    controller: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Node {
    pub fn new(env: &Env, ns: &str, release_fullname: &str) -> Arc<Node> {
        let node = Arc::new(Node {
            env: env.clone(),
            client: client(env),
            ns: ns.to_owned(),
            service: release_fullname.to_owned(),
            deployment: release_fullname.to_owned(),
            replicas: Mutex::new(Vec::new()),
            stop: Arc::new(AtomicBool::new(false)),
            published: Arc::new(Mutex::new((0, Vec::new()))),
            controller: Mutex::new(None),
        });
        let worker = Arc::clone(&node);
        let handle = std::thread::spawn(move || worker.control_loop());
        if let Ok(mut c) = node.controller.lock() {
            *c = Some(handle);
        }
        node
    }

    pub fn replicas(&self) -> Vec<Arc<Replica>> {
        self.replicas.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn free_slot(&self) -> usize {
        let used: Vec<usize> = self
            .replicas()
            .iter()
            .filter(|r| !r.exited())
            .map(|r| r.slot)
            .collect();
        (0..self.env.slots)
            .find(|s| !used.contains(s))
            .unwrap_or_else(|| panic!("all {} network namespaces are in use", self.env.slots))
    }

    /// Starts one replica the way kubelet starts the Deployment's pod, in a free slot.
    pub fn start_replica(&self) -> Arc<Replica> {
        let spec = PodSpec::read(&self.client, &self.ns, &self.deployment);
        let slot = self.free_slot();
        static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let name = format!(
            "{}-r{slot}-{}",
            self.deployment,
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = self.env.state.join("replicas").join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        let sa = dir.join("serviceaccount");
        std::fs::create_dir_all(&sa).unwrap_or_else(|e| panic!("{}: {e}", sa.display()));
        // The projected token a pod gets, as `kubectl create token` issues it.
        let token = kubectl(
            &self.env,
            &[
                "-n",
                &self.ns,
                "create",
                "token",
                &spec.service_account,
                "--duration",
                "2h",
            ],
        )
        .success();
        std::fs::write(sa.join("token"), token.stdout.trim())
            .and_then(|_| std::fs::copy(&self.env.ca, sa.join("ca.crt")).map(|_| ()))
            .and_then(|_| std::fs::write(sa.join("namespace"), &self.ns))
            .unwrap_or_else(|e| panic!("{}: {e}", sa.display()));
        let replica_state = ReplicaState {
            phase: Phase::Running,
            ready: false,
            consecutive_failures: 0,
            written: BTreeMap::new(),
        };
        // Volumes first (kubelet mounts them before the container starts).
        let probe_replica = Replica {
            slot,
            ip: self.env.slot_ip(slot),
            name: name.clone(),
            dir: dir.clone(),
            pid: 0,
            child: Mutex::new(
                Command::new("true")
                    .spawn()
                    .unwrap_or_else(|e| panic!("true: {e}")),
            ),
            state: Mutex::new(replica_state),
            log: Arc::new(Mutex::new(Vec::new())),
            spec: spec.clone(),
            ns: self.ns.clone(),
        };
        probe_replica.sync_volumes(&self.client);
        // The container's args, with each volume's mount path mapped to its host directory.
        let args: Vec<String> = spec
            .args
            .iter()
            .map(|arg| {
                for (mount, _) in &spec.mounts {
                    if let Some(rest) = arg.strip_prefix(mount.as_str())
                        && (rest.is_empty() || rest.starts_with('/'))
                    {
                        let host = volume_dir(&dir, mount);
                        std::fs::create_dir_all(&host)
                            .unwrap_or_else(|e| panic!("{}: {e}", host.display()));
                        return format!("{}{rest}", host.display());
                    }
                }
                arg.clone()
            })
            .collect();
        let netns = format!("{}{slot}", self.env.netns_prefix);
        let mut command = Command::new("ip");
        command
            .args([
                "netns",
                "exec",
                &netns,
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-ec",
            ])
            .arg(
                "mount -t tmpfs tmpfs /run
                 mkdir -p /run/secrets/kubernetes.io/serviceaccount
                 mount --bind \"$1\" /run/secrets/kubernetes.io/serviceaccount
                 shift
                 exec \"$@\"",
            )
            .arg("sh")
            .arg(&sa)
            .arg(replica_binary())
            .args(&args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", &dir)
            .env("KUBERNETES_SERVICE_HOST", &self.env.api_host)
            .env("KUBERNETES_SERVICE_PORT", self.env.api_port.to_string())
            .env("POD_NAME", &name)
            .env("POD_NAMESPACE", &self.ns)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = spawn(command).unwrap_or_else(|e| panic!("starting replica {name}: {e}"));
        let stderr = child.stderr.take();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let log_file = self.env.state.join("logs").join(format!("{name}.log"));
        std::thread::spawn(move || {
            let Some(stderr) = stderr else { return };
            let mut file = std::fs::File::create(&log_file).ok();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(f) = file.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(f, "{line}");
                }
                if let Ok(mut all) = sink.lock() {
                    all.push(line);
                }
            }
        });
        let replica = Arc::new(Replica {
            slot,
            ip: probe_replica.ip.clone(),
            name,
            dir,
            pid: child.id(),
            child: Mutex::new(child),
            state: Mutex::new(ReplicaState {
                phase: Phase::Running,
                ready: false,
                consecutive_failures: 0,
                written: probe_replica
                    .state
                    .lock()
                    .map(|s| s.written.clone())
                    .unwrap_or_default(),
            }),
            log,
            spec,
            ns: self.ns.clone(),
        });
        if let Ok(mut all) = self.replicas.lock() {
            all.push(Arc::clone(&replica));
        }
        replica
    }

    /// Waits until `replica` is ready and the API server holds an EndpointSlice that says so.
    pub fn wait_ready(&self, replica: &Replica, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if replica.ready() && self.published_ready(&replica.ip) {
                return;
            }
            assert!(
                !replica.exited(),
                "replica {} exited before it was ready; log:\n{}",
                replica.name,
                replica.log_text()
            );
            assert!(
                Instant::now() < deadline,
                "replica {} not ready within {limit:?}; log:\n{}",
                replica.name,
                replica.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn published_ready(&self, ip: &str) -> bool {
        self.published
            .lock()
            .map(|p| p.1.iter().any(|(a, ready, _)| a == ip && *ready))
            .unwrap_or(false)
    }

    fn published_generation(&self) -> u64 {
        self.published.lock().map(|p| p.0).unwrap_or(0)
    }

    /// Waits until the EndpointSlice the API server holds lists no address for `ip` as ready.
    fn wait_published_not_ready(&self, ip: &str) {
        poll(Duration::from_secs(10), "endpoint marked not ready", || {
            (!self.published_ready(ip)).then_some(())
        });
    }

    /// Stops `replica` as kubelet stops a pod: the endpoint turns terminating (not
    /// ready), the preStop sleep runs (the chart's `sleep` action: kubelet waits that
    /// long by design), then SIGTERM, then SIGKILL after the grace period.
    pub fn terminate(&self, replica: &Replica) {
        if let Ok(mut s) = replica.state.lock() {
            if s.phase == Phase::Exited {
                return;
            }
            s.phase = Phase::Terminating;
        }
        self.wait_published_not_ready(&replica.ip);
        let started = Instant::now();
        std::thread::sleep(replica.spec.prestop_sleep);
        replica.signal("TERM");
        let left = replica.spec.grace.saturating_sub(started.elapsed());
        let deadline = Instant::now() + left;
        while !replica.poll_exit() {
            if Instant::now() >= deadline {
                replica.signal("KILL");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The exit takes the endpoint out of the slice on the controller's next round.
        let generation = self.published_generation();
        poll(
            Duration::from_secs(10),
            "EndpointSlice updated after exit",
            || {
                (self.published_generation() > generation
                    || !self
                        .published
                        .lock()
                        .map(|p| p.1.iter().any(|e| e.0 == replica.ip))
                        .unwrap_or(true))
                .then_some(())
            },
        );
    }

    /// Kills `replica` at once (a crash): no preStop, no drain.
    pub fn kill(&self, replica: &Replica) {
        replica.signal("KILL");
        poll(Duration::from_secs(10), "replica exit", || {
            replica.poll_exit().then_some(())
        });
    }

    /// Terminates every replica still running, as a scale to zero does.
    pub fn stop_all(&self) {
        for r in self.replicas() {
            if !r.exited() {
                self.terminate(&r);
            }
        }
        if let Ok(mut all) = self.replicas.lock() {
            all.retain(|r| !r.exited());
        }
    }

    /// Kills every replica without grace (cleanup).
    pub fn kill_all(&self) {
        for r in self.replicas() {
            if !r.poll_exit() {
                let _ = Command::new("kill")
                    .args(["-KILL", &r.pid.to_string()])
                    .status();
                poll(Duration::from_secs(10), "replica exit", || {
                    r.poll_exit().then_some(())
                });
            }
        }
        if let Ok(mut all) = self.replicas.lock() {
            all.clear();
        }
    }

    /// A rolling restart as the Deployment's strategy does it (maxSurge 1,
    /// maxUnavailable 0): for each old replica, a new one is started and becomes ready
    /// before the old one is terminated.
    pub fn rolling_restart(&self) -> Vec<Arc<Replica>> {
        let old: Vec<Arc<Replica>> = self
            .replicas()
            .into_iter()
            .filter(|r| !r.exited())
            .collect();
        let mut new = Vec::new();
        for r in &old {
            let fresh = self.start_replica();
            self.wait_ready(&fresh, Duration::from_secs(60));
            self.terminate(r);
            new.push(fresh);
        }
        if let Ok(mut all) = self.replicas.lock() {
            all.retain(|r| !r.exited());
        }
        new
    }

    /// The control loop: probes, volume syncs and the EndpointSlice, every 100 ms
    /// (probes at each replica's own period).
    fn control_loop(self: Arc<Self>) {
        let slices: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &self.ns);
        let services: Api<Service> = Api::namespaced(self.client.clone(), &self.ns);
        let mut last_probe: BTreeMap<String, Instant> = BTreeMap::new();
        let mut last_sync = Instant::now() - Duration::from_secs(10);
        let mut last_written: Option<Value> = None;
        while !self.stop.load(Ordering::Relaxed) {
            let replicas = self.replicas();
            let sync = last_sync.elapsed() >= Duration::from_millis(500);
            for r in &replicas {
                if r.exited() || r.poll_exit() {
                    continue;
                }
                let due = last_probe
                    .get(&r.name)
                    .is_none_or(|t| t.elapsed() >= r.spec.readiness_period);
                // kubelet probes right after start, then every periodSeconds; until the
                // first success, this harness probes every 100 ms instead (kubelet's
                // startup cadence is an implementation detail; this only shortens tests).
                if due || !r.ready() {
                    r.probe();
                    last_probe.insert(r.name.clone(), Instant::now());
                }
                if sync {
                    r.sync_volumes(&self.client);
                }
            }
            if sync {
                last_sync = Instant::now();
            }
            let endpoints: Vec<(String, bool, bool)> = replicas
                .iter()
                .filter(|r| !r.exited())
                .map(|r| {
                    let s = r.state.lock();
                    let (phase, ready) = s
                        .map(|s| (s.phase, s.ready))
                        .unwrap_or((Phase::Exited, false));
                    let terminating = phase == Phase::Terminating;
                    (r.ip.clone(), ready && !terminating, terminating)
                })
                .collect();
            let ports: Vec<Value> = match block_on(services.get_opt(&self.service)) {
                Ok(Some(svc)) => {
                    let spec = replicas
                        .first()
                        .map(|r| r.spec.ports.clone())
                        .unwrap_or_default();
                    svc.spec
                        .and_then(|s| s.ports)
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|p| {
                            let target = match p.target_port {
                                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => u16::try_from(n).ok(),
                                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(n)) => spec.get(&n).copied(),
                                None => u16::try_from(p.port).ok(),
                            }?;
                            Some(json!({"name": p.name, "port": target, "protocol": "TCP"}))
                        })
                        .collect()
                }
                _ => Vec::new(),
            };
            let slice = json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": format!("{}-harness", self.service),
                    "namespace": self.ns,
                    "labels": {
                        "kubernetes.io/service-name": self.service,
                        "endpointslice.kubernetes.io/managed-by": "plate-policy-harness",
                    },
                },
                "addressType": "IPv4",
                "ports": ports,
                "endpoints": endpoints.iter().map(|(ip, ready, terminating)| json!({
                    "addresses": [ip],
                    "conditions": {"ready": ready, "serving": !terminating || *ready, "terminating": terminating},
                })).collect::<Vec<_>>(),
            });
            if last_written.as_ref() != Some(&slice) && !ports.is_empty() {
                let params = PatchParams::apply("plate-policy-harness").force();
                let name = format!("{}-harness", self.service);
                if block_on(slices.patch(&name, &params, &Patch::Apply(&slice))).is_ok() {
                    last_written = Some(slice);
                    if let Ok(mut p) = self.published.lock() {
                        p.0 += 1;
                        p.1 = endpoints;
                    }
                }
            } else if let Ok(mut p) = self.published.lock() {
                p.1 = endpoints;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the control loop and kills the replicas.
    pub fn shutdown(&self) {
        self.kill_all();
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.controller.lock().ok().and_then(|mut c| c.take()) {
            let _ = h.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// The shared cluster: the main release, its replicas, the test namespaces.

/// The binary the replicas run: this build's, or `PLATE_REPLICA_BIN` (bench/apiserver.sh's
/// `BIN=`, to compare two builds on one cluster; the test suite does not set it). Not
/// `PLATE_CLUSTER_BIN`: that is the harness's directory of kubectl and helm.
fn replica_binary() -> std::ffi::OsString {
    match std::env::var_os("PLATE_REPLICA_BIN") {
        Some(bin) => {
            assert!(
                std::path::Path::new(&bin).is_file(),
                "PLATE_REPLICA_BIN={bin:?} is not a file: point it at a plate-policy binary"
            );
            bin
        }
        None => env!("CARGO_BIN_EXE_plate-policy").into(),
    }
}

pub struct Cluster {
    pub env: Env,
    pub client: kube::Client,
    pub node: Arc<Node>,
    /// The TLS material the release currently serves with.
    pub tls: Tls,
    /// Set by a test that changed the release or its replicas; the next
    /// [`cluster`] call restores the baseline.
    pub dirty: bool,
    crds: bool,
}

static CLUSTER: Mutex<Option<Cluster>> = Mutex::new(None);

/// The chart under test (`PLATE_CLUSTER_CHART` points elsewhere, to check the suite
/// against a broken chart).
pub fn chart() -> String {
    std::env::var("PLATE_CLUSTER_CHART").unwrap_or_else(|_| {
        super::repo_root()
            .join("charts/plate-policy")
            .to_string_lossy()
            .into_owned()
    })
}

pub fn values(name: &str) -> String {
    super::repo_root()
        .join("charts/plate-policy")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

pub struct ClusterGuard(MutexGuard<'static, Option<Cluster>>);

impl std::ops::Deref for ClusterGuard {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("cluster() fills it"))
    }
}

impl std::ops::DerefMut for ClusterGuard {
    fn deref_mut(&mut self) -> &mut Cluster {
        self.0
            .as_mut()
            .unwrap_or_else(|| unreachable!("cluster() fills it"))
    }
}

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        // A test that panicked may have left anything behind.
        if std::thread::panicking()
            && let Some(c) = self.0.as_mut()
        {
            c.dirty = true;
        }
    }
}

/// The shared cluster at its baseline: CRDs installed, release `plate-policy` installed
/// in plate-system with the prod values (existingSecret TLS), two ready replicas in the
/// EndpointSlice, namespaces plate-prod (environment=production) and plate-stg
/// (environment=development). Holding the guard serialises the tests that share it.
pub fn cluster() -> ClusterGuard {
    let mut guard = ClusterGuard(CLUSTER.lock().unwrap_or_else(|e| e.into_inner()));
    if guard.0.is_none() {
        let env = Env::load();
        let tls = make_tls(
            &env.state.join("tls/initial"),
            &format!("{RELEASE}.{RELEASE_NS}.svc"),
            30,
        );
        let node = Node::new(&env, RELEASE_NS, RELEASE);
        *guard.0 = Some(Cluster {
            client: client(&env),
            env,
            node,
            tls,
            dirty: true,
            crds: false,
        });
    }
    let needs_baseline =
        guard.dirty || guard.node.replicas().iter().filter(|r| r.ready()).count() < 2;
    if needs_baseline {
        guard.baseline();
    }
    guard
}

impl Cluster {
    pub fn kubectl(&self, args: &[&str]) -> Output {
        kubectl(&self.env, args)
    }

    pub fn apply(&self, manifest: &str) -> Output {
        kubectl_stdin(&self.env, &["apply"], manifest)
    }

    pub fn helm(&self, args: &[&str]) -> Output {
        helm(&self.env, args)
    }

    pub fn install_crds(&mut self) {
        if self.crds {
            return;
        }
        let files = crd_files();
        let mut args = vec!["apply".to_owned(), "--server-side".to_owned()];
        for f in &files {
            args.push("-f".to_owned());
            args.push(f.to_string_lossy().into_owned());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.kubectl(&args).success();
        self.kubectl(&[
            "wait",
            "--for",
            "condition=Established",
            "crd",
            "--all",
            "--timeout=60s",
        ])
        .success();
        self.crds = true;
    }

    /// `helm upgrade --install` of the main release with the prod values, existingSecret
    /// TLS with the current CA, and `extra` arguments.
    pub fn helm_upgrade(&self, extra: &[&str]) -> Output {
        let ca_file = self.tls.dir.join("bundle.pem");
        // The caBundle is whatever `self.tls.ca_pem` holds now (one CA, or two while
        // rotating).
        std::fs::write(&ca_file, &self.tls.ca_pem)
            .unwrap_or_else(|e| panic!("{}: {e}", ca_file.display()));
        let ca = format!("tls.existingSecret.caBundle={}", ca_file.display());
        let secret = format!("tls.existingSecret.name={TLS_SECRET}");
        let chart = chart();
        let prod = values("values-prod.yaml");
        let mut args = vec![
            "upgrade",
            "--install",
            RELEASE,
            &chart,
            "-n",
            RELEASE_NS,
            "-f",
            &prod,
            "--set",
            "tls.mode=existingSecret",
            "--set",
            &secret,
            "--set-file",
            &ca,
        ];
        args.extend_from_slice(extra);
        self.helm(&args)
    }

    fn baseline(&mut self) {
        self.install_crds();
        self.node.kill_all();
        // The webhook may be configured while no replica runs (a test uninstalled or broke
        // it): take it out so the setup's own writes are not rejected, as break-glass does.
        let _ = self.kubectl(&[
            "delete",
            "validatingwebhookconfiguration",
            RELEASE,
            "--ignore-not-found",
        ]);
        let ns = self.kubectl(&["get", "namespace", RELEASE_NS]);
        if !ns.ok() {
            self.kubectl(&["create", "namespace", RELEASE_NS]).success();
        }
        apply_tls_secret(&self.env, RELEASE_NS, TLS_SECRET, &self.tls);
        for (name, label) in [("plate-prod", "production"), ("plate-stg", "development")] {
            self.apply(&format!(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:\n    environment: {label}\n"
            ))
            .success();
        }
        // helm's own record says whether the release exists; reinstall if it is gone,
        // upgrade to the baseline values otherwise. Forcing conflicts takes back the
        // fields a test changed with a manager of its own (the latency benchmark
        // empties the policy ConfigMap), which server-side apply refuses otherwise.
        self.helm_upgrade(&["--force-conflicts"]).success();
        // The ServiceAccount may be new (an uninstall): fresh tokens with fresh replicas.
        let a = self.node.start_replica();
        let b = self.node.start_replica();
        self.node.wait_ready(&a, Duration::from_secs(90));
        self.node.wait_ready(&b, Duration::from_secs(90));
        // The API server reaches the webhook once its EndpointSlice informer has the
        // ready endpoints: poll a request only the webhook denies.
        poll_output(
            Duration::from_secs(30),
            "the API server calling the webhook",
            || {
                kubectl_stdin(
                    &self.env,
                    &["create", "--dry-run=server"],
                    &pod_manifest(
                        "baseline-probe",
                        "plate-prod",
                        "harbor.cocdev.co.kr/plate/plate-api:latest",
                    ),
                )
            },
            |out| out.stderr.contains("denied the request"),
        );
        self.dirty = false;
    }
}

/// A Pod with one container `web`.
pub fn pod_manifest(name: &str, ns: &str, image: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {ns}
spec:
  containers:
    - name: web
      image: {image}
      resources:
        requests: {{cpu: 10m, memory: 16Mi}}
"
    )
}

/// A namespace with an `environment` label; made through kubectl (and so through the
/// webhook's require-namespace-labels).
pub fn namespace_manifest(name: &str, environment: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:\n    environment: {environment}\n"
    )
}

/// A name unique in this test process, for objects tests create.
pub fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id() % 10000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}
