//! The properties every fuzz target checks, one function per target: each takes the
//! fuzzer's bytes through plate-policy's real code and panics when something holds
//! that must not, whatever the input. `fuzz_targets/` run them under libFuzzer
//! (bench/fuzz.sh); tests/properties.rs includes this file to run them on every
//! corpus file and on proptest's inputs, on stable Rust.
//!
//! - [`admission`]: body bytes to response bytes, the built-in policy set, no TLS
//!   (`server::answer::body_blocking`, the path `POST /validate` takes);
//! - [`admission_parse`]: the AdmissionReview parser against an independent reading;
//! - [`manifest`]: the manifest reader of `check`, and the requests it makes;
//! - [`policy_set`]: the policy-set loader;
//! - [`image`]: the SDK's image-reference parser against [`reference`], a port of
//!   distribution's grammar;
//! - [`verdict`]: the host reading arbitrary bytes as a guest's verdict, through a
//!   real sandbox and directly.
//!
//! Each returns whether the input was accepted (for tallies).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "reference.rs"]
pub mod reference;

use plate_policy::admission::{self, Context, Effect, MAX_WARNING_CHARS};
use plate_policy::engine::{
    AnswerError, Engine, EngineConfig, EvalError, GuestVerdict, Limits, PolicyModule,
    decode_verdict,
};
use plate_policy::manifest::{self, ManifestError, RequestSpec};
use plate_policy::metrics::Metrics;
use plate_policy::objects::{NoObjects, ObjectSource};
use plate_policy::policy_set::{Loader, ModuleCache, PolicySet};
use plate_policy::review;
use plate_policy::server::AppState;
use plate_policy::server::answer::{self, Answer};
use plate_policy_sdk::ImageReference;
use serde_json::Value;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The body limit of the admission target: small, so that the fuzzer's inputs
/// (bench/fuzz.sh gives it up to twice this) reach the over-limit path too.
pub const FUZZ_MAX_BODY_BYTES: usize = 8 << 10;

/// `bytes` as (lossy, cut) text for messages.
pub fn preview(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes.get(..max).unwrap_or(bytes));
    let cut = if bytes.len() > max { "..." } else { "" };
    format!("{text:?}{cut}")
}

// ---------------------------------------------------------------------------
// Shared fixtures: one engine and module cache per process.
// ---------------------------------------------------------------------------

pub fn engine() -> &'static Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE.get_or_init(|| {
        Arc::new(
            Engine::new(&EngineConfig {
                max_concurrent_instances: 32,
            })
            .unwrap_or_else(|e| panic!("{e}")),
        )
    })
}

fn cache() -> &'static ModuleCache {
    static CACHE: OnceLock<ModuleCache> = OnceLock::new();
    CACHE.get_or_init(ModuleCache::default)
}

pub fn loader() -> Loader<'static> {
    Loader {
        engine: engine(),
        cache: cache(),
    }
}

fn builtin_set() -> &'static PolicySet {
    static SET: OnceLock<PolicySet> = OnceLock::new();
    SET.get_or_init(|| loader().builtin().unwrap_or_else(|e| panic!("{e}")))
}

fn no_objects() -> &'static Arc<dyn ObjectSource> {
    static OBJECTS: OnceLock<Arc<dyn ObjectSource>> = OnceLock::new();
    OBJECTS.get_or_init(|| Arc::new(NoObjects))
}

/// What the server's handlers share, with the built-in set and no cluster.
fn state() -> &'static AppState {
    static STATE: OnceLock<AppState> = OnceLock::new();
    STATE.get_or_init(|| AppState {
        policy_set: arc_swap::ArcSwap::from_pointee(
            loader().builtin().unwrap_or_else(|e| panic!("{e}")),
        ),
        engine: Arc::clone(engine()),
        objects: Arc::clone(no_objects()),
        cluster: None,
        request_deadline: Duration::from_secs(2),
        max_body_bytes: FUZZ_MAX_BODY_BYTES,
        shutting_down: AtomicBool::new(false),
        metrics: Metrics::new(false).unwrap_or_else(|e| panic!("{e}")),
    })
}

// ---------------------------------------------------------------------------
// Admission: the whole path, and the parser against an oracle
// ---------------------------------------------------------------------------

/// What an AdmissionReview body must be, read independently of the parser (with
/// `serde_json::Value`): Ok(uid) when it must be accepted, Err(the rule it breaks)
/// when it must be rejected, None when this reading cannot tell (JSON nested deeper
/// than `Value` reads, or an escaped lone surrogate, which `Value` refuses to decode).
pub fn oracle(body: &[u8]) -> Option<Result<String, String>> {
    let doc: Value = match serde_json::from_slice(body) {
        Ok(doc) => doc,
        Err(e) if e.to_string().contains("recursion limit") => return None,
        // An escaped lone surrogate (`"\ud800"`) is JSON by the grammar, which the
        // parser checks; `Value` refuses it when decoding the string. Inside the
        // objects (passed on raw) the parser keeps it; in a field it reads, it refuses it.
        Err(e) if e.to_string().contains("surrogate") || e.to_string().contains("hex escape") => {
            return None;
        }
        // A number past f64's range (`1e400`) is JSON by the grammar too; `Value`
        // refuses it, the parser reads no numbers and passes the objects on raw.
        Err(e) if e.to_string().contains("number out of range") => return None,
        Err(e) => return Some(Err(format!("not JSON: {e}"))),
    };
    let Some(envelope) = doc.as_object() else {
        return Some(Err("not an object".into()));
    };
    if envelope.get("kind").and_then(Value::as_str) != Some("AdmissionReview") {
        return Some(Err("kind".into()));
    }
    if envelope.get("apiVersion").and_then(Value::as_str) != Some("admission.k8s.io/v1") {
        return Some(Err("apiVersion".into()));
    }
    let request = match envelope.get("request") {
        None | Some(Value::Null) => return Some(Err("no request".into())),
        Some(Value::Object(request)) => request,
        Some(_) => return Some(Err("request not an object".into())),
    };
    let string_or_null =
        |v: Option<&Value>| matches!(v, None | Some(Value::Null | Value::String(_)));
    let Some(kind) = request.get("kind").and_then(Value::as_object) else {
        return Some(Err("request.kind not an object".into()));
    };
    if !matches!(kind.get("kind"), Some(Value::String(_)))
        || !string_or_null(kind.get("group"))
        || !string_or_null(kind.get("version"))
    {
        return Some(Err("request.kind fields".into()));
    }
    let operations = ["CREATE", "UPDATE", "DELETE", "CONNECT"];
    if !request
        .get("operation")
        .and_then(Value::as_str)
        .is_some_and(|op| operations.contains(&op))
    {
        return Some(Err("request.operation".into()));
    }
    for field in ["subResource", "name", "namespace", "uid"] {
        if !string_or_null(request.get(field)) {
            return Some(Err("a string field of the request".into()));
        }
    }
    if !matches!(
        request.get("dryRun"),
        None | Some(Value::Null | Value::Bool(_))
    ) {
        return Some(Err("request.dryRun".into()));
    }
    match request.get("uid").and_then(Value::as_str) {
        Some(uid) if !uid.is_empty() => Some(Ok(uid.to_string())),
        _ => Some(Err("request.uid".into())),
    }
}

/// Whether some JSON object in `body` has a key twice (false when it is not JSON).
pub fn has_duplicate_keys(body: &[u8]) -> bool {
    use serde::de::{Deserializer as _, MapAccess, SeqAccess, Visitor};
    use std::collections::HashSet;

    struct Scan;

    impl<'de> Visitor<'de> for Scan {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let mut keys = HashSet::new();
            let mut duplicate = false;
            while let Some(key) = map.next_key::<String>()? {
                duplicate |= !keys.insert(key);
                duplicate |= map.next_value_seed(ScanSeed)?;
            }
            Ok(duplicate)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
            let mut duplicate = false;
            while let Some(d) = seq.next_element_seed(ScanSeed)? {
                duplicate |= d;
            }
            Ok(duplicate)
        }
        fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_str<E>(self, _: &str) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_unit<E>(self) -> Result<bool, E> {
            Ok(false)
        }
    }
    struct ScanSeed;
    impl<'de> serde::de::DeserializeSeed<'de> for ScanSeed {
        type Value = bool;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_any(Scan)
        }
    }
    // Too deep for serde_json's limit: the oracle has no opinion there anyway.
    serde_json::Deserializer::from_slice(body)
        .deserialize_any(Scan)
        .unwrap_or(false)
}

/// The parser against the oracle: never a panic; it accepts exactly what the
/// oracle accepts (a rejection is an error with a message); an accepted review keeps
/// the uid and the raw request as sent, and is decided and answered with a valid
/// AdmissionReview echoing the uid. None: rejected; Some(allowed).
pub fn admission_parse(body: &[u8]) -> Option<bool> {
    let parsed = review::parse(body);
    let expected = oracle(body);
    match (&parsed, &expected) {
        (Ok(review), Some(Ok(uid))) => assert_eq!(&*review.uid, uid.as_str(), "the uid"),
        (Err(e), Some(Err(_))) => {
            assert!(!e.to_string().trim().is_empty(), "an empty error message")
        }
        // Duplicate keys: the parser refuses them (as a duplicate, or for the first
        // one's type when it stops there), `Value` keeps the last one.
        (Err(_), Some(Ok(_))) if has_duplicate_keys(body) => {}
        (_, None) => {}
        (parsed, Some(expected)) => panic!(
            "the parser and the oracle disagree: parser {:?}, oracle {expected:?}",
            parsed.as_ref().map(|r| r.uid.to_string())
        ),
    }
    let review = parsed.ok()?;
    let raw = review.raw_request();
    // The raw request is JSON, an object, and a slice of the body.
    let start = (raw.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
    assert!(
        start + raw.len() <= body.len(),
        "the raw request is not inside the body"
    );
    assert_eq!(raw.first(), Some(&b'{'), "the raw request is not an object");
    // Well-formed JSON, checked without a depth limit (the parser skips unknown
    // fields without one, so a deeply nested unknown field is accepted and passed on).
    serde_json::from_slice::<serde::de::IgnoredAny>(raw)
        .unwrap_or_else(|e| panic!("the raw request is not JSON ({e}): {}", preview(raw, 200)));
    // Compared field by field where `Value` can read it (not past its depth limit).
    if let (Ok(request), Ok(doc)) = (
        serde_json::from_slice::<Value>(raw),
        serde_json::from_slice::<Value>(body),
    ) {
        assert_eq!(
            request, doc["request"],
            "the raw request is not the body's request"
        );
        // Objects as sent, or absent when null.
        for (field, bytes) in [
            ("object", review.object()),
            ("oldObject", review.old_object()),
        ] {
            let expected = request.get(field).filter(|v| !v.is_null());
            let actual: Option<Value> =
                bytes.map(|b| serde_json::from_slice(b).unwrap_or_default());
            assert_eq!(actual.as_ref(), expected, "{field}");
        }
    }
    Some(decide_and_answer(builtin_set(), &review).allowed)
}

/// Decides `review` against `set` and checks the decision and its answer.
pub fn decide_and_answer(set: &PolicySet, review: &review::Review<'_>) -> admission::Decision {
    let slot = engine().evaluation_slot_blocking();
    let context = Context {
        objects: no_objects(),
        environment: None,
        deadline: Instant::now() + Duration::from_secs(2),
        slot: slot.as_ref(),
        run_evaluations: None,
    };
    let decision = admission::decide(set, review, &context);
    assert_eq!(
        decision.allowed,
        !decision.outcomes.iter().any(|o| o.denies())
    );
    if !decision.allowed {
        assert!(
            decision
                .denial
                .as_deref()
                .is_some_and(|d| !d.trim().is_empty()),
            "a denial has a message"
        );
    }
    for outcome in &decision.outcomes {
        if let Effect::Violations(violations) = &outcome.effect {
            assert!(
                !violations.is_empty(),
                "a violation effect without violations"
            );
            for v in violations {
                assert!(!v.key.is_empty() && !v.message.trim().is_empty(), "{v:?}");
            }
        }
    }
    for warning in &decision.warnings {
        assert!(
            warning.chars().count() <= MAX_WARNING_CHARS,
            "warning over {MAX_WARNING_CHARS} characters: {warning:?}"
        );
    }
    let answer = response_review(&decision.response(&review.uid), &review.uid);
    assert_eq!(answer["response"]["allowed"], decision.allowed, "{answer}");
    if !decision.allowed {
        assert_eq!(
            answer["response"]["status"]["code"], 403,
            "a denial is a 403"
        );
    }
    decision
}

/// Reads a response body as the API server does: an AdmissionReview for `uid`.
fn response_review(bytes: &[u8], uid: &str) -> Value {
    let answer: Value = serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("the response is not JSON ({e}): {}", preview(bytes, 300)));
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1", "{answer}");
    assert_eq!(answer["kind"], "AdmissionReview", "{answer}");
    assert_eq!(answer["response"]["uid"], uid, "{answer}");
    assert!(answer["response"]["allowed"].is_boolean(), "{answer}");
    assert!(answer.get("request").is_none(), "{answer}");
    answer
}

/// Body bytes to response bytes as `POST /validate` answers them: a 200 is an
/// AdmissionReview for the request's uid (a body over the limit is denied with
/// code 413); a 400 is a body the oracle rejects; a 413 a body over the limit that
/// does not start as a review. Returns whether a review was answered.
pub fn admission(body: &[u8]) -> bool {
    let Answer { status, body: out } = answer::body_blocking(state(), body);
    let over = body.len() > FUZZ_MAX_BODY_BYTES;
    match status.as_u16() {
        200 if over => {
            let head = review::head::scan(body)
                .unwrap_or_else(|| panic!("a 200 for an oversized body without a head"));
            let answer = response_review(&out, &head.uid);
            assert_eq!(answer["response"]["allowed"], false, "{answer}");
            assert_eq!(answer["response"]["status"]["code"], 413, "{answer}");
            let message = answer["response"]["status"]["message"]
                .as_str()
                .unwrap_or_default();
            assert!(
                message.contains(&format!("{} bytes", body.len()))
                    && message.contains(&format!("limit of {FUZZ_MAX_BODY_BYTES} bytes")),
                "{message}"
            );
            true
        }
        200 => {
            let uid = match oracle(body) {
                Some(Ok(uid)) => uid,
                Some(Err(rule)) => panic!("a 200 for a body that breaks {rule}"),
                // Where the oracle cannot tell, the parser's reading stands.
                None => review::parse(body)
                    .unwrap_or_else(|e| panic!("a 200 for {e}"))
                    .uid
                    .to_string(),
            };
            response_review(&out, &uid);
            true
        }
        400 => {
            assert!(!over, "a 400 for a body over the limit");
            let error: Value = serde_json::from_slice(&out).unwrap_or_default();
            assert!(
                error["error"]
                    .as_str()
                    .is_some_and(|e| !e.trim().is_empty()),
                "a 400 without an error: {}",
                preview(&out, 300)
            );
            assert!(
                review::parse(body).is_err(),
                "a 400 for a body the parser accepts"
            );
            false
        }
        413 => {
            assert!(over, "a 413 for a body within the limit");
            assert!(
                review::head::scan(body).is_none(),
                "a 413 for a body whose head was readable"
            );
            false
        }
        other => panic!("status {other}: {}", preview(&out, 300)),
    }
}

// ---------------------------------------------------------------------------
// Manifests (`plate-policy check`)
// ---------------------------------------------------------------------------

const MANIFEST_FILE: &str = "fuzz.yaml";

/// How many lines `text` has as YAML counts them, and with it the line numbers of
/// the parser's positions and of every message: LF, CR LF and a lone CR each end a
/// line (YAML 1.2, 5.4; what most editors show, and what kubectl's YAML reader
/// counts). The line after the last break counts: a position at the end of the text
/// is on it. Counted here on its own, not with the code under test.
pub fn yaml_line_count(text: &str) -> u64 {
    let bytes = text.as_bytes();
    let breaks = bytes
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')))
        .count();
    breaks as u64 + 1
}

/// The manifest reader: errors name the file and a line; every object read becomes
/// a request the server's parser accepts (or an error saying why not), which is
/// decided against the built-in set with lines found for reported fields.
pub fn manifest(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    let lines = yaml_line_count(text);
    let objects = match manifest::read_objects(MANIFEST_FILE, text) {
        Ok(objects) => objects,
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.starts_with(&format!("{MANIFEST_FILE}:")),
                "an error that does not name the file: {message}"
            );
            if let ManifestError::Yaml { line, .. }
            | ManifestError::Object { line, .. }
            | ManifestError::Field { line, .. } = e
            {
                assert!(
                    (1..=lines).contains(&line),
                    "line {line} of {lines}: {message}"
                );
            }
            return false;
        }
    };
    for object in &objects {
        assert!(object.value.is_object(), "not an object: {}", object.value);
        assert!(object.index >= 1, "document index {}", object.index);
        assert!(
            (1..=lines).contains(&object.line),
            "line {} of {lines}",
            object.line
        );
        for operation in ["CREATE", "UPDATE", "DELETE"] {
            let spec = RequestSpec {
                operation,
                namespace: None,
                old_object: None,
                uid: "fuzz",
            };
            let Ok(request) = manifest::to_request(&object.value, &spec) else {
                continue;
            };
            let review = review::parse_request(&request)
                .unwrap_or_else(|e| panic!("to_request made a request the parser refuses: {e}"));
            let decision = decide_and_answer(builtin_set(), &review);
            for outcome in &decision.outcomes {
                for v in outcome.violations() {
                    if let Some(path) = &v.path
                        && let Some(line) = object.fields.line_of(path)
                    {
                        assert!((1..=lines).contains(&line), "{path} at line {line}");
                    }
                }
            }
        }
    }
    true
}

// ---------------------------------------------------------------------------
// Policy sets
// ---------------------------------------------------------------------------

pub const POLICY_SET_FILE: &str = "fuzz.yaml";

/// The loader: no panic; a loaded set has unique names; a rejected set has
/// problems with messages, lines inside the text and field paths of the format.
pub fn policy_set(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    match loader().load_str(POLICY_SET_FILE, &text, None) {
        Ok(set) => {
            let mut names: Vec<&str> = set.policies.iter().map(|p| &*p.name).collect();
            let count = names.len();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), count, "a loaded set has duplicate names");
            true
        }
        Err(e) => {
            assert!(!e.problems.is_empty(), "an error without problems");
            let lines = yaml_line_count(&text);
            for p in &e.problems {
                assert!(!p.message.trim().is_empty(), "an empty message: {p:?}");
                if let Some(line) = p.line {
                    assert!((1..=lines).contains(&line), "line {line} of {lines}: {p:?}");
                }
                assert!(
                    p.column.is_none() || p.line.is_some(),
                    "a column without a line: {p:?}"
                );
                if let Some(field) = &p.field {
                    let top = field.split(['.', '[']).next().unwrap_or_default();
                    assert!(
                        ["apiVersion", "kind", "metadata", "spec"].contains(&top),
                        "field {field:?} is not a path of the format: {p:?}"
                    );
                }
            }
            false
        }
    }
}

// ---------------------------------------------------------------------------
// Image references
// ---------------------------------------------------------------------------

/// Writes a reference back out from its parts.
pub fn render(r: &ImageReference) -> String {
    let mut out = String::new();
    if let Some(domain) = &r.domain {
        out.push_str(domain);
        out.push('/');
    }
    out.push_str(&r.path);
    if let Some(tag) = &r.tag {
        out.push(':');
        out.push_str(tag);
    }
    if let Some(digest) = &r.digest {
        out.push('@');
        out.push_str(digest);
    }
    out
}

/// The SDK's parser: no panic; it accepts exactly what distribution accepts, with
/// the same repository, tag and digest; a parsed reference reads back to itself.
///
/// Two readings differ on purpose: the SDK takes `registry-1.docker.io` (Docker
/// Hub's registry host) for Docker Hub, and refuses a first component that
/// distribution takes for a registry but its grammar then reads as no registry at
/// all (`ex_ample.com/app`: distribution ends with an empty domain).
pub fn image(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let sdk = ImageReference::parse(&text);
    let distribution = reference::parse_normalized_named(&text);
    match (&sdk, &distribution) {
        (Ok(parsed), Ok(expected)) => {
            assert!(
                !expected.domain.is_empty(),
                "{text:?}: the SDK reads {parsed:?}, distribution finds no registry"
            );
            if parsed.domain.as_deref() != Some("registry-1.docker.io") {
                assert_eq!(
                    parsed.repository(),
                    format!("{}/{}", expected.domain, expected.path),
                    "{text:?}: repository"
                );
            }
            assert_eq!(parsed.tag, expected.tag, "{text:?}: tag");
            assert_eq!(parsed.digest, expected.digest, "{text:?}: digest");
        }
        (Err(_), Err(_)) => {}
        (Err(_), Ok(expected)) if expected.domain.is_empty() => {}
        (sdk, distribution) => {
            panic!("{text:?}: the SDK reads {sdk:?}, distribution reads {distribution:?}")
        }
    }
    let parsed = match sdk {
        Ok(parsed) => parsed,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return false;
        }
    };
    assert!(!parsed.path.is_empty(), "{text:?}: empty path");
    let repository = parsed.repository();
    assert!(
        repository.starts_with(&format!("{}/", parsed.registry())),
        "{text:?}: repository {repository:?} has no path after the registry {:?}",
        parsed.registry()
    );
    assert!(!parsed.effective_tag().is_empty());
    let again = ImageReference::parse(&render(&parsed))
        .unwrap_or_else(|e| panic!("{text:?}: its rendering does not parse: {e}"));
    assert_eq!(again, parsed, "{text:?}: rendering changes it");
    true
}

// ---------------------------------------------------------------------------
// Verdicts: guest output read by the host
// ---------------------------------------------------------------------------

/// `policies/testing/allow-all.wat` made to answer with its own input, declaring
/// ABI `version`: the host then reads the fuzzer's bytes as the verdict.
fn echo_module(version: i32) -> &'static PolicyModule {
    static MODULES: OnceLock<[PolicyModule; 2]> = OnceLock::new();
    let modules = MODULES.get_or_init(|| {
        let skeleton = include_str!("../../policies/testing/allow-all.wat");
        let echo = skeleton.replace(
            "(i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 16))))",
            "(i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $len)))))",
        );
        assert_ne!(echo, skeleton, "allow-all.wat changed: the echo edit no longer applies");
        [1, 2].map(|v| {
            let text = echo.replace(
                "(result i32)\n    (i32.const 1))",
                &format!("(result i32)\n    (i32.const {v}))"),
            );
            let wasm = wat::parse_str(&text).unwrap_or_else(|e| panic!("{e}"));
            engine().load(&wasm).unwrap_or_else(|e| panic!("{e}"))
        })
    });
    &modules[usize::from(version == 2)]
}

/// The first byte picks the ABI version (odd: 1, even: 2), the rest is the verdict.
/// Through a real sandbox the host reads it exactly as `decode_verdict` does; a
/// verdict read has keyed, non-blank violations, and whatever it says becomes
/// warnings within Kubernetes' length and a response review the API server reads.
pub fn verdict(bytes: &[u8]) -> bool {
    let Some((first, answer)) = bytes.split_first() else {
        return false;
    };
    let version = if first % 2 == 1 { 1 } else { 2 };
    let module = echo_module(version);
    assert_eq!(module.abi_version(), version);
    let slot = engine().evaluation_slot_blocking();
    let slot = slot.unwrap_or_else(|| panic!("no evaluation slot"));
    let (sandboxed, _) = module.evaluate(&slot, &[answer], &Limits::DEFAULT, None);
    let direct = decode_verdict(version, answer);
    let expected: Result<GuestVerdict, EvalError> = direct.clone().map_err(|e| match e {
        AnswerError::Unreadable(m) => EvalError::BadVerdict(m),
        AnswerError::Guest(m) => EvalError::Guest(m),
    });
    assert_eq!(
        sandboxed, expected,
        "the sandbox and decode_verdict disagree"
    );
    let verdict = match direct {
        Ok(verdict) => verdict,
        Err(AnswerError::Unreadable(m) | AnswerError::Guest(m)) => {
            let _ = m;
            return false;
        }
    };
    if version == 2 {
        for v in &verdict.violations {
            assert!(!v.key.is_empty(), "a violation without a key: {v:?}");
            assert!(!v.message.trim().is_empty(), "a blank message: {v:?}");
        }
    } else {
        assert!(verdict.violations.len() <= 1, "v1 has one message at most");
    }
    let mut warnings: Vec<String> = verdict
        .warnings
        .iter()
        .map(|w| admission::shorten(&format!("[fuzz] {w}")))
        .collect();
    warnings.extend(verdict.violations.iter().map(|v| {
        admission::shorten(&format!(
            "[fuzz] {}",
            v.summary.as_deref().unwrap_or(&v.message)
        ))
    }));
    for w in &warnings {
        assert!(w.chars().count() <= MAX_WARNING_CHARS, "{w:?}");
    }
    let denial: Vec<String> = verdict
        .violations
        .iter()
        .map(|v| format!("[fuzz] {}", v.message))
        .collect();
    let allowed = denial.is_empty();
    let joined = denial.join("\n");
    let out = review::encode_response("fuzz", allowed, Some(&joined), &warnings);
    let answer = response_review(&out, "fuzz");
    assert_eq!(answer["response"]["allowed"], allowed);
    if !allowed {
        assert_eq!(answer["response"]["status"]["message"], joined.as_str());
    }
    let written: Vec<String> = answer["response"]["warnings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|w| w.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(written, warnings, "warnings as written");
    true
}
