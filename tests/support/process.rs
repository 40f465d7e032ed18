//! Runs `plate-policy serve` as a child process on ephemeral ports, reads the
//! addresses it reports from its JSON logs, and waits for log lines and readiness
//! (bounded, never by sleeping a guessed amount).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub health: SocketAddr,
    lines: Receiver<String>,
    /// Every log line so far, for failure messages.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts the binary with `args` after `serve --addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0`.
    pub fn start(args: &[&str], cwd: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_plate-policy"))
            .args([
                "--log-format",
                "json",
                "--log-level",
                "info,plate_policy=debug",
                "serve",
            ])
            .args(["--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"])
            .args(args)
            .current_dir(cwd)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start plate-policy serve: {e}"));
        let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
        let (tx, lines) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut all) = sink.lock() {
                    all.push(line.clone());
                }
                let _ = tx.send(line);
            }
        });
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            health: SocketAddr::from(([127, 0, 0, 1], 0)),
            lines,
            log,
        };
        let serving = server.wait_for_log("\"serving\"", Duration::from_secs(60));
        let value: serde_json::Value = serde_json::from_str(&serving).unwrap_or_default();
        let field = |name: &str| -> SocketAddr {
            value["fields"][name]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {serving}"))
        };
        server.addr = field("addr");
        server.health = field("health");
        server
    }

    /// `serve --dev` in `dir` (certificates in `dir/certs`) with the policy set
    /// `dir/policies.yaml` and `extra` arguments, once ready.
    pub fn dev_with_policies(dir: &Path, extra: &[&str]) -> Server {
        let mut args = vec![
            "--dev",
            "--certs-dir",
            "certs",
            "--policies",
            "policies.yaml",
        ];
        args.extend_from_slice(extra);
        let server = Server::start(&args, dir);
        server.wait_ready(Duration::from_secs(60));
        server
    }

    /// Waits for a log line containing `needle` (lines seen earlier are consumed).
    pub fn wait_for_log(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no log line with {needle:?} within {limit:?}; log:\n{}",
                        self.log_text()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "server exited before logging {needle:?}; log:\n{}",
                        self.log_text()
                    )
                }
            }
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the server now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id())
    }

    pub fn log_text(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Polls `/readyz` until it answers 200.
    pub fn wait_ready(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok((200, _)) = super::https::http_get(self.health, "/readyz") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not ready within {limit:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("kill: {e}"));
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Resident memory of process `pid` now, in KiB (VmRSS; 0 when it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
