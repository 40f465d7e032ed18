//! Criterion benchmarks of policy evaluation (issue budgets: sandbox overhead
//! <= 20 us, each shipped policy <= 100 us per evaluation, sandbox creation included).
//!
//! `cargo bench -p plate-policy --bench evaluation`

use criterion::{Criterion, criterion_group, criterion_main};
use plate_policy::admission::{self, Context};
use plate_policy::engine::{Engine, EngineConfig, Limits};
use plate_policy::manifest::{self, RequestSpec};
use plate_policy::objects::{NoObjects, ObjectSource};
use plate_policy::policy_set::{Loader, ModuleCache};
use plate_policy::review;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn repo_file(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// trusted-registries written in Go, built with the machine's Go into
/// target/go-policies (as tests/support/go.rs does) and loaded with the module
/// cache there; None, with a note, when Go is missing.
fn go_trusted_registries(engine: &Engine) -> Option<plate_policy::engine::PolicyModule> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = root.join("target/go-policies");
    let wasm = out.join("trusted-registries-go.wasm");
    let built = std::process::Command::new("go")
        .args(["build", "-buildmode=c-shared", "-trimpath", "-o"])
        .arg(&wasm)
        .arg(".")
        .current_dir(root.join("policies/trusted-registries/go"))
        .env("GOOS", "wasip1")
        .env("GOARCH", "wasm")
        .status();
    if !matches!(built, Ok(status) if status.success()) {
        eprintln!("note: Go is not available ({built:?}): the Go policy is not measured");
        return None;
    }
    let bytes = std::fs::read(&wasm).unwrap_or_else(|e| panic!("{}: {e}", wasm.display()));
    let cache = out.join("module-cache");
    std::fs::create_dir_all(&cache).unwrap_or_else(|e| panic!("{e}"));
    Some(
        engine
            .load_cached(&bytes, Some(&cache))
            .unwrap_or_else(|e| panic!("the Go module: {e}")),
    )
}

fn benches(c: &mut Criterion) {
    let engine = Engine::new(&EngineConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let cache = ModuleCache::default();
    let loader = Loader {
        engine: &engine,
        cache: &cache,
    };
    let set = loader.builtin().unwrap_or_else(|e| panic!("{e}"));

    let text = repo_file("tests/fixtures/deployment-3-containers.yaml");
    let objects = manifest::read_objects("deployment", &text).unwrap_or_else(|e| panic!("{e}"));
    let spec = RequestSpec {
        operation: "CREATE",
        namespace: None,
        old_object: None,
        uid: "bench",
    };
    let request_json =
        manifest::to_request(&objects[0].value, &spec).unwrap_or_else(|e| panic!("{e}"));
    let request = review::parse_request(&request_json).unwrap_or_else(|e| panic!("{e}"));
    let tail = [
        b",\"environment\":\"prod\",\"namespaceLabels\":{},\"request\":".as_slice(),
        &request_json,
        b"}",
    ]
    .concat();
    let limits = Limits::default();
    let slot = engine
        .evaluation_slot_blocking()
        .unwrap_or_else(|| panic!("no evaluation slot"));

    let wat = repo_file("policies/testing/allow-all.wat");
    let allow_all = engine
        .load(&wat::parse_str(&wat).unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("{e}"));
    c.bench_function("sandbox_overhead/allow-all", |b| {
        b.iter(|| {
            let input = [b"{\"settings\":{}".as_slice(), &tail];
            black_box(allow_all.evaluate(&slot, &input, &limits, None))
        })
    });

    // An SDK-built policy on the smallest input: its instance and call overhead,
    // without the cost of reading a large request.
    if let Some(policy) = set.policy("require-ssl-redirect") {
        // Its own settings document: the built-ins are one module, told which runs.
        let minimal = [
            b"{\"settings\":".as_slice(),
            &policy.settings_json,
            br#","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"ConfigMap"},"operation":"CREATE"}}"#,
        ];
        c.bench_function("sandbox_overhead/sdk-policy-minimal-input", |b| {
            b.iter(|| black_box(policy.module.evaluate(&slot, &minimal, &limits, None)))
        });
    }

    // The same policy in Rust and in Go (policies/trusted-registries/go), on the
    // same input, in one run: each evaluation a fresh sandbox.
    if let (Some(rust), Some(go)) = (
        set.policy("trusted-registries"),
        go_trusted_registries(&engine),
    ) {
        let input = [b"{\"settings\":".as_slice(), &rust.settings_json, &tail];
        // The Go module is one policy: it gets the entry's settings unwrapped.
        let go_settings = serde_json::from_slice::<serde_json::Value>(&rust.settings_json)
            .ok()
            .map(|wrapped| wrapped["settings"].to_string().into_bytes())
            .unwrap_or_else(|| b"{}".to_vec());
        let go_input = [b"{\"settings\":".as_slice(), &go_settings, &tail];
        let mut group = c.benchmark_group("language/trusted-registries/deployment-3-containers");
        group.bench_function("rust", |b| {
            b.iter(|| black_box(rust.module.evaluate(&slot, &input, &limits, None)))
        });
        group.bench_function("go", |b| {
            b.iter(|| black_box(go.evaluate(&slot, &go_input, &limits, None)))
        });
        group.finish();
    }

    for policy in &set.policies {
        let name = format!("policy/{}/deployment-3-containers", policy.name);
        c.bench_function(&name, |b| {
            b.iter(|| {
                let input = [b"{\"settings\":".as_slice(), &policy.settings_json, &tail];
                black_box(policy.module.evaluate(&slot, &input, &limits, None))
            })
        });
    }

    let objects: Arc<dyn ObjectSource> = Arc::new(NoObjects);
    c.bench_function("decide/builtin-set/deployment-3-containers", |b| {
        b.iter(|| {
            let context = Context {
                objects: &objects,
                environment: None,
                deadline: Instant::now() + Duration::from_secs(2),
                slot: Some(&slot),
                run_evaluations: None,
            };
            black_box(admission::decide(&set, &request, &context))
        })
    });

    // The server's work for one review with an empty policy set: parse the body,
    // decide, build and encode the response (no HTTP, no TLS).
    let empty = loader
        .load_str(
            "empty",
            "apiVersion: policy.plate.dev/v1alpha1\nkind: PolicySet\nspec:\n  policies: []\n",
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let body = serde_json::to_vec(&serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": serde_json::from_slice::<serde_json::Value>(&request_json).unwrap_or_default(),
    }))
    .unwrap_or_default();
    c.bench_function("server_path/empty-set/deployment-3-containers", |b| {
        b.iter(|| {
            let review = review::parse(&body).unwrap_or_else(|e| panic!("{e}"));
            let context = Context {
                objects: &objects,
                environment: None,
                deadline: Instant::now() + Duration::from_secs(2),
                slot: Some(&slot),
                run_evaluations: None,
            };
            let decision = admission::decide(&empty, &review, &context);
            black_box(decision.response(&review.uid))
        })
    });
}

criterion_group! {
    name = evaluation;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(evaluation);
