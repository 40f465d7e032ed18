//! Compiles the shipped policies (crates under `policies/`) to WebAssembly with a
//! nested `cargo build` in its own target directory, as one module holding them all
//! (policies/builtins), precompiles it to native code with the engine configuration
//! the binary uses (src/engine/config.rs, included below), and generates the table
//! that embeds both into the binary as the built-in policies: loading a built-in is
//! then a deserialize, not a compile. No `.wasm` or compiled artifact is committed.

#[path = "src/engine/config.rs"]
mod engine_config;

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The built-in policies: their names in the module (policies/builtins/src/lib.rs
/// lists the same; a test checks) and their crates under `policies/`.
const BUILTIN_POLICIES: &[&str] = &[
    "no-latest-tag",
    "no-staging-issuer",
    "require-namespace-labels",
    "require-ssl-redirect",
    "trusted-registries",
    "require-resources",
];

/// The crate that builds them into one module, and its wasm file.
const BUNDLE_CRATE: &str = "builtins";
const BUNDLE_PACKAGE: &str = "plate-builtins";
const BUNDLE_FILE: &str = "plate_builtins.wasm";

const WASM_TARGET: &str = "wasm32-unknown-unknown";
const PROFILE: &str = "wasm-policy";

fn main() {
    if let Err(e) = run() {
        // A build script reports failure by panicking; the message is shown to the user.
        panic!("building the built-in policies failed: {e}");
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let root = manifest_dir
        .parent()
        .ok_or("webhook/ has no parent directory")?
        .to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let policies_dir = root.join("policies");

    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        policies_dir.join("sdk").display()
    );
    for name in BUILTIN_POLICIES.iter().chain([&BUNDLE_CRATE]) {
        println!(
            "cargo:rerun-if-changed={}",
            policies_dir.join(name).join("src").display()
        );
        println!(
            "cargo:rerun-if-changed={}",
            policies_dir.join(name).join("Cargo.toml").display()
        );
    }
    println!("cargo:rerun-if-env-changed=PLATE_POLICY_WASM_TARGET_DIR");
    println!(
        "cargo:rerun-if-changed={}",
        manifest_dir.join("src/engine/config.rs").display()
    );

    // One target dir shared by debug, release and clippy builds of the webhook, so the
    // policies compile once. Cargo's own lock serializes concurrent builds into it.
    let target_dir = match env::var_os("PLATE_POLICY_WASM_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"))
            .join("policies-wasm"),
    };

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .arg("build")
        .arg("--target")
        .arg(WASM_TARGET)
        .arg("--profile")
        .arg(PROFILE)
        .arg("--target-dir")
        .arg(&target_dir);
    cmd.arg("-p").arg(BUNDLE_PACKAGE);
    // The outer build's compiler wrappers (clippy-driver, coverage) and flags are
    // for the host crate; the policies are built plain.
    for var in [
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "CARGO_LLVM_COV",
        "LLVM_PROFILE_FILE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run cargo for the {WASM_TARGET} target: {e}"))?;
    if !status.success() {
        return Err(format!(
            "`cargo build --target {WASM_TARGET}` of the policies failed ({status}); \
             is the target installed? run `rustup target add {WASM_TARGET}`"
        ));
    }

    let wasm_dir = target_dir.join(WASM_TARGET).join(PROFILE);
    // The pool size does not change the code; one instance is enough to compile.
    let engine = wasmtime::Engine::new(&engine_config::wasmtime_config(1))
        .map_err(|e| format!("cannot configure wasmtime to precompile the policies: {e:#}"))?;
    let src = wasm_dir.join(BUNDLE_FILE);
    let dst = out_dir.join(BUNDLE_FILE);
    copy(&src, &dst)?;
    let wasm = std::fs::read(&dst).map_err(|e| format!("{}: {e}", dst.display()))?;
    let compiled = engine
        .precompile_module(&wasm)
        .map_err(|e| format!("cannot precompile {BUNDLE_FILE}: {e:#}"))?;
    let cwasm = out_dir.join(BUNDLE_FILE.replace(".wasm", ".cwasm"));
    std::fs::write(&cwasm, compiled).map_err(|e| format!("{}: {e}", cwasm.display()))?;
    let mut table = format!(
        "/// The module holding the built-in policies, and its native code precompiled by build.rs.\n\
         pub const BUILTIN_MODULE: (&[u8], &[u8]) = (include_bytes!({:?}), include_bytes!({:?}));\n\
         /// The names of the built-in policies it holds.\n\
         pub const BUILTIN_NAMES: &[&str] = &[\n",
        dst.display().to_string(),
        cwasm.display().to_string()
    );
    for name in BUILTIN_POLICIES {
        writeln!(table, "    {name:?},").map_err(|e| e.to_string())?;
    }
    table.push_str("];\n");
    std::fs::write(out_dir.join("builtin_modules.rs"), table)
        .map_err(|e| format!("cannot write builtin_modules.rs: {e}"))?;
    Ok(())
}

fn copy(src: &Path, dst: &Path) -> Result<(), String> {
    std::fs::copy(src, dst)
        .map(|_| ())
        .map_err(|e| format!("cannot copy {} to {}: {e}", src.display(), dst.display()))
}
