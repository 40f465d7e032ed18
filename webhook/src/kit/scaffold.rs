//! `plate-policy new`: writes a policy crate that builds to wasm from anywhere. The
//! link flags come from the repository's own `.cargo/config.toml` (embedded, so the
//! scaffold cannot drift from what the built-in policies are built with); the SDK is
//! a path dependency inside a checkout of this repository and a version outside.

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

/// Where the new crate gets the SDK from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sdk {
    /// A directory holding the SDK crate (`policies/sdk` of a checkout).
    Path(PathBuf),
    /// A published version.
    Version(String),
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
    sdk_path: Option<&Path>,
    sdk_version: Option<&str>,
) -> Result<Scaffold, ScaffoldError> {
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
    let mut written = Vec::new();
    for (rel, text) in &files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, text).map_err(io(&path))?;
        written.push(PathBuf::from(rel));
    }
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
    fn the_link_flags_are_the_repositorys() {
        assert!(CARGO_CONFIG.contains("[target.wasm32-unknown-unknown]"));
        assert!(CARGO_CONFIG.contains("-zstack-size="));
    }
}
