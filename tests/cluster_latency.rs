//! A benchmark, not a pass/fail test: what the webhook adds to a user's write, measured
//! through the real kube-apiserver of the cluster harness (issue 15, point 9;
//! docs/performance.md). Run it with `bash bench/apiserver.sh` (release build, control
//! plane up); `scripts/test.sh` does not run it.
//!
//! It sends server-side dry-run creates of tests/fixtures/deployment-3-containers.yaml,
//! alternating plate-prod (the webhook judges it) and kube-system (the chart's
//! namespaceSelector keeps it from the webhook), so both series see the same API server,
//! the same machine load and the same moment. The difference of the medians is the cost of
//! the webhook call. It measures that with the shipped policy set, then with three
//! do-nothing policies (the cost of three sandboxes alone), one built-in alone, and an
//! empty set (the ConfigMap replaced each time, the webhook configuration unchanged, so
//! the API server still calls the webhook), and prints each with the replicas' own
//! `elapsed_us` for the judged requests. `PLATE_REPLICA_BIN` (bench/apiserver.sh `BIN=`)
//! makes the replicas run another build. The only assertions are that the requests were
//! answered as the policies say.

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::time::{Duration, Instant};
use support::cluster::{RELEASE, RELEASE_NS, block_on, client, cluster, poll};

/// Requests per namespace and per policy set.
fn rounds() -> usize {
    std::env::var("PLATE_LATENCY_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

fn deployment(ns: &str) -> Deployment {
    let text = std::fs::read_to_string(
        support::repo_root().join("tests/fixtures/deployment-3-containers.yaml"),
    )
    .unwrap_or_else(|e| panic!("deployment-3-containers.yaml: {e}"));
    let mut d: Deployment = serde_saphyr::from_str(&text)
        .unwrap_or_else(|e| panic!("deployment-3-containers.yaml: {e}"));
    d.metadata.namespace = Some(ns.to_owned());
    d.metadata.name = Some("latency-probe".to_owned());
    d
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

struct Series {
    judged: Vec<Duration>,
    unseen: Vec<Duration>,
    /// The replicas' own `elapsed_us` for the judged requests (their `decided` lines).
    server_us: Vec<u64>,
}

/// The replicas' `decided` lines so far.
fn decided_lines(c: &support::cluster::Cluster) -> Vec<String> {
    c.node
        .replicas()
        .iter()
        .flat_map(|r| r.log_lines_with(&["\"decided\"", "elapsed_us"]))
        .collect()
}

fn elapsed_us(line: &str) -> Option<u64> {
    let rest = &line[line.find("\"elapsed_us\":")? + "\"elapsed_us\":".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Alternating dry-run creates; `expect_allowed` says what plate-prod must answer.
fn measure(c: &support::cluster::Cluster, kube: &kube::Client, expect_allowed: bool) -> Series {
    let prod: Api<Deployment> = Api::namespaced(kube.clone(), "plate-prod");
    let system: Api<Deployment> = Api::namespaced(kube.clone(), "kube-system");
    let (prod_obj, system_obj) = (deployment("plate-prod"), deployment("kube-system"));
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let mut series = Series {
        judged: Vec::new(),
        unseen: Vec::new(),
        server_us: Vec::new(),
    };
    // Warm-up: connections, the API server's caches, the replicas' first instances.
    let earlier = decided_lines(c).len();
    const WARM_UP: usize = 20;
    for _ in 0..WARM_UP {
        let _ = block_on(prod.create(&params, &prod_obj));
        let _ = block_on(system.create(&params, &system_obj));
    }
    // The replicas' logs are read as they flush: the warm-up's lines must all be in
    // before the measured ones are told apart from them.
    let before: std::collections::HashSet<String> = poll(
        Duration::from_secs(30),
        "the warm-up's decided lines",
        || {
            let lines = decided_lines(c);
            (lines.len() >= earlier + WARM_UP).then_some(lines)
        },
    )
    .into_iter()
    .collect();
    for _ in 0..rounds() {
        let start = Instant::now();
        let judged = block_on(prod.create(&params, &prod_obj));
        series.judged.push(start.elapsed());
        assert_eq!(judged.is_ok(), expect_allowed, "plate-prod: {judged:?}");
        let start = Instant::now();
        let unseen = block_on(system.create(&params, &system_obj));
        series.unseen.push(start.elapsed());
        assert!(unseen.is_ok(), "kube-system: {unseen:?}");
    }
    series.judged.sort();
    series.unseen.sort();
    // Log lines are read as the replicas flush them: wait until each request's is in.
    series.server_us = poll(
        Duration::from_secs(30),
        "the replicas' decided lines",
        || {
            let new: Vec<u64> = decided_lines(c)
                .iter()
                .filter(|l| !before.contains(*l))
                .filter_map(|l| elapsed_us(l))
                .collect();
            (new.len() >= series.judged.len()).then_some(new)
        },
    );
    series.server_us.sort_unstable();
    series
}

fn report(label: &str, s: &Series) -> f64 {
    let (j50, j99) = (percentile(&s.judged, 0.5), percentile(&s.judged, 0.99));
    let (u50, u99) = (percentile(&s.unseen, 0.5), percentile(&s.unseen, 0.99));
    let server = |p: f64| {
        let i = ((s.server_us.len() as f64 - 1.0) * p).round() as usize;
        s.server_us.get(i).copied().unwrap_or(0)
    };
    println!(
        "{label:<13} judged p50 {j50:.3} ms p99 {j99:.3} ms | unseen p50 {u50:.3} ms p99 {u99:.3} ms | webhook adds p50 {:.3} ms p99 {:.3} ms ({} requests each) | in the replicas p50 {} us p99 {} us",
        j50 - u50,
        j99 - u99,
        s.judged.len(),
        server(0.5),
        server(0.99)
    );
    j50 - u50
}

/// Puts `set` into the chart's policy ConfigMap, waits until every replica has loaded
/// it (`policies` policies, its reload log line), and measures.
fn load_and_measure(
    c: &support::cluster::Cluster,
    kube: &kube::Client,
    maps: &Api<ConfigMap>,
    set: &str,
    policies: usize,
) -> Series {
    let name = format!("{RELEASE}-policies");
    let patch = serde_json::json!({"data": {"policies.yaml": set}});
    let before: Vec<usize> = c
        .node
        .replicas()
        .iter()
        .map(|r| r.log_lines_with(&["policy set reloaded"]).len())
        .collect();
    block_on(maps.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)))
        .unwrap_or_else(|e| panic!("patching {name}: {e}"));
    let count = format!("\"policies\":{policies}");
    poll(
        Duration::from_secs(60),
        "the replicas loading the new set",
        || {
            c.node
                .replicas()
                .iter()
                .zip(&before)
                .all(|(r, &n)| {
                    let lines = r.log_lines_with(&["policy set reloaded"]);
                    lines.len() > n && lines.iter().skip(n).any(|l| l.contains(&count))
                })
                .then_some(())
        },
    );
    measure(c, kube, true)
}

#[test]
#[ignore = "a benchmark: bash bench/apiserver.sh"]
fn dry_run_create_latency_through_the_api_server() {
    let mut c = cluster();
    c.dirty = true;
    let kube = client(&c.env);
    // The fixture pins its images on the trusted registry and sets requests, so the
    // shipped set allows it in plate-prod after evaluating every policy that matches.
    let shipped = measure(&c, &kube, true);

    let maps: Api<ConfigMap> = Api::namespaced(kube.clone(), RELEASE_NS);
    // The floor: three policies that read nothing and allow, matching Deployments in
    // prod as the shipped set's three do. What three fresh sandboxes cost on their own.
    let module = c.env.state.join("allow-all.wasm");
    let wasm = wat::parse_file(support::repo_root().join("policies/testing/allow-all.wat"))
        .unwrap_or_else(|e| panic!("allow-all.wat: {e}"));
    std::fs::write(&module, wasm).unwrap_or_else(|e| panic!("{}: {e}", module.display()));
    let entries = |list: &[String]| -> String {
        let policies: String = list.iter().map(|e| format!("    - {e}\n")).collect();
        format!(
            "apiVersion: policy.plate.dev/v1alpha1\nkind: PolicySet\nspec:\n  environments: {{label: environment, values: {{production: prod}}, namePatterns: [{{pattern: \"*-prod\", environment: prod}}]}}\n  policies:\n{policies}"
        )
    };
    let floor: Vec<String> = (1..=3)
        .map(|i| {
            format!(
                "{{name: allow-all-{i}, module: {module:?}, environments: [prod], mode: enforce, match: {{kinds: [apps/Deployment]}}}}",
                module = module.display().to_string()
            )
        })
        .collect();
    let floor_set = load_and_measure(&c, &kube, &maps, &entries(&floor), 3);
    // One built-in alone: what one real policy costs; no way of running three costs less.
    let one = [
        "{name: no-latest-tag, module: 'builtin:no-latest-tag', environments: [prod], mode: enforce, match: {kinds: [apps/Deployment]}, settings: {forbiddenTags: [latest]}}".to_string(),
    ];
    let one_set = load_and_measure(&c, &kube, &maps, &entries(&one), 1);
    let empty = "apiVersion: policy.plate.dev/v1alpha1\nkind: PolicySet\nspec:\n  policies: []\n";
    let empty_set = load_and_measure(&c, &kube, &maps, empty, 0);

    println!();
    let with_policies = report("shipped set", &shipped);
    let without = report("empty set", &empty_set);
    let three_empty = report("3 allow-all", &floor_set);
    let one_builtin = report("no-latest-tag", &one_set);
    println!(
        "over the empty set (p50): the shipped set's policies add {:.3} ms, three do-nothing policies {:.3} ms, no-latest-tag alone {:.3} ms",
        with_policies - without,
        three_empty - without,
        one_builtin - without
    );
}
