//! `plate-policy inspect MODULE`: what a module is: size and digest, the ABI
//! version it declares (or why the host refuses it), its exports and imports, and
//! whether it makes context lookups.

use super::EXIT_BAD_INPUT;
use crate::engine::inspect::ModuleShape;
use crate::policy_set::BUILTIN_PREFIX;
use crate::{builtin, errorln, outln};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InspectOutput {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 a module the host loads; 2 unreadable, not WebAssembly, or refused by the ABI checks (the reason is printed)."
)]
pub struct InspectArgs {
    /// The policy module: a .wasm file or builtin:NAME.
    #[arg(value_name = "MODULE")]
    pub module: String,
    /// How to report.
    #[arg(long, short = 'o', value_enum, default_value_t = InspectOutput::Text)]
    pub output: InspectOutput,
}

#[derive(serde::Serialize)]
struct Report<'a> {
    module: &'a str,
    size: usize,
    sha256: String,
    /// The declared ABI version, when the host loads the module.
    abi_version: Option<i32>,
    /// Why the host refuses it.
    #[serde(skip_serializing_if = "Option::is_none")]
    refused: Option<String>,
    context_lookups: bool,
    #[serde(flatten)]
    shape: ModuleShape,
}

pub fn run(args: &InspectArgs) -> u8 {
    let (bytes, precompiled): (std::borrow::Cow<'static, [u8]>, _) =
        match args.module.strip_prefix(BUILTIN_PREFIX) {
            Some(name) => match builtin::module(name) {
                Some(bytes) => (bytes.into(), builtin::precompiled(name)),
                None => {
                    errorln!(
                        "there is no built-in module {name:?} (built in: {})",
                        builtin::module_names().join(", ")
                    );
                    return EXIT_BAD_INPUT;
                }
            },
            None => match std::fs::read(&args.module) {
                Ok(bytes) => (bytes.into(), None),
                Err(e) => {
                    errorln!("cannot read module {}: {e}", args.module);
                    return EXIT_BAD_INPUT;
                }
            },
        };
    let Some(engine) = super::cli_engine() else {
        return 1;
    };
    let (abi_version, refused, shape) = match engine.load_module(&bytes, precompiled, None) {
        Ok(module) => (Some(module.abi_version()), None, module.shape()),
        Err(refusal) => match engine.shape(&bytes) {
            Ok(shape) => (None, Some(refusal.to_string()), shape),
            // Not WebAssembly at all: nothing to describe.
            Err(e) => {
                errorln!("{} {e}", args.module);
                return EXIT_BAD_INPUT;
            }
        },
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    let report = Report {
        module: &args.module,
        size: bytes.len(),
        sha256: digest.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
        abi_version,
        context_lookups: shape.uses_context_lookups(),
        refused,
        shape,
    };
    let code = if report.refused.is_some() {
        EXIT_BAD_INPUT
    } else {
        0
    };
    let written = match args.output {
        InspectOutput::Json => serde_json::to_string_pretty(&report)
            .map_err(std::io::Error::other)
            .and_then(|json| outln!("{json}")),
        InspectOutput::Text => write_text(&report),
    };
    super::output::finish(written.map(|()| code))
}

fn write_text(r: &Report<'_>) -> std::io::Result<()> {
    outln!("module:          {}", r.module)?;
    outln!("size:            {} bytes", r.size)?;
    outln!("sha256:          {}", r.sha256)?;
    match (&r.abi_version, &r.refused) {
        (Some(v), _) => outln!("abi version:     {v}")?,
        (None, Some(why)) => outln!("abi version:     none: the host refuses it: it {why}")?,
        (None, None) => outln!("abi version:     unknown")?,
    }
    outln!(
        "context lookups: {}",
        if r.context_lookups {
            "yes (imports plate.lookup_object; its policy-set entry lists the kinds under `context`)"
        } else {
            "no"
        }
    )?;
    let width = r
        .shape
        .exports
        .iter()
        .chain(&r.shape.imports)
        .map(|i| i.name.len())
        .max()
        .unwrap_or(0);
    outln!("exports:")?;
    for e in &r.shape.exports {
        outln!("  {:<width$}  {}", e.name, e.ty)?;
    }
    if r.shape.imports.is_empty() {
        outln!("imports:         none")
    } else {
        outln!("imports:")?;
        for i in &r.shape.imports {
            outln!("  {:<width$}  {}", i.name, i.ty)?;
        }
        Ok(())
    }
}
