//! The sandbox holds against misbehaving policies: each hostile module either fails
//! to load with a message naming what is wrong, or yields a specific evaluation
//! error, and the engine keeps evaluating other policies afterwards. Through the
//! library API with real wasmtime; the policies are WAT from tests/support.

mod support;

use plate_policy::engine::{Engine, EngineConfig, EvalError, Limits, LoadError, PolicyModule};
use std::time::{Duration, Instant};
use support::Hostile;

fn engine() -> Engine {
    Engine::new(&EngineConfig {
        max_concurrent_instances: 16,
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn load(engine: &Engine, policy: Hostile) -> PolicyModule {
    engine
        .load(&policy.wasm())
        .unwrap_or_else(|e| panic!("{policy:?} should load: {e}"))
}

fn load_error(engine: &Engine, policy: Hostile) -> String {
    match engine.load(&policy.wasm()) {
        Ok(_) => panic!("{policy:?} should not load"),
        Err(e) => e.to_string(),
    }
}

const INPUT: &[u8] = br#"{"settings":{},"request":{"uid":"1","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE"}}"#;

fn evaluate(module: &PolicyModule, limits: Limits) -> Result<bool, EvalError> {
    module.evaluate(&[INPUT], &limits).map(|v| v.allowed)
}

const LIMITS: Limits = Limits {
    timeout_ms: 100,
    memory_mib: 16,
};

/// After each failure, a healthy policy on the same engine still evaluates.
fn still_serves(engine: &Engine) {
    let healthy = load(engine, Hostile::AllowAll);
    assert_eq!(evaluate(&healthy, LIMITS), Ok(true));
}

#[test]
fn allow_all_module_allows() {
    let engine = engine();
    let module = load(&engine, Hostile::AllowAll);
    for _ in 0..3 {
        assert_eq!(evaluate(&module, LIMITS), Ok(true));
    }
    assert_eq!(module.validate_settings(b"{}", &LIMITS), Ok(Ok(())));
}

#[test]
fn infinite_loop_is_stopped_at_its_time_limit() {
    let engine = engine();
    let module = load(&engine, Hostile::InfiniteLoop);
    let start = Instant::now();
    let result = evaluate(&module, LIMITS);
    let elapsed = start.elapsed();
    assert_eq!(result, Err(EvalError::Timeout(100)));
    // Stopped, not merely reported: the call returned. The bound is loose on purpose
    // (a loaded CI machine); docs/performance.md has the measured overshoot.
    assert!(
        elapsed >= Duration::from_millis(100),
        "returned before the limit: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "ran far past its limit: {elapsed:?}"
    );
    still_serves(&engine);
}

#[test]
fn memory_growth_past_the_limit_is_stopped() {
    let engine = engine();
    let module = load(&engine, Hostile::MemoryHog);
    assert_eq!(evaluate(&module, LIMITS), Err(EvalError::MemoryLimit(16)));
    still_serves(&engine);
}

#[test]
fn trap_is_reported_as_a_trap() {
    let engine = engine();
    let module = load(&engine, Hostile::Trap);
    match evaluate(&module, LIMITS) {
        Err(EvalError::Trap(message)) => assert!(message.contains("unreachable"), "{message}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    still_serves(&engine);
}

#[test]
fn deep_recursion_is_a_stack_overflow() {
    let engine = engine();
    let module = load(&engine, Hostile::DeepRecursion);
    assert_eq!(evaluate(&module, LIMITS), Err(EvalError::StackOverflow));
    still_serves(&engine);
}

#[test]
fn unreadable_verdicts_are_rejected() {
    let engine = engine();
    for (policy, needle) in [
        (Hostile::GarbageVerdict, "not a verdict document"),
        (Hostile::InvalidUtf8Verdict, "not UTF-8"),
        (Hostile::HugeVerdict, "limit"),
        (Hostile::VerdictOutOfBounds, "outside its memory"),
    ] {
        let module = load(&engine, policy);
        match evaluate(&module, LIMITS) {
            Err(EvalError::BadVerdict(message)) => {
                assert!(message.contains(needle), "{policy:?}: {message}")
            }
            other => panic!("{policy:?}: expected a bad verdict, got {other:?}"),
        }
    }
    still_serves(&engine);
}

#[test]
fn deny_and_guest_error_are_read() {
    let engine = engine();
    let deny = load(&engine, Hostile::DenyAll);
    let verdict = deny
        .evaluate(&[INPUT], &LIMITS)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!verdict.allowed);
    assert_eq!(
        verdict.message.as_deref(),
        Some("denied by the test policy")
    );
    let error = load(&engine, Hostile::GuestError);
    assert_eq!(
        evaluate(&error, LIMITS),
        Err(EvalError::Guest("cannot evaluate".into()))
    );
}

#[test]
fn settings_rejection_is_the_policys_message() {
    let engine = engine();
    let module = load(&engine, Hostile::RejectsSettings);
    assert_eq!(
        module.validate_settings(b"{}", &LIMITS),
        Ok(Err("threshold must be positive".into()))
    );
}

#[test]
fn modules_that_break_the_abi_do_not_load() {
    let engine = engine();
    let cases = [
        (Hostile::WrongSignature, "plate_validate"),
        (Hostile::ImportsWasi, "fd_write"),
        (Hostile::WrongAbiVersion, "ABI version 2"),
        (Hostile::NoAbiVersion, "plate_abi_version"),
    ];
    for (policy, needle) in cases {
        let message = load_error(&engine, policy);
        assert!(message.contains(needle), "{policy:?}: {message}");
    }
    assert!(matches!(engine.load(b"hello"), Err(LoadError::NotWasm)));
    assert!(matches!(
        engine.load(b"\0asm\x01\0\0\0\x99garbage"),
        Err(LoadError::Invalid(_))
    ));
    still_serves(&engine);
}

#[test]
fn no_state_survives_between_evaluations() {
    // plate_alloc bumps a global; a reused instance would hand out ever higher
    // offsets and finally fail. 2,000 evaluations of 60 KiB inputs would need
    // 120 MiB of a 16 MiB limit if instances were reused.
    let engine = engine();
    let module = load(&engine, Hostile::AllowAll);
    let big = vec![b' '; 60 << 10];
    for i in 0..2000 {
        let verdict = module.evaluate(&[INPUT, &big], &LIMITS);
        assert_eq!(verdict.map(|v| v.allowed), Ok(true), "evaluation {i}");
    }
}

#[test]
fn compiled_modules_are_reused_from_the_cache_directory() {
    let engine = engine();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let wasm = Hostile::AllowAll.wasm();
    let first = engine
        .load_cached(&wasm, Some(dir.path()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(evaluate(&first, LIMITS), Ok(true));
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let second = engine
        .load_cached(&wasm, Some(dir.path()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(evaluate(&second, LIMITS), Ok(true));

    // A damaged file is ignored (and replaced), never trusted.
    std::fs::write(&files[0], b"not compiled code").unwrap_or_else(|e| panic!("{e}"));
    let third = engine
        .load_cached(&wasm, Some(dir.path()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(evaluate(&third, LIMITS), Ok(true));
    assert_ne!(
        std::fs::read(&files[0]).unwrap_or_default(),
        b"not compiled code"
    );
}
