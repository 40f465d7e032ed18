//! `plate-policy push FILE oci://...` and `plate-policy pull oci://...`: policy
//! modules as OCI artifacts (the CNCF Wasm layout), with the credentials, CA and
//! transport flags both share.

use super::{EXIT_BAD_INPUT, ModuleCacheArgs};
use crate::errorln;
use crate::oci::{
    CaBundle, Credentials, DockerConfig, Layout, OciError, OciReference, PublicKey,
    RegistrySettings,
};
use std::io::Read;
use std::path::PathBuf;

/// How to reach the registry of the reference (the CLI's `spec.registries`).
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArgs {
    /// A PEM CA bundle: the only roots trusted for the registry's certificate.
    #[arg(long, value_name = "FILE")]
    pub registry_ca: Option<PathBuf>,
    /// Plain HTTP, no TLS (a registry on a trusted network only).
    #[arg(long, conflicts_with = "registry_ca")]
    pub insecure: bool,
    /// User name for HTTP basic auth (with --password-stdin); instead of a Docker config.json.
    #[arg(long, value_name = "USER", requires = "password_stdin")]
    pub username: Option<String>,
    /// Read the password for --username from standard input.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
}

impl RegistryArgs {
    fn settings(&self) -> Result<RegistrySettings, String> {
        let ca = match &self.registry_ca {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("--registry-ca {}: {e}", path.display()))?;
                Some(CaBundle {
                    path: path.clone(),
                    pem,
                })
            }
            None => None,
        };
        Ok(RegistrySettings {
            insecure: self.insecure,
            ca,
        })
    }

    /// Credentials: --username/--password-stdin, else the Docker config.
    fn auth(
        &self,
        registry: &str,
        config: Option<&std::path::Path>,
    ) -> Result<DockerConfig, String> {
        if let Some(username) = &self.username {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
            return Ok(DockerConfig::single(
                registry,
                Credentials {
                    username: username.clone(),
                    password: password.trim_end_matches(['\n', '\r']).to_string(),
                },
            ));
        }
        super::registry_config(config).map_err(|e| e.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LayoutArg {
    /// The CNCF Wasm OCI artifact layout (config application/vnd.wasm.config.v0+json, layer application/wasm).
    Cncf,
    /// Kubewarden's policy layout (layer application/vnd.wasm.content.layer.v1+wasm), for registries and tools that expect it.
    Kubewarden,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Prints the artifact's manifest digest (sha256:...) on stdout: pin it in the policy set as oci://REGISTRY/REPO@DIGEST.\nExit codes: 0 pushed; 1 the registry refused or could not be reached; 2 bad input (file, reference)."
)]
pub struct PushArgs {
    /// The policy module (.wasm).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Where to: oci://REGISTRY/REPOSITORY:TAG (or @sha256:DIGEST to push by digest only).
    #[arg(value_name = "REFERENCE")]
    pub reference: String,
    /// The artifact layout.
    #[arg(long, value_enum, default_value_t = LayoutArg::Cncf)]
    pub layout: LayoutArg,
    /// Registry credentials: a Docker config.json [default: $DOCKER_CONFIG/config.json, or ~/.docker/config.json if it exists].
    #[arg(long, value_name = "FILE")]
    pub registry_config: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn push(args: &PushArgs) -> u8 {
    let reference = match OciReference::parse(&args.reference) {
        Ok(r) => r,
        Err(e) => {
            errorln!("{e}");
            return EXIT_BAD_INPUT;
        }
    };
    let module = match std::fs::read(&args.file) {
        Ok(bytes) => bytes,
        Err(e) => {
            errorln!("cannot read module {}: {e}", args.file.display());
            return EXIT_BAD_INPUT;
        }
    };
    if !module.starts_with(b"\0asm") {
        errorln!(
            "{} is not a WebAssembly module (no \\0asm header); push the .wasm a policy build wrote",
            args.file.display()
        );
        return EXIT_BAD_INPUT;
    }
    let (settings, auth) = match (
        args.registry.settings(),
        args.registry
            .auth(&reference.registry, args.registry_config.as_deref()),
    ) {
        (Ok(s), Ok(a)) => (s, a),
        (Err(e), _) | (_, Err(e)) => {
            errorln!("{e}");
            return EXIT_BAD_INPUT;
        }
    };
    let mut oci = crate::oci::Oci::default();
    oci.set_auth(auth);
    let layout = match args.layout {
        LayoutArg::Cncf => Layout::Cncf,
        LayoutArg::Kubewarden => Layout::Kubewarden,
    };
    match oci.push(&reference, &settings, &module, layout) {
        Ok(digest) => {
            tracing::info!(reference = %reference, digest = %digest, "pushed");
            super::output::finish(crate::outln!("{digest}").map(|()| 0))
        }
        Err(e) => {
            errorln!("{e}");
            exit_code(&e)
        }
    }
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Prints the reference pinned to its digest (oci://REGISTRY/REPO@sha256:...) on stdout, and on stderr the module's digest, size and where it went.\nExit codes: 0 pulled and verified; 1 the registry refused or could not be reached, or verification failed; 2 bad input."
)]
pub struct PullArgs {
    /// oci://REGISTRY/REPOSITORY@sha256:DIGEST or :TAG.
    #[arg(value_name = "REFERENCE")]
    pub reference: String,
    /// Also write the module to FILE.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Refuse the module unless a cosign signature by this public key (PEM) verifies.
    #[arg(long, value_name = "KEY")]
    pub cosign_key: Option<PathBuf>,
    #[command(flatten)]
    pub module_cache: ModuleCacheArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn pull(args: &PullArgs) -> u8 {
    let reference = match OciReference::parse(&args.reference) {
        Ok(r) => r,
        Err(e) => {
            errorln!("{e}");
            return EXIT_BAD_INPUT;
        }
    };
    let key = match args.cosign_key.as_deref().map(PublicKey::read).transpose() {
        Ok(k) => k,
        Err(e) => {
            errorln!("{e}");
            return EXIT_BAD_INPUT;
        }
    };
    let settings = match args.registry.settings() {
        Ok(s) => s,
        Err(e) => {
            errorln!("{e}");
            return EXIT_BAD_INPUT;
        }
    };
    let cache = match args.module_cache.cache() {
        Ok(c) => c,
        Err(e) => {
            errorln!("{e}");
            return EXIT_BAD_INPUT;
        }
    };
    let cache = if args.registry.username.is_some() {
        match args.registry.auth(&reference.registry, None) {
            Ok(auth) => cache.with_registry_auth(auth),
            Err(e) => {
                errorln!("{e}");
                return EXIT_BAD_INPUT;
            }
        }
    } else {
        cache
    };
    let start = std::time::Instant::now();
    let artifact = match cache.oci().fetch(&reference, &settings, key.as_ref()) {
        Ok(a) => a,
        Err(e) => {
            errorln!("{e}");
            return exit_code(&e);
        }
    };
    let elapsed = start.elapsed();
    if let Some(path) = &args.output
        && let Err(e) = std::fs::write(path, &artifact.module)
    {
        errorln!("cannot write {}: {e}", path.display());
        return 1;
    }
    let place = match (&args.output, cache.oci().dir()) {
        (Some(file), _) => format!("written to {}", file.display()),
        (None, Some(dir)) => format!("kept in {}", dir.display()),
        (None, None) => "not kept (no module cache; give -o FILE)".to_string(),
    };
    let origin = if artifact.cached {
        "from the cache".to_string()
    } else {
        format!("pulled in {} ms", elapsed.as_millis())
    };
    let signed = match &key {
        Some(k) => format!(", cosign signature verified with {}", k.source),
        None => String::new(),
    };
    super::output::note(format_args!(
        "module {} ({} bytes, {}), {origin}{signed}; {place}",
        artifact.layer.digest, artifact.layer.size, artifact.layer.media_type
    ));
    let pinned = reference.with_digest(&artifact.digest);
    super::output::finish(crate::outln!("{pinned}").map(|()| 0))
}

/// 2 for what the user wrote, 1 for what the registry or the artifact did.
fn exit_code(e: &OciError) -> u8 {
    match e {
        OciError::Reference(_) => EXIT_BAD_INPUT,
        _ => 1,
    }
}

/// The artifact an `inspect oci://...` names (through the module cache); prints
/// the error and gives the exit code when there is none.
pub fn fetch_for_inspect(
    reference: &str,
    module_cache: &ModuleCacheArgs,
    registry: &RegistryArgs,
) -> Result<crate::oci::Artifact, u8> {
    let reference = OciReference::parse(reference).map_err(|e| {
        errorln!("{e}");
        EXIT_BAD_INPUT
    })?;
    let settings = registry.settings().map_err(|e| {
        errorln!("{e}");
        EXIT_BAD_INPUT
    })?;
    let mut cache = module_cache.cache().map_err(|e| {
        errorln!("{e}");
        EXIT_BAD_INPUT
    })?;
    if registry.username.is_some() {
        let auth = registry.auth(&reference.registry, None).map_err(|e| {
            errorln!("{e}");
            EXIT_BAD_INPUT
        })?;
        cache = cache.with_registry_auth(auth);
    }
    cache.oci().fetch(&reference, &settings, None).map_err(|e| {
        errorln!("{e}");
        exit_code(&e)
    })
}
