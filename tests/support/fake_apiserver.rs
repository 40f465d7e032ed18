//! A fake Kubernetes API server on loopback, just enough for the namespace cache:
//! `GET /api/v1/namespaces` (list) and `?watch=true` (a chunked stream of watch
//! events). There is no kube-apiserver on this machine; the real `kube` client code
//! path (kubeconfig, list, watch, reflector) runs against this instead.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[derive(Default)]
struct State {
    list_released: bool,
    resource_version: u64,
    namespaces: BTreeMap<String, BTreeMap<String, String>>,
    watchers: Vec<Sender<String>>,
}

pub struct FakeApiServer {
    pub addr: SocketAddr,
    state: Arc<(Mutex<State>, Condvar)>,
}

fn namespace(name: &str, labels: &BTreeMap<String, String>, rv: u64) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "uid": format!("uid-{name}"), "resourceVersion": rv.to_string(), "labels": labels},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"}
    })
}

impl FakeApiServer {
    /// Starts serving; list requests wait until [`release_list`](Self::release_list).
    pub fn start() -> FakeApiServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let state = Arc::new((
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
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (lock, _) = &*self.state;
        let Ok(mut s) = lock.lock() else { return };
        s.resource_version += 1;
        let rv = s.resource_version;
        let kind = if s.namespaces.contains_key(name) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        s.namespaces.insert(name.to_string(), labels.clone());
        let event = json!({"type": kind, "object": namespace(name, &labels, rv)}).to_string();
        s.watchers.retain(|w| w.send(event.clone()).is_ok());
    }

    pub fn watch_count(&self) -> usize {
        let (lock, _) = &*self.state;
        lock.lock().map(|s| s.watchers.len()).unwrap_or(0)
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

fn serve_connection(
    stream: TcpStream,
    state: &Arc<(Mutex<State>, Condvar)>,
) -> std::io::Result<()> {
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
        if path != "/api/v1/namespaces" {
            let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404, "reason": "NotFound"}).to_string();
            write!(
                writer,
                "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )?;
            continue;
        }
        if query
            .split('&')
            .any(|p| p == "watch=true" || p == "watch=1")
        {
            return stream_watch(writer, state);
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
                .namespaces
                .iter()
                .map(|(name, labels)| namespace(name, labels, s.resource_version))
                .collect();
            json!({"kind": "NamespaceList", "apiVersion": "v1", "metadata": {"resourceVersion": s.resource_version.to_string()}, "items": items}).to_string()
        };
        write!(
            writer,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        writer.flush()?;
    }
}

fn stream_watch(
    mut writer: TcpStream,
    state: &Arc<(Mutex<State>, Condvar)>,
) -> std::io::Result<()> {
    let (tx, rx): (Sender<String>, Receiver<String>) = mpsc::channel();
    {
        let (lock, _) = &**state;
        if let Ok(mut s) = lock.lock() {
            s.watchers.push(tx);
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
