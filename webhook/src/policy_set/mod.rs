//! The policy set: which policies run, where, how, with which settings. Parsed from
//! a `PolicySet` YAML file (`policies/policies.yaml` is the built-in one), checked
//! completely (every error is reported with file, line and field), with each
//! module compiled once and each policy's settings validated by the policy itself.

mod matching;
pub mod model;

pub use matching::{KindSelector, KindSelectorError, MatchError, Matcher};
pub use model::{FailurePolicy, Mode, Operation};

use crate::builtin;
use crate::engine::{CacheDirError, Engine, Limits, LoadError, MAX_MEMORY_MIB, PolicyModule};
use crate::environment::EnvironmentResolver;
use crate::objects::ObjectKind;
use crate::oci::{self, Oci, OciError, OciReference, PublicKey, RegistrySettings};
use model::{PolicySetFile, Spanned};
use serde_json::json;
use std::collections::BTreeMap;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use thiserror::Error;

/// Longest time limit a policy may ask for; the API server gives up after 30 s anyway.
pub const MAX_TIMEOUT_MS: u64 = 30_000;

/// Prefix of module references that name a policy built into the binary.
pub const BUILTIN_PREFIX: &str = "builtin:";

/// One problem in a policy set file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<u64>,
    pub column: Option<u64>,
    /// Dotted path of the field (`spec.policies[1].timeoutMs`), when known.
    pub field: Option<String>,
    pub message: String,
}

/// Everything wrong with a policy set file; `Display` prints one problem per line
/// as `file:line:column: field: message`.
#[derive(Debug, Error)]
pub struct PolicySetError {
    pub file: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for PolicySetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.file)?;
            match (p.line, p.column) {
                (Some(line), Some(col)) => write!(f, ":{line}:{col}")?,
                (Some(line), None) => write!(f, ":{line}")?,
                _ => {}
            }
            if let Some(field) = &p.field {
                write!(f, ": {field}")?;
            }
            write!(f, ": {}", p.message)?;
        }
        Ok(())
    }
}

/// A loaded, checked policy-set entry.
#[derive(Clone)]
pub struct Policy {
    pub name: Arc<str>,
    pub module_ref: String,
    pub module: Arc<PolicyModule>,
    /// Empty: every namespace, whatever its environment.
    pub environments: Vec<String>,
    pub mode: Mode,
    pub matcher: Matcher,
    /// The settings as the JSON the guest receives.
    pub settings_json: Vec<u8>,
    pub failure_policy: FailurePolicy,
    pub limits: Limits,
    /// Kinds this policy may look up; empty: no lookups.
    pub context: Arc<[ObjectKind]>,
    /// On UPDATE, violations the old object already had are dropped.
    pub allow_existing_violations: bool,
    /// `plate-policy audit` judges existing objects with it.
    pub audit: bool,
}

/// The settings document a policy's module receives: the entry's settings, wrapped
/// for a built-in as `{"policy": NAME, "settings": ...}`, because the built-ins are
/// one module holding them all (policies/builtins) and the wrapper says which runs.
pub fn settings_document(module_ref: &str, settings: &serde_json::Value) -> Vec<u8> {
    match module_ref.strip_prefix(BUILTIN_PREFIX) {
        Some(name) => json!({"policy": name, "settings": settings})
            .to_string()
            .into_bytes(),
        None => settings.to_string().into_bytes(),
    }
}

impl Policy {
    /// Does this policy run in `environment`?
    pub fn applies_in(&self, environment: Option<&str>) -> bool {
        self.environments.is_empty()
            || environment.is_some_and(|env| self.environments.iter().any(|e| e == env))
    }
}

/// A loaded policy set, immutable; the server swaps whole sets on reload.
pub struct PolicySet {
    /// Where it came from (file path or `built-in`), for logs.
    pub source: String,
    pub name: String,
    pub environments: EnvironmentResolver,
    pub policies: Vec<Arc<Policy>>,
}

impl PolicySet {
    /// True when some policy names `kind` explicitly (wildcards do not count), which
    /// keeps the metrics' `kind` label bounded by the policy set.
    pub fn matches_kind(&self, kind: &str) -> bool {
        self.policies
            .iter()
            .any(|p| p.matcher.kinds.iter().any(|k| k.kind == kind))
    }

    /// Every kind some policy may look up: the context caches `serve` keeps.
    pub fn context_kinds(&self) -> Vec<ObjectKind> {
        let mut kinds: Vec<ObjectKind> = self
            .policies
            .iter()
            .flat_map(|p| p.context.iter().cloned())
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }

    pub fn policy(&self, name: &str) -> Option<&Arc<Policy>> {
        self.policies.iter().find(|p| &*p.name == name)
    }

    /// A copy with only the named policies (for `test` suites that test one policy).
    pub fn only(&self, names: &[String]) -> Result<PolicySet, UnknownPolicy> {
        for name in names {
            if self.policy(name).is_none() {
                return Err(UnknownPolicy {
                    set: self.source.clone(),
                    name: name.clone(),
                    known: self.policies.iter().map(|p| p.name.to_string()).collect(),
                });
            }
        }
        Ok(PolicySet {
            source: self.source.clone(),
            name: self.name.clone(),
            environments: self.environments.clone(),
            policies: self
                .policies
                .iter()
                .filter(|p| names.iter().any(|n| n.as_str() == &*p.name))
                .cloned()
                .collect(),
        })
    }
}

/// A module reference's bytes, how to name it, and its build-time native code.
struct ModuleSource {
    label: String,
    bytes: std::borrow::Cow<'static, [u8]>,
    precompiled: Option<&'static [u8]>,
}

/// Why a module reference gives no module.
#[derive(Debug, Error)]
pub enum ModuleRefError {
    #[error("there is no built-in module {name:?} (built in: {})", builtin::module_names().join(", "))]
    UnknownBuiltin { name: String },
    #[error("{reference:?}: only {BUILTIN_PREFIX}NAME modules can be used here")]
    NoBase { reference: String },
    #[error("cannot read module {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{label} {source}")]
    Load { label: String, source: LoadError },
    #[error(transparent)]
    Oci(#[from] OciError),
    #[error(transparent)]
    OciReference(#[from] oci::ReferenceError),
    #[error(
        "{reference} names a tag, and spec.requireDigests is true: pin the digest (oci://{name}@sha256:...; plate-policy pull {reference} prints it)"
    )]
    TagRefused { reference: String, name: String },
    #[error(transparent)]
    CosignKey(#[from] oci::cosign::KeyError),
    #[error("verify applies to oci:// modules only ({reference:?} is not one)")]
    VerifyNotOci { reference: String },
}

/// A policy name the set does not have.
#[derive(Debug, Error)]
#[error("the policy set {set} has no policy {name:?} (it has: {})", known.join(", "))]
pub struct UnknownPolicy {
    pub set: String,
    pub name: String,
    pub known: Vec<String>,
}

/// Compiled modules by content, so reloading a set recompiles only what changed;
/// optionally backed by a directory of compiled code that survives restarts.
/// Modules pulled from OCI registries are kept here too (by digest, in `dir/oci`).
#[derive(Default)]
pub struct ModuleCache {
    modules: Mutex<HashMap<(u64, usize), Arc<PolicyModule>>>,
    dir: Option<PathBuf>,
    oci: Oci,
}

impl ModuleCache {
    /// A cache that also keeps compiled code and pulled modules in `dir` (created
    /// if missing).
    pub fn with_dir(dir: PathBuf) -> Result<ModuleCache, CacheDirError> {
        Engine::prepare_cache_dir(&dir)?;
        Ok(ModuleCache {
            modules: Mutex::default(),
            oci: Oci::with_dir(&dir),
            dir: Some(dir),
        })
    }

    /// Registry credentials for `oci://` modules.
    pub fn with_registry_auth(mut self, auth: oci::DockerConfig) -> ModuleCache {
        self.oci.set_auth(auth);
        self
    }

    /// Pulls and pushes through this cache.
    pub fn oci(&self) -> &Oci {
        &self.oci
    }

    fn get_or_load(
        &self,
        engine: &Engine,
        source: &ModuleSource,
    ) -> Result<Arc<PolicyModule>, LoadError> {
        let bytes: &[u8] = &source.bytes;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut hasher);
        let key = (hasher.finish(), bytes.len());
        if let Some(module) = self.lock().get(&key) {
            return Ok(Arc::clone(module));
        }
        // Compile outside the lock: compiling takes tens of milliseconds.
        let module =
            Arc::new(engine.load_module(bytes, source.precompiled, self.dir.as_deref())?);
        self.lock().insert(key, Arc::clone(&module));
        Ok(module)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(u64, usize), Arc<PolicyModule>>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.modules
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Loads policy sets with one engine and one module cache.
pub struct Loader<'a> {
    pub engine: &'a Engine,
    pub cache: &'a ModuleCache,
}

impl Loader<'_> {
    /// The built-in set (`policies/policies.yaml`, embedded) with the built-in modules.
    pub fn builtin(&self) -> Result<PolicySet, PolicySetError> {
        self.load_str(builtin::POLICY_SET_NAME, builtin::POLICY_SET_YAML, None)
    }

    /// A set from a file; relative module paths are relative to the file's directory.
    pub fn load_file(&self, path: &Path) -> Result<PolicySet, PolicySetError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PolicySetError {
            file: file.clone(),
            problems: vec![Problem {
                line: None,
                column: None,
                field: None,
                message: format!("cannot read the policy set: {e}"),
            }],
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        self.load_str(&file, &text, Some(&base))
    }

    /// A set from text; `base` is the directory for relative module paths (None:
    /// only built-in modules are allowed).
    pub fn load_str(
        &self,
        file: &str,
        text: &str,
        base: Option<&Path>,
    ) -> Result<PolicySet, PolicySetError> {
        let parsed = parse(text).map_err(|p| PolicySetError {
            file: file.to_string(),
            problems: vec![p],
        })?;
        let mut problems = Vec::new();
        let registries = registry_settings(&parsed, base, &mut problems);
        let sources: Vec<Result<ModuleSource, ModuleRefError>> = parsed
            .spec
            .policies
            .iter()
            .map(|e| self.module_source(&e.value, &parsed.spec, &registries, base))
            .collect();
        self.precompile(&sources);
        let set = self.check(file, parsed, sources, &mut problems);
        match set {
            Some(set) if problems.is_empty() => Ok(set),
            _ => Err(PolicySetError {
                file: file.to_string(),
                problems,
            }),
        }
    }

    fn check(
        &self,
        file: &str,
        parsed: PolicySetFile,
        sources: Vec<Result<ModuleSource, ModuleRefError>>,
        problems: &mut Vec<Problem>,
    ) -> Option<PolicySet> {
        if parsed.api_version.value != model::API_VERSION {
            problems.push(at(
                &parsed.api_version,
                "apiVersion",
                format!(
                    "{:?} is not supported; use {:?}",
                    parsed.api_version.value,
                    model::API_VERSION
                ),
            ));
        }
        if parsed.kind.value != model::KIND {
            problems.push(at(
                &parsed.kind,
                "kind",
                format!("{:?} is not {:?}", parsed.kind.value, model::KIND),
            ));
        }
        let envs = parsed.spec.environments;
        let mut patterns = Vec::new();
        for (i, p) in envs.name_patterns.iter().enumerate() {
            if p.value.pattern.is_empty() || p.value.environment.is_empty() {
                problems.push(at(
                    p,
                    &format!("spec.environments.namePatterns[{i}]"),
                    "pattern and environment must both be non-empty".into(),
                ));
            }
            patterns.push((p.value.pattern.clone(), p.value.environment.clone()));
        }
        if envs.label.is_empty() {
            problems.push(Problem {
                line: None,
                column: None,
                field: Some("spec.environments.label".into()),
                message: "is empty: name the namespace label that holds the environment".into(),
            });
        } else if !plate_policy_sdk::k8s::is_qualified_name(&envs.label) {
            problems.push(Problem {
                line: None,
                column: None,
                field: Some("spec.environments.label".into()),
                message: format!(
                    "{:?} is not a valid label key ([prefix/]name: a DNS subdomain prefix, a name of at most 63 letters, digits, - _ .)",
                    envs.label
                ),
            });
        }
        let resolver = EnvironmentResolver::new(
            envs.label,
            envs.values.into_iter().collect(),
            patterns,
            envs.default.map(|d| d.value),
        );
        let known_envs = resolver.known_environments();

        let mut names = HashSet::new();
        let mut policies = Vec::new();
        for (i, (entry, source)) in parsed.spec.policies.into_iter().zip(sources).enumerate() {
            let field = format!("spec.policies[{i}]");
            let entry = entry.value;
            let name = entry.name.value.clone();
            let valid_name = !name.is_empty()
                && name.len() <= 63
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !name.starts_with('-')
                && !name.ends_with('-');
            if !valid_name {
                problems.push(at(
                    &entry.name,
                    &format!("{field}.name"),
                    format!("{name:?} is not a valid policy name (lowercase letters, digits and -, at most 63)"),
                ));
            } else if !names.insert(name.clone()) {
                problems.push(at(
                    &entry.name,
                    &format!("{field}.name"),
                    format!("policy {name:?} is defined twice"),
                ));
            }
            for env in &entry.environments.value {
                if !known_envs.contains(env) {
                    problems.push(at(
                        &entry.environments,
                        &format!("{field}.environments"),
                        format!(
                            "policy {name:?}: environment {env:?} is not defined in spec.environments (known: {})",
                            known_envs.join(", ")
                        ),
                    ));
                }
            }
            let matcher = match Matcher::compile(&entry.match_.value) {
                Ok(m) => Some(m),
                Err(e) => {
                    problems.push(at(
                        &entry.match_,
                        &format!("{field}.match"),
                        format!("policy {name:?}: {e}"),
                    ));
                    None
                }
            };
            let timeout = entry.timeout_ms.value;
            if !(1..=MAX_TIMEOUT_MS).contains(&timeout) {
                problems.push(at(
                    &entry.timeout_ms,
                    &format!("{field}.timeoutMs"),
                    format!("policy {name:?}: {timeout} is out of range (1 to {MAX_TIMEOUT_MS})"),
                ));
            }
            let memory = entry.memory_mib.value;
            if !(1..=MAX_MEMORY_MIB).contains(&memory) {
                problems.push(at(
                    &entry.memory_mib,
                    &format!("{field}.memoryMiB"),
                    format!("policy {name:?}: {memory} is out of range (1 to {MAX_MEMORY_MIB})"),
                ));
            }
            let limits = Limits {
                timeout_ms: timeout.clamp(1, MAX_TIMEOUT_MS),
                memory_mib: memory.clamp(1, MAX_MEMORY_MIB),
            };
            let module = match source.and_then(|source| self.module(source)) {
                Ok(m) => Some(m),
                Err(e) => {
                    // A key that cannot be read is the verify field's problem.
                    let (spanned_at, field_name) = match (&e, &entry.verify) {
                        (
                            ModuleRefError::CosignKey(_) | ModuleRefError::VerifyNotOci { .. },
                            Some(v),
                        ) => (at(v, "", String::new()), format!("{field}.verify")),
                        _ => (
                            at(&entry.module, "", String::new()),
                            format!("{field}.module"),
                        ),
                    };
                    problems.push(Problem {
                        field: Some(field_name),
                        message: format!("policy {name:?}: {e}"),
                        ..spanned_at
                    });
                    None
                }
            };
            if entry
                .settings
                .value
                .get("allowExistingViolations")
                .is_some()
            {
                problems.push(at(
                    &entry.settings,
                    &format!("{field}.settings.allowExistingViolations"),
                    format!(
                        "policy {name:?}: allowExistingViolations is no longer a setting of the policy: move it to the policy entry ({field}.allowExistingViolations), where it works for every policy"
                    ),
                ));
                continue;
            }
            let settings_json = match &entry.settings.value {
                serde_json::Value::Null => settings_document(&entry.module.value, &json!({})),
                value @ serde_json::Value::Object(_) => {
                    settings_document(&entry.module.value, value)
                }
                _ => {
                    problems.push(at(
                        &entry.settings,
                        &format!("{field}.settings"),
                        format!("policy {name:?}: settings must be a mapping"),
                    ));
                    continue;
                }
            };
            for (j, kind) in entry.context.value.iter().enumerate() {
                let bad_version =
                    kind.api_version.is_empty() || kind.api_version.split('/').count() > 2;
                let bad_kind = !kind.kind.starts_with(|c: char| c.is_ascii_uppercase())
                    || !kind.kind.chars().all(|c| c.is_ascii_alphanumeric());
                if bad_version || bad_kind {
                    problems.push(at(
                        &entry.context,
                        &format!("{field}.context[{j}]"),
                        format!(
                            "policy {name:?}: {{apiVersion: {:?}, kind: {:?}}} is not a kind (write e.g. apiVersion: cert-manager.io/v1, kind: ClusterIssuer)",
                            kind.api_version, kind.kind
                        ),
                    ));
                }
            }
            let (Some(module), Some(matcher)) = (module, matcher) else {
                continue;
            };
            match module.validate_settings(&settings_json, &limits) {
                Ok(Ok(())) => {}
                Ok(Err(message)) => problems.push(at(
                    &entry.settings,
                    &format!("{field}.settings"),
                    format!("policy {name:?} rejected its settings: {message}"),
                )),
                Err(e) => problems.push(at(
                    &entry.settings,
                    &format!("{field}.settings"),
                    format!("policy {name:?}: validating its settings failed: the policy {e}"),
                )),
            }
            policies.push(Arc::new(Policy {
                name: name.into(),
                module_ref: entry.module.value,
                module,
                environments: entry.environments.value,
                mode: entry.mode,
                matcher,
                settings_json,
                failure_policy: entry.failure_policy,
                limits,
                context: entry.context.value.into(),
                allow_existing_violations: entry.allow_existing_violations,
                audit: entry.audit,
            }));
        }
        Some(PolicySet {
            source: file.to_string(),
            name: parsed.metadata.name,
            environments: resolver,
            policies,
        })
    }

    fn module(&self, source: ModuleSource) -> Result<Arc<PolicyModule>, ModuleRefError> {
        self.cache
            .get_or_load(self.engine, &source)
            .map_err(|source_error| ModuleRefError::Load {
                label: source.label.clone(),
                source: source_error,
            })
    }

    /// The bytes of a module reference, how to name it in messages, and for a
    /// built-in its precompiled code.
    fn module_source(
        &self,
        entry: &model::PolicyEntry,
        spec: &model::Spec,
        registries: &BTreeMap<String, RegistrySettings>,
        base: Option<&Path>,
    ) -> Result<ModuleSource, ModuleRefError> {
        let reference = entry.module.value.as_str();
        if reference.starts_with(oci::SCHEME) {
            return self.oci_source(entry, spec, registries, base);
        }
        if entry.verify.is_some() {
            return Err(ModuleRefError::VerifyNotOci {
                reference: reference.to_string(),
            });
        }
        if let Some(name) = reference.strip_prefix(BUILTIN_PREFIX) {
            let bytes = builtin::module(name).ok_or_else(|| ModuleRefError::UnknownBuiltin {
                name: name.to_string(),
            })?;
            return Ok(ModuleSource {
                label: format!("built-in module {name:?}"),
                bytes: bytes.into(),
                precompiled: builtin::precompiled(name),
            });
        }
        let base = base.ok_or_else(|| ModuleRefError::NoBase {
            reference: reference.to_string(),
        })?;
        let path: PathBuf = base.join(reference);
        let bytes = std::fs::read(&path).map_err(|source| ModuleRefError::Read {
            path: path.clone(),
            source,
        })?;
        Ok(ModuleSource {
            label: format!("module {}", path.display()),
            bytes: bytes.into(),
            precompiled: None,
        })
    }

    /// An `oci://` module: pulled (or found in the cache), its digest checked and,
    /// with `verify`, its signature.
    fn oci_source(
        &self,
        entry: &model::PolicyEntry,
        spec: &model::Spec,
        registries: &BTreeMap<String, RegistrySettings>,
        base: Option<&Path>,
    ) -> Result<ModuleSource, ModuleRefError> {
        let reference = OciReference::parse(&entry.module.value)?;
        if spec.require_digests && reference.digest.is_none() {
            return Err(ModuleRefError::TagRefused {
                reference: reference.to_string(),
                name: reference.repository_name(),
            });
        }
        let key = match &entry.verify {
            Some(verify) => Some(cosign_key(&verify.value.cosign_key, base)?),
            None => None,
        };
        let settings = registries
            .get(&reference.registry)
            .cloned()
            .unwrap_or_default();
        let artifact = self.cache.oci.fetch(&reference, &settings, key.as_ref())?;
        tracing::info!(
            module = %reference,
            digest = %artifact.digest,
            layer = %artifact.layer.digest,
            cached = artifact.cached,
            signature = artifact.verified_with.as_deref().unwrap_or("not required"),
            "OCI module ready"
        );
        Ok(ModuleSource {
            label: format!("module {reference} ({})", artifact.digest),
            bytes: artifact.module.to_vec().into(),
            precompiled: None,
        })
    }

    /// Compiles every module the set names that has no precompiled code, on all
    /// cores: compiling is most of the time a server takes to become ready. Errors
    /// are reported later, per entry.
    fn precompile(&self, sources: &[Result<ModuleSource, ModuleRefError>]) {
        let mut sources: Vec<&ModuleSource> = sources
            .iter()
            .filter_map(|s| s.as_ref().ok())
            .filter(|s| s.precompiled.is_none())
            .collect();
        sources.sort_by(|a, b| a.bytes.cmp(&b.bytes));
        sources.dedup_by(|a, b| a.bytes == b.bytes);
        if sources.len() < 2 {
            // Nothing to do in parallel; the entries load in order.
            return;
        }
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = sources.len().div_ceil(workers.max(1)).max(1);
        std::thread::scope(|scope| {
            for part in sources.chunks(chunk) {
                scope.spawn(move || {
                    for source in part {
                        let _ = self.cache.get_or_load(self.engine, source);
                    }
                });
            }
        });
    }
}

/// `spec.registries`, with each CA bundle read; problems name the field.
fn registry_settings(
    parsed: &PolicySetFile,
    base: Option<&Path>,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, RegistrySettings> {
    let mut out = BTreeMap::new();
    for (host, entry) in &parsed.spec.registries {
        let field = format!("spec.registries.{host:?}");
        let mut settings = RegistrySettings {
            insecure: entry.value.insecure,
            ca: None,
        };
        if host.is_empty() || host.contains('/') || host.contains("://") {
            problems.push(at(
                entry,
                &field,
                format!(
                    "{host:?} is not a registry host (write host or host:port, no scheme or path)"
                ),
            ));
        }
        if let Some(ca) = &entry.value.ca_file {
            if entry.value.insecure {
                problems.push(at(
                    entry,
                    &format!("{field}.caFile"),
                    "a registry is either insecure (plain HTTP) or has a CA (HTTPS), not both"
                        .into(),
                ));
            }
            let path = base.map_or_else(|| PathBuf::from(ca), |b| b.join(ca));
            match std::fs::read(&path) {
                Ok(pem) if pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") => {
                    settings.ca = Some(oci::CaBundle { path, pem })
                }
                Ok(_) => problems.push(at(
                    entry,
                    &format!("{field}.caFile"),
                    format!(
                        "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                        path.display()
                    ),
                )),
                Err(e) => problems.push(at(
                    entry,
                    &format!("{field}.caFile"),
                    format!("cannot read the CA bundle {}: {e}", path.display()),
                )),
            }
        }
        out.insert(host.clone(), settings);
    }
    out
}

/// A `verify.cosignKey`: the PEM itself, or a file relative to the set's directory.
fn cosign_key(value: &str, base: Option<&Path>) -> Result<PublicKey, oci::cosign::KeyError> {
    if value.trim_start().starts_with("-----BEGIN") {
        return PublicKey::from_pem(value.as_bytes(), "(inline)");
    }
    let path = base.map_or_else(|| PathBuf::from(value), |b| b.join(value));
    PublicKey::read(&path)
}

/// Parses the YAML; the one problem says where it stopped.
fn parse(text: &str) -> Result<PolicySetFile, Problem> {
    serde_saphyr::from_str::<PolicySetFile>(text).map_err(|e| {
        let location = e.location();
        Problem {
            line: location.map(|l| l.line()),
            column: location.map(|l| l.column()),
            field: None,
            message: first_line(&e.to_string()),
        }
    })
}

/// serde-saphyr's message may carry a source snippet and repeats the position we
/// print in front of it (`error: line 6 column 7: ...`); keep only the sentence.
pub fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message).trim();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    let without_position = line.strip_prefix("line ").and_then(|rest| {
        let (_, after) = rest.split_once(" column ")?;
        let (column, text) = after.split_once(": ")?;
        column.chars().all(|c| c.is_ascii_digit()).then_some(text)
    });
    without_position.unwrap_or(line).to_string()
}

fn at<T>(spanned: &Spanned<T>, field: &str, message: String) -> Problem {
    let line = spanned.referenced.line();
    Problem {
        line: (line > 0).then_some(line),
        column: (line > 0).then(|| spanned.referenced.column()),
        field: Some(field.to_string()),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::first_line;

    /// Built-in modules load from the native code build.rs precompiled for this
    /// engine configuration, not by compiling (the pool size does not matter).
    #[test]
    fn built_in_modules_load_precompiled() {
        for slots in [1, 8, 128] {
            let engine = crate::engine::Engine::new(&crate::engine::EngineConfig {
                max_concurrent_instances: slots,
            })
            .unwrap_or_else(|e| panic!("{e}"));
            let cache = super::ModuleCache::default();
            let set = super::Loader {
                engine: &engine,
                cache: &cache,
            }
            .builtin()
            .unwrap_or_else(|e| panic!("{e}"));
            for policy in &set.policies {
                assert_eq!(
                    policy.module.origin(),
                    crate::engine::Origin::Precompiled,
                    "{} with {slots} slots",
                    policy.name
                );
            }
        }
    }

    /// Precompiled code that does not fit (here: garbage) falls back to compiling.
    #[test]
    fn unusable_precompiled_code_is_compiled_instead() {
        let engine = crate::engine::Engine::new(&crate::engine::EngineConfig {
            max_concurrent_instances: 2,
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let wasm = crate::builtin::module("no-latest-tag").unwrap_or_default();
        let module = engine
            .load_module(wasm, Some(b"not native code"), None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(module.origin(), crate::engine::Origin::Compiled);
    }

    /// The pod-bearing kinds have one definition, the SDK's; the built-in set's
    /// `podBearingKinds` anchor (used by every policy that reads containers) must
    /// list exactly those.
    #[test]
    fn the_built_in_pod_bearing_kinds_are_the_sdks() {
        let engine = crate::engine::Engine::new(&crate::engine::EngineConfig {
            max_concurrent_instances: 2,
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let cache = super::ModuleCache::default();
        let set = super::Loader {
            engine: &engine,
            cache: &cache,
        }
        .builtin()
        .unwrap_or_else(|e| panic!("{e}"));
        let expected: Vec<(String, String)> = plate_policy_sdk::workload::POD_BEARING_KINDS
            .iter()
            .map(|(g, k)| (g.to_string(), k.to_string()))
            .collect();
        for name in ["no-latest-tag", "trusted-registries", "require-resources"] {
            let policy = set.policy(name).unwrap_or_else(|| panic!("no {name}"));
            let kinds: Vec<(String, String)> = policy
                .matcher
                .kinds
                .iter()
                .map(|k| (k.group.clone().unwrap_or_default(), k.kind.clone()))
                .collect();
            assert_eq!(kinds, expected, "{name}");
        }
    }

    #[test]
    fn yaml_messages_lose_the_repeated_position() {
        assert_eq!(
            first_line("error: line 6 column 7: unknown field `modul`\n  --> snippet"),
            "unknown field `modul`"
        );
        assert_eq!(first_line("plain message"), "plain message");
        assert_eq!(
            first_line("line 3 is not a position: x"),
            "line 3 is not a position: x"
        );
    }
}
