//! The exact messages of docs/security.md's hostile-policy table: each hostile module
//! from tests/support either fails to load or fails its evaluation with precisely the
//! text the table quotes (the table is written from this test's output; change both
//! together). The behaviour itself is tested in tests/engine_limits.rs (library) and
//! tests/hostile.rs (through the server, under load).

mod support;

use plate_policy::engine::{Engine, EngineConfig, Limits};
use support::Hostile;

const INPUT: &[u8] = br#"{"settings":{},"request":{"uid":"1","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE"}}"#;

const LIMITS: Limits = Limits {
    timeout_ms: 100,
    memory_mib: 16,
};

fn engine() -> Engine {
    Engine::new(&EngineConfig {
        max_concurrent_instances: 4,
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn evaluation_failures_read_as_documented() {
    let engine = engine();
    let cases: &[(Hostile, &str)] = &[
        (Hostile::InfiniteLoop, "exceeded its time limit of 100 ms"),
        (
            Hostile::DeepRecursion,
            "overflowed its stack (too deep recursion)",
        ),
        (Hostile::MemoryHog, "exceeded its memory limit of 16 MiB"),
        (
            Hostile::HugeVerdict,
            "returned an unreadable verdict: its answer is 16777216 bytes, more than the 1048576-byte limit",
        ),
        (
            Hostile::InvalidUtf8Verdict,
            "returned an unreadable verdict: not UTF-8 (invalid utf-8 sequence of 1 bytes from index 0)",
        ),
        (
            Hostile::GarbageVerdict,
            "returned an unreadable verdict: not a verdict document (expected ident at line 1 column 2): \"not json at all\"",
        ),
        (
            Hostile::VerdictOutOfBounds,
            "returned an unreadable verdict: its answer (offset 4000000000, 16 bytes) lies outside its memory of 65536 bytes",
        ),
        (
            Hostile::Trap,
            "trapped: wasm trap: wasm `unreachable` instruction executed",
        ),
        (Hostile::GuestError, "reported an error: cannot evaluate"),
        (
            Hostile::NoInputBuffer,
            "could not be given its input: plate_alloc(106) returned 0: no buffer for the input",
        ),
    ];
    let mut wrong = Vec::new();
    for (policy, expected) in cases {
        let module = engine
            .load(&policy.wasm())
            .unwrap_or_else(|e| panic!("{policy:?} should load: {e}"));
        let slot = engine
            .evaluation_slot_blocking()
            .unwrap_or_else(|| panic!("no evaluation slot"));
        let actual = match module.evaluate(&slot, &[INPUT], &LIMITS, None).0 {
            Ok(verdict) => format!("no error: {verdict:?}"),
            Err(e) => e.to_string(),
        };
        println!("{policy:?}: {actual}");
        if actual != *expected {
            wrong.push(format!(
                "{policy:?}:\n  expected {expected}\n  actual   {actual}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn load_failures_read_as_documented() {
    let engine = engine();
    let cases: Vec<(String, Vec<u8>, &str)> = vec![
        (
            "WrongSignature".into(),
            Hostile::WrongSignature.wasm(),
            "exports \"plate_validate\" with signature (type (func (param i32) (result i32))), but the ABI requires (type (func (param i32 i32) (result i64)))",
        ),
        (
            "ImportsWasi".into(),
            Hostile::ImportsWasi.wasm(),
            "imports \"wasi_snapshot_preview1\".\"sock_open\", which the host does not provide: policies may import \"plate\".\"lookup_object\" and the WASI preview 1 functions of docs/abi.md",
        ),
        (
            "WrongAbiVersion".into(),
            Hostile::WrongAbiVersion.wasm(),
            "declares ABI version 3 (plate_abi_version), but this host speaks versions [1, 2]",
        ),
        (
            "NoAbiVersion".into(),
            Hostile::NoAbiVersion.wasm(),
            "does not export \"plate_abi_version\", so it declares no ABI version: not a plate-policy module (build it with the plate-policy SDK or follow docs/abi.md)",
        ),
        (
            "not wasm".into(),
            b"hello".to_vec(),
            "is not a WebAssembly module (it does not start with the \\0asm magic bytes)",
        ),
    ];
    let mut wrong = Vec::new();
    for (name, bytes, expected) in &cases {
        let actual = match engine.load(bytes) {
            Ok(_) => "loaded".to_string(),
            Err(e) => e.to_string(),
        };
        println!("{name}: {actual}");
        if actual != *expected {
            wrong.push(format!(
                "{name}:\n  expected {expected}\n  actual   {actual}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
