//! Policy `no-latest-tag`: every container image must name a fixed build: a version
//! tag other than the forbidden ones (default `latest`) or a digest. An untagged
//! image is implicitly `latest`. Covers containers, init and ephemeral containers
//! of every pod-bearing kind. On the `ephemeralcontainers` subresource (what
//! `kubectl debug` uses) only ephemeral containers can change, so only they are
//! checked: debugging a pod must not be blocked by the pod's existing images.

use plate_policy_sdk::pattern::glob_match;
use plate_policy_sdk::workload::containers_under_review;
use plate_policy_sdk::{ImageReference, PolicySettings, ValidationRequest, Verdict, export_policy};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Tags that float: an image with one of these (or none, when `latest` is listed) is denied.
    #[serde(default = "default_forbidden_tags")]
    pub forbidden_tags: Vec<String>,
    /// Repositories (globs over the full name, e.g. `registry.k8s.io/pause`) that are exempt.
    #[serde(default)]
    pub exempt_images: Vec<String>,
    /// On UPDATE, judge only new or changed images, so an existing violation does
    /// not block unrelated updates (Kyverno's `allowExistingViolations`).
    #[serde(default = "yes")]
    pub allow_existing_violations: bool,
}

fn yes() -> bool {
    true
}

fn default_forbidden_tags() -> Vec<String> {
    vec!["latest".to_string()]
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            forbidden_tags: default_forbidden_tags(),
            exempt_images: Vec::new(),
            allow_existing_violations: true,
        }
    }
}

impl PolicySettings for Settings {
    fn validate(&self) -> Result<(), String> {
        if self.forbidden_tags.is_empty() {
            return Err(
                "forbiddenTags is empty: list at least one tag (usually \"latest\")".into(),
            );
        }
        for tag in &self.forbidden_tags {
            if ImageReference::parse(&format!("x:{tag}")).is_err() {
                return Err(format!("forbiddenTags: {tag:?} is not a valid image tag"));
            }
        }
        if let Some(empty) = self.exempt_images.iter().position(|p| p.is_empty()) {
            return Err(format!("exemptImages[{empty}] is empty"));
        }
        Ok(())
    }
}

pub fn validate(req: &ValidationRequest<Settings>) -> Verdict {
    let list = match containers_under_review(&req.request, req.settings.allow_existing_violations) {
        Ok(list) => list,
        Err(e) => return Verdict::error(e),
    };
    let env = req.environment_name();
    let settings = &req.settings;
    let mut violations = Vec::new();
    for container in &list {
        let Some(image) = container.image.as_deref() else {
            continue;
        };
        let who = format!("{} {:?}", container.section.noun(), container.name);
        let reference = match ImageReference::parse(image) {
            Ok(reference) => reference,
            Err(e) => {
                violations.push(format!(
                    "{who} uses image {image:?}, which is not a valid image reference ({e}); \
                     write registry/repository:tag or @sha256:digest"
                ));
                continue;
            }
        };
        if reference.is_pinned() {
            continue;
        }
        let repository = reference.repository();
        if settings
            .exempt_images
            .iter()
            .any(|p| glob_match(p, &repository))
        {
            continue;
        }
        let tag = reference.effective_tag();
        if !settings.forbidden_tags.iter().any(|t| t == tag) {
            continue;
        }
        let what = if reference.tag.is_some() {
            format!("the {tag:?} tag is not allowed in {env}")
        } else {
            format!("an untagged image means {tag:?}, which is not allowed in {env}")
        };
        violations.push(format!(
            "{who} uses image {image:?}: {what}; pin a version tag or a digest"
        ));
    }
    Verdict::deny_all(violations)
}

export_policy!(validate, Settings);
