//! Containers of every pod-bearing object: Pods, pod templates, the built-in
//! workload kinds, and any other kind that embeds a pod template at
//! `spec.template.spec` (Argo Rollouts, OpenKruise CloneSets, ...).

use serde::Deserialize;
use serde_json::value::RawValue;

/// Which list of the pod spec a container is in; names match the Kubernetes field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerSection {
    /// `containers`.
    Containers,
    /// `initContainers`.
    InitContainers,
    /// `ephemeralContainers` (added by `kubectl debug`).
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

    /// The pod spec field: `containers`, `initContainers`, `ephemeralContainers`.
    pub fn field(self) -> &'static str {
        match self {
            ContainerSection::Containers => "containers",
            ContainerSection::InitContainers => "initContainers",
            ContainerSection::EphemeralContainers => "ephemeralContainers",
        }
    }

    /// The violation key prefix: `container`, `initContainer`, `ephemeralContainer`.
    pub fn key_prefix(self) -> &'static str {
        match self {
            ContainerSection::Containers => "container",
            ContainerSection::InitContainers => "initContainer",
            ContainerSection::EphemeralContainers => "ephemeralContainer",
        }
    }
}

/// One container of a pod spec, with the fields policies look at.
#[derive(Debug, Clone)]
pub struct ContainerRef {
    /// The list the container is in.
    pub section: ContainerSection,
    /// The container's `name`.
    pub name: String,
    /// The container's `image`, as written (None when it has none).
    pub image: Option<String>,
    /// The container's `resources`, raw, for policies that read them.
    pub resources: Option<Box<RawValue>>,
    /// Where the container is in the object: `spec.template.spec.containers[0]`.
    pub path: String,
}

impl ContainerRef {
    /// The stable violation key of this container: `container:api`,
    /// `initContainer:migrate`, `ephemeralContainer:debugger`.
    pub fn key(&self) -> String {
        format!("{}:{}", self.section.key_prefix(), self.name)
    }

    /// The path of one of the container's fields: `spec.containers[0].image`.
    pub fn field_path(&self, field: &str) -> String {
        format!("{}.{field}", self.path)
    }

    /// `container "api"`, for messages.
    pub fn describe(&self) -> String {
        format!("{} {:?}", self.section.noun(), self.name)
    }
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

/// The built-in kinds whose objects carry a pod spec by definition, as (API group,
/// kind): the one list of them. The built-in policy set's `podBearingKinds` anchor
/// must equal it (a host test checks).
pub const POD_BEARING_KINDS: &[(&str, &str)] = &[
    ("", "Pod"),
    ("", "PodTemplate"),
    ("", "ReplicationController"),
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("apps", "ReplicaSet"),
    ("batch", "Job"),
    ("batch", "CronJob"),
];

/// True for the kinds whose objects carry a pod spec by definition.
pub fn is_pod_bearing_kind(kind: &str) -> bool {
    POD_BEARING_KINDS.iter().any(|(_, k)| *k == kind)
}

/// Where a kind keeps its pod spec.
fn pod_spec_path(kind: &str) -> &'static str {
    match kind {
        "Pod" => "spec",
        "PodTemplate" => "template.spec",
        "CronJob" => "spec.jobTemplate.spec.template.spec",
        _ => "spec.template.spec",
    }
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
    let base = pod_spec_path(kind);
    Ok(sections
        .into_iter()
        .flat_map(|(section, list)| {
            list.into_iter()
                .enumerate()
                .map(move |(i, c)| ContainerRef {
                    section,
                    name: c.name,
                    image: c.image,
                    resources: c.resources,
                    path: format!("{base}.{}[{i}]", section.field()),
                })
        })
        .collect())
}

/// The containers a request asks a policy to judge: all of them, except on the
/// `ephemeralcontainers` subresource (what `kubectl debug` uses), where only the
/// ephemeral containers can change and so only they are judged. Violations an
/// UPDATE did not introduce are the host's business (`allowExistingViolations`).
pub fn containers_under_review(
    request: &crate::AdmissionRequest,
) -> Result<Vec<ContainerRef>, String> {
    let kind = request.kind.kind.as_str();
    let Some(object) = request.object.as_ref().filter(|o| o.get() != "null") else {
        return Ok(Vec::new());
    };
    let mut list = containers(kind, object.get())?;
    if request.sub_resource.as_deref() == Some("ephemeralcontainers") {
        list.retain(|c| c.section == ContainerSection::EphemeralContainers);
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
    fn paths_and_keys_name_the_field() {
        let deployment = format!(r#"{{"spec":{{"template":{{"spec":{POD_SPEC}}}}}}}"#);
        let found = containers("Deployment", &deployment).unwrap_or_default();
        let described: Vec<(String, String)> = found
            .iter()
            .map(|c| (c.key(), c.field_path("image")))
            .collect();
        assert_eq!(
            described,
            [
                (
                    "container:a".to_string(),
                    "spec.template.spec.containers[0].image".to_string()
                ),
                (
                    "initContainer:i".into(),
                    "spec.template.spec.initContainers[0].image".into()
                ),
                (
                    "ephemeralContainer:e".into(),
                    "spec.template.spec.ephemeralContainers[0].image".into()
                ),
            ]
        );
        let cron = r#"{"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"name":"x"},{"name":"y"}]}}}}}}"#;
        let found = containers("CronJob", cron).unwrap_or_default();
        assert_eq!(
            found[1].path,
            "spec.jobTemplate.spec.template.spec.containers[1]"
        );
        let pod = format!(r#"{{"spec":{POD_SPEC}}}"#);
        assert_eq!(
            containers("Pod", &pod).unwrap_or_default()[0].path,
            "spec.containers[0]"
        );
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
