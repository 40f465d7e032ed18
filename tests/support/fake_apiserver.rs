//! A fake Kubernetes API server on loopback, just enough for plate-policy's caches:
//! for any collection path (`/api/v1/namespaces`,
//! `/apis/cert-manager.io/v1/clusterissuers`, ...), `GET` lists it and `?watch=true`
//! streams watch events (chunked). There is no kube-apiserver on this machine; the
//! real `kube` client code path (kubeconfig, list, watch, reflector) runs against it.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

pub const NAMESPACES: &str = "/api/v1/namespaces";
pub const CLUSTER_ISSUERS: &str = "/apis/cert-manager.io/v1/clusterissuers";
pub const ISSUERS: &str = "/apis/cert-manager.io/v1/issuers";

#[derive(Default)]
struct State {
    list_released: bool,
    resource_version: u64,
    /// collection path -> "namespace/name" -> object
    collections: BTreeMap<String, BTreeMap<String, Value>>,
    /// collection path -> open watches
    watchers: BTreeMap<String, Vec<Sender<String>>>,
}

type Shared = Arc<(Mutex<State>, Condvar)>;

pub struct FakeApiServer {
    pub addr: SocketAddr,
    state: Shared,
}

impl FakeApiServer {
    /// Starts serving; list requests wait until [`release_list`](Self::release_list).
    pub fn start() -> FakeApiServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let state: Shared = Arc::new((
            Mutex::new(State {
                resource_version: 1,
                ..State::default()
            }),
            Condvar::new(),
        ));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let state = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let _ = serve_connection(stream, &state);
                });
            }
        });
        FakeApiServer { addr, state }
    }

    pub fn release_list(&self) {
        let (lock, cvar) = &*self.state;
        if let Ok(mut s) = lock.lock() {
            s.list_released = true;
        }
        cvar.notify_all();
    }

    /// Creates or relabels a namespace and tells every open watch.
    pub fn set_namespace(&self, name: &str, labels: &[(&str, &str)]) {
        let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
        self.set_object(
            NAMESPACES,
            json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "uid": format!("uid-{name}"), "labels": labels},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}
            }),
        );
    }

    /// Creates or replaces a cert-manager ClusterIssuer using `acme_server`.
    pub fn set_cluster_issuer(&self, name: &str, acme_server: &str) {
        self.set_object(
            CLUSTER_ISSUERS,
            json!({
                "apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
                "metadata": {"name": name, "uid": format!("uid-{name}")},
                "spec": {"acme": {"server": acme_server, "privateKeySecretRef": {"name": name}}}
            }),
        );
    }

    /// Creates or replaces `object` in the collection at `path` and tells its watches.
    pub fn set_object(&self, path: &str, mut object: Value) {
        let (lock, _) = &*self.state;
        let Ok(mut s) = lock.lock() else { return };
        s.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(s.resource_version.to_string());
        let key = format!(
            "{}/{}",
            object["metadata"]["namespace"].as_str().unwrap_or(""),
            object["metadata"]["name"].as_str().unwrap_or("")
        );
        let collection = s.collections.entry(path.to_string()).or_default();
        let kind = if collection.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        collection.insert(key, object.clone());
        let event = json!({"type": kind, "object": object}).to_string();
        if let Some(watchers) = s.watchers.get_mut(path) {
            watchers.retain(|w| w.send(event.clone()).is_ok());
        }
    }

    /// Open watches on the collection at `path`.
    pub fn watch_count(&self, path: &str) -> usize {
        let (lock, _) = &*self.state;
        lock.lock()
            .map(|s| s.watchers.get(path).map_or(0, Vec::len))
            .unwrap_or(0)
    }

    /// A kubeconfig pointing at this server.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\ncurrent-context: fake\nusers:\n- name: fake\n  user:\n    token: fake-token\n",
            self.addr
        );
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        path
    }
}

fn serve_connection(stream: TcpStream, state: &Shared) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            if header.trim_end().is_empty() {
                break;
            }
        }
        let target = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_string();
        let (path, query) = target.split_once('?').unwrap_or((target.as_str(), ""));
        if query
            .split('&')
            .any(|p| p == "watch=true" || p == "watch=1")
        {
            return stream_watch(writer, state, path);
        }
        let body = {
            let (lock, cvar) = &**state;
            let mut s = lock.lock().map_err(|_| std::io::Error::other("poisoned"))?;
            while !s.list_released {
                s = cvar
                    .wait(s)
                    .map_err(|_| std::io::Error::other("poisoned"))?;
            }
            let items: Vec<Value> = s
                .collections
                .get(path)
                .map(|c| c.values().cloned().collect())
                .unwrap_or_default();
            json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": s.resource_version.to_string()}, "items": items}).to_string()
        };
        write!(
            writer,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        writer.flush()?;
    }
}

fn stream_watch(mut writer: TcpStream, state: &Shared, path: &str) -> std::io::Result<()> {
    let (tx, rx): (Sender<String>, Receiver<String>) = mpsc::channel();
    {
        let (lock, _) = &**state;
        if let Ok(mut s) = lock.lock() {
            s.watchers.entry(path.to_string()).or_default().push(tx);
        }
    }
    write!(
        writer,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )?;
    writer.flush()?;
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(event) => {
                let chunk = format!("{event}\n");
                write!(writer, "{:x}\r\n{chunk}\r\n", chunk.len())?;
                writer.flush()?;
            }
            Err(RecvTimeoutError::Timeout) => {
                // End the watch as the API server does at timeoutSeconds; the client re-watches.
                write!(writer, "0\r\n\r\n")?;
                writer.flush()?;
                return Ok(());
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}
