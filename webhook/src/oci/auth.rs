//! Registry credentials from a Docker `config.json`: the file `docker login` writes
//! and the `.dockerconfigjson` key of a `kubernetes.io/dockerconfigjson` Secret.
//! Only inline credentials are read (`auth`, or `username` and `password`);
//! credential helpers run programs and are not supported (said when one is named).

use base64::Engine as _;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// A user name and password for one registry (HTTP basic auth, or the
/// credentials a registry's token service exchanges for a token).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Credentials by registry host, from one file.
#[derive(Debug, Clone, Default)]
pub struct DockerConfig {
    /// Where they were read from, for messages.
    pub source: Option<PathBuf>,
    auths: BTreeMap<String, Credentials>,
}

/// Why a credentials file is refused.
#[derive(Debug, Error)]
pub enum AuthError {
    #[error("cannot read registry credentials {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("registry credentials {}: not a Docker config.json: {message}", path.display())]
    Format { path: PathBuf, message: String },
    #[error(
        "registry credentials {}: auths.{registry:?}: {message}",
        path.display()
    )]
    Entry {
        path: PathBuf,
        registry: String,
        message: String,
    },
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
}

/// `https://host/v1/` and `host` name the same registry.
fn host_key(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key);
    match host {
        // Docker Hub's historical names.
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        other => other.to_ascii_lowercase(),
    }
}

impl DockerConfig {
    /// Reads `path` (a Docker config.json).
    pub fn read(path: &Path) -> Result<DockerConfig, AuthError> {
        let text = std::fs::read(path).map_err(|source| AuthError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &[u8], path: &Path) -> Result<DockerConfig, AuthError> {
        let file: File = serde_json::from_slice(text).map_err(|e| AuthError::Format {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if let Some(store) = &file.creds_store
            && file
                .auths
                .values()
                .all(|e| e.auth.is_none() && e.username.is_none())
        {
            tracing::warn!(file = %path.display(), store, "registry credentials: credential helpers (credsStore) are not supported; only auths entries with auth or username and password are read");
        }
        let mut auths = BTreeMap::new();
        for (registry, entry) in file.auths {
            let entry_error = |message: String| AuthError::Entry {
                path: path.to_path_buf(),
                registry: registry.clone(),
                message,
            };
            if entry.identity_token.is_some() && entry.auth.is_none() && entry.username.is_none() {
                return Err(entry_error(
                    "identitytoken (OAuth refresh tokens) is not supported; give username and password or auth".into(),
                ));
            }
            let credentials = match (entry.auth, entry.username, entry.password) {
                (_, Some(username), Some(password)) => Credentials { username, password },
                (Some(auth), _, _) => {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(auth.trim())
                        .map_err(|e| entry_error(format!("auth is not base64: {e}")))?;
                    let text = String::from_utf8(decoded)
                        .map_err(|_| entry_error("auth is not UTF-8 once decoded".into()))?;
                    let (username, password) = text.split_once(':').ok_or_else(|| {
                        entry_error(
                            "auth must be base64 of USERNAME:PASSWORD (no colon found)".into(),
                        )
                    })?;
                    Credentials {
                        username: username.to_string(),
                        password: password.to_string(),
                    }
                }
                _ => {
                    return Err(entry_error(
                        "has neither auth nor username and password".into(),
                    ));
                }
            };
            auths.insert(host_key(&registry), credentials);
        }
        Ok(DockerConfig {
            source: Some(path.to_path_buf()),
            auths,
        })
    }

    /// One registry's credentials given directly (`--username`, `--password-stdin`).
    pub fn single(registry: &str, credentials: Credentials) -> DockerConfig {
        DockerConfig {
            source: None,
            auths: BTreeMap::from([(host_key(registry), credentials)]),
        }
    }

    /// The credentials for `registry` (host[:port]), if the file has some.
    pub fn credentials(&self, registry: &str) -> Option<&Credentials> {
        self.auths.get(&host_key(registry))
    }

    /// The registries it has credentials for.
    pub fn registries(&self) -> impl Iterator<Item = &str> {
        self.auths.keys().map(String::as_str)
    }
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, if it exists.
pub fn default_config_path() -> Option<PathBuf> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))?;
    let path = dir.join("config.json");
    path.is_file().then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_and_username_password_entries_are_read_by_host() {
        let text = br#"{"auths":{
            "https://registry.example.com:5000/v1/": {"auth": "YWxpY2U6czNjcjN0OndpdGg6Y29sb25z"},
            "ghcr.io": {"username": "bob", "password": "pw"}
        }}"#;
        let config =
            DockerConfig::parse(text, Path::new("c.json")).unwrap_or_else(|e| panic!("{e}"));
        let alice = config
            .credentials("registry.example.com:5000")
            .unwrap_or_else(|| panic!("no entry"));
        assert_eq!(alice.username, "alice");
        assert_eq!(alice.password, "s3cr3t:with:colons");
        assert_eq!(
            config.credentials("GHCR.io").map(|c| c.username.as_str()),
            Some("bob")
        );
        assert!(config.credentials("registry.example.com").is_none());
        assert!(!format!("{alice:?}").contains("s3cr3t"));
    }

    #[test]
    fn bad_entries_name_the_file_and_the_registry() {
        let cases: [(&[u8], &str); 4] = [
            (b"not json", "c.json: not a Docker config.json"),
            (
                br#"{"auths":{"r.io":{"auth":"%%%"}}}"#,
                "auths.\"r.io\": auth is not base64",
            ),
            (
                br#"{"auths":{"r.io":{"auth":"YWxpY2U="}}}"#,
                "no colon found",
            ),
            (
                br#"{"auths":{"r.io":{}}}"#,
                "has neither auth nor username and password",
            ),
        ];
        for (text, expected) in cases {
            match DockerConfig::parse(text, Path::new("c.json")) {
                Ok(_) => panic!("{} was accepted", String::from_utf8_lossy(text)),
                Err(e) => assert!(e.to_string().contains(expected), "{e}"),
            }
        }
    }
}
