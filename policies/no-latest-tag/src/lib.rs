//! Policy `no-latest-tag`: every container image must name a fixed build: a version
//! tag other than the forbidden ones (default `latest`) or a digest. An untagged
//! image is implicitly `latest`. Covers containers, init and ephemeral containers
//! of every pod-bearing kind. On the `ephemeralcontainers` subresource (what
//! `kubectl debug` uses) only ephemeral containers can change, so only they are
//! checked: debugging a pod must not be blocked by the pod's existing images.

use plate_policy_sdk::pattern::glob_match;
use plate_policy_sdk::workload::containers_under_review;
use plate_policy_sdk::{ImageReference, PolicySettings, ValidationRequest, Verdict, Violation};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Tags that float: an image with one of these (or none, when `latest` is listed) is denied.
    pub forbidden_tags: Vec<String>,
    /// Repositories (globs over the full name, e.g. `registry.k8s.io/pause`) that are exempt.
    pub exempt_images: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            forbidden_tags: vec!["latest".to_string()],
            exempt_images: Vec::new(),
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
    let list = match containers_under_review(&req.request) {
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
        let who = container.describe();
        let violation = |message: String, summary: String| {
            Violation::new(container.key(), message)
                .at(container.field_path("image"))
                .summary(format!("{}: {summary}", container.name))
        };
        let reference = match ImageReference::parse(image) {
            Ok(reference) => reference,
            Err(e) => {
                violations.push(violation(
                    format!(
                        "{who} uses image {image:?}, which is not a valid image reference ({e}); \
                         write registry/repository:tag or @sha256:digest"
                    ),
                    format!("{image:?} is not a valid image reference"),
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
        let (what, short) = if reference.tag.is_some() {
            (
                format!("the {tag:?} tag is not allowed in {env}"),
                format!("{image} uses the {tag:?} tag; pin a version or digest"),
            )
        } else {
            (
                format!("an untagged image means {tag:?}, which is not allowed in {env}"),
                format!("{image} is untagged ({tag:?}); pin a version or digest"),
            )
        };
        violations.push(violation(
            format!("{who} uses image {image:?}: {what}; pin a version tag or a digest"),
            short,
        ));
    }
    Verdict::from_violations(violations)
}

#[cfg(feature = "standalone")]
plate_policy_sdk::export_policy!(validate, Settings);
