//! The cluster suite: the chart installed with the real helm into a real kube-apiserver,
//! and the webhook called by that API server, with kubectl showing what users see.
//!
//! Needs the control plane and root: `sudo bash scripts/cluster.sh up`, then
//! `cargo test -p plate-policy --test cluster -- --ignored --test-threads=1`
//! (scripts/test.sh does both, and `down` at the end). How the harness works:
//! tests/support/cluster.rs and docs/testing.md.
//!
//! Every test starts from the baseline [`cluster()`] restores (release `plate-policy`
//! in plate-system with the prod values, two ready replicas, plate-prod and plate-stg
//! labelled), so no test depends on another's order; tests that change the release or
//! the replicas mark it dirty and the next one restores it. The guard also serialises
//! them, so `--test-threads=1` only keeps the output in order.

mod support;

use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::cluster::{
    Cluster, RELEASE, RELEASE_NS, TLS_SECRET, WEBHOOK, apply_tls_secret, cluster, kubectl_stdin,
    make_tls, namespace_manifest, pod_manifest, poll, unique,
};

const NEEDS: &str = "needs the control plane: scripts/cluster.sh up";
const PLATE_API_LATEST: &str = "harbor.cocdev.co.kr/plate/plate-api:latest";
const LATEST_DENIAL: &str = "[no-latest-tag] container \"web\" uses image \"harbor.cocdev.co.kr/plate/plate-api:latest\": the \"latest\" tag is not allowed in prod; pin a version tag or a digest";

fn denied_by_webhook(stderr: &str) -> String {
    format!("admission webhook \"{WEBHOOK}\" denied the request: {stderr}")
}

fn create(c: &Cluster, manifest: &str) -> support::cluster::Output {
    kubectl_stdin(&c.env, &["create"], manifest)
}

/// The `decided` log lines of every replica that mention all `needles`.
fn decided(c: &Cluster, needles: &[&str]) -> Vec<String> {
    let mut all = vec!["\"decided\""];
    all.extend_from_slice(needles);
    c.node
        .replicas()
        .iter()
        .flat_map(|r| r.log_lines_with(&all))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Point 3: the chart, installed for real.

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn chart_with_prod_values_is_accepted_by_the_api_server() {
    let c = cluster();
    let _ = NEEDS;
    let status = c
        .helm(&["status", RELEASE, "-n", RELEASE_NS, "-o", "json"])
        .success();
    let status: Value = serde_json::from_str(&status.stdout).unwrap_or_default();
    assert_eq!(status["info"]["status"], "deployed", "{status}");
    // Every object the prod values render exists in the API server (the CRD-backed ones
    // validated against cert-manager's and prometheus-operator's real schemas).
    for (kind, ns) in [
        ("validatingwebhookconfiguration/plate-policy", None),
        ("clusterrole/plate-policy", None),
        ("clusterrolebinding/plate-policy", None),
        ("deployment/plate-policy", Some(RELEASE_NS)),
        ("service/plate-policy", Some(RELEASE_NS)),
        ("serviceaccount/plate-policy", Some(RELEASE_NS)),
        ("configmap/plate-policy-policies", Some(RELEASE_NS)),
        ("configmap/plate-policy-dashboard", Some(RELEASE_NS)),
        ("poddisruptionbudget/plate-policy", Some(RELEASE_NS)),
        (
            "servicemonitor.monitoring.coreos.com/plate-policy",
            Some(RELEASE_NS),
        ),
        (
            "prometheusrule.monitoring.coreos.com/plate-policy",
            Some(RELEASE_NS),
        ),
    ] {
        let mut args = vec!["get", kind, "-o", "name"];
        if let Some(ns) = ns {
            args.extend(["-n", ns]);
        }
        c.kubectl(&args).success();
    }
    let vwc = c
        .kubectl(&[
            "get",
            "validatingwebhookconfiguration",
            RELEASE,
            "-o",
            "json",
        ])
        .success();
    let vwc: Value = serde_json::from_str(&vwc.stdout).unwrap_or_default();
    let hook = &vwc["webhooks"][0];
    assert_eq!(hook["failurePolicy"], "Fail");
    assert_eq!(
        hook["matchConditions"][0]["name"], "not-plate-policy-itself",
        "{hook}"
    );
    assert_eq!(
        hook["matchConditions"][0]["expression"],
        "request.userInfo.username != \"system:serviceaccount:plate-system:plate-policy\""
    );
    assert!(
        hook["clientConfig"]["caBundle"]
            .as_str()
            .is_some_and(|b| !b.is_empty())
    );
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn chart_with_stg_values_is_accepted_by_the_api_server() {
    let c = cluster();
    // Its own release and namespace; it runs no replica, and fails open.
    let ns = "plate-stg-system";
    let release = "plate-policy-stg";
    // Its namespace passes the webhook's own require-namespace-labels.
    c.apply(&namespace_manifest(ns, "staging")).success();
    let tls = make_tls(
        &c.env.state.join("tls/stg"),
        &format!("{release}.{ns}.svc"),
        30,
    );
    apply_tls_secret(&c.env, ns, "stg-serving", &tls);
    let ca = format!("tls.existingSecret.caBundle={}", tls.ca.display());
    let stg = support::cluster::values("values-stg.yaml");
    let chart = support::cluster::chart();
    let install = c.helm(&[
        "install",
        release,
        &chart,
        "-n",
        ns,
        "-f",
        &stg,
        "--set",
        "tls.mode=existingSecret",
        "--set",
        "tls.existingSecret.name=stg-serving",
        "--set-file",
        &ca,
    ]);
    let hook = c.kubectl(&[
        "get", "validatingwebhookconfiguration", release, "-o",
        "jsonpath={.webhooks[0].failurePolicy} {.webhooks[0].namespaceSelector.matchExpressions[0].values}",
    ]);
    let pdb = c.kubectl(&["-n", ns, "get", "poddisruptionbudget", "-o", "name"]);
    let replicas = c.kubectl(&[
        "-n",
        ns,
        "get",
        "deployment",
        release,
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    // Clean up before asserting, so a failure leaves no second webhook behind.
    let uninstall = c.helm(&["uninstall", release, "-n", ns, "--wait"]);
    let _ = c.kubectl(&["delete", "namespace", ns, "--wait=false"]);
    install.success();
    uninstall.success();
    assert_eq!(
        hook.success().stdout,
        "Ignore [\"kube-system\",\"plate-stg-system\"]"
    );
    assert_eq!(
        pdb.success().stdout.trim(),
        "",
        "stg values disable the PodDisruptionBudget"
    );
    assert_eq!(replicas.success().stdout, "1");
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn replicas_run_as_the_charts_service_account_and_sync_their_caches() {
    let c = cluster();
    // Ready means the namespace and context caches synced with the chart's RBAC: the
    // replicas talk to the API server with the ServiceAccount token only.
    for r in c.node.replicas() {
        assert!(r.ready(), "{} is not ready", r.name);
    }
    let sa = "system:serviceaccount:plate-system:plate-policy";
    for (verb, resource, want) in [
        ("watch", "namespaces", "yes"),
        ("list", "clusterissuers.cert-manager.io", "yes"),
        ("watch", "issuers.cert-manager.io", "yes"),
        ("create", "pods", "no"),
        ("get", "secrets", "no"),
    ] {
        let out = c.kubectl(&["auth", "can-i", verb, resource, "--as", sa, "-A"]);
        assert_eq!(
            out.stdout.trim(),
            want,
            "can-i {verb} {resource}: {}",
            out.text()
        );
    }
}

// ---------------------------------------------------------------------------------------
// Point 4: the seed's scenarios through the API server.

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn latest_image_is_denied_in_plate_prod_with_the_policys_message() {
    let c = cluster();
    let name = unique("latest");
    let out = create(&c, &pod_manifest(&name, "plate-prod", PLATE_API_LATEST)).failure();
    assert_eq!(
        out.stderr.trim(),
        format!(
            "Error from server (Forbidden): error when creating \"STDIN\": {}",
            denied_by_webhook(LATEST_DENIAL)
        )
    );
    assert!(
        !c.kubectl(&["-n", "plate-prod", "get", "pod", &name]).ok(),
        "the Pod must not exist"
    );
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn latest_image_is_allowed_in_plate_stg() {
    let c = cluster();
    let name = unique("latest");
    let out = create(&c, &pod_manifest(&name, "plate-stg", PLATE_API_LATEST)).success();
    assert_eq!(out.stdout.trim(), format!("pod/{name} created"));
    assert_eq!(
        out.warnings(),
        Vec::<String>::new(),
        "no prod-only warning in stg"
    );
    // And it was the webhook that allowed it, not a skipped call.
    poll(
        Duration::from_secs(5),
        "a decided line for the stg Pod",
        || {
            (!decided(&c, &["\"namespace\":\"plate-stg\"", "\"kind\":\"Pod\""]).is_empty())
                .then_some(())
        },
    );
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn pinned_nginx_is_allowed_in_prod_and_stg() {
    let c = cluster();
    for ns in ["plate-prod", "plate-stg"] {
        let name = unique("nginx");
        let out = create(&c, &pod_manifest(&name, ns, "nginx:1.25")).success();
        assert_eq!(out.stdout.trim(), format!("pod/{name} created"), "{ns}");
    }
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn deployment_in_plate_stg_becomes_pods_and_their_creation_passes_the_webhook() {
    let c = cluster();
    let name = unique("web");
    let manifest = format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: plate-stg}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
        - {{name: web, image: '{PLATE_API_LATEST}'}}
"
    );
    create(&c, &manifest).success();
    // kube-controller-manager makes the ReplicaSet, which makes the Pods; each Pod
    // creation is an admission request from the replicaset controller.
    let pods = poll(
        Duration::from_secs(30),
        "two Pods of the Deployment",
        || {
            let out = c.kubectl(&[
                "-n",
                "plate-stg",
                "get",
                "pods",
                "-l",
                &format!("app={name}"),
                "-o",
                "name",
            ]);
            let names: Vec<String> = out.stdout.lines().map(str::to_owned).collect();
            (names.len() == 2).then_some(names)
        },
    );
    assert_eq!(pods.len(), 2);
    poll(
        Duration::from_secs(10),
        "the webhook's decisions on those Pods",
        || {
            let lines = decided(
                &c,
                &[
                    "\"namespace\":\"plate-stg\"",
                    "\"kind\":\"Pod\"",
                    "replicaset-controller",
                ],
            );
            let lines = if lines.is_empty() {
                // The log line may not carry the user; then count Pod CREATEs in plate-stg.
                decided(
                    &c,
                    &["\"namespace\":\"plate-stg\"", "\"kind\":\"Pod\"", "CREATE"],
                )
            } else {
                lines
            };
            (lines.len() >= 2).then_some(())
        },
    );
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn deployment_with_latest_in_plate_prod_is_denied_at_apply() {
    let c = cluster();
    let name = unique("api");
    let manifest = format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: plate-prod}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
        - {{name: web, image: '{PLATE_API_LATEST}', resources: {{requests: {{cpu: 1m, memory: 1Mi}}}}}}
"
    );
    let out = c.apply(&manifest).failure();
    assert!(
        out.stderr.contains(&denied_by_webhook(LATEST_DENIAL)),
        "{}",
        out.text()
    );
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn ingress_naming_a_staging_issuer_is_denied_in_prod() {
    let c = cluster();
    let name = unique("web");
    let manifest = format!(
        "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: plate-prod
  annotations: {{cert-manager.io/cluster-issuer: letsencrypt-staging}}
spec:
  tls: [{{hosts: [web.plate.dev], secretName: web-tls}}]
  rules:
    - host: web.plate.dev
      http:
        paths:
          - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
"
    );
    let out = create(&c, &manifest).failure();
    assert!(
        out.stderr.starts_with("Error from server (Forbidden)"),
        "{}",
        out.text()
    );
    assert!(
        out.stderr.contains(&format!(
            "admission webhook \"{WEBHOOK}\" denied the request: [no-staging-issuer]"
        )),
        "{}",
        out.text()
    );
    assert!(out.stderr.contains("letsencrypt-staging"), "{}", out.text());
    // The same Ingress in stg is admitted.
    let stg = manifest.replace("namespace: plate-prod", "namespace: plate-stg");
    create(&c, &stg).success();
}

fn certificate(name: &str, ns: &str, issuer: &str, kind: &str) -> String {
    format!(
        "apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {{name: {name}, namespace: {ns}}}
spec:
  secretName: {name}-tls
  dnsNames: [web.plate.dev]
  issuerRef: {{name: {issuer}, kind: {kind}}}
"
    )
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn certificate_naming_a_staging_issuer_is_denied_in_prod() {
    let c = cluster();
    let name = unique("web");
    let out = create(
        &c,
        &certificate(&name, "plate-prod", "letsencrypt-staging", "ClusterIssuer"),
    )
    .failure();
    assert!(
        out.stderr.contains(&format!(
            "admission webhook \"{WEBHOOK}\" denied the request: [no-staging-issuer]"
        )),
        "{}",
        out.text()
    );
    assert!(
        out.stderr.contains("\"letsencrypt-staging\""),
        "{}",
        out.text()
    );
    create(
        &c,
        &certificate(&name, "plate-prod", "letsencrypt-prod", "ClusterIssuer"),
    )
    .success();
}

/// A cert-manager ClusterIssuer named `name` on the ACME server `server`.
fn acme_cluster_issuer(name: &str, server: &str) -> String {
    format!(
        "apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {{name: {name}}}
spec:
  acme:
    server: {server}
    privateKeySecretRef: {{name: {name}-key}}
    solvers: [{{http01: {{ingress: {{ingressClassName: nginx}}}}}}]
"
    )
}

/// An Ingress `name` in plate-prod whose certificate comes from the ClusterIssuer `issuer`.
fn prod_ingress_naming(name: &str, issuer: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: plate-prod
  annotations: {{cert-manager.io/cluster-issuer: {issuer}}}
spec:
  rules: [{{host: web.example.com}}]
  tls: [{{hosts: [web.example.com], secretName: {name}-tls}}]
"
    )
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn cluster_issuer_moved_to_the_production_acme_server_flips_the_verdict_without_restart() {
    let c = cluster();
    let issuer = unique("plate-acme");
    let issuer_manifest = |server: &str| acme_cluster_issuer(&issuer, server);
    let pids: Vec<u32> = c.node.replicas().iter().map(|r| r.pid).collect();
    c.apply(&issuer_manifest(
        "https://acme-staging-v02.api.letsencrypt.org/directory",
    ))
    .success();
    let cert = certificate(&unique("web"), "plate-prod", &issuer, "ClusterIssuer");
    // The replicas' ClusterIssuer caches see the new object through their watch.
    let denied = poll(
        Duration::from_secs(20),
        "the staging ClusterIssuer to deny",
        || {
            let out = kubectl_stdin(&c.env, &["create", "--dry-run=server"], &cert);
            out.stderr.contains("denied the request").then_some(out)
        },
    );
    assert!(
        denied
            .stderr
            .contains("acme-staging-v02.api.letsencrypt.org"),
        "{}",
        denied.text()
    );
    c.apply(&issuer_manifest(
        "https://acme-v02.api.letsencrypt.org/directory",
    ))
    .success();
    poll(
        Duration::from_secs(20),
        "the production ClusterIssuer to allow",
        || {
            kubectl_stdin(&c.env, &["create", "--dry-run=server"], &cert)
                .ok()
                .then_some(())
        },
    );
    let now: Vec<u32> = c.node.replicas().iter().map(|r| r.pid).collect();
    assert_eq!(pids, now, "no replica was restarted");
    assert!(c.node.replicas().iter().all(|r| !r.exited()));
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn namespace_without_its_environment_label_is_denied() {
    let c = cluster();
    let out = create(
        &c,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: fe-web-prod\n",
    )
    .failure();
    assert!(
        out.stderr.starts_with("Error from server (Forbidden)"),
        "{}",
        out.text()
    );
    assert!(
        out.stderr.contains(&format!(
            "admission webhook \"{WEBHOOK}\" denied the request: [require-namespace-labels]"
        )),
        "{}",
        out.text()
    );
    assert!(out.stderr.contains("environment"), "{}", out.text());
    assert!(!c.kubectl(&["get", "namespace", "fe-web-prod"]).ok());
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn relabelling_a_namespace_flips_verdicts() {
    let c = cluster();
    let ns = unique("team");
    c.apply(&namespace_manifest(&ns, "development")).success();
    let pod = pod_manifest("web", &ns, PLATE_API_LATEST);
    kubectl_stdin(&c.env, &["create", "--dry-run=server"], &pod).success();
    c.kubectl(&[
        "label",
        "namespace",
        &ns,
        "environment=production",
        "--overwrite",
    ])
    .success();
    let denied = poll(
        Duration::from_secs(20),
        "the relabelled namespace to deny",
        || {
            let out = kubectl_stdin(&c.env, &["create", "--dry-run=server"], &pod);
            (!out.ok()).then_some(out)
        },
    );
    assert!(
        denied.stderr.contains(&denied_by_webhook(LATEST_DENIAL)),
        "{}",
        denied.text()
    );
    c.kubectl(&[
        "label",
        "namespace",
        &ns,
        "environment=staging",
        "--overwrite",
    ])
    .success();
    poll(
        Duration::from_secs(20),
        "the namespace relabelled back to allow",
        || {
            kubectl_stdin(&c.env, &["create", "--dry-run=server"], &pod)
                .ok()
                .then_some(())
        },
    );
    let _ = c.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn kube_system_and_the_release_namespace_never_reach_the_webhook() {
    let c = cluster();
    for ns in ["kube-system", RELEASE_NS] {
        let name = unique("never");
        create(&c, &pod_manifest(&name, ns, PLATE_API_LATEST)).success();
    }
    // A request that does reach it, after them: once its decision is logged, the two
    // before it would have been logged too.
    let marker = unique("marker");
    create(&c, &pod_manifest(&marker, "plate-stg", "nginx:1.25")).success();
    poll(Duration::from_secs(5), "the marker's decision", || {
        (!decided(&c, &["\"namespace\":\"plate-stg\""]).is_empty()).then_some(())
    });
    assert_eq!(
        decided(&c, &["\"namespace\":\"kube-system\""]),
        Vec::<String>::new()
    );
    assert_eq!(
        decided(&c, &["\"namespace\":\"plate-system\""]),
        Vec::<String>::new()
    );
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn server_side_dry_run_decides_the_same() {
    let c = cluster();
    let name = unique("dry");
    let real = create(&c, &pod_manifest(&name, "plate-prod", PLATE_API_LATEST)).failure();
    let dry = kubectl_stdin(
        &c.env,
        &["create", "--dry-run=server"],
        &pod_manifest(&name, "plate-prod", PLATE_API_LATEST),
    )
    .failure();
    assert_eq!(dry.stderr, real.stderr);
    let ok = kubectl_stdin(
        &c.env,
        &["create", "--dry-run=server"],
        &pod_manifest(&name, "plate-prod", "nginx:1.25"),
    )
    .success();
    assert_eq!(
        ok.stdout.trim(),
        format!("pod/{name} created (server dry run)")
    );
    assert!(
        !c.kubectl(&["-n", "plate-prod", "get", "pod", &name]).ok(),
        "a dry run stores nothing"
    );
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn update_of_an_existing_violation_is_judged_on_what_it_changes_and_delete_is_not_judged() {
    let c = cluster();
    // A Deployment that already runs latest in a namespace that became prod after it
    // was created (docs/policy-set.md, allowExistingViolations).
    let ns = unique("legacy");
    c.apply(&namespace_manifest(&ns, "development")).success();
    let manifest = |image: &str, replicas: u32| {
        format!(
            "apiVersion: apps/v1
kind: Deployment
metadata: {{name: api, namespace: {ns}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: api}}}}
  template:
    metadata: {{labels: {{app: api}}}}
    spec:
      containers:
        - {{name: web, image: '{image}', resources: {{requests: {{cpu: 1m, memory: 1Mi}}}}}}
"
        )
    };
    c.apply(&manifest(PLATE_API_LATEST, 1)).success();
    c.kubectl(&[
        "label",
        "namespace",
        &ns,
        "environment=production",
        "--overwrite",
    ])
    .success();
    poll(
        Duration::from_secs(20),
        "the namespace to be prod for the webhook",
        || {
            let probe = pod_manifest("probe", &ns, PLATE_API_LATEST);
            (!kubectl_stdin(&c.env, &["create", "--dry-run=server"], &probe).ok()).then_some(())
        },
    );
    // Scaling keeps the old violation: admitted.
    let scaled = c.apply(&manifest(PLATE_API_LATEST, 3)).success();
    assert_eq!(scaled.stdout.trim(), "deployment.apps/api configured");
    // A new latest image is a new violation: denied.
    let changed = c
        .apply(&manifest("harbor.cocdev.co.kr/plate/redis:latest", 3))
        .failure();
    assert!(
        changed.stderr.contains(&format!(
            "admission webhook \"{WEBHOOK}\" denied the request: [no-latest-tag]"
        )),
        "{}",
        changed.text()
    );
    assert!(
        changed.stderr.contains("redis:latest"),
        "{}",
        changed.text()
    );
    // DELETE is no operation the webhook's rules name: admitted without a call.
    let before = decided(&c, &["\"operation\":\"DELETE\""]).len();
    let deleted = c
        .kubectl(&["-n", &ns, "delete", "deployment", "api"])
        .success();
    assert_eq!(
        deleted.stdout.trim(),
        format!("deployment.apps \"api\" deleted from {ns} namespace")
    );
    assert_eq!(decided(&c, &["\"operation\":\"DELETE\""]).len(), before);
    let _ = c.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn kubectl_debug_ephemeral_containers_are_checked() {
    let c = cluster();
    let name = unique("dbg");
    create(
        &c,
        &pod_manifest(
            &name,
            "plate-prod",
            "harbor.cocdev.co.kr/plate/plate-api:1.4.2",
        ),
    )
    .success();
    let out = c
        .kubectl(&[
            "-n",
            "plate-prod",
            "debug",
            &name,
            "--image",
            "busybox",
            "-c",
            "debugger",
        ])
        .failure();
    assert!(
        out.stderr.contains(&format!(
            "admission webhook \"{WEBHOOK}\" denied the request: [no-latest-tag]"
        )),
        "{}",
        out.text()
    );
    assert!(out.stderr.contains("\"debugger\""), "{}", out.text());
    assert!(out.stderr.contains("\"busybox\""), "{}", out.text());
    let ok = c.kubectl(&[
        "-n",
        "plate-prod",
        "debug",
        &name,
        "--image",
        "harbor.cocdev.co.kr/tools/busybox:1.36",
        "-c",
        "debugger2",
    ]);
    assert!(ok.ok(), "a pinned debug image is admitted: {}", ok.text());
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn warn_mode_policy_shows_kubectls_warning_line() {
    let c = cluster();
    let name = unique("warn");
    let out = create(&c, &pod_manifest(&name, "plate-prod", "nginx:1.25")).success();
    assert_eq!(out.stdout.trim(), format!("pod/{name} created"));
    let warnings = out.warnings();
    assert_eq!(warnings.len(), 1, "{}", out.text());
    assert!(
        warnings[0].starts_with("[trusted-registries] "),
        "{}",
        out.text()
    );
    // The container, the image and what is trusted instead: what a user needs to act.
    for part in ["web", "nginx", "harbor.cocdev.co.kr"] {
        assert!(
            warnings[0].contains(part),
            "no {part:?} in {:?}",
            warnings[0]
        );
    }
    assert!(
        warnings[0].chars().count() < 120,
        "Kubernetes advises warnings under 120 characters"
    );
}

// ---------------------------------------------------------------------------------------
// Point 5: availability.

/// Writes Pods at a steady rate until stopped: alternately one the webhook admits and
/// one it denies, so every answer proves a replica decided it. Bounded in count and time.
struct Writer {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Tally>>,
}

#[derive(Debug, Default)]
struct Tally {
    allowed: u32,
    denied: u32,
    failed: Vec<String>,
}

impl Writer {
    fn start(c: &Cluster, ns: &str) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let client = c.client.clone();
        let ns = ns.to_owned();
        let handle = std::thread::spawn(move || {
            use k8s_openapi::api::core::v1::Pod;
            let pods: kube::Api<Pod> = kube::Api::namespaced(client, &ns);
            let mut tally = Tally::default();
            let started = Instant::now();
            let period = Duration::from_millis(25);
            let mut n: u32 = 0;
            while !flag.load(Ordering::Relaxed)
                && n < 6000
                && started.elapsed() < Duration::from_secs(240)
            {
                let next = started + period * n;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    // Pacing of the load (a fixed rate), not synchronisation.
                    std::thread::sleep(wait);
                }
                let deny = n % 2 == 1;
                let image = if deny {
                    PLATE_API_LATEST
                } else {
                    "harbor.cocdev.co.kr/plate/plate-api:1.4.2"
                };
                let pod: Pod = serde_json::from_value(serde_json::json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("w{n}")},
                    "spec": {"containers": [{"name": "web", "image": image,
                        "resources": {"requests": {"cpu": "1m", "memory": "1Mi"}}}]},
                }))
                .unwrap_or_default();
                let result = support::cluster::block_on(
                    pods.create(&kube::api::PostParams::default(), &pod),
                );
                match (deny, result) {
                    (false, Ok(_)) => tally.allowed += 1,
                    (true, Err(kube::Error::Api(e)))
                        if e.code == 403 && e.message.contains("[no-latest-tag]") =>
                    {
                        tally.denied += 1
                    }
                    (_, Ok(_)) => tally
                        .failed
                        .push(format!("w{n}: admitted, expected a denial")),
                    (_, Err(e)) => tally.failed.push(format!("w{n}: {e}")),
                }
                n += 1;
            }
            tally
        });
        Writer {
            stop,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_else(|| Tally {
                failed: vec!["writer panicked".into()],
                ..Tally::default()
            })
    }
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn rolling_restart_under_steady_writes_fails_no_admission() {
    let mut c = cluster();
    c.dirty = true;
    let ns = unique("roll-prod");
    c.apply(&namespace_manifest(&ns, "production")).success();
    let old: Vec<u32> = c.node.replicas().iter().map(|r| r.pid).collect();
    let writer = Writer::start(&c, &ns);
    let new = c.node.rolling_restart();
    let tally = writer.finish();
    let _ = c.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
    assert_eq!(new.len(), 2);
    assert!(
        new.iter().all(|r| !old.contains(&r.pid)),
        "every replica was replaced"
    );
    assert_eq!(tally.failed, Vec::<String>::new(), "{tally:?}");
    assert!(tally.allowed >= 100 && tally.denied >= 100, "{tally:?}");
    c.dirty = false;
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn every_replica_down_with_failure_policy_fail_rejects_with_the_api_servers_message() {
    let mut c = cluster();
    c.dirty = true;
    c.node.stop_all();
    let name = unique("down");
    let out = create(&c, &pod_manifest(&name, "plate-stg", "nginx:1.25")).failure();
    assert!(
        out.stderr.starts_with("Error from server (InternalError)"),
        "{}",
        out.text()
    );
    assert!(
        out.stderr
            .contains(&format!("failed calling webhook \"{WEBHOOK}\"")),
        "{}",
        out.text()
    );
    assert!(
        out.stderr
            .contains("https://plate-policy.plate-system.svc:443/validate"),
        "{}",
        out.text()
    );
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn every_replica_down_with_failure_policy_ignore_admits() {
    let mut c = cluster();
    c.dirty = true;
    // The stg values: fail open.
    let stg = support::cluster::values("values-stg.yaml");
    c.helm_upgrade(&["-f", &stg]).success();
    c.node.stop_all();
    let name = unique("open");
    // A Pod the policies would deny: with no replica to ask, it is admitted unchecked.
    let out = create(&c, &pod_manifest(&name, "plate-prod", PLATE_API_LATEST)).success();
    assert_eq!(out.stdout.trim(), format!("pod/{name} created"));
    c.kubectl(&["-n", "plate-prod", "get", "pod", &name])
        .success();
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn serving_certificate_rotation_through_helm_upgrade_fails_no_admission() {
    let mut c = cluster();
    c.dirty = true;
    let ns = unique("rot-prod");
    c.apply(&namespace_manifest(&ns, "production")).success();
    let old = c.tls.clone();
    let new = make_tls(
        &c.env.state.join(unique("tls/rotated")),
        &format!("{RELEASE}.{RELEASE_NS}.svc"),
        40,
    );
    let expiry = |r: &support::cluster::Replica| -> String {
        support::https::http_get(r.metrics_addr(), "/metrics")
            .map(|(_, body)| {
                body.lines()
                    .find(|l| {
                        l.starts_with("plate_policy_tls_certificate_expiry_timestamp_seconds")
                    })
                    .unwrap_or_default()
                    .to_owned()
            })
            .unwrap_or_default()
    };
    let before: Vec<String> = c.node.replicas().iter().map(|r| expiry(r)).collect();
    let writer = Writer::start(&c, &ns);
    // 1. The caBundle trusts both CAs.
    c.tls = Tls {
        ca_pem: format!("{}{}", old.ca_pem, new.ca_pem),
        ..old.clone()
    };
    c.helm_upgrade(&[]).success();
    // 2. The Secret gets the new certificate; the replicas reload it from their volume.
    apply_tls_secret(&c.env, RELEASE_NS, TLS_SECRET, &new);
    poll(
        Duration::from_secs(30),
        "every replica serving the new certificate",
        || {
            let now: Vec<String> = c.node.replicas().iter().map(|r| expiry(r)).collect();
            now.iter()
                .zip(&before)
                .all(|(a, b)| a != b && !a.is_empty())
                .then_some(())
        },
    );
    // 3. The caBundle drops the old CA.
    c.tls = new.clone();
    c.helm_upgrade(&[]).success();
    let bundle = c
        .kubectl(&[
            "get",
            "validatingwebhookconfiguration",
            RELEASE,
            "-o",
            "jsonpath={.webhooks[0].clientConfig.caBundle}",
        ])
        .success();
    let tally = writer.finish();
    let _ = c.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
    assert_eq!(tally.failed, Vec::<String>::new(), "{tally:?}");
    assert!(tally.allowed >= 20 && tally.denied >= 20, "{tally:?}");
    let decoded = Command::new("base64")
        .arg("-d")
        .stdin_bytes(bundle.stdout.as_bytes());
    assert_eq!(
        decoded.trim(),
        new.ca_pem.trim(),
        "the caBundle holds only the new CA: {}",
        bundle.text()
    );
    // The rotated material is the new baseline.
    c.dirty = false;
}

use std::process::Command;
use support::cluster::Tls;

trait StdinBytes {
    fn stdin_bytes(&mut self, input: &[u8]) -> String;
}

impl StdinBytes for Command {
    fn stdin_bytes(&mut self, input: &[u8]) -> String {
        use std::io::Write;
        let mut child = self
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input);
        }
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn webhook_slower_than_timeout_seconds_gives_the_api_servers_timeout_error() {
    let mut c = cluster();
    c.dirty = true;
    // A hung server: the kernel still accepts connections, nothing answers.
    let replicas = c.node.replicas();
    struct Resume(Vec<Arc<support::cluster::Replica>>);
    impl Drop for Resume {
        fn drop(&mut self) {
            for r in &self.0 {
                r.signal("CONT");
            }
        }
    }
    for r in &replicas {
        r.signal("STOP");
    }
    let _resume = Resume(replicas);
    let name = unique("slow");
    let out = create(&c, &pod_manifest(&name, "plate-stg", "nginx:1.25")).failure();
    assert!(
        out.stderr
            .contains(&format!("failed calling webhook \"{WEBHOOK}\"")),
        "{}",
        out.text()
    );
    assert!(
        out.stderr.contains("context deadline exceeded") || out.stderr.contains("timeout"),
        "{}",
        out.text()
    );
    // timeoutSeconds is 5: the answer comes after it, not never.
    assert!(out.elapsed >= Duration::from_secs(5), "{:?}", out.elapsed);
    assert!(out.elapsed < Duration::from_secs(15), "{:?}", out.elapsed);
}

// ---------------------------------------------------------------------------------------
// Point 6: upgrade and removal.

/// The chart's default policy set, as JSON values with `edit` applied to its policies.
fn policy_set_values(edit: impl Fn(&mut Vec<Value>)) -> std::path::PathBuf {
    let text = std::fs::read_to_string(support::cluster::values("values.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let values: Value =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("values.yaml: {e}"));
    let mut set = values["policySet"].clone();
    if let Some(policies) = set["spec"]["policies"].as_array_mut() {
        edit(policies);
    }
    let file = std::env::temp_dir().join(format!("{}.json", unique("plate-values")));
    std::fs::write(&file, serde_json::json!({"policySet": set}).to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    file
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn helm_upgrade_from_warn_to_enforce_flips_the_verdict_without_restart() {
    let mut c = cluster();
    c.dirty = true;
    let pod = pod_manifest(&unique("reg"), "plate-prod", "nginx:1.25");
    let warned = kubectl_stdin(&c.env, &["create", "--dry-run=server"], &pod).success();
    assert!(
        warned
            .warnings()
            .iter()
            .any(|w| w.starts_with("[trusted-registries]")),
        "{}",
        warned.text()
    );
    let pids: Vec<u32> = c.node.replicas().iter().map(|r| r.pid).collect();
    let file = policy_set_values(|policies| {
        for p in policies
            .iter_mut()
            .filter(|p| p["name"] == "trusted-registries")
        {
            p["mode"] = "enforce".into();
        }
    });
    c.helm_upgrade(&["-f", &file.to_string_lossy()]).success();
    // The ConfigMap reaches the replicas' volume (kubelet's update) and they reload it.
    let denied = poll(
        Duration::from_secs(30),
        "the enforced policy to deny",
        || {
            let out = kubectl_stdin(&c.env, &["create", "--dry-run=server"], &pod);
            (!out.ok()).then_some(out)
        },
    );
    assert!(
        denied.stderr.contains(&format!(
            "admission webhook \"{WEBHOOK}\" denied the request: [trusted-registries]"
        )),
        "{}",
        denied.text()
    );
    let now: Vec<u32> = c.node.replicas().iter().map(|r| r.pid).collect();
    assert_eq!(pids, now, "no replica was restarted");
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn helm_upgrade_that_adds_a_kind_updates_the_webhook_rules() {
    let mut c = cluster();
    c.dirty = true;
    let rules = || {
        c.kubectl(&[
            "get",
            "validatingwebhookconfiguration",
            RELEASE,
            "-o",
            "jsonpath={.webhooks[0].rules[*].resources}",
        ])
        .success()
        .stdout
    };
    assert!(!rules().contains("\"services\""), "{}", rules());
    let svc = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: plate-prod}}\nspec:\n  ports: [{{port: 80}}]\n"
        )
    };
    create(&c, &svc(&unique("before"))).success();
    let file = policy_set_values(|policies| {
        for p in policies
            .iter_mut()
            .filter(|p| p["name"] == "require-ssl-redirect")
        {
            if let Some(kinds) = p["match"]["kinds"].as_array_mut() {
                kinds.push("Service".into());
            }
        }
    });
    c.helm_upgrade(&["-f", &file.to_string_lossy()]).success();
    assert!(rules().contains("\"services\""), "{}", rules());
    assert_eq!(
        decided(&c, &["\"kind\":\"Service\""]),
        Vec::<String>::new(),
        "before the upgrade no Service reached the webhook"
    );
    // The replicas load the new set from the ConfigMap; the API server now sends Services.
    poll(
        Duration::from_secs(30),
        "a Service create reaching the webhook",
        || {
            create(&c, &svc(&unique("after"))).success();
            (!decided(&c, &["\"kind\":\"Service\""]).is_empty()).then_some(())
        },
    );
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn helm_uninstall_removes_the_webhook_configuration_and_writes_are_admitted() {
    let mut c = cluster();
    c.dirty = true;
    let name = unique("after-uninstall");
    create(&c, &pod_manifest(&name, "plate-prod", PLATE_API_LATEST)).failure();
    let out = c
        .helm(&["uninstall", RELEASE, "-n", RELEASE_NS, "--wait"])
        .success();
    assert!(
        out.stdout.contains("release \"plate-policy\" uninstalled"),
        "{}",
        out.text()
    );
    let gone = c
        .kubectl(&["get", "validatingwebhookconfiguration", RELEASE])
        .failure();
    assert!(gone.stderr.contains("NotFound"), "{}", gone.text());
    let admitted = create(&c, &pod_manifest(&name, "plate-prod", PLATE_API_LATEST)).success();
    assert_eq!(admitted.stdout.trim(), format!("pod/{name} created"));
    let _ = Mutex::new(());
}

// ---------------------------------------------------------------------------------------
// Point 8: an oversized review is decided by plate-policy, not by failurePolicy.

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn oversized_review_is_denied_by_plate_policy_even_with_failure_policy_ignore() {
    let mut c = cluster();
    c.dirty = true;
    // Fail open (the stg values), and a body limit small enough that an ordinary Pod
    // goes over it: what must decide is plate-policy, not failurePolicy Ignore.
    const LIMIT: usize = 64 << 10;
    let stg = support::cluster::values("values-stg.yaml");
    let limit = format!("maxRequestBytes={LIMIT}");
    c.helm_upgrade(&["-f", &stg, "--set", &limit]).success();
    c.node.rolling_restart();
    let name = unique("oversized");
    // 400 pinned, trusted containers: allowed by every policy if it could be read, and
    // well over 64 KiB as the defaulted JSON the API server sends.
    let mut pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: plate-prod\nspec:\n  containers:\n"
    );
    for i in 0..400 {
        pod.push_str(&format!(
            "    - name: c{i}\n      image: harbor.cocdev.co.kr/plate/plate-api:2.8.1\n      resources:\n        requests: {{cpu: 1m, memory: 1Mi}}\n"
        ));
    }
    let out = create(&c, &pod).failure();
    assert!(
        out.stderr.contains(&format!(
            "admission webhook \"{WEBHOOK}\" denied the request"
        )),
        "not denied by the webhook itself: {}",
        out.text()
    );
    assert!(
        out.stderr.contains(&LIMIT.to_string()),
        "the denial does not name the limit: {}",
        out.text()
    );
    assert!(
        !out.stderr.contains("failed calling webhook"),
        "the API server fell back to failurePolicy: {}",
        out.text()
    );
    c.kubectl(&["-n", "plate-prod", "get", "pod", &name])
        .failure();
    // A Pod under the limit is still admitted on the same release: only size decided.
    let small = unique("small");
    create(&c, &pod_manifest(&small, "plate-prod", "nginx:1.25")).success();
}

// ---------------------------------------------------------------------------------------
// Issue 16: `plate-policy audit` judges what already exists.

/// `plate-policy audit ARGS --kubeconfig (the admin's)`: exit code, stdout, stderr.
fn audit(c: &Cluster, args: &[&str]) -> (Option<i32>, String, String) {
    let kubeconfig = c.env.kubeconfig.display().to_string();
    let mut all = vec!["audit", "--kubeconfig", kubeconfig.as_str()];
    all.extend_from_slice(args);
    let out = support::command::plate_policy(&all);
    (
        out.status.code(),
        support::command::stdout(&out),
        support::command::stderr(&out),
    )
}

/// The results of `audit -o json` about `resource`.
fn audit_results(c: &Cluster, args: &[&str], resource: &str) -> (Option<i32>, Vec<Value>) {
    let mut all = vec!["-o", "json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = audit(c, &all);
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("audit -o json: {e}\n{stdout}\n{stderr}"));
    let rows = report["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["resource"] == resource)
        .cloned()
        .collect();
    (code, rows)
}

/// A Deployment with no replicas (the controllers make a ReplicaSet, no Pods).
fn deployment_manifest(name: &str, ns: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  replicas: 0
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
        - name: web
          image: {image}
          resources: {{requests: {{cpu: 10m, memory: 16Mi}}}}
"
    )
}

/// A policy set of the built-in no-latest-tag alone, judging only namespace `ns`.
fn only_latest_in(ns: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.path().join("set.yaml"),
        format!(
            "apiVersion: policy.plate.dev/v1alpha1\nkind: PolicySet\nmetadata: {{name: audit}}\nspec:\n  policies:\n    - name: no-latest-tag\n      module: builtin:no-latest-tag\n      environments: [prod]\n      match:\n        kinds: [apps/Deployment]\n        namespaces: {{include: [{ns}]}}\n    - name: delete-guard\n      module: builtin:no-latest-tag\n      audit: false\n      match: {{kinds: [apps/Deployment], operations: [DELETE]}}\n    - name: widgets\n      module: builtin:no-latest-tag\n      match: {{kinds: [example.com/Widget]}}\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    dir
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn audit_finds_a_violation_admitted_while_the_webhook_was_absent_and_follows_fixes_and_relabels() {
    let mut c = cluster();
    c.dirty = true;
    // The webhook is absent: its configuration removed (the next test restores it).
    c.kubectl(&["delete", "validatingwebhookconfiguration", RELEASE])
        .success();
    let ns = unique("audit-prod");
    c.apply(&namespace_manifest(&ns, "production")).success();
    let name = unique("api");
    c.apply(&deployment_manifest(&name, &ns, PLATE_API_LATEST))
        .success();
    let resource = format!("Deployment/{ns}/{name}");
    let set = only_latest_in(&ns);
    let set_file = set.path().join("set.yaml");
    let set_arg = ["--policies", set_file.to_str().unwrap_or_default()];

    // Found, with everything a report needs; exit 1: admission would deny it today.
    let (code, rows) = audit_results(&c, &set_arg, &resource);
    assert_eq!(code, Some(1), "{rows:?}");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row["policy"], "no-latest-tag");
    assert_eq!(row["result"], "fail");
    assert_eq!(row["mode"], "enforce");
    assert_eq!(row["environment"], "prod");
    assert_eq!(row["key"], "container:web");
    assert_eq!(row["path"], "spec.template.spec.containers[0].image");
    assert!(
        row["message"]
            .as_str()
            .is_some_and(|m| m.contains("the \"latest\" tag is not allowed in prod")),
        "{row}"
    );
    // The built-in set finds it too, in the table.
    let (code, table, _) = audit(&c, &[]);
    assert_eq!(code, Some(1));
    assert!(
        table.lines().any(|l| l.starts_with(&resource)
            && l.contains("no-latest-tag")
            && l.contains(" fail ")),
        "{table}"
    );

    // Its namespace relabelled to staging: no-latest-tag does not apply there.
    c.kubectl(&[
        "label",
        "namespace",
        &ns,
        "environment=development",
        "--overwrite",
    ])
    .success();
    let (code, rows) = audit_results(&c, &set_arg, &resource);
    assert!(rows.is_empty(), "{rows:?}");
    assert_eq!(code, Some(0), "nothing in the audited namespace violates");
    c.kubectl(&[
        "label",
        "namespace",
        &ns,
        "environment=production",
        "--overwrite",
    ])
    .success();
    assert_eq!(audit_results(&c, &set_arg, &resource).1.len(), 1);

    // Fixed: gone, and exit 0.
    c.kubectl(&[
        "-n",
        &ns,
        "set",
        "image",
        &format!("deployment/{name}"),
        "web=harbor.cocdev.co.kr/plate/plate-api:2.4.1",
    ])
    .success();
    let (code, rows) = audit_results(&c, &set_arg, &resource);
    assert!(rows.is_empty(), "{rows:?}");
    assert_eq!(code, Some(0));
    let _ = c.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn audit_makes_prod_ingresses_fail_when_their_cluster_issuer_moves_to_the_staging_acme_server() {
    let mut c = cluster();
    c.dirty = true;
    c.kubectl(&["delete", "validatingwebhookconfiguration", RELEASE])
        .success();
    let issuer = unique("audit-acme");
    let issuer_manifest = |server: &str| acme_cluster_issuer(&issuer, server);
    c.apply(&issuer_manifest(
        "https://acme-v02.api.letsencrypt.org/directory",
    ))
    .success();
    let ingress = unique("web");
    c.apply(&prod_ingress_naming(&ingress, &issuer)).success();
    let resource = format!("Ingress/plate-prod/{ingress}");
    let staging_rows = |rows: &[Value]| {
        rows.iter()
            .filter(|r| r["policy"] == "no-staging-issuer")
            .count()
    };
    let (_, rows) = audit_results(&c, &[], &resource);
    assert_eq!(staging_rows(&rows), 0, "{rows:?}");
    c.apply(&issuer_manifest(
        "https://acme-staging-v02.api.letsencrypt.org/directory",
    ))
    .success();
    let (code, rows) = audit_results(&c, &[], &resource);
    assert_eq!(code, Some(1));
    assert_eq!(staging_rows(&rows), 1, "{rows:?}");
    let _ = c.kubectl(&["delete", "ingress", "-n", "plate-prod", &ingress]);
    let _ = c.kubectl(&["delete", "clusterissuer", &issuer]);
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn audit_says_why_it_cannot_run_and_what_it_skipped() {
    let c = cluster();
    let ns = unique("audit-skip");
    let set = only_latest_in(&ns);
    let set_file = set.path().join("set.yaml");
    let set_file = set_file.to_str().unwrap_or_default();

    // Skipped, with the reason: an entry with audit: false, a kind the cluster
    // does not serve; nothing violates, exit 0.
    let (code, table, stderr) = audit(&c, &["--policies", set_file]);
    assert_eq!(code, Some(0), "{table}{stderr}");
    assert!(
        table.contains("SKIP  policy delete-guard: audit: false in the policy set"),
        "{table}"
    );
    assert!(
        table.contains("SKIP  example.com/Widget: the cluster does not serve this kind"),
        "{table}"
    );

    // No cluster: nothing listens on the address the kubeconfig names.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let admin = std::fs::read_to_string(&c.env.kubeconfig).unwrap_or_default();
    let server = format!("https://{}:{}", c.env.api_host, c.env.api_port);
    assert!(
        admin.contains(&server),
        "the admin kubeconfig names {server}"
    );
    let nowhere = dir.path().join("nowhere.kubeconfig");
    std::fs::write(&nowhere, admin.replace(&server, "https://127.0.0.1:1"))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = support::command::plate_policy(&[
        "audit",
        "--kubeconfig",
        nowhere.to_str().unwrap_or_default(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = support::command::stderr(&out);
    assert!(err.contains("cannot discover the cluster's API"), "{err}");

    // No permission: a ServiceAccount without any role.
    let sa = unique("auditor");
    c.kubectl(&["create", "serviceaccount", &sa, "-n", "default"])
        .success();
    let token = c
        .kubectl(&["create", "token", &sa, "-n", "default"])
        .success()
        .stdout;
    let kubeconfig = dir.path().join("sa.kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: '{server}', certificate-authority: '{}'}}}}]\nusers: [{{name: u, user: {{token: '{}'}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n",
            c.env.ca.display(),
            token.trim()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = support::command::plate_policy(&[
        "audit",
        "--kubeconfig",
        kubeconfig.to_str().unwrap_or_default(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = support::command::stderr(&out);
    assert!(
        err.contains("cannot list") && err.contains("forbidden"),
        "{err}"
    );
    assert!(err.contains("the audit needs get and list"), "{err}");
    let _ = c.kubectl(&["delete", "serviceaccount", &sa, "-n", "default"]);
}

/// `plate-policy audit --watch` as a child process: its metrics address read from
/// its log; killed when dropped.
struct Auditor {
    child: std::process::Child,
    metrics: std::net::SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Auditor {
    fn start(c: &Cluster, args: &[&str]) -> Auditor {
        Auditor::start_with(&c.env.kubeconfig, args)
    }

    /// As the user of `kubeconfig`.
    fn start_with(kubeconfig: &std::path::Path, args: &[&str]) -> Auditor {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_plate-policy"))
            .args([
                "--log-format",
                "json",
                "--log-level",
                "info,plate_policy::admission=warn",
            ])
            .args(["audit", "--watch", "--kubeconfig"])
            .arg(kubeconfig)
            .args(["--metrics-addr", "127.0.0.1:0"])
            .args(args)
            .current_dir(support::repo_root())
            .env_remove("POD_NAMESPACE")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the audit: {e}"));
        let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(mut all) = sink.lock() {
                    all.push(line.clone());
                }
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let metrics = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("the audit did not start serving metrics: {e}"));
            if line.contains("serving audit metrics") {
                let value: Value = serde_json::from_str(&line).unwrap_or_default();
                break value["fields"]["metrics"]
                    .as_str()
                    .and_then(|a| a.parse().ok())
                    .unwrap_or_else(|| panic!("no address in {line}"));
            }
        };
        Auditor {
            child,
            metrics,
            log,
        }
    }

    /// The value of the metric series whose line starts with `series`.
    fn metric(&self, series: &str) -> Option<f64> {
        let (code, text) = support::https::http_get(self.metrics, "/metrics").ok()?;
        (code == 200).then_some(())?;
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    fn ready(&self) -> bool {
        matches!(
            support::https::http_get(self.metrics, "/readyz"),
            Ok((200, _))
        )
    }

    fn log_text(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }
}

impl Drop for Auditor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The report of the object with `uid` in `ns` (None: there is none).
fn report_of(c: &Cluster, ns: &str, uid: &str) -> Option<Value> {
    let out = c.kubectl(&["get", "reports.openreports.io", "-n", ns, uid, "-o", "json"]);
    out.ok()
        .then(|| serde_json::from_str(&out.stdout).unwrap_or_default())
}

fn uid_of(c: &Cluster, what: &[&str]) -> String {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["-o", "jsonpath={.metadata.uid}"]);
    c.kubectl(&args).success().stdout.trim().to_string()
}

/// Polls until the report of `uid` satisfies `accept`; returns it and how long it took.
fn await_report(
    c: &Cluster,
    ns: &str,
    uid: &str,
    what: &str,
    accept: impl Fn(&Value) -> bool,
) -> (Value, Duration) {
    let start = Instant::now();
    let report = support::cluster::poll(Duration::from_secs(30), what, || {
        report_of(c, ns, uid).filter(|r| accept(r))
    });
    (report, start.elapsed())
}

fn results_of<'a>(report: &'a Value, policy: &str) -> Vec<&'a Value> {
    report["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["policy"] == policy)
        .collect()
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn audit_watch_keeps_a_report_per_resource_true_to_the_cluster() {
    let mut c = cluster();
    c.dirty = true;
    c.kubectl(&["delete", "validatingwebhookconfiguration", RELEASE])
        .success();
    let ns = unique("watch-prod");
    c.apply(&namespace_manifest(&ns, "production")).success();
    let name = unique("api");
    c.apply(&deployment_manifest(&name, &ns, PLATE_API_LATEST))
        .success();
    let uid = uid_of(&c, &["deployment", "-n", &ns, &name]);
    let set_dir = only_latest_in(&ns);
    let set_file = set_dir.path().join("set.yaml");
    let auditor = Auditor::start(&c, &["--policies", set_file.to_str().unwrap_or_default()]);
    let violations = "plate_policy_audit_violations{environment=\"prod\",mode=\"enforce\",policy=\"no-latest-tag\"}";

    // Found: a failed result with the key, message and properties.
    let (report, _) = await_report(&c, &ns, &uid, "the report of the Deployment", |r| {
        r["summary"]["fail"] == 1
    });
    let fail = results_of(&report, "no-latest-tag");
    assert_eq!(fail.len(), 1, "{report}");
    assert_eq!(fail[0]["result"], "fail");
    assert_eq!(fail[0]["rule"], "container:web");
    assert_eq!(fail[0]["source"], "plate-policy");
    assert_eq!(fail[0]["properties"]["environment"], "prod");
    assert_eq!(
        fail[0]["properties"]["path"],
        "spec.template.spec.containers[0].image"
    );
    assert_eq!(report["scope"]["uid"], uid.as_str());
    assert_eq!(
        report["metadata"]["ownerReferences"][0]["uid"],
        uid.as_str()
    );
    poll(Duration::from_secs(10), "the violations metric", || {
        (auditor.metric(violations) == Some(1.0)).then_some(())
    });
    poll(
        Duration::from_secs(10),
        "readiness after the first pass",
        || auditor.ready().then_some(()),
    );

    // Its namespace relabelled to staging: a pass.
    c.kubectl(&[
        "label",
        "namespace",
        &ns,
        "environment=development",
        "--overwrite",
    ])
    .success();
    let (report, took) = await_report(&c, &ns, &uid, "a pass after the relabel", |r| {
        r["summary"]["fail"] == 0
    });
    let pass = results_of(&report, "no-latest-tag");
    assert_eq!(pass.len(), 1, "{report}");
    assert_eq!(pass[0]["result"], "pass");
    eprintln!("relabel re-reported in {took:?}");
    c.kubectl(&[
        "label",
        "namespace",
        &ns,
        "environment=production",
        "--overwrite",
    ])
    .success();
    await_report(&c, &ns, &uid, "a fail after relabelling back", |r| {
        r["summary"]["fail"] == 1
    });

    // Fixed: the result turns into a pass, the metric to 0.
    c.kubectl(&[
        "-n",
        &ns,
        "set",
        "image",
        &format!("deployment/{name}"),
        "web=harbor.cocdev.co.kr/plate/plate-api:2.4.1",
    ])
    .success();
    let (_, took) = await_report(&c, &ns, &uid, "a pass after the fix", |r| {
        r["summary"]["fail"] == 0 && r["summary"]["pass"] == 1
    });
    eprintln!("one changed object re-reported in {took:?}");
    poll(
        Duration::from_secs(10),
        "the violations metric back to 0",
        || (auditor.metric(violations) == Some(0.0)).then_some(()),
    );

    // A policy-set reload re-audits: the same policy in warn mode warns.
    c.kubectl(&[
        "-n",
        &ns,
        "set",
        "image",
        &format!("deployment/{name}"),
        &format!("web={PLATE_API_LATEST}"),
    ])
    .success();
    await_report(&c, &ns, &uid, "a fail again", |r| r["summary"]["fail"] == 1);
    let text = std::fs::read_to_string(&set_file).unwrap_or_default();
    std::fs::write(
        &set_file,
        text.replacen(
            "      environments: [prod]\n",
            "      environments: [prod]\n      mode: warn\n",
            1,
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    await_report(&c, &ns, &uid, "a warn after the policy set changed", |r| {
        r["summary"]["warn"] == 1 && r["summary"]["fail"] == 0
    });

    // Deleted: the garbage collector removes its report.
    c.kubectl(&["delete", "deployment", "-n", &ns, &name])
        .success();
    poll(
        Duration::from_secs(60),
        "the report to go with its Deployment",
        || report_of(&c, &ns, &uid).is_none().then_some(()),
    );
    assert!(auditor.log_text().contains("first audit pass done"));
    let _ = c.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn audit_watch_writes_nothing_unchanged_after_a_restart_and_follows_cluster_issuers() {
    let mut c = cluster();
    c.dirty = true;
    c.kubectl(&["delete", "validatingwebhookconfiguration", RELEASE])
        .success();
    let issuer = unique("watch-acme");
    let issuer_manifest = |server: &str| acme_cluster_issuer(&issuer, server);
    c.apply(&issuer_manifest(
        "https://acme-v02.api.letsencrypt.org/directory",
    ))
    .success();
    let ingress = unique("web");
    c.apply(&prod_ingress_naming(&ingress, &issuer)).success();
    let uid = uid_of(&c, &["ingress", "-n", "plate-prod", &ingress]);
    let writes = "plate_policy_audit_report_writes_total{result=\"success\"}";
    {
        let auditor = Auditor::start(&c, &[]);
        await_report(&c, "plate-prod", &uid, "the Ingress's report", |r| {
            results_of(r, "no-staging-issuer")
                .first()
                .is_some_and(|x| x["result"] == "pass")
        });
        poll(Duration::from_secs(30), "the first pass", || {
            auditor.ready().then_some(())
        });
    }
    // A second process, nothing changed: its first pass writes no report.
    let auditor = Auditor::start(&c, &[]);
    poll(Duration::from_secs(30), "the first pass", || {
        auditor.ready().then_some(())
    });
    assert_eq!(auditor.metric(writes), Some(0.0), "{}", auditor.log_text());
    // The ClusterIssuer moves to the staging ACME server: the prod Ingress fails.
    c.apply(&issuer_manifest(
        "https://acme-staging-v02.api.letsencrypt.org/directory",
    ))
    .success();
    let (report, took) = await_report(
        &c,
        "plate-prod",
        &uid,
        "a fail once the issuer is staging",
        |r| {
            results_of(r, "no-staging-issuer")
                .first()
                .is_some_and(|x| x["result"] == "fail")
        },
    );
    eprintln!("the Ingress re-reported {took:?} after its ClusterIssuer changed");
    assert!(report.to_string().contains("acme-staging-v02"), "{report}");
    assert_eq!(auditor.metric(writes), Some(1.0));
    let _ = c.kubectl(&["delete", "ingress", "-n", "plate-prod", &ingress]);
    let _ = c.kubectl(&["delete", "clusterissuer", &issuer]);
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn audit_watch_replicas_elect_one_leader_and_a_follower_takes_over() {
    let c = cluster();
    let lease = unique("audit-lease");
    let args = [
        "--lease-namespace",
        "default",
        "--lease-name",
        lease.as_str(),
    ];
    let first = Auditor::start(&c, &[&args[..], &["--identity", "first"]].concat());
    poll(Duration::from_secs(30), "the first replica to lead", || {
        (first.metric("plate_policy_audit_leader") == Some(1.0)).then_some(())
    });
    let second = Auditor::start(&c, &[&args[..], &["--identity", "second"]].concat());
    // The second waits: over several renewals of the first, it never leads.
    let holder = || {
        c.kubectl(&[
            "get",
            "lease",
            "-n",
            "default",
            &lease,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
        .success()
        .stdout
        .trim()
        .to_string()
    };
    let watch_until = Instant::now() + Duration::from_secs(12);
    while Instant::now() < watch_until {
        assert_eq!(second.metric("plate_policy_audit_leader"), Some(0.0));
        assert_eq!(first.metric("plate_policy_audit_leader"), Some(1.0));
        assert_eq!(holder(), "first");
    }
    drop(first);
    poll(
        Duration::from_secs(40),
        "the second replica to take over",
        || (second.metric("plate_policy_audit_leader") == Some(1.0)).then_some(()),
    );
    let _ = c.kubectl(&["delete", "lease", "-n", "default", &lease]);
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn chart_audit_is_accepted_leaves_existing_report_crds_alone_and_its_rbac_suffices() {
    let mut c = cluster();
    c.dirty = true;
    // The baseline installed the OpenReports CRDs (as Kyverno or Policy Reporter would).
    let before = c
        .kubectl(&["get", "crd", "reports.openreports.io", "-o", "json"])
        .success()
        .stdout;
    let out = c.helm_upgrade(&["--set", "audit.enabled=true"]).success();
    assert!(out.stdout.contains("STATUS: deployed"), "{}", out.text());
    let crd: Value = serde_json::from_str(
        &c.kubectl(&["get", "crd", "reports.openreports.io", "-o", "json"])
            .success()
            .stdout,
    )
    .unwrap_or_default();
    assert!(
        crd["metadata"]["annotations"]["meta.helm.sh/release-name"].is_null(),
        "the chart took over an existing CRD: {crd}"
    );
    let before: Value = serde_json::from_str(&before).unwrap_or_default();
    assert_eq!(crd["spec"], before["spec"], "the existing CRD was changed");
    c.kubectl(&["get", "deployment", "-n", RELEASE_NS, "plate-policy-audit"])
        .success();

    // The audit as the chart's audit ServiceAccount, with the chart's policy set and
    // its Lease: its RBAC lets it list, watch, elect and write reports.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let token = c
        .kubectl(&["-n", RELEASE_NS, "create", "token", "plate-policy-audit"])
        .success()
        .stdout;
    let server = format!("https://{}:{}", c.env.api_host, c.env.api_port);
    let kubeconfig = dir.path().join("audit.kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: '{server}', certificate-authority: '{}'}}}}]\nusers: [{{name: u, user: {{token: '{}'}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n",
            c.env.ca.display(),
            token.trim()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let set = c
        .kubectl(&[
            "get",
            "configmap",
            "-n",
            RELEASE_NS,
            "plate-policy-policies",
            "-o",
            "jsonpath={.data.policies\\.yaml}",
        ])
        .success()
        .stdout;
    let set_file = dir.path().join("policies.yaml");
    std::fs::write(&set_file, set).unwrap_or_else(|e| panic!("{e}"));
    let name = unique("chart-audit");
    c.apply(&deployment_manifest(&name, "plate-stg", "nginx:1.25"))
        .success();
    let uid = uid_of(&c, &["deployment", "-n", "plate-stg", &name]);
    let auditor = Auditor::start_with(
        &kubeconfig,
        &[
            "--policies",
            set_file.to_str().unwrap_or_default(),
            "--lease-namespace",
            RELEASE_NS,
            "--lease-name",
            "plate-policy-audit",
        ],
    );
    poll(Duration::from_secs(30), "the audit to lead", || {
        (auditor.metric("plate_policy_audit_leader") == Some(1.0)).then_some(())
    });
    await_report(
        &c,
        "plate-stg",
        &uid,
        "a report written as the chart's ServiceAccount",
        |r| r["summary"]["pass"].as_u64().unwrap_or(0) > 0,
    );
    assert!(
        !auditor.log_text().contains("forbidden"),
        "{}",
        auditor.log_text()
    );
    let _ = c.kubectl(&["delete", "deployment", "-n", "plate-stg", &name]);
}

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn audit_dashboard_panels_and_alert_have_data_from_a_real_audit() {
    use support::prometheus::{DASHBOARD, Prometheus, RULES, panel_queries, substitute};
    let mut c = cluster();
    c.dirty = true;
    c.kubectl(&["delete", "validatingwebhookconfiguration", RELEASE])
        .success();
    let ns = unique("dash-prod");
    c.apply(&namespace_manifest(&ns, "production")).success();
    let name = unique("api");
    c.apply(&deployment_manifest(&name, &ns, PLATE_API_LATEST))
        .success();
    let auditor = Auditor::start(&c, &[]);
    poll(Duration::from_secs(30), "the first pass", || {
        auditor.ready().then_some(())
    });
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let prometheus = Prometheus::start(dir.path(), auditor.metrics);
    let violations = "plate_policy_audit_violations{environment=\"prod\",mode=\"enforce\",policy=\"no-latest-tag\"}";
    poll(Duration::from_secs(60), "two scrapes of the audit", || {
        let r = prometheus.result(&format!("count_over_time({violations}[1m]) >= 2"));
        (!r.is_empty()).then_some(())
    });
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(support::repo_root().join(DASHBOARD)).unwrap_or_default(),
    )
    .unwrap_or_default();
    let mut queries = Vec::new();
    panel_queries(
        dashboard["panels"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default(),
        &mut queries,
    );
    let audit: Vec<&(String, String)> = queries
        .iter()
        .filter(|(_, e)| e.contains("plate_policy_audit_"))
        .collect();
    assert!(audit.len() >= 3, "the dashboard's audit panels: {audit:?}");
    for (title, expr) in audit {
        assert!(
            !prometheus.result(&substitute(expr)).is_empty(),
            "{title}: {expr} has no data"
        );
    }
    // The alert's expression finds the prod violation (its `for: 1h` is promtool's
    // unit test, tests/alerts/).
    let rules: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(support::repo_root().join(RULES)).unwrap_or_default(),
    )
    .unwrap_or_default();
    let expr = rules["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .find(|r| r["alert"] == "PlatePolicyEnforceViolationsInProd")
        .and_then(|r| r["expr"].as_str())
        .unwrap_or_else(|| panic!("no PlatePolicyEnforceViolationsInProd rule"))
        .to_string();
    let firing = prometheus.result(&expr);
    assert!(
        firing
            .iter()
            .any(|s| s["metric"]["policy"] == "no-latest-tag"),
        "{expr}: {firing:?}"
    );
    let _ = c.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}

// ---------------------------------------------------------------------------------------
// Issue 18: a policy module from an OCI registry, installed with helm.

#[test]
#[ignore = "needs the control plane: scripts/cluster.sh up"]
fn oci_module_installed_with_helm_decides_like_the_builtin() {
    use support::registry::Registry;
    let mut c = cluster();
    c.dirty = true;
    // The built-in denial, for comparison.
    let name = unique("oci");
    let builtin = create(&c, &pod_manifest(&name, "plate-prod", PLATE_API_LATEST)).failure();
    assert!(
        builtin.stderr.contains(&denied_by_webhook(LATEST_DENIAL)),
        "{}",
        builtin.text()
    );

    // A registry with TLS (a private CA) and basic auth, on the bridge's host address,
    // where the replicas in their network namespaces reach it.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let host: std::net::Ipv4Addr = c
        .env
        .api_host
        .parse()
        .unwrap_or_else(|e| panic!("the harness's host address: {e}"));
    let registry = Registry::secure(&dir.path().join("registry"), host.octets());
    let wasm = dir.path().join("no-latest-tag.wasm");
    std::fs::write(
        &wasm,
        plate_policy::builtin::module("no-latest-tag").unwrap_or_else(|| panic!("no module")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let reference = format!("oci://{}/plate/no-latest-tag:1.0", registry.addr);
    let mut push: Vec<String> = vec!["push".into(), wasm.display().to_string(), reference.clone()];
    push.extend(registry.cli_args());
    let push: Vec<&str> = push.iter().map(String::as_str).collect();
    let out = support::command::plate_policy(&push);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        support::command::stderr(&out)
    );
    let digest = support::command::stdout(&out).trim().to_string();
    let pinned = format!("oci://{}/plate/no-latest-tag@{digest}", registry.addr);

    // The pull Secret and the CA, as a platform team would create them.
    let auth = std::fs::read_to_string(registry.auth()).unwrap_or_default();
    let _ = c.kubectl(&[
        "delete",
        "secret",
        "-n",
        RELEASE_NS,
        "plate-oci-pull",
        "--ignore-not-found",
    ]);
    c.kubectl(&[
        "create",
        "secret",
        "generic",
        "plate-oci-pull",
        "-n",
        RELEASE_NS,
        "--type",
        "kubernetes.io/dockerconfigjson",
        &format!("--from-literal=.dockerconfigjson={auth}"),
    ])
    .success();
    let _ = c.kubectl(&[
        "delete",
        "configmap",
        "-n",
        RELEASE_NS,
        "plate-oci-ca",
        "--ignore-not-found",
    ]);
    c.kubectl(&[
        "create",
        "configmap",
        "plate-oci-ca",
        "-n",
        RELEASE_NS,
        &format!("--from-file=ca.crt={}", registry.ca().display()),
    ])
    .success();

    // The chart's policy set with no-latest-tag from the registry, pinned by digest.
    let addr = registry.addr.to_string();
    let values = policy_set_values(|policies| {
        for p in policies.iter_mut() {
            if p["name"] == "no-latest-tag" {
                p["module"] = Value::String(pinned.clone());
                // The built-ins are one module: its settings say which policy runs.
                let settings = p["settings"].take();
                p["settings"] =
                    serde_json::json!({"policy": "no-latest-tag", "settings": settings});
            }
        }
    });
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&values).unwrap_or_default())
            .unwrap_or_default();
    // Relative to the policy set's file, /etc/plate-policy/policies/policies.yaml: in a
    // pod that is /etc/plate-policy/registry-ca/ca.crt, where the chart mounts the CA
    // (the harness maps mount paths to directories instead of mounting them).
    doc["policySet"]["spec"]["registries"] = serde_json::json!({
        addr.as_str(): {"caFile": "../registry-ca/ca.crt"}
    });
    doc["registry"] =
        serde_json::json!({"pullSecret": "plate-oci-pull", "caConfigMap": "plate-oci-ca"});
    std::fs::write(&values, doc.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let values = values.display().to_string();
    c.helm_upgrade(&["-f", &values]).success();
    // New pods: the Deployment's template changed (the Secret and CA mounted).
    let replicas = c.node.rolling_restart();
    assert_eq!(replicas.len(), 2);
    let pulled = replicas.iter().all(|r| {
        r.log_lines_with(&["oci"])
            .iter()
            .any(|l| l.contains(&digest))
    });
    assert!(pulled, "the replicas did not log the pulled digest");

    // The same decision, word for word, with the module from the registry.
    let oci = create(
        &c,
        &pod_manifest(&unique("oci"), "plate-prod", PLATE_API_LATEST),
    )
    .failure();
    assert!(
        oci.stderr.contains(&denied_by_webhook(LATEST_DENIAL)),
        "{}",
        oci.text()
    );
    create(
        &c,
        &pod_manifest(&unique("oci"), "plate-prod", "nginx:1.25"),
    )
    .success();
    let _ = c.kubectl(&[
        "delete",
        "pods",
        "-n",
        "plate-prod",
        "--all",
        "--wait=false",
    ]);
    drop(reference);
}
