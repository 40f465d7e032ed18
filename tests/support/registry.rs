//! A real OCI registry for the tests: Debian's `docker-registry` (distribution 2.8,
//! installed by scripts/test.sh), on an address of the test's choosing, with TLS
//! from a CA made by `plate-policy certs` and htpasswd basic auth (bcrypt entries
//! from apache2-utils' htpasswd), or plain HTTP without auth. It can be stopped and
//! started again on the same port with the same storage. And the real cosign,
//! built by scripts/test.sh from the Go module proxy.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const USER: &str = "plate";
pub const PASSWORD: &str = "s3cret-registry-password";

fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let path = Path::new(dir).join(name);
        if path.is_file() {
            return path;
        }
    }
    panic!(
        "{name} is not installed: scripts/test.sh installs it (apt-get install docker-registry apache2-utils)"
    );
}

pub struct Registry {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub tls: bool,
}

impl Registry {
    /// A registry with TLS and basic auth on `host` (an address of this machine).
    pub fn secure(dir: &Path, host: [u8; 4]) -> Registry {
        Self::start_new(dir, host, true)
    }

    /// Plain HTTP, no auth, on loopback.
    pub fn plain(dir: &Path) -> Registry {
        Self::start_new(dir, [127, 0, 0, 1], false)
    }

    fn start_new(dir: &Path, host: [u8; 4], tls: bool) -> Registry {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
        let port = TcpListener::bind(SocketAddr::from((host, 0)))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = SocketAddr::from((host, port));
        let mut config = format!(
            "version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\nhttp:\n  addr: {addr}\n",
            dir.join("data").display()
        );
        if tls {
            let ip = std::net::Ipv4Addr::from(host).to_string();
            let certs = dir.join("certs");
            let out = Command::new(env!("CARGO_BIN_EXE_plate-policy"))
                .args(["certs", "--out"])
                .arg(&certs)
                .args(["--dns", &ip, "--dns", "localhost"])
                .output()
                .unwrap_or_else(|e| panic!("plate-policy certs: {e}"));
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let htpasswd = Command::new(tool("htpasswd"))
                .args(["-Bbn", USER, PASSWORD])
                .output()
                .unwrap_or_else(|e| panic!("htpasswd: {e}"));
            assert!(htpasswd.status.success());
            std::fs::write(dir.join("htpasswd"), &htpasswd.stdout)
                .unwrap_or_else(|e| panic!("{e}"));
            config.push_str(&format!(
                "  tls: {{certificate: {}, key: {}}}\nauth:\n  htpasswd: {{realm: plate-test, path: {}}}\n",
                certs.join("tls.crt").display(),
                certs.join("tls.key").display(),
                dir.join("htpasswd").display()
            ));
            let auth = base64_encode(format!("{USER}:{PASSWORD}").as_bytes());
            std::fs::write(
                dir.join("config.json"),
                format!("{{\"auths\":{{\"{addr}\":{{\"auth\":\"{auth}\"}}}}}}"),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        } else {
            std::fs::write(dir.join("config.json"), "{\"auths\":{}}")
                .unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(dir.join("registry.yml"), config).unwrap_or_else(|e| panic!("{e}"));
        let mut registry = Registry {
            child: None,
            addr,
            dir: dir.to_path_buf(),
            tls,
        };
        registry.start();
        registry
    }

    /// Starts (again) on the same address with the same storage; returns once it accepts connections.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(tool("docker-registry"))
            .arg("serve")
            .arg(self.dir.join("registry.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start docker-registry: {e}"));
        self.child = Some(child);
        let addr = self.addr;
        super::eventually(Duration::from_secs(30), "the registry to listen", || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                .ok()
                .map(|_| ())
        });
    }

    /// Stops it; returns once its port refuses connections.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let addr = self.addr;
        super::eventually(
            Duration::from_secs(10),
            "the registry port to close",
            || {
                TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                    .is_err()
                    .then_some(())
            },
        );
    }

    /// `oci://ADDR/REPO` followed by `suffix` (`:tag` or `@sha256:...`).
    pub fn reference(&self, repo: &str, suffix: &str) -> String {
        format!("oci://{}/{repo}{suffix}", self.addr)
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("certs/ca.crt")
    }

    /// The Docker config.json with the registry's credentials.
    pub fn auth(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// `--registry-ca CA --registry-config AUTH` (TLS), or `--insecure`.
    pub fn cli_args(&self) -> Vec<String> {
        if self.tls {
            vec![
                "--registry-ca".into(),
                self.ca().display().to_string(),
                "--registry-config".into(),
                self.auth().display().to_string(),
            ]
        } else {
            vec!["--insecure".into()]
        }
    }

    /// The file holding blob `digest` in the registry's storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The cosign binary scripts/test.sh builds (PLATE_COSIGN, else its cache path).
pub fn cosign() -> PathBuf {
    let path = std::env::var_os("PLATE_COSIGN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_default();
            cache.join(format!("plate-policy/cosign/{COSIGN_VERSION}/bin/cosign"))
        });
    assert!(
        path.is_file(),
        "{} is missing: scripts/test.sh builds cosign {COSIGN_VERSION} (go install github.com/sigstore/cosign/v2/cmd/cosign@{COSIGN_VERSION})",
        path.display()
    );
    path
}

/// Keep in step with scripts/test.sh.
pub const COSIGN_VERSION: &str = "v2.6.5";

/// Runs cosign in `dir` with the registry's CA and credentials (and the password
/// of keys it generates); panics with its output if it fails.
pub fn run_cosign(registry: &Registry, dir: &Path, args: &[&str]) -> String {
    let docker = dir.join("docker");
    std::fs::create_dir_all(&docker).unwrap_or_else(|e| panic!("{e}"));
    if registry.tls {
        std::fs::copy(registry.auth(), docker.join("config.json"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let out = Command::new(cosign())
        .args(args)
        .current_dir(dir)
        .env("COSIGN_PASSWORD", "test-key-password")
        .env("DOCKER_CONFIG", &docker)
        .env("SSL_CERT_FILE", registry.ca())
        .env("HOME", dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cosign: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "cosign {args:?} failed:\n{text}");
    text
}
