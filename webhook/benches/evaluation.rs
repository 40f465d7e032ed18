//! Criterion benchmarks of policy evaluation (issue budgets: sandbox overhead
//! <= 20 us, each shipped policy <= 100 us per evaluation, sandbox creation included).
//!
//! `cargo bench -p plate-policy --bench evaluation`

use criterion::{Criterion, criterion_group, criterion_main};
use plate_policy::admission::{self, Context};
use plate_policy::engine::{ContextObjects, Engine, EngineConfig, Limits, NoObjects};
use plate_policy::environment::NoNamespaces;
use plate_policy::manifest::{self, RequestSpec};
use plate_policy::policy_set::{Loader, ModuleCache};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn repo_file(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
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
    let request = manifest::to_request(&objects[0].value, &spec).unwrap_or_else(|e| panic!("{e}"));
    let request_json = serde_json::to_vec(&request).unwrap_or_else(|e| panic!("{e}"));
    let tail = [
        b",\"environment\":\"prod\",\"namespaceLabels\":{},\"request\":".as_slice(),
        &request_json,
        b"}",
    ]
    .concat();
    let limits = Limits::default();

    let wat = repo_file("policies/testing/allow-all.wat");
    let allow_all = engine
        .load(&wat::parse_str(&wat).unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("{e}"));
    c.bench_function("sandbox_overhead/allow-all", |b| {
        b.iter(|| {
            let verdict = allow_all.evaluate(&[b"{\"settings\":{}", &tail], &limits);
            black_box(verdict)
        })
    });

    // An SDK-built policy on the smallest input: its instance and call overhead,
    // without the cost of reading a large request.
    if let Some(policy) = set.policy("require-ssl-redirect") {
        let minimal = br#"{"settings":{},"request":{"uid":"u","kind":{"group":"","version":"v1","kind":"ConfigMap"},"operation":"CREATE"}}"#;
        c.bench_function("sandbox_overhead/sdk-policy-minimal-input", |b| {
            b.iter(|| black_box(policy.module.evaluate(&[minimal], &limits)))
        });
    }

    for policy in &set.policies {
        let name = format!("policy/{}/deployment-3-containers", policy.name);
        c.bench_function(&name, |b| {
            b.iter(|| {
                let input = [b"{\"settings\":".as_slice(), &policy.settings_json, &tail];
                black_box(policy.module.evaluate(&input, &limits))
            })
        });
    }

    let objects: Arc<dyn ContextObjects> = Arc::new(NoObjects);
    c.bench_function("decide/builtin-set/deployment-3-containers", |b| {
        b.iter(|| {
            let context = Context {
                namespaces: &NoNamespaces,
                objects: &objects,
                raw_request: None,
                environment: None,
                deadline: Instant::now() + Duration::from_secs(2),
            };
            black_box(admission::decide(&set, &request, &context))
        })
    });
}

criterion_group! {
    name = evaluation;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(evaluation);
