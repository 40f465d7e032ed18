//! Leader election for `audit --watch`: a `coordination.k8s.io/v1` Lease. Replicas
//! of the audit Deployment compete for it; only the holder audits and writes
//! reports. The holder renews it every `renew` and gives up (the process exits, to
//! be restarted as a follower) when it cannot; others take it over once it has not
//! been renewed for its duration. Updates carry the resourceVersion they read, so
//! two candidates can never both win.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};
use std::time::Duration;

/// Where the lease is and who this process is.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This candidate (the pod's name).
    pub identity: String,
    /// How long a lease stays held without a renewal.
    pub duration: Duration,
}

/// Why the lease could not be read or written (a conflict is not an error: the
/// attempt simply did not win).
#[derive(Debug, thiserror::Error)]
#[error("lease {namespace}/{name}: {source}")]
pub struct LeaseError {
    namespace: String,
    name: String,
    source: kube::Error,
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// Takes or renews the lease; true when this candidate holds it afterwards.
pub async fn try_acquire(client: &Client, config: &LeaseConfig) -> Result<bool, LeaseError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    let fail = |source| LeaseError {
        namespace: config.namespace.clone(),
        name: config.name.clone(),
        source,
    };
    let duration = i32::try_from(config.duration.as_secs()).unwrap_or(i32::MAX);
    let existing = api.get_opt(&config.name).await.map_err(fail)?;
    let Some(mut lease) = existing else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                namespace: Some(config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(duration),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(fail(e)),
        };
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let mine = spec.holder_identity.as_deref() == Some(config.identity.as_str());
    let held_for = i64::from(spec.lease_duration_seconds.unwrap_or(duration));
    let expired = match &spec.renew_time {
        Some(MicroTime(at)) => {
            k8s_openapi::jiff::Timestamp::now().as_second()
                > at.as_second().saturating_add(held_for)
        }
        None => true,
    };
    let free = spec.holder_identity.as_deref().is_none_or(str::is_empty);
    if !(mine || expired || free) {
        return Ok(false);
    }
    if !mine {
        spec.acquire_time = Some(now());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
    }
    spec.holder_identity = Some(config.identity.clone());
    spec.lease_duration_seconds = Some(duration);
    spec.renew_time = Some(now());
    // The update carries the resourceVersion read above: a concurrent winner makes it a conflict.
    match api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(e) => Err(fail(e)),
    }
}
