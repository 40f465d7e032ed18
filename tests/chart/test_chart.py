"""Tests of the Helm chart charts/plate-policy, offline (no cluster, no helm binary).

Renders with helm-python-sdk (Helm's own Go SDK), validates every object with
kubernetes-validate, and checks what the chart promises: webhook rules derived from the
policy set, TLS modes, security settings, args that match the server's flags, one source
for the dashboard and alert rules, the values schema, and that the rendered policy set
is accepted by plate-policy itself. Run: bash scripts/chart-tests.sh
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

import helm_python
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "plate-policy"
RELEASE = "plate-policy"
NAMESPACE = "plate-system"
KUBE_VERSION = "1.33"

# Kinds served by CRDs (cert-manager, Prometheus Operator): kubernetes-validate only has
# the schemas of Kubernetes' built-in API, so these are checked by hand (check_crd_shape).
CRD_API_GROUPS = {"cert-manager.io", "monitoring.coreos.com"}

VALUES_FILES = {
    "default": None,
    "stg": CHART / "values-stg.yaml",
    "prod": CHART / "values-prod.yaml",
}

PEM_CA = """-----BEGIN CERTIFICATE-----
MIIBdzCCAR2gAwIBAgIUYWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4MAoGCCqGSM49BAMC
-----END CERTIFICATE-----"""


# ----------------------------------------------------------------------------- helpers


def load_values(name: str) -> dict:
    path = VALUES_FILES[name]
    return {} if path is None else (yaml.safe_load(path.read_text()) or {})


@pytest.fixture(scope="session")
def chart():
    with helm_python.Chart.load(CHART) as loaded:
        yield loaded


def render(chart, values: dict | None = None, namespace: str = NAMESPACE) -> dict[str, str]:
    return chart.render(
        values=values or {}, name=RELEASE, namespace=namespace, is_install=True
    )


def objects(rendered: dict[str, str]) -> list[dict]:
    """Every Kubernetes object of a render (NOTES.txt and empty templates left out)."""
    found = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                found.append(doc)
    return found


def render_objects(chart, values: dict | None = None, namespace: str = NAMESPACE) -> list[dict]:
    return objects(render(chart, values, namespace))


def one(objs: list[dict], kind: str, name: str | None = None) -> dict:
    matches = [
        o
        for o in objs
        if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def kinds(objs: list[dict]) -> list[str]:
    return sorted(o["kind"] for o in objs)


def merged_values(chart, values: dict | None) -> dict:
    return chart.merge_values(values or {})


def container(objs: list[dict]) -> dict:
    deployment = one(objs, "Deployment")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def parse_args(args: list[str]) -> dict[str, str | bool]:
    """`serve --flag value --switch` -> {"--flag": "value", "--switch": True}."""
    assert args[0] == "serve"
    flags: dict[str, str | bool] = {}
    i = 1
    while i < len(args):
        arg = args[i]
        assert arg.startswith("--"), f"unexpected positional argument {arg!r}"
        if i + 1 < len(args) and not args[i + 1].startswith("--"):
            flags[arg] = args[i + 1]
            i += 2
        else:
            flags[arg] = True
            i += 1
    return flags


def port_of(addr: str) -> int:
    return int(addr.rsplit(":", 1)[1])


# Independent of the chart's template: what the webhook rules must be for a policy set.
def plural(kind: str) -> str:
    k = kind.lower()
    if k == "*":
        return "*"
    if re.search(r"(s|x|ch|sh)$", k):
        return k + "es"
    if re.search(r"[^aeiou]y$", k):
        return k[:-1] + "ies"
    return k + "s"


def expected_rules(policy_set: dict) -> set[tuple[str, tuple[str, ...], str]]:
    """{(apiGroup, operations, resource)} the policy set's match sections call for."""
    expected = set()
    for policy in policy_set["spec"]["policies"]:
        match = policy.get("match") or {}
        ops = match.get("operations") or ["CREATE", "UPDATE"]
        ops = ("*",) if "*" in ops else tuple(sorted(set(ops)))
        for selector in match["kinds"]:
            if selector == "*":
                group, kind = "*", "*"
            elif "/" in selector:
                group, kind = selector.rsplit("/", 1)
            else:
                group, kind = "", selector
            resource = plural(kind)
            expected.add((group, ops, resource))
            for sub in match.get("subresources") or []:
                expected.add((group, ops, f"{resource}/{sub}"))
    # Wildcards cover the names they include (the API server rejects both side by side).
    covered = set()
    for group, ops, resource in expected:
        res, _, sub = resource.partition("/")
        if (group, ops, "*/*") in expected and resource != "*/*":
            covered.add((group, ops, resource))
        elif not sub and res != "*" and (group, ops, "*") in expected:
            covered.add((group, ops, resource))
        elif sub and res != "*" and (group, ops, f"*/{sub}") in expected:
            covered.add((group, ops, resource))
        elif sub and sub != "*" and (group, ops, f"{res}/*") in expected:
            covered.add((group, ops, resource))
    return expected - covered


def actual_rules(webhook: dict) -> set[tuple[str, tuple[str, ...], str]]:
    found = set()
    for rule in webhook["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                found.add((group, tuple(rule["operations"]), resource))
    return found


def check_rule_like_the_api_server(rule: dict) -> None:
    """The API server's own checks of a webhook rule (ValidateRule in
    k8s.io/kubernetes/pkg/apis/admissionregistration/validation), which the OpenAPI
    schemas kubernetes-validate uses cannot express."""
    for field in ("apiGroups", "apiVersions", "operations"):
        values = rule[field]
        assert values, field
        assert "*" not in values or len(values) == 1, f"{field}: '*' must be alone: {values}"
    assert set(rule["operations"]) <= {"CREATE", "UPDATE", "DELETE", "CONNECT", "*"}
    resources = rule["resources"]
    assert resources and len(resources) == len(set(resources))
    if "*/*" in resources:
        assert resources == ["*/*"], resources
    plain = [r for r in resources if "/" not in r]
    if "*" in plain:
        assert plain == ["*"], f"'*' next to other resources: {resources}"
    for r in resources:
        res, _, sub = r.partition("/")
        if sub and res != "*":
            assert f"*/{sub}" not in resources, f"'*/{sub}' next to {r}"
        if sub and sub != "*":
            assert f"{res}/*" not in resources, f"'{res}/*' next to {r}"
    assert rule["scope"] in {"*", "Cluster", "Namespaced"}


def the_webhook(objs: list[dict]) -> dict:
    config = one(objs, "ValidatingWebhookConfiguration")
    assert len(config["webhooks"]) == 1
    return config["webhooks"][0]


def check_crd_shape(obj: dict) -> None:
    """Hand-checked shape of the CRD objects kubernetes-validate has no schema for."""
    group, _, version = obj["apiVersion"].partition("/")
    assert version == "v1", obj["apiVersion"]
    meta = obj["metadata"]
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", meta["name"]), meta["name"]
    assert meta["namespace"]
    assert set(obj) <= {"apiVersion", "kind", "metadata", "spec"}
    spec = obj["spec"]
    assert isinstance(spec, dict)
    kind = obj["kind"]
    if group == "cert-manager.io" and kind == "Issuer":
        assert len(set(spec) & {"selfSigned", "ca", "acme", "vault", "venafi"}) == 1, spec
        if "ca" in spec:
            assert spec["ca"]["secretName"]
    elif group == "cert-manager.io" and kind == "Certificate":
        assert spec["secretName"]
        assert spec["issuerRef"]["name"]
        assert spec["issuerRef"].get("kind", "Issuer") in {"Issuer", "ClusterIssuer"}
        if not spec.get("isCA"):
            assert spec["dnsNames"]
            assert "server auth" in spec["usages"]
        for field in ("duration", "renewBefore"):
            if field in spec:
                assert re.fullmatch(r"([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+", spec[field])
    elif group == "monitoring.coreos.com" and kind == "ServiceMonitor":
        assert spec["selector"]["matchLabels"]
        assert spec["endpoints"] and all(e["port"] for e in spec["endpoints"])
    elif group == "monitoring.coreos.com" and kind == "PrometheusRule":
        assert spec["groups"]
        for grp in spec["groups"]:
            assert grp["name"] and grp["rules"]
            for rule in grp["rules"]:
                assert ("alert" in rule) != ("record" in rule)
                assert rule["expr"]
    else:
        pytest.fail(f"no hand check for {obj['apiVersion']} {kind}")


def validate_all(objs: list[dict]) -> None:
    for obj in objs:
        group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
        if group in CRD_API_GROUPS:
            check_crd_shape(obj)
            continue
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(
                f"{obj['kind']}/{obj['metadata']['name']}: {e.message} at {list(e.path)}"
            )


# ------------------------------------------------------------------- render, lint, validate


@pytest.mark.parametrize("env", list(VALUES_FILES))
def test_renders_the_expected_objects(chart, env):
    values = load_values(env)
    objs = render_objects(chart, values)
    expected = {
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
        "ServiceAccount",
        "ValidatingWebhookConfiguration",
        "Certificate",
        "Issuer",
    }
    assert expected <= set(kinds(objs))
    merged = merged_values(chart, values)
    assert ("PodDisruptionBudget" in kinds(objs)) == merged["podDisruptionBudget"]["enabled"]
    for kind, key in [
        ("ServiceMonitor", "serviceMonitor"),
        ("PrometheusRule", "prometheusRule"),
    ]:
        assert (kind in kinds(objs)) == merged[key]["enabled"], kind
    dashboards = [o for o in objs if o["kind"] == "ConfigMap" and "plate-policy.json" in o.get("data", {})]
    assert len(dashboards) == int(merged["grafanaDashboard"]["enabled"])
    # Every namespaced object lands in the release namespace.
    for o in objs:
        if o["kind"] not in {"ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration"}:
            assert o["metadata"]["namespace"] == NAMESPACE, o["kind"]


def test_environment_overlays(chart):
    stg = render_objects(chart, load_values("stg"))
    prod = render_objects(chart, load_values("prod"))
    assert the_webhook(stg)["failurePolicy"] == "Ignore"
    assert one(stg, "Deployment")["spec"]["replicas"] == 1
    assert "PodDisruptionBudget" not in kinds(stg)  # one replica: a PDB would block drains
    assert the_webhook(prod)["failurePolicy"] == "Fail"
    assert one(prod, "Deployment")["spec"]["replicas"] == 3
    assert one(prod, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    assert {"ServiceMonitor", "PrometheusRule"} <= set(kinds(prod))
    # Both use the chart's own CA for the in-cluster serving certificate.
    for objs in (stg, prod):
        names = {o["metadata"]["name"] for o in objs if o["kind"] == "Issuer"}
        assert names == {"plate-policy-selfsigned", "plate-policy-ca"}


@pytest.mark.parametrize("env", list(VALUES_FILES))
def test_lint_is_clean(env):
    report = helm_python.lint(CHART, values=load_values(env), namespace=NAMESPACE)
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == [], problems


VALIDATE_CASES = {
    "default": {},
    "stg": load_values("stg"),
    "prod": load_values("prod"),
    "existingSecret": {
        "tls": {"mode": "existingSecret", "existingSecret": {"name": "webhook-tls", "caBundle": PEM_CA}}
    },
    "issuerRef": {"tls": {"certManager": {"issuerRef": {"name": "platform-ca", "kind": "ClusterIssuer"}}}},
    "everything-on": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "prometheusRule": {"enabled": True},
        "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "Platform"}},
        "metricsNamespaceLabel": True,
        "logLevel": "plate_policy=debug",
        "imagePullSecrets": [{"name": "harbor"}],
        "priorityClassName": "system-cluster-critical",
        "preStopSleepSeconds": 0,
        "extraVolumes": [{"name": "modules", "configMap": {"name": "my-modules"}}],
        "extraVolumeMounts": [{"name": "modules", "mountPath": "/etc/plate-policy/modules"}],
    },
    "audit": {"audit": {"enabled": True}, "serviceMonitor": {"enabled": True}},
    "audit-wgpolicyk8s": {"audit": {"enabled": True, "replicas": 2, "reports": {"api": "wgpolicyk8s"}}},
}


@pytest.mark.parametrize("case", list(VALIDATE_CASES))
def test_every_object_validates_against_kubernetes_schemas(chart, case):
    objs = render_objects(chart, VALIDATE_CASES[case])
    assert objs
    validate_all(objs)


def test_notes_render(chart):
    notes = render(chart)[f"{RELEASE}/templates/NOTES.txt"]
    assert "kubectl delete validatingwebhookconfiguration plate-policy" in notes
    assert "validate.policy.plate.dev" in notes


# ------------------------------------------------------------------------ webhook rules


@pytest.mark.parametrize("env", list(VALUES_FILES))
def test_webhook_rules_cover_exactly_the_policy_set(chart, env):
    values = load_values(env)
    webhook = the_webhook(render_objects(chart, values))
    policy_set = merged_values(chart, values)["policySet"]
    assert actual_rules(webhook) == expected_rules(policy_set)
    for rule in webhook["rules"]:
        check_rule_like_the_api_server(rule)
        assert len(rule["apiGroups"]) == 1
        assert rule["apiVersions"] == ["*"]
        assert rule["scope"] == "*"
        assert rule["resources"] == sorted(set(rule["resources"]))
    # One rule per (apiGroup, operations).
    keys = [(r["apiGroups"][0], tuple(r["operations"])) for r in webhook["rules"]]
    assert len(keys) == len(set(keys))


def test_default_rules_spelled_out(chart):
    """Part of the built-in set's rules, written out by hand (a check on the check;
    subsets, so that adding a kind to policies/policies.yaml does not break it)."""
    webhook = the_webhook(render_objects(chart))
    by_group = {r["apiGroups"][0]: set(r["resources"]) for r in webhook["rules"]}
    assert {
        "namespaces",
        "pods",
        "pods/ephemeralcontainers",
        "podtemplates",
        "replicationcontrollers",
    } <= by_group[""]
    assert {"deployments", "statefulsets", "daemonsets", "replicasets"} <= by_group["apps"]
    assert {"jobs", "cronjobs", "cronjobs/ephemeralcontainers"} <= by_group["batch"]
    assert "ingresses" in by_group["networking.k8s.io"]
    assert "certificates" in by_group["cert-manager.io"]
    assert "gateways" in by_group["gateway.networking.k8s.io"]
    assert all(r["operations"] == ["CREATE", "UPDATE"] for r in webhook["rules"])


def policy_set_with(*policies: dict) -> dict:
    return {
        "policySet": {
            "apiVersion": "policy.plate.dev/v1alpha1",
            "kind": "PolicySet",
            "metadata": {"name": "custom"},
            "spec": {"policies": list(policies)},
        }
    }


def test_custom_policy_set_drives_the_rules(chart):
    values = policy_set_with(
        {
            "name": "issuers",
            "module": "builtin:no-staging-issuer",
            "match": {"kinds": ["cert-manager.io/Certificate", "networking.k8s.io/NetworkPolicy"]},
        }
    )
    objs = render_objects(chart, values)
    webhook = the_webhook(objs)
    assert actual_rules(webhook) == {
        ("cert-manager.io", ("CREATE", "UPDATE"), "certificates"),
        ("networking.k8s.io", ("CREATE", "UPDATE"), "networkpolicies"),
    }
    assert actual_rules(webhook) == expected_rules(merged_values(chart, values)["policySet"])
    validate_all(objs)


def test_plurals_wildcards_operations_and_subresources(chart):
    values = policy_set_with(
        {
            "name": "a",
            "module": "builtin:no-latest-tag",
            "match": {
                "kinds": ["Ingress", "NetworkPolicy", "Gateway", "Mesh", "Box", "Pod", "Pod"],
                "operations": ["UPDATE", "CREATE", "UPDATE"],
                "subresources": ["ephemeralcontainers"],
            },
        },
        {
            "name": "b",
            "module": "builtin:no-latest-tag",
            "match": {"kinds": ["apps/*", "apps/Deployment"], "operations": ["DELETE"]},
        },
        {
            "name": "c",
            "module": "builtin:no-latest-tag",
            "match": {"kinds": ["*", "batch/Job"], "operations": ["CREATE", "*"]},
        },
    )
    objs = render_objects(chart, values)
    webhook = the_webhook(objs)
    rules = {(r["apiGroups"][0], tuple(r["operations"])): r["resources"] for r in webhook["rules"]}
    assert rules == {
        ("", ("CREATE", "UPDATE")): [
            "boxes",
            "boxes/ephemeralcontainers",
            "gateways",
            "gateways/ephemeralcontainers",
            "ingresses",
            "ingresses/ephemeralcontainers",
            "meshes",
            "meshes/ephemeralcontainers",
            "networkpolicies",
            "networkpolicies/ephemeralcontainers",
            "pods",
            "pods/ephemeralcontainers",
        ],
        ("apps", ("DELETE",)): ["*"],
        ("*", ("*",)): ["*"],
        ("batch", ("*",)): ["jobs"],
    }
    assert actual_rules(webhook) == expected_rules(merged_values(chart, values)["policySet"])
    for rule in webhook["rules"]:
        check_rule_like_the_api_server(rule)
    validate_all(objs)


def test_subresource_wildcards_are_collapsed(chart):
    values = policy_set_with(
        {
            "name": "a",
            "module": "builtin:x",
            "match": {"kinds": ["apps/Deployment", "apps/*", "Pod"], "subresources": ["status", "scale"]},
        },
    )
    webhook = the_webhook(render_objects(chart, values))
    rules = {(r["apiGroups"][0], tuple(r["operations"])): r["resources"] for r in webhook["rules"]}
    assert rules == {
        ("", ("CREATE", "UPDATE")): ["pods", "pods/scale", "pods/status"],
        ("apps", ("CREATE", "UPDATE")): ["*", "*/scale", "*/status"],
    }
    for rule in webhook["rules"]:
        check_rule_like_the_api_server(rule)
    assert actual_rules(webhook) == expected_rules(merged_values(chart, values)["policySet"])


@pytest.mark.parametrize("namespace", [NAMESPACE, "policy-system"])
def test_namespace_selector_excludes_kube_system_and_own_namespace(chart, namespace):
    objs = render_objects(chart, namespace=namespace)
    webhook = the_webhook(objs)
    assert webhook["namespaceSelector"] == {
        "matchExpressions": [
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "NotIn",
                "values": ["kube-system", namespace],
            }
        ]
    }
    sa = one(objs, "ServiceAccount")["metadata"]["name"]
    assert webhook["matchConditions"] == [
        {
            "name": "not-plate-policy-itself",
            "expression": f'request.userInfo.username != "system:serviceaccount:{namespace}:{sa}"',
        }
    ]


def test_webhook_settings(chart):
    objs = render_objects(chart, {"webhook": {"failurePolicy": "Ignore", "timeoutSeconds": 3}})
    webhook = the_webhook(objs)
    service = one(objs, "Service")
    assert webhook["name"] == "validate.policy.plate.dev"
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["sideEffects"] == "None"
    assert webhook["failurePolicy"] == "Ignore"
    assert webhook["timeoutSeconds"] == 3
    assert webhook["clientConfig"]["service"] == {
        "name": service["metadata"]["name"],
        "namespace": NAMESPACE,
        "path": "/validate",
        "port": 443,
    }
    https = [p for p in service["spec"]["ports"] if p["port"] == 443]
    assert https == [{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}]


# --------------------------------------------------------------------------------- TLS


def test_cert_manager_mode(chart):
    objs = render_objects(chart)
    config = one(objs, "ValidatingWebhookConfiguration")
    serving = one(objs, "Certificate", "plate-policy-tls")
    assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        f"{NAMESPACE}/plate-policy-tls"
    )
    assert "caBundle" not in config["webhooks"][0]["clientConfig"]
    # Bootstrap: self-signed Issuer -> CA Certificate -> CA Issuer -> serving Certificate.
    selfsigned = one(objs, "Issuer", "plate-policy-selfsigned")
    ca_cert = one(objs, "Certificate", "plate-policy-ca")
    ca_issuer = one(objs, "Issuer", "plate-policy-ca")
    assert selfsigned["spec"] == {"selfSigned": {}}
    assert ca_cert["spec"]["isCA"] is True
    assert ca_cert["spec"]["issuerRef"]["name"] == "plate-policy-selfsigned"
    assert ca_issuer["spec"]["ca"]["secretName"] == ca_cert["spec"]["secretName"]
    assert serving["spec"]["issuerRef"]["name"] == "plate-policy-ca"
    assert serving["spec"]["duration"] == "2160h"
    assert serving["spec"]["renewBefore"] == "720h"
    assert "plate-policy.plate-system.svc" in serving["spec"]["dnsNames"]
    # The Certificate's Secret is what the pod mounts at /etc/plate-policy/tls.
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert volume["secret"]["secretName"] == serving["spec"]["secretName"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "tls")
    assert mount["mountPath"] == "/etc/plate-policy/tls"


def test_cert_manager_with_own_issuer(chart):
    objs = render_objects(
        chart, {"tls": {"certManager": {"issuerRef": {"name": "platform-ca", "kind": "ClusterIssuer"}}}}
    )
    assert "Issuer" not in kinds(objs)
    serving = one(objs, "Certificate")
    assert serving["spec"]["issuerRef"] == {"name": "platform-ca", "kind": "ClusterIssuer"}


@pytest.mark.parametrize("given", ["pem", "base64"])
def test_existing_secret_mode(chart, given):
    b64 = base64.b64encode((PEM_CA + "\n").encode()).decode()
    ca = PEM_CA if given == "pem" else b64
    objs = render_objects(
        chart, {"tls": {"mode": "existingSecret", "existingSecret": {"name": "webhook-tls", "caBundle": ca}}}
    )
    config = one(objs, "ValidatingWebhookConfiguration")
    assert config["webhooks"][0]["clientConfig"]["caBundle"] == b64
    assert "cert-manager.io/inject-ca-from" not in (config["metadata"].get("annotations") or {})
    assert "Certificate" not in kinds(objs) and "Issuer" not in kinds(objs)
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert {"name": "tls", "secret": {"secretName": "webhook-tls"}} in pod["volumes"]


@pytest.mark.parametrize(
    "existing, message",
    [
        ({"name": "webhook-tls", "caBundle": ""}, "tls.existingSecret.caBundle is required"),
        ({"name": "", "caBundle": PEM_CA}, "tls.existingSecret.name is required"),
    ],
)
def test_existing_secret_mode_requires_name_and_ca(chart, existing, message):
    with pytest.raises(helm_python.HelmError, match=re.escape(message)):
        render(chart, {"tls": {"mode": "existingSecret", "existingSecret": existing}})


# ------------------------------------------------------------------- pod and server flags


def test_security_context(chart):
    objs = render_objects(chart)
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    sc = container(objs)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == 65532
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container(objs)["resources"] == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"memory": "256Mi"},
    }
    assert container(objs)["image"] == "harbor.cocdev.co.kr/plate/plate-policy:0.1.0"
    # Default anti-affinity spreads replicas over nodes.
    term = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"


def expected_rbac(policy_set: dict) -> set[tuple[str, str]]:
    """{(apiGroup, resource)}: Namespaces plus every kind a policy lists under context."""
    expected = {("", "namespaces")}
    for policy in policy_set["spec"]["policies"]:
        for ctx in policy.get("context") or []:
            group = ctx["apiVersion"].rsplit("/", 1)[0] if "/" in ctx["apiVersion"] else ""
            expected.add((group, plural(ctx["kind"])))
    return expected


@pytest.mark.parametrize("env", list(VALUES_FILES))
def test_rbac_is_read_only_on_namespaces_and_context_kinds(chart, env):
    values = load_values(env)
    objs = render_objects(chart, values)
    rules = one(objs, "ClusterRole")["rules"]
    granted = {(g, r) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]}
    assert granted == expected_rbac(merged_values(chart, values)["policySet"])
    assert all(rule["verbs"] == ["get", "list", "watch"] for rule in rules)
    assert "Role" not in kinds(objs) and "RoleBinding" not in kinds(objs)


def test_rbac_follows_custom_context(chart):
    values = policy_set_with(
        {"name": "a", "module": "builtin:x", "match": {"kinds": ["Pod"]}}
    )
    rules = one(render_objects(chart, values), "ClusterRole")["rules"]
    assert rules == [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]}]
    values["policySet"]["spec"]["policies"][0]["context"] = [
        {"apiVersion": "v1", "kind": "ConfigMap"},
        {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass"},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy"},
    ]
    rules = one(render_objects(chart, values), "ClusterRole")["rules"]
    assert rules == [
        {"apiGroups": [""], "resources": ["configmaps", "namespaces"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingressclasses", "networkpolicies"], "verbs": ["get", "list", "watch"]},
    ]


def test_rbac_binds_the_service_account(chart):
    objs = render_objects(chart)
    binding = one(objs, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": one(objs, "ServiceAccount")["metadata"]["name"], "namespace": NAMESPACE}
    ]
    assert one(objs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == (
        one(objs, "ServiceAccount")["metadata"]["name"]
    )


@pytest.mark.parametrize("env", list(VALUES_FILES))
def test_ports_probes_and_mounts_match_the_server_flags(chart, env):
    values = load_values(env)
    objs = render_objects(chart, values)
    c = container(objs)
    flags = parse_args(c["args"])
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["https"] == port_of(flags["--addr"]) == 8443
    assert ports["metrics"] == port_of(flags["--metrics-addr"]) == 9090
    assert flags["--addr"] == "0.0.0.0:8443" and flags["--metrics-addr"] == "0.0.0.0:9090"
    for probe, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
        get = c[probe]["httpGet"]
        assert get["path"] == path
        port = ports[get["port"]] if isinstance(get["port"], str) else get["port"]
        assert port == port_of(flags["--metrics-addr"])
    service_ports = {p["name"]: p for p in one(objs, "Service")["spec"]["ports"]}
    assert service_ports["metrics"]["port"] == 9090
    assert service_ports["metrics"]["targetPort"] == "metrics"
    assert service_ports["https"]["targetPort"] == "https"

    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert flags["--tls-cert"] == mounts["tls"]["mountPath"] + "/tls.crt"
    assert flags["--tls-key"] == mounts["tls"]["mountPath"] + "/tls.key"
    # The policy set: the ConfigMap as a directory (no subPath, so hot reload sees updates).
    assert "subPath" not in mounts["policies"]
    assert flags["--policies"] == mounts["policies"]["mountPath"] + "/policies.yaml"
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    cm_name = next(v for v in pod["volumes"] if v["name"] == "policies")["configMap"]["name"]
    assert "policies.yaml" in one(objs, "ConfigMap", cm_name)["data"]

    merged = merged_values(chart, values)
    assert flags["--log-format"] == merged["logFormat"] == "json"
    assert flags["--drain-timeout-secs"] == str(merged["drainTimeoutSeconds"])
    assert "--metrics-namespace-label" not in flags
    grace = pod["terminationGracePeriodSeconds"]
    assert grace == merged["terminationGracePeriodSeconds"]
    assert grace > int(flags["--drain-timeout-secs"]) + merged["preStopSleepSeconds"]
    # No restart on policy edits: no checksum annotation on the pod template.
    annotations = one(objs, "Deployment")["spec"]["template"]["metadata"].get("annotations") or {}
    assert not any(k.startswith("checksum/") for k in annotations)


def test_optional_flags(chart):
    flags = parse_args(
        container(render_objects(chart, {"metricsNamespaceLabel": True, "logFormat": "text", "drainTimeoutSeconds": 7}))["args"]
    )
    assert flags["--metrics-namespace-label"] is True
    assert flags["--log-format"] == "text"
    assert flags["--drain-timeout-secs"] == "7"


@pytest.mark.parametrize(
    "values, message",
    [
        ({"drainTimeoutSeconds": 30, "terminationGracePeriodSeconds": 30}, "terminationGracePeriodSeconds (30) must be greater"),
        ({"drainTimeoutSeconds": 25, "terminationGracePeriodSeconds": 30}, "terminationGracePeriodSeconds (30) must be greater"),
        ({"requestTimeoutMs": 5000}, "requestTimeoutMs (5000) must be below webhook.timeoutSeconds"),
    ],
)
def test_inconsistent_timeouts_fail(chart, values, message):
    with pytest.raises(helm_python.HelmError, match=re.escape(message)):
        render(chart, values)


def test_registry_secret_ca_keys_and_cache_volume(chart):
    """The pull Secret becomes --registry-config at its mount; the CA and cosign-key
    ConfigMaps are mounted where the policy set names them; the cache volume can be
    replaced; a startup probe covers the first load (pulls included)."""
    default = container(render_objects(chart, {}))
    assert "--registry-config" not in parse_args(default["args"])
    assert default["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert default["startupProbe"]["failureThreshold"] == 60
    values = {
        "registry": {"pullSecret": "harbor-pull", "caConfigMap": "registry-ca", "cosignKeysConfigMap": "cosign-keys"},
        "moduleCache": {"volume": {"persistentVolumeClaim": {"claimName": "plate-policy-cache"}}},
    }
    objs = render_objects(chart, values)
    c = container(objs)
    flags = parse_args(c["args"])
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert flags["--registry-config"] == mounts["registry-auth"] + "/.dockerconfigjson"
    assert mounts["registry-ca"] == "/etc/plate-policy/registry-ca"
    assert mounts["cosign-keys"] == "/etc/plate-policy/cosign-keys"
    assert flags["--module-cache"] == mounts["module-cache"]
    volumes = {v["name"]: v for v in one(objs, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["registry-auth"]["secret"] == {
        "secretName": "harbor-pull",
        "items": [{"key": ".dockerconfigjson", "path": ".dockerconfigjson"}],
    }
    assert volumes["registry-ca"]["configMap"]["name"] == "registry-ca"
    assert volumes["cosign-keys"]["configMap"]["name"] == "cosign-keys"
    assert volumes["module-cache"]["persistentVolumeClaim"]["claimName"] == "plate-policy-cache"
    assert "emptyDir" not in volumes["module-cache"]
    # An OCI module with a registry CA and a signature check passes the schema.
    oci = policy_set_with(
        {
            "name": "x",
            "module": "oci://harbor.example.com/plate/x@sha256:" + "a" * 64,
            "verify": {"cosignKey": "/etc/plate-policy/cosign-keys/cosign.pub"},
            "match": {"kinds": ["Pod"]},
        }
    )
    oci["policySet"]["spec"]["requireDigests"] = True
    oci["policySet"]["spec"]["registries"] = {"harbor.example.com": {"caFile": "/etc/plate-policy/registry-ca/ca.crt"}}
    chart.validate_schema(oci)


def test_args_are_flags_of_the_binary(chart, plate_policy_bin):
    """Every flag the chart passes exists in `plate-policy serve --help`."""
    args = container(
        render_objects(chart, {"metricsNamespaceLabel": True, "logLevel": "info", "registry": {"pullSecret": "p"}})
    )["args"]
    help_text = subprocess.run(
        [plate_policy_bin, "serve", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in parse_args(args):
        assert re.search(rf"{re.escape(flag)}\b", help_text), f"{flag} is not a serve flag"


# ----------------------------------------------------------- one source: dashboard, rules


def test_dashboard_configmap_is_the_dashboard_file(chart):
    objs = render_objects(chart, {"grafanaDashboard": {"enabled": True}})
    dashboard = one(objs, "ConfigMap", "plate-policy-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    raw = (CHART / "dashboards" / "plate-policy.json").read_bytes()
    assert dashboard["data"]["plate-policy.json"].encode() == raw
    json.loads(raw)  # and it is JSON


def test_dashboard_labels_and_namespace_are_configurable(chart):
    objs = render_objects(
        chart,
        {"grafanaDashboard": {"enabled": True, "labels": {"dash": "yes"}, "namespace": "monitoring"}},
    )
    dashboard = one(objs, "ConfigMap", "plate-policy-dashboard")
    assert dashboard["metadata"]["namespace"] == "monitoring"
    assert dashboard["metadata"]["labels"]["dash"] == "yes"


def test_prometheus_rule_is_the_rules_file(chart):
    objs = render_objects(chart, {"prometheusRule": {"enabled": True, "labels": {"release": "kps"}}})
    rule = one(objs, "PrometheusRule")
    from_file = yaml.safe_load((CHART / "alerts" / "plate-policy.rules.yaml").read_text())
    assert rule["spec"]["groups"] == from_file["groups"]
    assert rule["metadata"]["labels"]["release"] == "kps"
    # The runbook anchors the rules link to exist in docs/operations.md.
    operations = (ROOT / "docs" / "operations.md").read_text()
    for group in from_file["groups"]:
        for r in group["rules"]:
            if "alert" in r:
                assert f"### {r['alert']}\n" in operations, r["alert"]


def test_service_monitor_scrapes_the_metrics_port(chart):
    objs = render_objects(chart, {"serviceMonitor": {"enabled": True}})
    monitor = one(objs, "ServiceMonitor")
    service = one(objs, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    # The alert rules select jobs (= Service names) containing "plate-policy".
    assert "plate-policy" in service["metadata"]["name"]


# ------------------------------------------------------------------------ values schema


@pytest.mark.parametrize(
    "bad",
    [
        {"webhook": {"failurePolicy": "Maybe"}},
        {"webhook": {"timeoutSeconds": 60}},
        {"webhook": {"timeoutSeconds": 0}},
        {"unknownKey": True},
        {"replicaCount": 0},
        {"tls": {"mode": "selfSigned"}},
        {"image": {"tag": "latest"}},
        {"logFormat": "xml"},
        {"webhook": {"unknown": 1}},
        {"policySet": {"apiVersion": "v1", "kind": "PolicySet", "spec": {"policies": []}}},
        # Helm merges values with the defaults; null removes a key (and required fails).
        {"policySet": {"apiVersion": None}},
        {"policySet": {"spec": None}},
        {"policySet": {"spec": {"policies": "no-latest-tag"}}},
        {"policySet": policy_set_with({"name": "x", "module": "builtin:x", "match": {"kinds": ["apps/v1/Deployment"]}})["policySet"]},
        {"policySet": policy_set_with({"name": "x", "module": "builtin:x", "match": {"kinds": ["Pod"], "operations": ["PATCH"]}})["policySet"]},
        {"policySet": policy_set_with({"name": "x", "module": "builtin:x", "match": {"kinds": ["Pod"], "subresources": ["*"]}})["policySet"]},
        {"policySet": policy_set_with({"name": "x", "module": "builtin:x", "match": {"kinds": ["Pod"]}, "context": [{"kind": "Secret"}]})["policySet"]},
        {"replicaCount": "two"},
        {"tls": {"certManager": {"duration": "90 days"}}},
        {"registry": {"pullSecret": 1}},
        {"moduleCache": {"sizeLimit": "lots"}},
        {"policySet": policy_set_with({"name": "x", "module": "oci://r.io/x:1", "verify": {"key": "k"}, "match": {"kinds": ["Pod"]}})["policySet"]},
    ],
)
def test_schema_rejects_bad_values(chart, bad):
    with pytest.raises(helm_python.HelmValuesError):
        chart.validate_schema(bad)
    with pytest.raises(helm_python.HelmValuesError):
        render(chart, bad)


@pytest.mark.parametrize("env", list(VALUES_FILES))
def test_schema_accepts_the_values_files(chart, env):
    chart.validate_schema(load_values(env))


# -------------------------------------------------------------------------- policy set


def test_default_policy_set_is_policies_yaml(chart):
    """Drift guard: values.yaml carries a copy of policies/policies.yaml."""
    builtin = yaml.safe_load((ROOT / "policies" / "policies.yaml").read_text())
    assert chart.values["policySet"] == builtin, (
        "charts/plate-policy/values.yaml policySet differs from policies/policies.yaml: "
        "run .venv/bin/python scripts/sync-chart-policy-set.py"
    )
    rendered = one(render_objects(chart), "ConfigMap", "plate-policy-policies")
    assert yaml.safe_load(rendered["data"]["policies.yaml"]) == builtin


@pytest.fixture(scope="session")
def plate_policy_bin() -> str:
    path = Path(os.environ.get("PLATE_POLICY_BIN", ROOT / "target" / "debug" / "plate-policy"))
    if not path.exists():
        subprocess.run(["cargo", "build", "-p", "plate-policy"], cwd=ROOT, check=True)
    assert path.exists(), f"{path} was not built"
    return str(path)


@pytest.mark.parametrize("env", list(VALUES_FILES))
def test_rendered_policy_set_is_accepted_by_plate_policy(chart, plate_policy_bin, env):
    cm = one(render_objects(chart, load_values(env)), "ConfigMap", "plate-policy-policies")
    with tempfile.TemporaryDirectory() as tmp:
        policies = Path(tmp) / "policies.yaml"
        policies.write_text(cm["data"]["policies.yaml"])
        result = subprocess.run(
            [plate_policy_bin, "check", "-f", "examples/plate-prod.yaml", "--env", "prod", "--policies", str(policies)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    # 1: loaded and denied something; 2 would mean the set did not load.
    assert result.returncode == 1, result.stdout + result.stderr
    assert "DENY  no-latest-tag" in result.stdout


def test_custom_policy_set_reaches_the_configmap(chart):
    values = copy.deepcopy(policy_set_with({"name": "only-ns", "module": "builtin:require-namespace-labels", "match": {"kinds": ["Namespace"]}, "settings": {"label": "environment", "allowedValues": ["production"]}}))
    cm = one(render_objects(chart, values), "ConfigMap", "plate-policy-policies")
    policy_set = yaml.safe_load(cm["data"]["policies.yaml"])
    assert [p["name"] for p in policy_set["spec"]["policies"]] == ["only-ns"]
    assert policy_set["metadata"]["name"] == "custom"


# ------------------------------------------------------------------------------ audit

AUDIT = {"audit": {"enabled": True}}


def audit_container(objs: list[dict]) -> dict:
    deployment = one(objs, "Deployment", f"{RELEASE}-audit")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_audit_is_off_by_default(chart):
    objs = render_objects(chart)
    assert not [o for o in objs if o["metadata"]["name"].endswith("-audit")]
    assert "CustomResourceDefinition" not in kinds(objs)


def test_audit_runs_in_its_own_pods_that_no_webhook_service_selects(chart):
    objs = render_objects(chart, AUDIT)
    audit = one(objs, "Deployment", f"{RELEASE}-audit")
    labels = audit["spec"]["template"]["metadata"]["labels"]
    for name in (RELEASE, f"{RELEASE}-audit"):
        service = one(objs, "Service", name)
        selects = all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
        assert selects == (name == f"{RELEASE}-audit"), name
    webhook = one(objs, "Deployment", RELEASE)
    assert not all(
        labels.get(k) == v for k, v in webhook["spec"]["selector"]["matchLabels"].items()
    )
    pdb = one(objs, "PodDisruptionBudget")
    assert not all(labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items())
    assert audit["spec"]["template"]["spec"]["serviceAccountName"] == f"{RELEASE}-audit"
    args = audit_container(objs)["args"]
    assert args[args.index("audit") + 1] == "--watch"
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in audit_container(objs)["env"]}
    assert env == {"POD_NAMESPACE": "metadata.namespace", "POD_NAME": "metadata.name"}


def test_audit_rbac_reads_what_it_judges_and_writes_only_reports(chart):
    objs = render_objects(chart, AUDIT)
    role = one(objs, "ClusterRole", f"{RELEASE}-audit")
    verbs = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                verbs[(group, resource)] = set(rule["verbs"])
    read = {"get", "list", "watch"}
    for kind in [("", "namespaces"), ("", "pods"), ("apps", "deployments"), ("batch", "cronjobs"),
                 ("networking.k8s.io", "ingresses"), ("cert-manager.io", "clusterissuers")]:
        assert verbs.get(kind) == read, kind
    assert verbs[("openreports.io", "reports")] >= {"create", "patch", "delete"}
    writable = {k for k, v in verbs.items() if v - read}
    assert writable == {("openreports.io", "reports"), ("openreports.io", "clusterreports")}
    lease = one(objs, "Role", f"{RELEASE}-audit-lease")
    assert lease["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}
    ]
    # The webhook's own role gains nothing.
    webhook = one(objs, "ClusterRole", RELEASE)
    assert all(set(r["verbs"]) == read for r in webhook["rules"])


def test_audit_report_crds_follow_the_api_and_are_kept(chart):
    crds = [o for o in render_objects(chart, AUDIT) if o["kind"] == "CustomResourceDefinition"]
    assert sorted(c["metadata"]["name"] for c in crds) == ["clusterreports.openreports.io", "reports.openreports.io"]
    assert all(c["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep" for c in crds)
    old = render_objects(chart, {"audit": {"enabled": True, "reports": {"api": "wgpolicyk8s"}}})
    assert sorted(o["metadata"]["name"] for o in old if o["kind"] == "CustomResourceDefinition") == [
        "clusterpolicyreports.wgpolicyk8s.io", "policyreports.wgpolicyk8s.io"]
    assert "wgpolicyk8s" in audit_container(old)["args"]
    none = render_objects(chart, {"audit": {"enabled": True, "reports": {"installCRDs": False}}})
    assert "CustomResourceDefinition" not in kinds(none)


def test_audit_args_are_flags_of_the_binary(chart, plate_policy_bin):
    """Every flag the audit Deployment passes exists in `plate-policy audit --help`."""
    args = audit_container(render_objects(chart, AUDIT))["args"]
    help_text = subprocess.run(
        [plate_policy_bin, "audit", "--help"], capture_output=True, text=True, check=True
    ).stdout
    global_help = subprocess.run(
        [plate_policy_bin, "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in [a for a in args if a.startswith("--")]:
        assert re.search(rf"{re.escape(flag)}\b", help_text + global_help), f"{flag} is not an audit flag"


def test_a_policy_entry_may_say_audit_false(chart):
    values = merged_values(chart, None)
    policies = copy.deepcopy(values["policySet"]["spec"]["policies"])
    policies[0]["audit"] = False
    objs = render_objects(chart, {"audit": {"enabled": True}, "policySet": {"spec": {"policies": policies}}})
    role = one(objs, "ClusterRole", f"{RELEASE}-audit")
    assert role["rules"]
