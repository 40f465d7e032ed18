//! Property tests of the parsers that read untrusted input, on stable Rust (the
//! coverage-guided fuzzing of the same properties is `fuzz/`, run by bench/fuzz.sh;
//! see docs/security.md). The properties themselves are `fuzz/src/lib.rs`, included
//! here as `checks`, so both check exactly the same things:
//!
//! - the AdmissionReview decoding and response path: `review::parse`, then `decide`
//!   against the built-in policy set and the response, fed arbitrary bytes,
//!   arbitrary JSON and mutations of valid reviews; what the parser accepts is
//!   compared with an independent reading of the same bytes (`oracle`);
//! - the image-reference parser of the SDK, fed arbitrary strings and references
//!   generated from its grammar (which must parse back to the same parts);
//! - the policy-set parser, fed arbitrary strings and mutations of
//!   `policies/policies.yaml`.
//!
//! None of them may panic; errors are values that say what is wrong. Every file in
//! `tests/corpus/{admission,image,policy-set}/` goes through the same checks (the
//! `*_corpus` tests): inputs that were interesting or once failed; so does every
//! file of the libFuzzer corpora in `fuzz/corpus/TARGET/` (the `libfuzzer_corpus_*`
//! tests: the minimised corpus and every crash found, kept as regression tests).
//!
//! Case counts: the defaults below keep the whole file well under a minute in CI;
//! `PROPTEST_CASES=N` sets every property's count. `FUZZ_SECONDS=S` repeats each
//! property in batches until S seconds have passed or PROPTEST_CASES cases have run,
//! and prints the number of cases run (random inputs for a time budget, next to the
//! coverage-guided fuzzing).
//!
//! Seeds: without `FUZZ_SECONDS`, each property draws its cases from a seed of its own
//! name, so a run in CI checks exactly what the same commit checked anywhere else (a
//! random seed once failed CI on a gap in the test's own oracle that no local run had
//! met). `PROPTEST_RANDOM=1`, or any `FUZZ_SECONDS` run, draws fresh random seeds:
//! that is where new inputs are found. A failing input
//! is shrunk, printed, and written raw to `$CARGO_TARGET_TMPDIR/fuzz-found/<target>/`
//! so it can be copied into the corpus; proptest also records its seed in
//! `tests/proptest-regressions/<target>.txt`, replayed first on the next run.

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod checks;

use checks::{POLICY_SET_FILE as FILE, loader, preview};
use plate_policy_sdk::{ImageReference, ImageReferenceError};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, FileFailurePersistence, RngSeed, TestError, TestRunner};
use serde_json::{Map, Value, json};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// An input as the parser under test sees it; `Debug` shows it as (lossy, cut) text
/// so shrunk failures and persisted seeds stay readable.
#[derive(Clone)]
struct Input(Vec<u8>);

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes: {}", self.0.len(), preview(&self.0, 2000))
    }
}

thread_local! {
    /// Inputs the parser under test accepted and rejected on this thread (each
    /// property runs on its own test thread), for the summary line.
    static TALLY: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
    /// Decided reviews that were denied, on this thread.
    static DENIED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn tally(accepted: bool) {
    TALLY.with(|t| {
        let (a, r) = t.get();
        t.set(if accepted { (a + 1, r) } else { (a, r + 1) });
    });
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Runs `check` on inputs from `strategy`: `default_cases` cases, or PROPTEST_CASES;
/// with FUZZ_SECONDS, in batches until that time has passed (or the cases have run).
fn property<S>(target: &str, name: &str, default_cases: u32, strategy: S, check: fn(&[u8]))
where
    S: Strategy<Value = Input>,
{
    property_of(
        target,
        name,
        default_cases,
        strategy,
        |i: &Input| check(&i.0),
        |i| i.0.clone(),
    );
}

/// [`property`] for any generated value: `check` is the property, `bytes` the input
/// it stands for (what is saved when it fails).
fn property_of<S>(
    target: &str,
    name: &str,
    default_cases: u32,
    strategy: S,
    check: impl Fn(&S::Value),
    bytes: fn(&S::Value) -> Vec<u8>,
) where
    S: Strategy,
{
    let cases = env_u64("PROPTEST_CASES").unwrap_or(u64::from(default_cases));
    let budget = env_u64("FUZZ_SECONDS").map(Duration::from_secs);
    let start = Instant::now();
    let mut done: u64 = 0;
    TALLY.with(|t| t.set((0, 0)));
    DENIED.with(|d| d.set(0));
    // Proptest's persistence needs a 'static path: one file per target, in tests/.
    let persistence: &'static str = Box::leak(
        repo_root()
            .join(format!("tests/proptest-regressions/{target}.txt"))
            .display()
            .to_string()
            .into_boxed_str(),
    );
    // Under a time budget, batches of about five seconds each (the first one small,
    // to measure), so the last one ends close to the budget.
    let mut batch_size: u64 = 20;
    loop {
        let batch = match budget {
            Some(_) => (cases - done).min(batch_size),
            None => cases - done,
        };
        if batch == 0 {
            break;
        }
        let config = Config {
            cases: u32::try_from(batch).unwrap_or(u32::MAX),
            failure_persistence: Some(Box::new(FileFailurePersistence::Direct(persistence))),
            rng_seed: seed(target, name, budget.is_some()),
            // Bounded shrinking: a failure is reported in bounded time.
            max_shrink_iters: 4096,
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        let result = runner.run(&strategy, |input| {
            check(&input);
            Ok(())
        });
        match result {
            Ok(()) => done += batch,
            Err(TestError::Fail(reason, input)) => {
                let saved = save_found(target, &bytes(&input));
                panic!(
                    "{target}/{name}: {reason}\nminimal input ({}): {input:?}",
                    saved
                        .map(|p| format!("saved to {}", p.display()))
                        .unwrap_or_else(|e| format!("not saved: {e}"))
                );
            }
            Err(TestError::Abort(reason)) => panic!("{target}/{name}: aborted: {reason}"),
        }
        match budget {
            Some(limit) if start.elapsed() < limit => {
                let rate = done as f64 / start.elapsed().as_secs_f64().max(1e-3);
                let left = (limit - start.elapsed()).as_secs_f64().min(5.0);
                batch_size = ((rate * left) as u64).clamp(1, 100_000);
            }
            _ => break,
        }
    }
    let elapsed = start.elapsed();
    let (accepted, rejected) = TALLY.with(|t| t.get());
    let denied = match DENIED.with(|d| d.get()) {
        0 => String::new(),
        n => format!(", of which denied {n}"),
    };
    println!(
        "property {target}/{name}: {done} cases in {:.1} s ({:.0} cases/s; accepted {accepted}{denied}, rejected {rejected})",
        elapsed.as_secs_f64(),
        done as f64 / elapsed.as_secs_f64().max(1e-9)
    );
}

/// A seed of the property's own name (the same cases on every run), or a random one
/// for exploring runs (`explore`, or `PROPTEST_RANDOM=1`).
fn seed(target: &str, name: &str, explore: bool) -> RngSeed {
    if explore || std::env::var_os("PROPTEST_RANDOM").is_some_and(|v| v == "1") {
        return RngSeed::Random;
    }
    // FNV-1a: stable across Rust versions, unlike the std hasher.
    let fixed = format!("{target}/{name}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    RngSeed::Fixed(fixed)
}

/// Writes a failing input where it can be copied into tests/corpus/TARGET/.
fn save_found(target: &str, input: &[u8]) -> std::io::Result<PathBuf> {
    use std::hash::{Hash, Hasher};
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("fuzz-found")
        .join(target);
    std::fs::create_dir_all(&dir)?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    input.hash(&mut hasher);
    let path = dir.join(format!("{:016x}", hasher.finish()));
    std::fs::write(&path, input)?;
    Ok(path)
}

/// Every file of tests/corpus/DIR through `check`; a failure names the file.
fn corpus(dir: &str, check: fn(&[u8])) {
    corpus_at(&repo_root().join("tests/corpus").join(dir), check);
}

/// Every file of fuzz/corpus/TARGET (the minimised libFuzzer corpus and the crashes
/// found, kept) through `check`.
fn libfuzzer_corpus(target: &str, check: fn(&[u8])) {
    corpus_at(&repo_root().join("fuzz/corpus").join(target), check);
}

fn corpus_at(dir: &Path, check: fn(&[u8])) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no corpus files", dir.display());
    TALLY.with(|t| t.set((0, 0)));
    let mut failed = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let outcome = std::panic::catch_unwind(|| check(&bytes));
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{}: {message}", file.display()));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} corpus files failed:\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
    let (accepted, rejected) = TALLY.with(|t| t.get());
    println!(
        "corpus {}: {} files pass (accepted {accepted}, rejected {rejected})",
        dir.display(),
        files.len()
    );
}

/// Strings that break parsers: empty, whitespace, separators, control and
/// non-BMP characters, numbers at the edges, YAML and JSON syntax.
const NASTY: &[&str] = &[
    "",
    " ",
    "\t",
    "\n",
    "\r\n",
    "\0",
    "\u{feff}",
    "\u{202e}",
    "\u{10ffff}",
    "é",
    "🦀",
    "ß",
    "İ",
    "Ⅻ",
    "ｆｕｌｌ",
    "a\u{301}",
    "null",
    "~",
    "true",
    "-1",
    "0",
    "-0",
    "1e999",
    "18446744073709551616",
    "NaN",
    "[]",
    "{}",
    "*",
    "?",
    ":",
    "/",
    "//",
    "@",
    "..",
    "../../etc/passwd",
    "%00",
    "\\",
    "\"",
    "'",
    "&anchor",
    "*alias",
    "!!binary",
    "- ",
    "# comment",
    "|",
    ">",
    "---",
    "...",
];

fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(NASTY).prop_map(str::to_string),
        any::<String>(),
        "\\PC{0,40}",
        "[a-zA-Z0-9._/:@-]{0,40}",
    ]
}

// ---------------------------------------------------------------------------
// AdmissionReview: parse_review -> decide -> to_response -> serialize
// ---------------------------------------------------------------------------

/// The parser against the oracle, then the decision and its answer (`checks`).
fn check_admission(body: &[u8]) {
    match checks::admission_parse(body) {
        None => tally(false),
        Some(allowed) => {
            tally(true);
            if !allowed {
                DENIED.with(|d| d.set(d.get() + 1));
            }
        }
    }
}

/// The whole path, body bytes to response bytes (`checks`).
fn check_answer(body: &[u8]) {
    tally(checks::admission(body));
}

/// The valid reviews mutations start from.
fn review_bases() -> &'static [Value] {
    static BASES: OnceLock<Vec<Value>> = OnceLock::new();
    BASES.get_or_init(|| {
        let root = repo_root();
        let mut files = vec![
            root.join("tests/fixtures/review-pod-latest.json"),
            root.join("tests/fixtures/review-k8s-docs-example.json"),
        ];
        if let Ok(dir) = std::fs::read_dir(root.join("bench/reviews")) {
            let mut more: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
            more.sort();
            files.extend(
                more.into_iter()
                    .filter(|p| p.extension().is_some_and(|e| e == "json")),
            );
        }
        files
            .iter()
            .map(|p| {
                let text = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            })
            .collect()
    })
}

fn arb_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(vec![0i64, -1, 1, 65535, 65536, 2_147_483_648]).prop_map(Value::from),
    ]
}

/// Keys the Kubernetes types know, so arbitrary objects reach deeper code.
const KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "request",
    "response",
    "uid",
    "group",
    "version",
    "resource",
    "subResource",
    "requestKind",
    "name",
    "namespace",
    "operation",
    "userInfo",
    "username",
    "groups",
    "extra",
    "object",
    "oldObject",
    "dryRun",
    "options",
    "metadata",
    "labels",
    "annotations",
    "spec",
    "template",
    "containers",
    "initContainers",
    "ephemeralContainers",
    "image",
    "jobTemplate",
    "issuerRef",
    "tls",
    "rules",
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        arb_number(),
        nasty_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 96, 8, |inner| {
        let key = prop_oneof![
            3 => prop::sample::select(KEYS).prop_map(str::to_string),
            1 => nasty_string(),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

fn envelope(api_version: Value, kind: Value, request: Value) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "request": request})
}

/// Arbitrary JSON, alone or as the request of a (mostly) right envelope.
fn arb_json_review() -> impl Strategy<Value = Input> {
    let api_version = prop_oneof![
        4 => Just(json!("admission.k8s.io/v1")),
        1 => Just(json!("admission.k8s.io/v1beta1")),
        1 => arb_json(),
    ];
    let kind = prop_oneof![
        4 => Just(json!("AdmissionReview")),
        1 => arb_json(),
    ];
    prop_oneof![
        1 => arb_json(),
        3 => (api_version, kind, arb_json()).prop_map(|(a, k, r)| envelope(a, k, r)),
    ]
    .prop_map(|v| Input(v.to_string().into_bytes()))
}

/// One step away from a valid review. `Index` picks a node of the document as it is
/// when the step applies (pre-order), so steps compose.
#[derive(Debug, Clone)]
enum Mutation {
    Remove(Index),
    Replace(Index, Value),
    ChangeType(Index, u8),
    /// Wrap a node in `depth` arrays (or objects).
    Nest(Index, usize, bool),
    /// Replace a node with a string of `len` copies of `ch`.
    Huge(Index, usize, char),
    /// Replace a node with an arbitrary (often non-ASCII) string.
    Text(Index, String),
    /// Set one field the policies read to something arbitrary.
    Field(usize, Value),
}

/// Fields that decide which policies run and what they read.
const FIELDS: &[&[&str]] = &[
    &["request", "uid"],
    &["request", "kind", "kind"],
    &["request", "kind", "group"],
    &["request", "namespace"],
    &["request", "name"],
    &["request", "operation"],
    &["request", "subResource"],
    &["request", "object", "kind"],
    &["request", "object", "metadata", "labels"],
    &["request", "object", "metadata", "name"],
    &["request", "object", "spec", "containers"],
    &[
        "request",
        "object",
        "spec",
        "template",
        "spec",
        "containers",
    ],
    &["request", "object", "spec", "issuerRef"],
    &["request", "object", "spec", "tls"],
    &["request", "oldObject"],
    &["request", "userInfo"],
];

fn field_value() -> impl Strategy<Value = Value> {
    let kind = prop::sample::select(
        &[
            "Pod",
            "Deployment",
            "CronJob",
            "Namespace",
            "Ingress",
            "Certificate",
            "Gateway",
            "PodTemplate",
            "Scale",
        ][..],
    )
    .prop_map(Value::from);
    let image = prop_oneof![
        prop::sample::select(
            &[
                "nginx",
                "nginx:latest",
                "harbor.cocdev.co.kr/plate/api:1",
                "localhost:5000/a@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "[::1]:5000/x:y",
                "UPPER/case",
                "a//b",
            ][..]
        )
        .prop_map(str::to_string),
        "[a-zA-Z0-9._/:@\\[\\]-]{0,60}",
        nasty_string(),
    ];
    let containers = prop::collection::vec(
        (nasty_string(), image).prop_map(|(name, image)| json!({"name": name, "image": image})),
        0..4,
    )
    .prop_map(Value::Array);
    let operation = prop::sample::select(
        &[
            "CREATE", "UPDATE", "DELETE", "CONNECT", "create", "PATCH", "",
        ][..],
    )
    .prop_map(Value::from);
    prop_oneof![kind, containers, operation, arb_json()]
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => any::<Index>().prop_map(Mutation::Remove),
        2 => (any::<Index>(), arb_json()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, t)| Mutation::ChangeType(i, t)),
        1 => (any::<Index>(), prop_oneof![1usize..40, 100usize..140, 200usize..600], any::<bool>())
            .prop_map(|(i, d, a)| Mutation::Nest(i, d, a)),
        1 => (
            any::<Index>(),
            prop_oneof![3 => 1000usize..70_000, 1 => 500_000usize..1_200_000],
            prop::sample::select(&['a', 'é', '🦀', '"', '\\', '\n', '\0', '\u{ffff}'][..])
        )
            .prop_map(|(i, n, c)| Mutation::Huge(i, n, c)),
        2 => (any::<Index>(), nasty_string()).prop_map(|(i, s)| Mutation::Text(i, s)),
        4 => (0..FIELDS.len(), field_value()).prop_map(|(f, v)| Mutation::Field(f, v)),
    ]
}

/// How the serialized text is disturbed after the mutations, if at all.
#[derive(Debug, Clone)]
enum RawEdit {
    None,
    Truncate(Index),
    Insert(Index, &'static str),
    Flip(Index, u8),
}

const SNIPPETS: &[&str] = &[
    "\\ud800",
    "\\udfff",
    "\"uid\":\"\",",
    "\"uid\":null,",
    "\"request\":null,",
    ",",
    "}",
    "]",
    "{",
    "[",
    "\"",
    "null",
    "1e999",
    "-0",
    "\\u0000",
    "\u{feff}",
    "\u{0}",
    "\"kind\":\"AdmissionReview\",",
    "\"apiVersion\":\"admission.k8s.io/v1\",",
];

fn arb_raw_edit() -> impl Strategy<Value = RawEdit> {
    prop_oneof![
        6 => Just(RawEdit::None),
        1 => any::<Index>().prop_map(RawEdit::Truncate),
        2 => (any::<Index>(), prop::sample::select(SNIPPETS)).prop_map(|(i, s)| RawEdit::Insert(i, s)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| RawEdit::Flip(i, b)),
    ]
}

#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    At(usize),
}

fn node_paths(value: &Value, prefix: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                prefix.push(Seg::Key(k.clone()));
                out.push(prefix.clone());
                node_paths(v, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                prefix.push(Seg::At(i));
                out.push(prefix.clone());
                node_paths(v, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn node_mut<'a>(value: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |v, seg| match seg {
        Seg::Key(k) => v.get_mut(k.as_str()),
        Seg::At(i) => v.get_mut(*i),
    })
}

fn pick(doc: &Value, index: &Index) -> Option<Vec<Seg>> {
    let mut paths = Vec::new();
    node_paths(doc, &mut Vec::new(), &mut paths);
    (!paths.is_empty()).then(|| paths[index.index(paths.len())].clone())
}

fn set_path(doc: &mut Value, path: &[&str], value: Value) {
    let mut node = doc;
    for key in &path[..path.len() - 1] {
        if !node.is_object() {
            *node = json!({});
        }
        let Value::Object(map) = node else { return };
        node = map.entry(key.to_string()).or_insert_with(|| json!({}));
    }
    if !node.is_object() {
        *node = json!({});
    }
    if let Value::Object(map) = node {
        map.insert(path[path.len() - 1].to_string(), value);
    }
}

fn change_type(value: &Value, to: u8) -> Value {
    match to % 7 {
        0 => Value::Null,
        1 => json!(value.to_string()),
        2 => json!([value]),
        3 => json!({"value": value}),
        4 => match value {
            Value::String(s) => s.parse::<f64>().map(Value::from).unwrap_or(json!(s.len())),
            other => json!(other.is_null()),
        },
        5 => json!(value.is_object()),
        _ => json!(-1),
    }
}

fn apply(doc: &mut Value, mutation: &Mutation) {
    match mutation {
        Mutation::Field(f, v) => set_path(doc, FIELDS[*f % FIELDS.len()], v.clone()),
        Mutation::Remove(i) => {
            let Some(path) = pick(doc, i) else { return };
            let Some(parent_node) = node_mut(doc, &path[..path.len() - 1]) else {
                return;
            };
            match (&path[path.len() - 1], parent_node) {
                (Seg::Key(k), Value::Object(map)) => {
                    map.remove(k);
                }
                (Seg::At(i), Value::Array(items)) if *i < items.len() => {
                    items.remove(*i);
                }
                _ => {}
            }
        }
        Mutation::Replace(i, _)
        | Mutation::ChangeType(i, _)
        | Mutation::Nest(i, _, _)
        | Mutation::Huge(i, _, _)
        | Mutation::Text(i, _) => {
            let Some(path) = pick(doc, i) else { return };
            let Some(node) = node_mut(doc, &path) else {
                return;
            };
            *node = match mutation {
                Mutation::Replace(_, v) => v.clone(),
                Mutation::ChangeType(_, t) => change_type(node, *t),
                Mutation::Nest(_, depth, arrays) => {
                    let mut v = node.take();
                    for _ in 0..*depth {
                        v = if *arrays { json!([v]) } else { json!({"n": v}) };
                    }
                    v
                }
                Mutation::Huge(_, n, c) => Value::String(std::iter::repeat_n(*c, *n).collect()),
                Mutation::Text(_, s) => Value::String(s.clone()),
                _ => return,
            };
        }
    }
}

fn raw_edit(mut bytes: Vec<u8>, edit: &RawEdit) -> Vec<u8> {
    match edit {
        RawEdit::None => {}
        RawEdit::Truncate(i) if !bytes.is_empty() => bytes.truncate(i.index(bytes.len())),
        RawEdit::Insert(i, s) => {
            let at = i.index(bytes.len() + 1);
            bytes.splice(at..at, s.bytes());
        }
        RawEdit::Flip(i, b) if !bytes.is_empty() => {
            let at = i.index(bytes.len());
            bytes[at] = *b;
        }
        _ => {}
    }
    bytes
}

fn mutated_review() -> impl Strategy<Value = Input> {
    (
        any::<Index>(),
        prop::collection::vec(arb_mutation(), 1..4),
        arb_raw_edit(),
    )
        .prop_map(|(base, mutations, edit)| {
            let bases = review_bases();
            let mut doc = bases[base.index(bases.len())].clone();
            for m in &mutations {
                apply(&mut doc, m);
            }
            let bytes = serde_json::to_vec(&doc).unwrap_or_default();
            Input(raw_edit(bytes, &edit))
        })
}

/// A well-typed change: the review still decodes, so it reaches `decide` and the
/// policies (kinds they match, namespaces in prod, odd containers and strings).
#[derive(Debug, Clone)]
enum Typed {
    Kind(usize),
    Namespace(String),
    Operation(&'static str),
    SubResource(Option<&'static str>),
    Containers(&'static str, Value),
    Labels(std::collections::BTreeMap<String, String>),
    /// Replace a string under request.object with another string.
    Text(Index, String),
    Huge(Index, usize, char),
    /// Nest or replace a node under request.object.spec.
    Nest(Index, usize, bool),
    Replace(Index, Value),
}

/// (group, version, kind, resource) the built-in policies match, and a few they do not.
const KINDS: &[(&str, &str, &str, &str)] = &[
    ("", "v1", "Pod", "pods"),
    ("apps", "v1", "Deployment", "deployments"),
    ("batch", "v1", "CronJob", "cronjobs"),
    ("", "v1", "PodTemplate", "podtemplates"),
    ("", "v1", "Namespace", "namespaces"),
    ("networking.k8s.io", "v1", "Ingress", "ingresses"),
    ("cert-manager.io", "v1", "Certificate", "certificates"),
    ("gateway.networking.k8s.io", "v1", "Gateway", "gateways"),
    ("", "v1", "ConfigMap", "configmaps"),
];

/// Where each workload kind keeps its containers.
const CONTAINER_PATHS: &[&[&str]] = &[
    &["spec", "containers"],
    &["spec", "template", "spec", "containers"],
    &[
        "spec",
        "jobTemplate",
        "spec",
        "template",
        "spec",
        "containers",
    ],
];

fn container_list() -> impl Strategy<Value = Value> {
    let image = prop_oneof![
        prop::sample::select(
            &[
                "nginx",
                "nginx:latest",
                "nginx:LATEST",
                "harbor.cocdev.co.kr/plate/api:1",
                "docker.io/library/nginx:latest",
                "localhost:5000/a@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "[::1]:5000/x:y",
                "UPPER/case",
                "a//b",
                "",
            ][..]
        )
        .prop_map(Value::from),
        "[a-zA-Z0-9._/:@\\[\\]-]{0,60}".prop_map(Value::from),
        nasty_string().prop_map(Value::from),
        Just(Value::Null),
        arb_json(),
    ];
    let resources = prop_oneof![
        Just(Value::Null),
        Just(json!({"requests": {"cpu": "1", "memory": "1Gi"}})),
        arb_json(),
    ];
    prop::collection::vec(
        (nasty_string(), image, resources)
            .prop_map(|(name, image, resources)| json!({"name": name, "image": image, "resources": resources})),
        0..5,
    )
    .prop_map(Value::Array)
}

fn arb_typed() -> impl Strategy<Value = Typed> {
    let namespace = prop_oneof![
        prop::sample::select(&["plate-prod", "x-stg", "default", "kube-system", ""][..])
            .prop_map(str::to_string),
        nasty_string().prop_map(|s| format!("{s}-prod")),
    ];
    prop_oneof![
        3 => (0..KINDS.len()).prop_map(Typed::Kind),
        2 => namespace.prop_map(Typed::Namespace),
        1 => prop::sample::select(&["CREATE", "UPDATE", "DELETE", "CONNECT"][..]).prop_map(Typed::Operation),
        1 => prop::option::of(prop::sample::select(&["status", "ephemeralcontainers", "scale", ""][..]))
            .prop_map(Typed::SubResource),
        4 => (
            prop::sample::select(&["containers", "initContainers", "ephemeralContainers"][..]),
            container_list()
        )
            .prop_map(|(k, v)| Typed::Containers(k, v)),
        1 => prop::collection::btree_map(nasty_string(), nasty_string(), 0..6).prop_map(Typed::Labels),
        2 => (any::<Index>(), nasty_string()).prop_map(|(i, s)| Typed::Text(i, s)),
        1 => (
            any::<Index>(),
            prop_oneof![3 => 1000usize..70_000, 1 => 500_000usize..1_200_000],
            prop::sample::select(&['a', 'é', '🦀', '"', '\\', '\n', '\0', '\u{ffff}'][..])
        )
            .prop_map(|(i, n, c)| Typed::Huge(i, n, c)),
        1 => (any::<Index>(), prop_oneof![1usize..40, 100usize..140], any::<bool>())
            .prop_map(|(i, d, a)| Typed::Nest(i, d, a)),
        1 => (any::<Index>(), arb_json()).prop_map(|(i, v)| Typed::Replace(i, v)),
    ]
}

/// A node under `prefix` (strings only, if asked), by index.
fn pick_under(doc: &Value, prefix: &[&str], strings: bool, index: &Index) -> Option<Vec<Seg>> {
    let mut at = doc;
    for key in prefix {
        at = at.get(key)?;
    }
    let mut paths = Vec::new();
    node_paths(at, &mut Vec::new(), &mut paths);
    let mut paths: Vec<Vec<Seg>> = paths
        .into_iter()
        .filter(|p| {
            let mut node = at;
            for seg in p {
                node = match seg {
                    Seg::Key(k) => &node[k.as_str()],
                    Seg::At(i) => &node[*i],
                };
            }
            !strings || node.is_string()
        })
        .collect();
    if paths.is_empty() {
        return None;
    }
    let mut path: Vec<Seg> = prefix.iter().map(|k| Seg::Key(k.to_string())).collect();
    path.append(&mut paths.swap_remove(index.index(paths.len())));
    Some(path)
}

fn apply_typed(doc: &mut Value, change: &Typed) {
    let request = &mut doc["request"];
    match change {
        Typed::Kind(k) => {
            let (group, version, kind, resource) = KINDS[*k % KINDS.len()];
            let api_version = if group.is_empty() {
                version.to_string()
            } else {
                format!("{group}/{version}")
            };
            let gvk = json!({"group": group, "version": version, "kind": kind});
            request["kind"] = gvk.clone();
            request["requestKind"] = gvk;
            request["resource"] = json!({"group": group, "version": version, "resource": resource});
            if let Some(object) = request.get_mut("object").filter(|o| o.is_object()) {
                object["apiVersion"] = json!(api_version);
                object["kind"] = json!(kind);
            }
        }
        Typed::Namespace(ns) => request["namespace"] = json!(ns),
        Typed::Operation(op) => request["operation"] = json!(op),
        Typed::SubResource(sub) => request["subResource"] = json!(sub),
        Typed::Containers(field, list) => {
            for path in CONTAINER_PATHS {
                let mut path: Vec<&str> = path.to_vec();
                if let Some(last) = path.last_mut() {
                    *last = field;
                }
                let mut full = vec!["request", "object"];
                full.extend(path);
                set_path(doc, &full, list.clone());
            }
        }
        Typed::Labels(labels) => set_path(
            doc,
            &["request", "object", "metadata", "labels"],
            json!(labels),
        ),
        Typed::Text(i, _) | Typed::Huge(i, _, _) => {
            let Some(path) = pick_under(doc, &["request", "object"], true, i) else {
                return;
            };
            if let Some(node) = node_mut(doc, &path) {
                *node = match change {
                    Typed::Text(_, s) => Value::String(s.clone()),
                    Typed::Huge(_, n, c) => Value::String(std::iter::repeat_n(*c, *n).collect()),
                    _ => return,
                };
            }
        }
        Typed::Nest(i, _, _) | Typed::Replace(i, _) => {
            let Some(path) = pick_under(doc, &["request", "object", "spec"], false, i) else {
                return;
            };
            if let Some(node) = node_mut(doc, &path) {
                *node = match change {
                    Typed::Nest(_, depth, arrays) => {
                        let mut v = node.take();
                        for _ in 0..*depth {
                            v = if *arrays { json!([v]) } else { json!({"n": v}) };
                        }
                        v
                    }
                    Typed::Replace(_, v) => v.clone(),
                    _ => return,
                };
            }
        }
    }
}

fn decidable_review() -> impl Strategy<Value = Input> {
    (any::<Index>(), prop::collection::vec(arb_typed(), 1..6)).prop_map(|(base, changes)| {
        let bases = review_bases();
        let mut doc = bases[base.index(bases.len())].clone();
        for change in &changes {
            apply_typed(&mut doc, change);
        }
        Input(serde_json::to_vec(&doc).unwrap_or_default())
    })
}

#[test]
fn admission_decidable_reviews() {
    // Nearly all of these are decided (up to three policy evaluations each).
    property(
        "admission",
        "decidable_reviews",
        128,
        decidable_review(),
        check_admission,
    );
}

#[test]
fn admission_arbitrary_bytes() {
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2048),
        // Mostly-JSON bytes reach further than uniform noise.
        prop::collection::vec(
            prop::sample::select(&b"{}[]\":,0123456789.-+eEtrufalsn \\u\nabcAdmissionReview"[..]),
            0..512,
        ),
    ]
    .prop_map(Input);
    property("admission", "arbitrary_bytes", 256, bytes, check_admission);
}

#[test]
fn admission_arbitrary_json() {
    property(
        "admission",
        "arbitrary_json",
        256,
        arb_json_review(),
        check_admission,
    );
}

#[test]
fn admission_mutated_reviews() {
    property(
        "admission",
        "mutated_reviews",
        256,
        mutated_review(),
        check_admission,
    );
}

#[test]
fn admission_corpus() {
    corpus("admission", check_admission);
    corpus("admission", check_answer);
}

#[test]
fn libfuzzer_corpus_admission() {
    libfuzzer_corpus("admission", check_answer);
    libfuzzer_corpus("admission", check_admission);
}

#[test]
fn libfuzzer_corpus_manifest() {
    libfuzzer_corpus("manifest", |b| tally(checks::manifest(b)));
}

#[test]
fn libfuzzer_corpus_policy_set() {
    libfuzzer_corpus("policy_set", check_policy_set);
}

/// The manifest and policy-set properties bound line numbers by the lines YAML
/// counts (LF, CR LF, lone CR), the count the parser's positions use.
#[test]
fn the_properties_count_lines_as_yaml_does() {
    let count = checks::yaml_line_count;
    assert_eq!(count(""), 1);
    assert_eq!(count("a"), 1);
    assert_eq!(count("a\n"), 2);
    assert_eq!(count("a\r\nb"), 2);
    assert_eq!(count("a\rb\r"), 3);
    assert_eq!(count("a\r\r\n\n"), 4);
}

#[test]
fn libfuzzer_corpus_image() {
    libfuzzer_corpus("image", check_image);
}

#[test]
fn libfuzzer_corpus_verdict() {
    libfuzzer_corpus("verdict", |b| tally(checks::verdict(b)));
}

// ---------------------------------------------------------------------------
// Image references
// ---------------------------------------------------------------------------

/// The SDK's parser, against distribution's grammar too (`checks`).
fn check_image(bytes: &[u8]) {
    tally(checks::image(bytes));
}

#[derive(Debug, Clone)]
struct Parts {
    domain: Option<String>,
    path: Vec<String>,
    tag: Option<String>,
    digest: Option<String>,
}

fn arb_parts() -> impl Strategy<Value = Parts> {
    let label = "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?";
    let host = prop_oneof![
        // A dotted name, with an optional port.
        (
            prop::collection::vec(label, 2..4),
            prop::option::of(0u32..70000)
        )
            .prop_map(|(labels, port)| match port {
                Some(p) => format!("{}:{p}", labels.join(".")),
                None => labels.join("."),
            }),
        // One label: a domain only with a port (or as localhost).
        (label, 0u32..70000).prop_map(|(l, p)| format!("{l}:{p}")),
        prop::option::of(0u32..70000).prop_map(|p| match p {
            Some(p) => format!("localhost:{p}"),
            None => "localhost".to_string(),
        }),
        prop::option::of(0u32..70000).prop_map(|p| match p {
            Some(p) => format!("[::1]:{p}"),
            None => "[fe80::1]".to_string(),
        }),
    ];
    let component = "[a-z0-9]{1,20}((\\.|_|__|-{1,4})[a-z0-9]{1,20}){0,3}";
    (
        prop::option::of(host),
        prop::collection::vec(component, 1..=4),
        prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"),
        prop::option::of("[0-9a-f]{64}".prop_map(|h| format!("sha256:{h}"))),
    )
        .prop_map(|(domain, mut path, tag, digest)| {
            // Without a domain, a first component that looks like one is read as one
            // (`foo.bar/app`); the grammar resolves that ambiguity, so avoid it.
            if domain.is_none() && path.len() > 1 {
                path[0] = path[0].replace('.', "-");
                if path[0] == "localhost" {
                    path[0].push('x');
                }
            }
            Parts {
                domain,
                path,
                tag,
                digest,
            }
        })
}

impl Parts {
    fn text(&self) -> String {
        let mut out = self
            .domain
            .as_ref()
            .map(|d| format!("{d}/"))
            .unwrap_or_default();
        out.push_str(&self.path.join("/"));
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest);
        }
        out
    }
}

#[test]
fn image_arbitrary_strings() {
    let text = prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9._/:@\\[\\]-]{0,80}",
        // Valid references with arbitrary garbage spliced in.
        (arb_parts(), any::<Index>(), nasty_string()).prop_map(|(p, i, junk)| {
            let text = p.text();
            let mut at = i.index(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            format!("{}{junk}{}", &text[..at], &text[at..])
        }),
    ]
    .prop_map(|s| Input(s.into_bytes()));
    property("image", "arbitrary_strings", 256, text, check_image);
}

/// Every reference generated from the grammar parses back to the parts it was
/// made of.
#[test]
fn image_grammar_round_trip() {
    property_of(
        "image",
        "grammar_round_trip",
        256,
        arb_parts(),
        |parts: &Parts| {
            let text = parts.text();
            // Distribution bounds the path at 255 characters, a Docker Hub short name
            // counted with its library/ prefix.
            let path = parts.path.join("/");
            let docker_hub = matches!(
                parts.domain.as_deref(),
                None | Some("docker.io" | "index.docker.io")
            );
            let length = if docker_hub && parts.path.len() == 1 {
                "library/".len() + path.len()
            } else {
                path.len()
            };
            if length > 255 {
                assert_eq!(
                    ImageReference::parse(&text),
                    Err(ImageReferenceError::TooLong(length)),
                    "{text:?}"
                );
                return;
            }
            let parsed = ImageReference::parse(&text)
                .unwrap_or_else(|e| panic!("{text:?} is in the grammar but does not parse: {e}"));
            assert_eq!(parsed.domain, parts.domain, "domain of {text:?}");
            assert_eq!(parsed.path, parts.path.join("/"), "path of {text:?}");
            assert_eq!(parsed.tag, parts.tag, "tag of {text:?}");
            assert_eq!(parsed.digest, parts.digest, "digest of {text:?}");
            let expected_repository = match parts.domain.as_deref() {
                None | Some("docker.io" | "index.docker.io" | "registry-1.docker.io")
                    if parts.path.len() == 1 =>
                {
                    format!("docker.io/library/{}", parts.path[0])
                }
                None => format!("docker.io/{}", parts.path.join("/")),
                Some(domain) => format!("{domain}/{}", parts.path.join("/")),
            };
            assert_eq!(parsed.repository(), expected_repository, "{text:?}");
            check_image(text.as_bytes());
        },
        |parts| parts.text().into_bytes(),
    );
}

#[test]
fn image_corpus() {
    corpus("image", check_image);
}

// ---------------------------------------------------------------------------
// Policy sets
// ---------------------------------------------------------------------------

/// The loader (`checks`).
fn check_policy_set(bytes: &[u8]) {
    tally(checks::policy_set(bytes));
}

fn shipped_policy_set() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let path = repo_root().join("policies/policies.yaml");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    })
}

#[derive(Debug, Clone)]
enum LineEdit {
    Remove(Index),
    Duplicate(Index),
    Indent(Index, i8),
    ReplaceValue(Index, String),
    Swap(Index, Index),
    Insert(Index, String),
}

const YAML_VALUES: &[&str] = &[
    "",
    "null",
    "~",
    "-1",
    "0",
    "1",
    "30001",
    "1025",
    "99999999999999999999",
    "1e309",
    ".nan",
    "true",
    "[]",
    "{}",
    "[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]",
    "*podBearing",
    "*undefined",
    "&dup",
    "!!binary aGVsbG8=",
    "!custom x",
    "'unterminated",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "builtin:nope",
    "builtin:no-latest-tag",
    "builtin:",
    "../../etc/passwd",
    "/dev/zero",
    "enforce",
    "audit",
    "warn",
    "Ignore",
    "Fail",
    "CREATE",
    "\"*\"",
    "a/b/c",
    "Pod",
    "🦀",
    "{apiVersion: v1, kind: Secret}",
    "[prod, prod]",
    "<<: *podBearing",
];

fn yaml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(YAML_VALUES).prop_map(str::to_string),
        1 => nasty_string(),
        1 => (1usize..200_000).prop_map(|n| "x".repeat(n)),
    ]
}

fn arb_line_edit() -> impl Strategy<Value = LineEdit> {
    prop_oneof![
        1 => any::<Index>().prop_map(LineEdit::Remove),
        1 => any::<Index>().prop_map(LineEdit::Duplicate),
        1 => (any::<Index>(), -4i8..=4).prop_map(|(i, d)| LineEdit::Indent(i, d)),
        3 => (any::<Index>(), yaml_value()).prop_map(|(i, v)| LineEdit::ReplaceValue(i, v)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| LineEdit::Swap(a, b)),
        1 => (any::<Index>(), prop_oneof![
            "[ -]{0,8}[a-zA-Z]{1,12}: ?[a-z0-9:*&\\[\\]{}-]{0,12}",
            nasty_string(),
        ])
            .prop_map(|(i, l)| LineEdit::Insert(i, l)),
    ]
}

fn edit_lines(lines: &mut Vec<String>, edit: &LineEdit) {
    if lines.is_empty() {
        lines.push(String::new());
    }
    let n = lines.len();
    match edit {
        LineEdit::Remove(i) => {
            lines.remove(i.index(n));
        }
        LineEdit::Duplicate(i) => {
            let at = i.index(n);
            let line = lines[at].clone();
            lines.insert(at, line);
        }
        LineEdit::Indent(i, d) => {
            let line = &mut lines[i.index(n)];
            if *d >= 0 {
                line.insert_str(0, &" ".repeat(*d as usize));
            } else {
                let strip = line
                    .chars()
                    .take((-*d) as usize)
                    .take_while(|c| *c == ' ')
                    .count();
                line.drain(..strip);
            }
        }
        LineEdit::ReplaceValue(i, value) => {
            let line = &mut lines[i.index(n)];
            *line = match line.split_once(':') {
                Some((key, _)) => format!("{key}: {value}"),
                None => match line.find("- ") {
                    Some(at) => format!("{}- {value}", &line[..at]),
                    None => value.clone(),
                },
            };
        }
        LineEdit::Swap(a, b) => lines.swap(a.index(n), b.index(n)),
        LineEdit::Insert(i, line) => lines.insert(i.index(n + 1), line.clone()),
    }
}

#[test]
fn policy_set_arbitrary_strings() {
    let text = prop_oneof![
        any::<String>(),
        "[a-z:\\-\\[\\]{}\n #&*!|>'\"0-9 ]{0,300}",
        // A valid header, then anything.
        any::<String>().prop_map(|s| format!(
            "apiVersion: policy.plate.dev/v1alpha1\nkind: PolicySet\nmetadata: {{name: x}}\nspec:\n{s}"
        )),
    ]
    .prop_map(|s| Input(s.into_bytes()));
    property(
        "policy-set",
        "arbitrary_strings",
        256,
        text,
        check_policy_set,
    );
}

#[test]
fn policy_set_mutations() {
    let strategy = prop::collection::vec(arb_line_edit(), 1..6).prop_map(|edits| {
        let mut lines: Vec<String> = shipped_policy_set().lines().map(str::to_string).collect();
        for edit in &edits {
            edit_lines(&mut lines, edit);
        }
        Input(lines.join("\n").into_bytes())
    });
    property("policy-set", "mutations", 256, strategy, check_policy_set);
}

/// Values of `timeoutMs` or `memoryMiB` out of their range, and the field to break.
#[derive(Debug, Clone)]
struct OutOfRange {
    field: &'static str,
    policy: Index,
    value: u64,
}

/// The targeted property: an out-of-range limit written on line L of the shipped
/// set is reported at line L, with the field path of that policy's entry.
fn check_out_of_range(case: &OutOfRange) {
    let text = shipped_policy_set();
    let key = format!("{}:", case.field);
    let places: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with(&key))
        .map(|(i, _)| i)
        .collect();
    assert!(!places.is_empty(), "the shipped set has no {key}");
    let policy = case.policy.index(places.len());
    let at = places[policy];
    let edited: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| match (i == at, l.split_once(':')) {
            (true, Some((k, _))) => format!("{k}: {}", case.value),
            _ => l.to_string(),
        })
        .collect();
    let edited = edited.join("\n");
    let field = format!("spec.policies[{policy}].{}", case.field);
    match loader().load_str(FILE, &edited, None) {
        Ok(_) => panic!("{field} = {} was accepted", case.value),
        Err(e) => {
            let line = at as u64 + 1;
            assert!(
                e.problems
                    .iter()
                    .any(|p| p.field.as_deref() == Some(field.as_str()) && p.line == Some(line)),
                "no problem names {field} at line {line}: {e}"
            );
        }
    }
}

#[test]
fn policy_set_out_of_range_limits_are_reported_where_written() {
    let strategy = (
        prop::sample::select(&["timeoutMs", "memoryMiB"][..]),
        any::<Index>(),
        prop_oneof![Just(0u64), 30_001u64..u64::MAX],
    )
        .prop_map(|(field, policy, value)| OutOfRange {
            field,
            policy,
            // memoryMiB's range ends at 1024, timeoutMs's at 30000.
            value: if field == "memoryMiB" && value != 0 {
                value.max(1025)
            } else {
                value
            },
        });
    property_of(
        "policy-set",
        "out_of_range",
        64,
        strategy,
        check_out_of_range,
        |c| format!("{c:?}").into_bytes(),
    );
}

#[test]
fn policy_set_corpus() {
    corpus("policy-set", check_policy_set);
}

/// The shipped set itself loads: the mutations start from something valid.
#[test]
fn shipped_policy_set_loads() {
    if let Err(e) = loader().load_str(FILE, shipped_policy_set(), None) {
        panic!("{e}");
    }
}
