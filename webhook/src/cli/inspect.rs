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
    /// The policy module: a .wasm file, builtin:NAME, or oci://REGISTRY/REPO@sha256:DIGEST (or :TAG).
    #[arg(value_name = "MODULE")]
    pub module: String,
    /// How to report.
    #[arg(long, short = 'o', value_enum, default_value_t = InspectOutput::Text)]
    pub output: InspectOutput,
    /// For oci:// modules: where pulled modules are kept, and registry credentials.
    #[command(flatten)]
    pub module_cache: super::ModuleCacheArgs,
    #[command(flatten)]
    pub registry: super::oci::RegistryArgs,
}

/// What an OCI artifact is, beside its module.
#[derive(serde::Serialize)]
struct ArtifactReport {
    /// The manifest's digest (what a tag resolves to).
    digest: String,
    manifest_media_type: String,
    config_media_type: String,
    layer_media_type: String,
    layer_digest: String,
    layer_size: i64,
}

#[derive(serde::Serialize)]
struct Report<'a> {
    module: &'a str,
    /// For `builtin:NAME`: the policies the one built-in module holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    holds: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact: Option<ArtifactReport>,
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
    let mut artifact = None;
    let (bytes, precompiled): (std::borrow::Cow<'static, [u8]>, _) =
        if args.module.starts_with(crate::oci::SCHEME) {
            match super::oci::fetch_for_inspect(&args.module, &args.module_cache, &args.registry) {
                Ok(a) => {
                    let bytes = a.module.to_vec();
                    artifact = Some(ArtifactReport {
                        digest: a.digest,
                        manifest_media_type: a.manifest_media_type,
                        config_media_type: a.config_media_type,
                        layer_media_type: a.layer.media_type,
                        layer_digest: a.layer.digest,
                        layer_size: a.layer.size,
                    });
                    (bytes.into(), None)
                }
                Err(code) => return code,
            }
        } else {
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
            }
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
    let holds = args
        .module
        .starts_with(BUILTIN_PREFIX)
        .then(builtin::module_names);
    let report = Report {
        module: &args.module,
        holds,
        artifact,
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
    if let Some(holds) = &r.holds {
        // The built-ins are one module; what follows describes all of it.
        outln!(
            "holds:           {} (the built-in policies, one module; `builtin:NAME` picks one)",
            holds.join(", ")
        )?;
    }
    if let Some(a) = &r.artifact {
        outln!("digest:          {}", a.digest)?;
        outln!("manifest:        {}", a.manifest_media_type)?;
        outln!("config:          {}", a.config_media_type)?;
        outln!(
            "layer:           {} {} ({} bytes)",
            a.layer_media_type,
            a.layer_digest,
            a.layer_size
        )?;
    }
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
            "yes (imports plate.lookup_object; a policy-set entry lists the kinds it may look up under `context`)"
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
