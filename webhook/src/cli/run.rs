//! `plate-policy run MODULE -f OBJECT --env ENV`: one module, one object, no policy
//! set: prints the policy's verdict (violations with key, path and line, warnings).
//! Also the shared setup of `bench`.

use super::{EXIT_BAD_INPUT, ModuleCacheArgs};
use crate::admission::Effect;
use crate::kit::single;
use crate::manifest::Located;
use crate::objects::{ObjectSource, StaticObjects};
use crate::policy_set::{Loader, PolicySet};
use crate::{errorln, outln};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RunOutput {
    /// The violations and warnings, for a person.
    Text,
    /// The verdict as JSON: `allowed`, `violations`, `warnings` (or `error`).
    Json,
}

/// What `run` and `bench` share: the module, the object and how it is evaluated.
#[derive(Debug, clap::Args)]
pub struct ModuleInput {
    /// The policy module: a .wasm file or builtin:NAME.
    #[arg(value_name = "MODULE")]
    pub module: String,
    /// The object: a file holding one manifest or AdmissionReview (`-`: stdin).
    #[arg(short = 'f', long = "file", value_name = "FILE|-")]
    pub file: String,
    /// The policy's settings: a JSON object, or @FILE holding one in JSON or YAML.
    #[arg(long, value_name = "JSON|@FILE")]
    pub settings: Option<String>,
    /// Objects the policy may look up (e.g. ClusterIssuers), from manifest files;
    /// their kinds are the ones it may look up.
    #[arg(long = "context", value_name = "FILE")]
    pub context: Vec<PathBuf>,
    #[command(flatten)]
    pub module_cache: ModuleCacheArgs,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 no violation; 1 violations; 2 bad input (module, object, settings) or no verdict (the policy trapped, ran out of time or memory, or reported an error)."
)]
pub struct RunArgs {
    #[command(flatten)]
    pub input: ModuleInput,
    /// The environment the object is in (e.g. prod).
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// How to report.
    #[arg(long, short = 'o', value_enum, default_value_t = RunOutput::Text)]
    pub output: RunOutput,
}

/// Everything an evaluation needs, loaded and checked.
pub struct Prepared {
    pub engine: crate::engine::Engine,
    pub set: PolicySet,
    pub object: Located,
    pub request: Vec<u8>,
    pub objects: Arc<dyn ObjectSource>,
    pub load_time: std::time::Duration,
}

impl Prepared {
    /// The request and a sandbox slot to evaluate it in, or the exit code (the
    /// problem is printed).
    pub fn ready(&self) -> Result<(crate::review::Review<'_>, crate::engine::EvaluationSlot), u8> {
        let review = crate::review::parse_request(&self.request).map_err(|e| {
            errorln!("{e}");
            EXIT_BAD_INPUT
        })?;
        let slot = self.engine.evaluation_slot_blocking().ok_or_else(|| {
            errorln!("the policy engine has no sandbox to run in");
            1
        })?;
        Ok((review, slot))
    }
}

/// The settings of `--settings`: inline JSON or `@FILE` (JSON or YAML).
fn settings(arg: &str) -> Result<serde_json::Value, String> {
    match arg.strip_prefix('@') {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("--settings @{file}: cannot read: {e}"))?;
            serde_saphyr::from_str(&text).map_err(|e| {
                format!(
                    "--settings @{file}: {}",
                    crate::policy_set::first_line(&e.to_string())
                )
            })
        }
        None => serde_json::from_str(arg).map_err(|e| format!("--settings is not JSON: {e}")),
    }
}

/// Loads the module, its settings, the object and the context; prints what is
/// wrong and returns None on bad input.
pub fn prepare(input: &ModuleInput) -> Option<Prepared> {
    let settings = match input.settings.as_deref().map(settings).transpose() {
        Ok(s) => s,
        Err(e) => {
            errorln!("{e}");
            return None;
        }
    };
    let object = single::read_object(&input.file)
        .map_err(|e| errorln!("{e}"))
        .ok()?;
    let request = single::request_bytes(&input.file, &object)
        .map_err(|e| errorln!("{e}"))
        .ok()?;
    let mut context = StaticObjects::default();
    for file in &input.context {
        if let Err(e) = context.insert_file(file) {
            errorln!("--context {e}");
            return None;
        }
    }
    let engine = super::cli_engine()?;
    let cache = input
        .module_cache
        .cache()
        .map_err(|e| errorln!("{e}"))
        .ok()?;
    let start = std::time::Instant::now();
    let set = single::load(
        &Loader {
            engine: &engine,
            cache: &cache,
        },
        &input.module,
        settings.as_ref(),
        &context.kinds(),
    )
    .map_err(|e| errorln!("{e}"))
    .ok()?;
    let load_time = start.elapsed();
    Some(Prepared {
        engine,
        set,
        object,
        request,
        objects: Arc::new(context),
        load_time,
    })
}

/// The verdict as `run --output json` prints it.
#[derive(serde::Serialize)]
struct JsonVerdict<'a> {
    policy: &'a str,
    object: String,
    environment: &'a str,
    allowed: bool,
    violations: Vec<JsonViolation<'a>>,
    warnings: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(serde::Serialize)]
struct JsonViolation<'a> {
    #[serde(flatten)]
    violation: &'a plate_policy_sdk::Violation,
    /// The line of the field (else of the object) in the file.
    line: u64,
}

pub fn run(args: &RunArgs) -> u8 {
    let Some(prepared) = prepare(&args.input) else {
        return EXIT_BAD_INPUT;
    };
    let (review, slot) = match prepared.ready() {
        Ok(ready) => ready,
        Err(code) => return code,
    };
    let decision = single::decide(
        &prepared.set,
        &review,
        Some(&args.env),
        &prepared.objects,
        &slot,
    );
    let object = if review.namespace.is_empty() {
        format!("{}/{}", review.kind, review.name)
    } else {
        format!("{}/{}/{}", review.kind, review.namespace, review.name)
    };
    let Some(outcome) = decision.outcomes.first() else {
        let reason = crate::admission::unmatched_reason(&prepared.set, &review, Some(&args.env))
            .unwrap_or_else(|| "it is not a request the policy is run on".into());
        errorln!("the policy did not run on {object}: {reason}");
        return EXIT_BAD_INPUT;
    };
    let line_of = |v: &plate_policy_sdk::Violation| {
        v.path
            .as_deref()
            .and_then(|p| prepared.object.fields.line_of(p))
            .unwrap_or(prepared.object.line)
    };
    let file = if args.input.file == "-" {
        "<stdin>"
    } else {
        args.input.file.as_str()
    };
    let (violations, error) = match &outcome.effect {
        Effect::Pass => (&[][..], None),
        Effect::Violations(v) => (v.as_slice(), None),
        Effect::Failed { failure, .. } => (&[][..], Some(format!("policy {failure}"))),
    };
    let code = if error.is_some() {
        EXIT_BAD_INPUT
    } else {
        u8::from(!violations.is_empty())
    };
    let written = match args.output {
        RunOutput::Json => {
            let verdict = JsonVerdict {
                policy: &outcome.policy,
                object,
                environment: &args.env,
                allowed: violations.is_empty() && error.is_none(),
                violations: violations
                    .iter()
                    .map(|v| JsonViolation {
                        violation: v,
                        line: line_of(v),
                    })
                    .collect(),
                warnings: &outcome.advice,
                error,
            };
            serde_json::to_string_pretty(&verdict)
                .map_err(std::io::Error::other)
                .and_then(|json| outln!("{json}"))
        }
        RunOutput::Text => {
            if let Some(error) = &error {
                errorln!("{}: {error}", outcome.policy);
                return code;
            }
            write_text(
                &outcome.policy,
                &object,
                &args.env,
                violations,
                &outcome.advice,
                |v| format!("{file}:{}", line_of(v)),
            )
        }
    };
    super::output::finish(written.map(|()| code))
}

fn write_text(
    policy: &str,
    object: &str,
    env: &str,
    violations: &[plate_policy_sdk::Violation],
    warnings: &[String],
    at: impl Fn(&plate_policy_sdk::Violation) -> String,
) -> std::io::Result<()> {
    use super::output::{Tone, tone};
    for v in violations {
        outln!("{}  {}  {}", tone("VIOLATION", Tone::Bad), v.key, at(v))?;
        outln!("  message: {}", v.message)?;
        if let Some(path) = &v.path {
            outln!("  path:    {path}")?;
        }
        if let Some(summary) = &v.summary {
            outln!("  summary: {summary}")?;
        }
    }
    for w in warnings {
        outln!("{}  {w}", tone("WARNING", Tone::Warning))?;
    }
    let verdict = match violations.len() {
        0 => "allowed".to_string(),
        1 => "1 violation".to_string(),
        n => format!("{n} violations"),
    };
    outln!("{policy} on {object} in {env}: {verdict}")
}
