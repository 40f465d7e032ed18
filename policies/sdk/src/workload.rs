//! Containers of every pod-bearing object: Pods, pod templates, the built-in
//! workload kinds, and any other kind that embeds a pod template at
//! `spec.template.spec` (Argo Rollouts, OpenKruise CloneSets, ...).

use serde::Deserialize;
use serde_json::value::RawValue;

/// Which list of the pod spec a container is in; names match the Kubernetes field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerSection {
    Containers,
    InitContainers,
    EphemeralContainers,
}

impl ContainerSection {
    /// Singular noun for messages: `container`, `init container`, `ephemeral container`.
    pub fn noun(self) -> &'static str {
        match self {
            ContainerSection::Containers => "container",
            ContainerSection::InitContainers => "init container",
            ContainerSection::EphemeralContainers => "ephemeral container",
        }
    }
}

/// One container of a pod spec, with the fields policies look at.
#[derive(Debug, Clone)]
pub struct ContainerRef {
    pub section: ContainerSection,
    pub name: String,
    pub image: Option<String>,
    /// The container's `resources`, raw, for policies that read them.
    pub resources: Option<Box<RawValue>>,
}

// `null` lists and fields read as empty: `helm template` writes `initContainers:`
// with no value, and the API server would drop it rather than reject it.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PodSpec {
    #[serde(default, deserialize_with = "crate::nullable")]
    containers: Vec<Container>,
    #[serde(default, deserialize_with = "crate::nullable")]
    init_containers: Vec<Container>,
    #[serde(default, deserialize_with = "crate::nullable")]
    ephemeral_containers: Vec<Container>,
}

#[derive(Deserialize)]
struct Container {
    #[serde(default, deserialize_with = "crate::nullable")]
    name: String,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    resources: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct WithSpec<T> {
    #[serde(default = "Option::default")]
    spec: Option<T>,
}

#[derive(Deserialize)]
struct TemplateHolder {
    #[serde(default)]
    template: Option<WithSpec<PodSpec>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CronJobSpec {
    #[serde(default)]
    job_template: Option<WithSpec<TemplateHolder>>,
}

/// True for the kinds whose objects carry a pod spec by definition.
pub fn is_pod_bearing_kind(kind: &str) -> bool {
    matches!(
        kind,
        "Pod"
            | "PodTemplate"
            | "Deployment"
            | "StatefulSet"
            | "DaemonSet"
            | "ReplicaSet"
            | "ReplicationController"
            | "Job"
            | "CronJob"
    )
}

/// Every container of `object` (of kind `kind`), in spec order: containers, init
/// containers, ephemeral containers. Objects with no pod spec give an empty list.
pub fn containers(kind: &str, object: &str) -> Result<Vec<ContainerRef>, String> {
    let read = |e: serde_json::Error| format!("cannot read the pod spec of the {kind}: {e}");
    let spec: Option<PodSpec> = match kind {
        "Pod" => {
            serde_json::from_str::<WithSpec<PodSpec>>(object)
                .map_err(read)?
                .spec
        }
        "PodTemplate" => serde_json::from_str::<TemplateHolder>(object)
            .map_err(read)?
            .template
            .and_then(|t| t.spec),
        "CronJob" => serde_json::from_str::<WithSpec<CronJobSpec>>(object)
            .map_err(read)?
            .spec
            .and_then(|s| s.job_template)
            .and_then(|j| j.spec)
            .and_then(|j| j.template)
            .and_then(|t| t.spec),
        // The built-in workloads and any custom kind with `spec.template.spec`.
        _ => match serde_json::from_str::<WithSpec<TemplateHolder>>(object) {
            Ok(holder) => holder.spec.and_then(|s| s.template).and_then(|t| t.spec),
            Err(e) if is_pod_bearing_kind(kind) => return Err(read(e)),
            // A custom kind whose `spec.template` is something else has no pod spec.
            Err(_) => None,
        },
    };
    let Some(spec) = spec else {
        return Ok(Vec::new());
    };
    let sections = [
        (ContainerSection::Containers, spec.containers),
        (ContainerSection::InitContainers, spec.init_containers),
        (
            ContainerSection::EphemeralContainers,
            spec.ephemeral_containers,
        ),
    ];
    Ok(sections
        .into_iter()
        .flat_map(|(section, list)| {
            list.into_iter().map(move |c| ContainerRef {
                section,
                name: c.name,
                image: c.image,
                resources: c.resources,
            })
        })
        .collect())
}

/// The containers a request asks a policy to judge:
/// - on the `ephemeralcontainers` subresource (what `kubectl debug` uses) only
///   ephemeral containers, the only ones that can change there;
/// - on an UPDATE with `allow_existing_violations`, only containers that are new or
///   whose image changed: a violation that already exists does not block unrelated
///   updates (a label change, a controller removing a finalizer), as Kyverno's
///   `allowExistingViolations` does. New and changed images are always judged.
pub fn containers_under_review(
    request: &crate::AdmissionRequest,
    allow_existing_violations: bool,
) -> Result<Vec<ContainerRef>, String> {
    let kind = request.kind.kind.as_str();
    let Some(object) = request.object.as_ref() else {
        return Ok(Vec::new());
    };
    let mut list = containers(kind, object.get())?;
    if request.sub_resource.as_deref() == Some("ephemeralcontainers") {
        list.retain(|c| c.section == ContainerSection::EphemeralContainers);
    }
    if allow_existing_violations
        && request.operation == "UPDATE"
        && let Some(old) = request.old_object.as_ref().filter(|o| o.get() != "null")
    {
        // An unreadable old object hides nothing: judge every container.
        let before = containers(kind, old.get()).unwrap_or_default();
        list.retain(|c| {
            !before
                .iter()
                .any(|b| b.section == c.section && b.name == c.name && b.image == c.image)
        });
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(kind: &str, object: &str) -> Vec<(ContainerSection, String, String)> {
        containers(kind, object)
            .unwrap_or_else(|e| panic!("{kind}: {e}"))
            .into_iter()
            .map(|c| (c.section, c.name, c.image.unwrap_or_default()))
            .collect()
    }

    const POD_SPEC: &str = r#"{"containers":[{"name":"a","image":"a:1"}],
        "initContainers":[{"name":"i","image":"i:1"}],
        "ephemeralContainers":[{"name":"e","image":"e:1"}]}"#;

    #[test]
    fn finds_containers_in_every_pod_bearing_kind() {
        let wrapped = [
            ("Pod", format!(r#"{{"spec":{POD_SPEC}}}"#)),
            (
                "PodTemplate",
                format!(r#"{{"template":{{"spec":{POD_SPEC}}}}}"#),
            ),
            (
                "Deployment",
                format!(r#"{{"spec":{{"template":{{"spec":{POD_SPEC}}}}}}}"#),
            ),
            (
                "StatefulSet",
                format!(r#"{{"spec":{{"template":{{"spec":{POD_SPEC}}}}}}}"#),
            ),
            (
                "DaemonSet",
                format!(r#"{{"spec":{{"template":{{"spec":{POD_SPEC}}}}}}}"#),
            ),
            (
                "ReplicaSet",
                format!(r#"{{"spec":{{"template":{{"spec":{POD_SPEC}}}}}}}"#),
            ),
            (
                "ReplicationController",
                format!(r#"{{"spec":{{"template":{{"spec":{POD_SPEC}}}}}}}"#),
            ),
            (
                "Job",
                format!(r#"{{"spec":{{"template":{{"spec":{POD_SPEC}}}}}}}"#),
            ),
            (
                "Rollout",
                format!(r#"{{"spec":{{"template":{{"spec":{POD_SPEC}}}}}}}"#),
            ),
            (
                "CronJob",
                format!(
                    r#"{{"spec":{{"jobTemplate":{{"spec":{{"template":{{"spec":{POD_SPEC}}}}}}}}}}}"#
                ),
            ),
        ];
        for (kind, object) in wrapped {
            let found = images(kind, &object);
            assert_eq!(
                found,
                vec![
                    (ContainerSection::Containers, "a".into(), "a:1".into()),
                    (ContainerSection::InitContainers, "i".into(), "i:1".into()),
                    (
                        ContainerSection::EphemeralContainers,
                        "e".into(),
                        "e:1".into()
                    ),
                ],
                "{kind}"
            );
        }
    }

    #[test]
    fn objects_without_pod_spec_have_no_containers() {
        assert!(images("Deployment", r#"{"metadata":{"name":"x"}}"#).is_empty());
        assert!(images("Service", r#"{"spec":{"ports":[]}}"#).is_empty());
        assert!(images("Custom", r#"{"spec":{"template":"text"}}"#).is_empty());
    }

    #[test]
    fn null_lists_are_empty() {
        let object = r#"{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"a:1"}],"initContainers":null,"ephemeralContainers":null}}}}"#;
        assert_eq!(images("Deployment", object).len(), 1);
    }

    #[test]
    fn malformed_pod_spec_of_a_workload_is_an_error() {
        let err = containers(
            "Deployment",
            r#"{"spec":{"template":{"spec":{"containers":7}}}}"#,
        );
        assert!(err.is_err());
    }
}
