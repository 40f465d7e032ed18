//! `plate-policy new`: writes a policy crate that builds to wasm from anywhere. The
//! link flags come from the repository's own `.cargo/config.toml` (embedded, so the
//! scaffold cannot drift from what the built-in policies are built with); the SDK is
//! a path dependency inside a checkout of this repository and a version outside.
//!
//! `new --lang go` writes a Go module instead: the Go SDK is a `replace` of the
//! checkout's `policies/sdk-go`, or, outside a checkout, a copy of it (embedded in
//! this binary) in `plate-sdk/`, so the scaffold builds with plain `go build`
//! wherever it is.

use std::path::{Component, Path, PathBuf};
use thiserror::Error;

/// The link flags of the ABI (stack size, initial memory), as the built-in
/// policies get them.
const CARGO_CONFIG: &str = include_str!("../../../.cargo/config.toml");
const CARGO_TOML: &str = include_str!("template/Cargo.toml.tmpl");
const LIB_RS: &str = include_str!("template/lib.rs.tmpl");
const POLICY_SET: &str = include_str!("template/policy-set.yaml.tmpl");
const SUITE: &str = include_str!("template/suite.yaml.tmpl");
const GITIGNORE: &str = include_str!("template/gitignore.tmpl");

const GO_MOD: &str = include_str!("template/go/go.mod.tmpl");
const GO_MAIN: &str = include_str!("template/go/main.go.tmpl");
const GO_MAIN_TEST: &str = include_str!("template/go/main_test.go.tmpl");
const GO_POLICY_SET: &str = include_str!("template/go/policy-set.yaml.tmpl");
const GO_GITIGNORE: &str = include_str!("template/go/gitignore.tmpl");

/// The Go SDK's files (policies/sdk-go without its tests), written into a Go
/// scaffold made outside a checkout. A test checks the list is the directory's.
const GO_SDK: &[(&str, &str)] = &[
    ("go.mod", include_str!("../../../policies/sdk-go/go.mod")),
    ("abi.go", include_str!("../../../policies/sdk-go/abi.go")),
    (
        "address.go",
        include_str!("../../../policies/sdk-go/address.go"),
    ),
    ("doc.go", include_str!("../../../policies/sdk-go/doc.go")),
    (
        "encode.go",
        include_str!("../../../policies/sdk-go/encode.go"),
    ),
    (
        "envelope.go",
        include_str!("../../../policies/sdk-go/envelope.go"),
    ),
    (
        "exports_wasm.go",
        include_str!("../../../policies/sdk-go/exports_wasm.go"),
    ),
    (
        "image.go",
        include_str!("../../../policies/sdk-go/image.go"),
    ),
    (
        "lookup.go",
        include_str!("../../../policies/sdk-go/lookup.go"),
    ),
    (
        "lookup_other.go",
        include_str!("../../../policies/sdk-go/lookup_other.go"),
    ),
    (
        "lookup_wasm.go",
        include_str!("../../../policies/sdk-go/lookup_wasm.go"),
    ),
    (
        "quote.go",
        include_str!("../../../policies/sdk-go/quote.go"),
    ),
    (
        "register.go",
        include_str!("../../../policies/sdk-go/register.go"),
    ),
    (
        "request.go",
        include_str!("../../../policies/sdk-go/request.go"),
    ),
    ("scan.go", include_str!("../../../policies/sdk-go/scan.go")),
    (
        "verdict.go",
        include_str!("../../../policies/sdk-go/verdict.go"),
    ),
    (
        "workload.go",
        include_str!("../../../policies/sdk-go/workload.go"),
    ),
];

/// The directory of a Go scaffold its embedded SDK copy goes to.
const GO_SDK_COPY: &str = "plate-sdk";

/// The language of a new policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Lang {
    /// A Rust crate on the Rust SDK (policies/sdk).
    #[default]
    Rust,
    /// A Go module on the Go SDK (policies/sdk-go), a WASI reactor.
    Go,
}

/// Where the new crate gets the SDK from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sdk {
    /// A directory holding the SDK crate (`policies/sdk` of a checkout), or the Go
    /// SDK module (`policies/sdk-go`).
    Path(PathBuf),
    /// A published version.
    Version(String),
    /// A copy of the Go SDK written into the new module (`plate-sdk/`).
    Copy(PathBuf),
}

#[derive(Debug, Error)]
pub enum ScaffoldError {
    #[error(
        "{0:?} is not a policy name: use lowercase letters, digits and -, starting with a letter, at most 63"
    )]
    Name(String),
    #[error("{} already exists; choose another name or remove it", .0.display())]
    Exists(PathBuf),
    #[error("--sdk-path {}: {message}", path.display())]
    SdkPath { path: PathBuf, message: String },
    #[error(
        "--sdk-version is for Rust policies; a Go policy takes --sdk-path DIR (policies/sdk-go of a checkout) or, by default, a copy of the SDK"
    )]
    GoSdkVersion,
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What was written.
#[derive(Debug)]
pub struct Scaffold {
    pub dir: PathBuf,
    pub name: String,
    pub sdk: Sdk,
    pub files: Vec<PathBuf>,
}

/// Policy names are crate names too: lowercase letters, digits and `-`.
pub fn valid_name(name: &str) -> bool {
    name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The SDK directory of the plate-policy checkout `dir` is in, if it is in one.
pub fn sdk_of_checkout(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .map(|d| d.join("policies").join("sdk"))
        .find(|sdk| is_sdk(sdk))
}

/// The Go SDK directory of the plate-policy checkout `dir` is in, if it is in one.
pub fn go_sdk_of_checkout(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .map(|d| d.join("policies").join("sdk-go"))
        .find(|sdk| is_go_sdk(sdk))
}

fn is_go_sdk(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("go.mod")).is_ok_and(|text| {
        text.lines()
            .any(|l| l.trim() == "module policy.plate.dev/sdk")
    })
}

fn is_sdk(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|text| {
        text.lines()
            .any(|l| l.trim() == r#"name = "plate-policy-sdk""#)
    })
}

/// `to` relative to `from` (both absolute, without `..`).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to[common..] {
        out.push(c.as_os_str());
    }
    out
}

/// Makes `path` absolute and resolves what exists of it (the new directory does
/// not exist yet).
fn absolute(path: &Path) -> Result<PathBuf, std::io::Error> {
    let path = std::path::absolute(path)?;
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) if parent.exists() => Ok(parent.canonicalize()?.join(name)),
        _ => Ok(path),
    }
}

/// Writes the crate to `dest` (its last component is the policy's name).
/// `sdk_path`/`sdk_version` choose the SDK; by default a checkout's own SDK, else
/// this release's version.
pub fn create(
    dest: &Path,
    lang: Lang,
    sdk_path: Option<&Path>,
    sdk_version: Option<&str>,
) -> Result<Scaffold, ScaffoldError> {
    if lang == Lang::Go {
        if sdk_version.is_some() {
            return Err(ScaffoldError::GoSdkVersion);
        }
        return create_go(dest, sdk_path);
    }
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !valid_name(&name) {
        return Err(ScaffoldError::Name(name));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ScaffoldError::Write { path, source }
    };
    let dir = absolute(dest).map_err(io(dest))?;
    if dir.exists() {
        return Err(ScaffoldError::Exists(dest.to_path_buf()));
    }
    let sdk = match (sdk_path, sdk_version) {
        (Some(path), _) => {
            let found = path.canonicalize().map_err(|e| ScaffoldError::SdkPath {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
            if !is_sdk(&found) {
                return Err(ScaffoldError::SdkPath {
                    path: path.to_path_buf(),
                    message: "holds no Cargo.toml of the plate-policy-sdk crate (policies/sdk of a plate-policy checkout)".into(),
                });
            }
            Sdk::Path(found)
        }
        (None, Some(version)) => Sdk::Version(version.to_string()),
        (None, None) => match dir.parent().and_then(sdk_of_checkout) {
            Some(found) => Sdk::Path(found),
            None => Sdk::Version(env!("CARGO_PKG_VERSION").to_string()),
        },
    };
    let dependency = match &sdk {
        // Inside the checkout a relative path keeps working when it moves.
        Sdk::Path(path) => {
            let shown = if sdk_path.is_none() {
                relative(&dir, path)
            } else {
                path.clone()
            };
            format!(
                "plate-policy-sdk = {{ path = {:?} }}",
                shown.display().to_string()
            )
        }
        Sdk::Version(version) => format!("plate-policy-sdk = {:?}", version),
        // Only Go scaffolds copy the SDK; as a path it would still be right.
        Sdk::Copy(path) => format!(
            "plate-policy-sdk = {{ path = {:?} }}",
            path.display().to_string()
        ),
    };
    let fill = |template: &str| {
        template
            .replace("{{name}}", &name)
            .replace("{{wasm}}", &name.replace('-', "_"))
            .replace("{{sdk}}", &dependency)
    };
    let suite = format!("tests/{name}.yaml");
    let files: [(&str, String); 6] = [
        ("Cargo.toml", fill(CARGO_TOML)),
        (".cargo/config.toml", CARGO_CONFIG.to_string()),
        (".gitignore", GITIGNORE.to_string()),
        ("src/lib.rs", fill(LIB_RS)),
        ("policy-set.yaml", fill(POLICY_SET)),
        (&suite, fill(SUITE)),
    ];
    let written = write_files(
        &dir,
        files
            .iter()
            .map(|(rel, text)| (rel.to_string(), text.clone())),
    )?;
    Ok(Scaffold {
        dir,
        name,
        sdk,
        files: written,
    })
}

/// Writes `files` (relative path, text) under `dir`; the relative paths written.
fn write_files(
    dir: &Path,
    files: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<PathBuf>, ScaffoldError> {
    let mut written = Vec::new();
    for (rel, text) in files {
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ScaffoldError::Write {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&path, text).map_err(|source| ScaffoldError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(PathBuf::from(rel));
    }
    Ok(written)
}

/// `new --lang go`: a Go module that builds with plain `go build`.
fn create_go(dest: &Path, sdk_path: Option<&Path>) -> Result<Scaffold, ScaffoldError> {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !valid_name(&name) {
        return Err(ScaffoldError::Name(name));
    }
    let dir = absolute(dest).map_err(|source| ScaffoldError::Write {
        path: dest.to_path_buf(),
        source,
    })?;
    if dir.exists() {
        return Err(ScaffoldError::Exists(dest.to_path_buf()));
    }
    let sdk = match sdk_path {
        Some(path) => {
            let found = path.canonicalize().map_err(|e| ScaffoldError::SdkPath {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
            if !is_go_sdk(&found) {
                return Err(ScaffoldError::SdkPath {
                    path: path.to_path_buf(),
                    message: "holds no go.mod of the Go SDK (module policy.plate.dev/sdk: policies/sdk-go of a plate-policy checkout)".into(),
                });
            }
            Sdk::Path(found)
        }
        None => match dir.parent().and_then(go_sdk_of_checkout) {
            Some(found) => Sdk::Path(found),
            None => Sdk::Copy(dir.join(GO_SDK_COPY)),
        },
    };
    // Go wants a replacement path to start with ./ or ../ or be absolute.
    let replacement = match &sdk {
        Sdk::Path(path) if sdk_path.is_none() => {
            let rel = relative(&dir, path).display().to_string();
            if rel.starts_with("..") {
                rel
            } else {
                format!("./{rel}")
            }
        }
        Sdk::Path(path) => path.display().to_string(),
        Sdk::Copy(_) | Sdk::Version(_) => format!("./{GO_SDK_COPY}"),
    };
    let fill = |template: &str| {
        template
            .replace("{{name}}", &name)
            .replace("{{module}}", &name)
            .replace("{{sdk}}", &replacement)
    };
    let mut files: Vec<(String, String)> = vec![
        ("go.mod".into(), fill(GO_MOD)),
        ("main.go".into(), fill(GO_MAIN)),
        ("main_test.go".into(), fill(GO_MAIN_TEST)),
        (".gitignore".into(), GO_GITIGNORE.to_string()),
        ("policy-set.yaml".into(), fill(GO_POLICY_SET)),
        // The same rule as the Rust starter, so the same cases.
        (format!("tests/{name}.yaml"), fill(SUITE).replace(
            "`plate-policy test tests` runs them once the module\n# is built.",
            "`plate-policy test tests` runs them once the module\n# is built (GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o NAME.wasm .).",
        )),
    ];
    if matches!(sdk, Sdk::Copy(_)) {
        files.extend(
            GO_SDK
                .iter()
                .map(|(file, text)| (format!("{GO_SDK_COPY}/{file}"), text.to_string())),
        );
    }
    let written = write_files(&dir, files)?;
    Ok(Scaffold {
        dir,
        name,
        sdk,
        files: written,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_crate_and_policy_names() {
        for good in ["require-owner", "p1", "a"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "",
            "Require",
            "1st",
            "-x",
            "x-",
            "a_b",
            "a.b",
            &"x".repeat(64),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn relative_paths_climb_to_the_common_ancestor() {
        assert_eq!(
            relative(Path::new("/r/policies/new"), Path::new("/r/policies/sdk")),
            PathBuf::from("../sdk")
        );
        assert_eq!(
            relative(Path::new("/r/a/b"), Path::new("/r/policies/sdk")),
            PathBuf::from("../../policies/sdk")
        );
    }

    #[test]
    fn the_embedded_go_sdk_is_the_repositorys_whole_sdk() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/sdk-go");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n == "go.mod" || (n.ends_with(".go") && !n.ends_with("_test.go")))
                    .collect()
            })
            .unwrap_or_default();
        on_disk.sort();
        let mut embedded: Vec<String> = GO_SDK.iter().map(|(n, _)| n.to_string()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk, "update GO_SDK in kit/scaffold.rs");
    }

    #[test]
    fn the_link_flags_are_the_repositorys() {
        assert!(CARGO_CONFIG.contains("[target.wasm32-unknown-unknown]"));
        assert!(CARGO_CONFIG.contains("-zstack-size="));
    }
}
