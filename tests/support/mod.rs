//! Shared helpers of the end-to-end tests: hostile test policies generated from
//! `policies/testing/allow-all.wat`, and paths into the repository.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

pub fn allow_all_wat() -> String {
    let path = repo_root().join("policies/testing/allow-all.wat");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const VALIDATE_SIGNATURE: &str =
    "(func (export \"plate_validate\") (param $ptr i32) (param $len i32) (result i64)";
const ALLOW_BODY: &str = "(i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 16))))";

/// The verdict of [`Hostile::DenyV2`]: two violations in ABI v2's format.
pub const V2_DENIAL: &str = r#"{"allowed":false,"violations":[{"key":"container:api","message":"container api is bad","path":"spec.containers[0].image","summary":"api: bad"},{"key":"label:team","message":"no team label"}]}"#;

/// A test policy that misbehaves in one way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostile {
    /// Allows everything (the skeleton itself).
    AllowAll,
    /// `loop { }` in plate_validate.
    InfiniteLoop,
    /// Grows memory 1 MiB at a time until something stops it.
    MemoryHog,
    /// Executes `unreachable`.
    Trap,
    /// Calls itself until the stack is exhausted.
    DeepRecursion,
    /// Returns bytes that are not JSON.
    GarbageVerdict,
    /// Returns invalid UTF-8.
    InvalidUtf8Verdict,
    /// Claims a verdict of 16 MiB.
    HugeVerdict,
    /// Points its verdict past the end of memory.
    VerdictOutOfBounds,
    /// Denies with a message.
    DenyAll,
    /// Reports `error` in its verdict.
    GuestError,
    /// plate_validate has the wrong signature.
    WrongSignature,
    /// Imports a WASI function the host does not provide (sock_open: no sockets).
    ImportsWasi,
    /// Declares ABI version 3 (the host speaks 1 and 2).
    WrongAbiVersion,
    /// ABI v2: denies with two structured violations (key, path, summary).
    DenyV2,
    /// plate_alloc returns 0 for any input: the host cannot pass the input.
    NoInputBuffer,
    /// Does not export plate_abi_version.
    NoAbiVersion,
    /// Rejects every settings document.
    RejectsSettings,
    /// Counts to [`BUSY_ITERATIONS`] (some milliseconds of work), then allows.
    Busy,
}

/// How far [`Hostile::Busy`] counts per evaluation.
pub const BUSY_ITERATIONS: u32 = 60_000_000;

impl Hostile {
    pub fn wat(self) -> String {
        let base = allow_all_wat();
        let validate = |body: &str| base.replace(ALLOW_BODY, body);
        let data = |text: &str| {
            base.replace(
                "(global $next",
                &format!("(data (i32.const 256) \"{text}\")\n  (global $next"),
            )
        };
        // The answer expression for a document at offset 256, closing the function and module.
        let answer_at_256 = |len: usize| {
            format!("(i64.or (i64.shl (i64.const 256) (i64.const 32)) (i64.const {len}))))")
        };
        match self {
            Hostile::AllowAll => base,
            Hostile::InfiniteLoop => validate("(loop $forever (br $forever)) (i64.const 0)))"),
            Hostile::Busy => validate(&format!(
                "(local.set $len (i32.const 0)) (loop $count (local.set $len (i32.add (local.get $len) (i32.const 1))) (br_if $count (i32.lt_u (local.get $len) (i32.const {BUSY_ITERATIONS})))) {ALLOW_BODY}"
            )),
            Hostile::MemoryHog => validate(
                "(loop $more (drop (memory.grow (i32.const 16))) (br $more)) (i64.const 0)))",
            ),
            Hostile::Trap => validate("(unreachable)))"),
            Hostile::DeepRecursion => {
                validate("(call $recurse) (i64.const 0))\n  (func $recurse (call $recurse)))")
            }
            Hostile::GarbageVerdict => {
                let text = "not json at all";
                data(text).replace(ALLOW_BODY, &answer_at_256(text.len()))
            }
            Hostile::InvalidUtf8Verdict => {
                data("\\ff\\fe\\fd").replace(ALLOW_BODY, &answer_at_256(3))
            }
            Hostile::HugeVerdict => validate("(i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 16777216))))"),
            Hostile::VerdictOutOfBounds => validate("(i64.or (i64.shl (i64.const 4000000000) (i64.const 32)) (i64.const 16))))"),
            Hostile::DenyAll => {
                let text = "{\\\"allowed\\\":false,\\\"message\\\":\\\"denied by the test policy\\\"}";
                data(text).replace(ALLOW_BODY, &answer_at_256(text.replace('\\', "").len()))
            }
            Hostile::GuestError => {
                let text = "{\\\"allowed\\\":false,\\\"error\\\":\\\"cannot evaluate\\\"}";
                data(text).replace(ALLOW_BODY, &answer_at_256(text.replace('\\', "").len()))
            }
            Hostile::WrongSignature => base.replace(
                &format!("{VALIDATE_SIGNATURE}\n    {ALLOW_BODY}"),
                "(func (export \"plate_validate\") (param $ptr i32) (result i32)\n    (i32.const 0)))",
            ),
            Hostile::ImportsWasi => base.replace(
                "(memory (export",
                "(import \"wasi_snapshot_preview1\" \"sock_open\" (func (param i32 i32 i32) (result i32)))\n  (memory (export",
            ),
            Hostile::WrongAbiVersion => base.replace(
                "(result i32)\n    (i32.const 1))",
                "(result i32)\n    (i32.const 3))",
            ),
            Hostile::DenyV2 => {
                let text = V2_DENIAL.replace('"', "\\\"");
                data(&text)
                    .replace(ALLOW_BODY, &answer_at_256(V2_DENIAL.len()))
                    .replace("(result i32)\n    (i32.const 1))", "(result i32)\n    (i32.const 2))")
            }
            // plate_alloc's locals come first; the early return goes after them.
            Hostile::NoInputBuffer => base.replace(
                "(local $end i32)\n",
                "(local $end i32)\n    (return (i32.const 0))\n",
            ),
            Hostile::NoAbiVersion => base.replace(
                "(func (export \"plate_abi_version\")",
                "(func $unexported_version",
            ),
            Hostile::RejectsSettings => {
                let text = "{\\\"valid\\\":false,\\\"message\\\":\\\"threshold must be positive\\\"}";
                let len = text.replace('\\', "").len();
                data(text).replace(
                    "(i64.or (i64.shl (i64.const 64) (i64.const 32)) (i64.const 14)))",
                    &format!("(i64.or (i64.shl (i64.const 256) (i64.const 32)) (i64.const {len})))"),
                )
            }
        }
    }

    pub fn wasm(self) -> Vec<u8> {
        let text = self.wat();
        wat::parse_str(&text).unwrap_or_else(|e| panic!("{self:?} does not assemble: {e}\n{text}"))
    }
}

/// A policy set using hostile modules, written with them to `dir`: each entry
/// (name, module, failurePolicy) matches Pods, with a 50 ms and 8 MiB limit.
pub fn hostile_set(dir: &Path, entries: &[(&str, Hostile, &str)]) -> PathBuf {
    let mut yaml = String::from(
        "apiVersion: policy.plate.dev/v1alpha1\nkind: PolicySet\nmetadata: {name: hostile}\nspec:\n  policies:\n",
    );
    for (name, policy, failure) in entries {
        std::fs::write(dir.join(format!("{name}.wasm")), policy.wasm())
            .unwrap_or_else(|e| panic!("{e}"));
        yaml.push_str(&format!(
            "    - name: {name}\n      module: {name}.wasm\n      failurePolicy: {failure}\n      timeoutMs: 50\n      memoryMiB: 8\n      match: {{kinds: [Pod]}}\n"
        ));
    }
    command::write(dir, "policies.yaml", &yaml)
}

pub mod cluster;
pub mod command;
pub mod docs;
pub mod go;
pub mod h2;
pub mod https;
pub mod process;
pub mod prometheus;
pub mod registry;

/// Polls `check` every 20 ms until it returns Some, for at most `limit`.
pub fn eventually<T>(
    limit: std::time::Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {limit:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
