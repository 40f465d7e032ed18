//! Go policies for the end-to-end tests: built from their sources in this
//! repository with the machine's Go (`GOOS=wasip1 GOARCH=wasm go build
//! -buildmode=c-shared`), into `target/go-policies/`; Go's build cache makes a
//! rebuild of unchanged sources take a fraction of a second. The tests share one
//! module cache there, so a Go module is compiled and pre-initialized once per
//! build of plate-policy, not once per test.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

static BUILDS: Mutex<()> = Mutex::new(());

fn out_dir() -> PathBuf {
    super::repo_root().join("target").join("go-policies")
}

/// Builds the Go module in `source` (relative to the repository root) and returns
/// the `.wasm` file.
pub fn build(source: &str, name: &str) -> PathBuf {
    // One `go build` at a time: they share Go's cache and the output directory.
    let _one = BUILDS.lock().unwrap_or_else(|p| p.into_inner());
    let out = out_dir().join(format!("{name}.wasm"));
    std::fs::create_dir_all(out_dir()).unwrap_or_else(|e| panic!("{e}"));
    let result = Command::new("go")
        .args(["build", "-buildmode=c-shared", "-trimpath", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(super::repo_root().join(source))
        .env("GOOS", "wasip1")
        .env("GOARCH", "wasm")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `go build` for {source} (Go policies need the Go toolchain on PATH): {e}")
        });
    assert!(
        result.status.success(),
        "go build of {source} failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    out
}

/// The module cache the Go tests share.
pub fn module_cache() -> PathBuf {
    let dir = out_dir().join("module-cache");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

/// trusted-registries written in Go (policies/trusted-registries/go).
pub fn trusted_registries() -> PathBuf {
    build("policies/trusted-registries/go", "trusted-registries-go")
}

/// The misbehaving Go test policy (policies/testing/go-hostile).
pub fn hostile() -> PathBuf {
    build("policies/testing/go-hostile", "go-hostile")
}
