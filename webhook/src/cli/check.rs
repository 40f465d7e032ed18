//! `plate-policy check -f FILE|- --env ENV`: evaluates manifests as if they were being
//! created in ENV and prints every violation (policy, object, message).

use super::{EXIT_BAD_INPUT, PolicySetArg};
use crate::admission::{self, Context, Effect};
use crate::manifest::{self, RequestSpec};
use crate::objects::ObjectSource;
use crate::policy_set::{Loader, Mode, ModuleCache, PolicySet};
use crate::review;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Manifest file (multi-document YAML, a List, `helm template` output or an
    /// AdmissionReview JSON); `-` reads standard input.
    #[arg(short = 'f', long = "file", value_name = "FILE|-")]
    pub file: String,
    /// The environment the objects are deployed to (e.g. prod, stg).
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// Objects policies may look up (e.g. ClusterIssuers), from manifest files.
    #[arg(long = "context", value_name = "FILE")]
    pub context: Vec<PathBuf>,
    /// Put every namespaced object in this namespace (default: its own
    /// metadata.namespace, else `default`).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub policy_set: PolicySetArg,
}

pub fn run(args: &CheckArgs) -> u8 {
    let (name, text) = match read_input(&args.file) {
        Ok(input) => input,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    let objects = match manifest::read_objects(&name, &text) {
        Ok(objects) => objects,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    let Some(engine) = super::cli_engine() else {
        return 1;
    };
    let cache = ModuleCache::default();
    let loader = Loader {
        engine: &engine,
        cache: &cache,
    };
    let set = match load_set(&loader, &args.policy_set.policies) {
        Ok(set) => set,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    let Some(context_objects) = super::context_files(&args.context) else {
        return EXIT_BAD_INPUT;
    };
    let lookups: Arc<dyn ObjectSource> = Arc::new(context_objects);
    let known = set.environments.known_environments();
    if !known.contains(&args.env) {
        eprintln!(
            "error: --env {:?} is not an environment of the policy set (known: {})",
            args.env,
            known.join(", ")
        );
        return EXIT_BAD_INPUT;
    }
    let mut denied = 0usize;
    let mut warned = 0usize;
    for (i, object) in objects.iter().enumerate() {
        let uid = format!("plate-policy-check-{i}");
        let spec = RequestSpec {
            operation: "CREATE",
            namespace: args.namespace.as_deref(),
            old_object: None,
            uid: &uid,
        };
        let bytes = match manifest::to_request(&object.value, &spec) {
            Ok(r) => r,
            Err(e) => {
                eprintln!(
                    "error: {name}:{}: document {}: {e}",
                    object.line, object.index
                );
                return EXIT_BAD_INPUT;
            }
        };
        let request = match review::parse_request(&bytes) {
            Ok(r) => r,
            Err(e) => {
                eprintln!(
                    "error: {name}:{}: document {}: {e}",
                    object.line, object.index
                );
                return EXIT_BAD_INPUT;
            }
        };
        let Some(slot) = engine.evaluation_slot_blocking() else {
            eprintln!("error: the policy engine has no sandbox to run in");
            return 1;
        };
        let context = Context {
            objects: &lookups,
            environment: Some(&args.env),
            deadline: Instant::now() + Duration::from_secs(10),
            slot: Some(&slot),
        };
        let decision = admission::decide(&set, &request, &context);
        let target = object_ref(&request);
        for outcome in &decision.outcomes {
            let verdict = if outcome.denies() {
                "DENY"
            } else if outcome.mode == Mode::Audit && !outcome.violations().is_empty() {
                "AUDIT"
            } else {
                "WARN"
            };
            match &outcome.effect {
                Effect::Pass => {}
                // One report line per violation.
                Effect::Violations(violations) => {
                    for v in violations {
                        println!("{verdict}  {}  {target}  {}", outcome.policy, v.message);
                    }
                }
                Effect::Failed {
                    failure,
                    fail_closed,
                } => {
                    let policy = if *fail_closed { "Fail" } else { "Ignore" };
                    println!(
                        "{verdict}  {}  {target}  policy {failure} (failurePolicy {policy})",
                        outcome.policy
                    );
                }
            }
            for w in &outcome.advice {
                println!("WARN  {}  {target}  {w}", outcome.policy);
            }
        }
        if !decision.allowed {
            denied += 1;
        } else if !decision.warnings.is_empty() {
            warned += 1;
        }
    }
    println!(
        "checked {} object(s) for {}: {denied} denied, {warned} allowed with warnings",
        objects.len(),
        args.env
    );
    u8::from(denied > 0)
}

fn read_input(file: &str) -> Result<(String, String), String> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        Ok(("<stdin>".into(), text))
    } else {
        let text =
            std::fs::read_to_string(file).map_err(|e| format!("{file}: cannot read: {e}"))?;
        Ok((file.to_string(), text))
    }
}

pub fn load_set(loader: &Loader<'_>, file: &Option<PathBuf>) -> Result<PolicySet, String> {
    match file {
        Some(path) => loader.load_file(path).map_err(|e| e.to_string()),
        None => loader.builtin().map_err(|e| e.to_string()),
    }
}

/// `Kind/namespace/name` (`Kind/name` for cluster-scoped objects).
fn object_ref(request: &review::Review<'_>) -> String {
    if request.namespace.is_empty() {
        format!("{}/{}", request.kind, request.name)
    } else {
        format!("{}/{}/{}", request.kind, request.namespace, request.name)
    }
}
