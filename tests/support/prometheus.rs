//! A real Prometheus server for the tests (the Debian package scripts/test.sh
//! installs): started on a free port, scraping the given targets every second; and
//! the shipped dashboard's panel queries.

use serde_json::Value;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::eventually;
use super::https::http_get;

pub const DASHBOARD: &str = "charts/plate-policy/dashboards/plate-policy.json";
pub const RULES: &str = "charts/plate-policy/alerts/plate-policy.rules.yaml";

pub fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let path = Path::new(dir).join(name);
        if path.is_file() {
            return path;
        }
    }
    panic!("{name} is not installed: scripts/test.sh installs it (apt-get install prometheus)");
}

pub struct Prometheus {
    pub addr: SocketAddr,
    child: Child,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    pub fn start(dir: &Path, target: SocketAddr) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: plate-policy\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = Command::new(tool("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start prometheus: {e}"));
        let prometheus = Prometheus { child, addr };
        eventually(Duration::from_secs(60), "prometheus to be ready", || {
            matches!(http_get(addr, "/-/ready"), Ok((200, _))).then_some(())
        });
        prometheus
    }

    /// Runs an instant query; returns the API's JSON answer.
    pub fn query(&self, expr: &str) -> Value {
        let (status, body) = http_get(self.addr, &format!("/api/v1/query?query={}", encode(expr)))
            .unwrap_or_else(|e| panic!("query {expr}: {e}"));
        let answer: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{expr}: {e}: {body}"));
        assert_eq!(status, 200, "query {expr} failed: {body}");
        answer
    }

    pub fn result(&self, expr: &str) -> Vec<Value> {
        let answer = self.query(expr);
        assert_eq!(answer["status"], "success", "{expr}: {answer}");
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every `expr` of every panel (rows included).
pub fn panel_queries(panels: &[Value], out: &mut Vec<(String, String)>) {
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("?").to_string();
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                out.push((title.clone(), expr.to_string()));
            }
        }
        if let Some(nested) = panel["panels"].as_array() {
            panel_queries(nested, out);
        }
    }
}

pub fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("${job}", ".*")
        .replace("$job", ".*")
}
