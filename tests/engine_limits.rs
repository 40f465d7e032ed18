//! The sandbox holds against misbehaving policies: each hostile module either fails
//! to load with a message naming what is wrong, or yields a specific evaluation
//! error, and the engine keeps evaluating other policies afterwards. Through the
//! library API with real wasmtime; the policies are WAT from tests/support.

mod support;

use plate_policy::engine::{
    Engine, EngineConfig, EvalError, GuestVerdict, Limits, LoadError, Origin, PolicyModule,
};
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

fn verdict(
    engine: &Engine,
    module: &PolicyModule,
    input: &[&[u8]],
) -> Result<GuestVerdict, EvalError> {
    let slot = engine
        .evaluation_slot_blocking()
        .unwrap_or_else(|| panic!("no evaluation slot"));
    module.evaluate(&slot, input, &LIMITS, None).0
}

/// True when the module found no violation.
fn evaluate(engine: &Engine, module: &PolicyModule) -> Result<bool, EvalError> {
    verdict(engine, module, &[INPUT]).map(|v| v.violations.is_empty())
}

const LIMITS: Limits = Limits {
    timeout_ms: 100,
    memory_mib: 16,
};

/// After each failure, a healthy policy on the same engine still evaluates.
fn still_serves(engine: &Engine) {
    let healthy = load(engine, Hostile::AllowAll);
    assert_eq!(evaluate(engine, &healthy), Ok(true));
}

#[test]
fn allow_all_module_allows() {
    let engine = engine();
    let module = load(&engine, Hostile::AllowAll);
    for _ in 0..3 {
        assert_eq!(evaluate(&engine, &module), Ok(true));
    }
    assert_eq!(module.validate_settings(b"{}", &LIMITS), Ok(Ok(())));
}

#[test]
fn input_that_cannot_be_passed_is_not_an_unreadable_verdict() {
    let engine = engine();
    let module = load(&engine, Hostile::NoInputBuffer);
    match evaluate(&engine, &module) {
        Err(EvalError::Input(message)) => assert!(message.contains("no buffer"), "{message}"),
        other => panic!("expected an input error, got {other:?}"),
    }
}

#[test]
fn infinite_loop_is_stopped_at_its_time_limit() {
    let engine = engine();
    let module = load(&engine, Hostile::InfiniteLoop);
    let start = Instant::now();
    let result = evaluate(&engine, &module);
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
    assert_eq!(evaluate(&engine, &module), Err(EvalError::MemoryLimit(16)));
    still_serves(&engine);
}

#[test]
fn trap_is_reported_as_a_trap() {
    let engine = engine();
    let module = load(&engine, Hostile::Trap);
    match evaluate(&engine, &module) {
        Err(EvalError::Trap(message)) => assert!(message.contains("unreachable"), "{message}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    still_serves(&engine);
}

#[test]
fn deep_recursion_is_a_stack_overflow() {
    let engine = engine();
    let module = load(&engine, Hostile::DeepRecursion);
    assert_eq!(evaluate(&engine, &module), Err(EvalError::StackOverflow));
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
        match evaluate(&engine, &module) {
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
    // ABI v1: the message is one violation, keyed by itself.
    let deny = load(&engine, Hostile::DenyAll);
    assert_eq!(deny.abi_version(), 1);
    let v1 = verdict(&engine, &deny, &[INPUT]).unwrap_or_else(|e| panic!("{e}"));
    let read: Vec<(&str, &str)> = v1
        .violations
        .iter()
        .map(|v| (v.key.as_str(), v.message.as_str()))
        .collect();
    assert_eq!(
        read,
        [("denied by the test policy", "denied by the test policy")]
    );
    // ABI v2: violations as the module wrote them.
    let deny_v2 = load(&engine, Hostile::DenyV2);
    assert_eq!(deny_v2.abi_version(), 2);
    let v2 = verdict(&engine, &deny_v2, &[INPUT]).unwrap_or_else(|e| panic!("{e}"));
    let expected: GuestVerdict =
        plate_policy::engine::decode_verdict(2, support::V2_DENIAL.as_bytes())
            .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(v2, expected);
    assert_eq!(
        v2.violations[0].path.as_deref(),
        Some("spec.containers[0].image")
    );
    assert_eq!(v2.violations[1].key, "label:team");
    let error = load(&engine, Hostile::GuestError);
    assert_eq!(
        evaluate(&engine, &error),
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
        (Hostile::ImportsWasi, "sock_open"),
        (Hostile::WrongAbiVersion, "ABI version 3"),
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
        let verdict = verdict(&engine, &module, &[INPUT, &big]);
        assert_eq!(
            verdict.map(|v| v.violations.is_empty()),
            Ok(true),
            "evaluation {i}"
        );
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
    assert_eq!(first.origin(), Origin::Compiled, "an empty cache compiles");
    assert_eq!(evaluate(&engine, &first), Ok(true));
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    // A second engine (a restarted server) loads it from the file, not by compiling.
    let restarted = self::engine();
    let second = restarted
        .load_cached(&wasm, Some(dir.path()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        second.origin(),
        Origin::Cache,
        "the second load must not compile"
    );
    assert_eq!(evaluate(&restarted, &second), Ok(true));
    // Another module is not answered from that file.
    let other = restarted
        .load_cached(&Hostile::DenyAll.wasm(), Some(dir.path()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(other.origin(), Origin::Compiled);
    assert_eq!(evaluate(&restarted, &other), Ok(false));

    // A damaged file is ignored (and replaced), never trusted.
    std::fs::write(&files[0], b"not compiled code").unwrap_or_else(|e| panic!("{e}"));
    let third = engine
        .load_cached(&wasm, Some(dir.path()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        third.origin(),
        Origin::Compiled,
        "a damaged file is not used"
    );
    assert_eq!(evaluate(&engine, &third), Ok(true));
    assert_ne!(
        std::fs::read(&files[0]).unwrap_or_default(),
        b"not compiled code"
    );
}

#[test]
fn loading_finds_room_while_every_evaluation_slot_runs_a_slow_policy() {
    use plate_policy::policy_set::{Loader, ModuleCache};
    use std::sync::mpsc;
    const SLOTS: u32 = 2;
    let engine = std::sync::Arc::new(
        Engine::new(&EngineConfig {
            max_concurrent_instances: SLOTS,
        })
        .unwrap_or_else(|e| panic!("{e}")),
    );
    let slow = std::sync::Arc::new(load(&engine, Hostile::InfiniteLoop));
    let slow_limits = Limits {
        timeout_ms: 1500,
        memory_mib: 16,
    };
    // Every slot runs the slow policy (1.5 s each) ...
    let (started, running) = mpsc::channel();
    let mut busy = Vec::new();
    for _ in 0..SLOTS {
        let (engine, slow, started) = (engine.clone(), slow.clone(), started.clone());
        busy.push(std::thread::spawn(move || {
            let slot = engine.evaluation_slot_blocking()?;
            let _ = started.send(());
            Some(slow.evaluate(&slot, &[INPUT], &slow_limits, None).0)
        }));
    }
    for _ in 0..SLOTS {
        running
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("a slow evaluation did not start: {e}"));
    }
    assert_eq!(engine.free_evaluation_slots(), 0);
    let loaded_at = Instant::now();
    // ... while a policy set loads: compiling, checking the ABI version and
    // validating settings all instantiate modules.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("allow.wasm"), Hostile::AllowAll.wasm())
        .unwrap_or_else(|e| panic!("{e}"));
    let text = "apiVersion: policy.plate.dev/v1alpha1\nkind: PolicySet\nspec:\n  policies:\n    - name: allow\n      module: allow.wasm\n      match: {kinds: [Pod]}\n    - name: nlt\n      module: builtin:no-latest-tag\n      match: {kinds: [Pod]}\n";
    let cache = ModuleCache::default();
    let set = Loader {
        engine: &engine,
        cache: &cache,
    }
    .load_str("reload.yaml", text, Some(dir.path()));
    let load_took = loaded_at.elapsed();
    assert!(
        set.is_ok(),
        "loading failed while every slot was busy: {}",
        set.err().map(|e| e.to_string()).unwrap_or_default()
    );
    // The load did not wait for the slow evaluations to end: it had its own room.
    assert!(
        busy.iter().all(|t| !t.is_finished()),
        "the slow evaluations ended before the load did ({load_took:?}); the test proves nothing"
    );
    // Requests that arrive now wait for a slot, then evaluate; none fails to get an
    // instance.
    let waiting: Vec<_> = (0..SLOTS * 2)
        .map(|_| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                let healthy = load(&engine, Hostile::AllowAll);
                let slot = engine.evaluation_slot_blocking()?;
                Some(
                    healthy
                        .evaluate(&slot, &[INPUT], &LIMITS, None)
                        .0
                        .map(|v| v.violations.is_empty()),
                )
            })
        })
        .collect();
    for thread in busy {
        let result = thread
            .join()
            .unwrap_or_else(|_| panic!("a slow evaluation panicked"));
        assert_eq!(result, Some(Err(EvalError::Timeout(1500))));
    }
    for thread in waiting {
        let result = thread
            .join()
            .unwrap_or_else(|_| panic!("a request panicked"));
        assert_eq!(result, Some(Ok(true)), "a request did not get an instance");
    }
}
