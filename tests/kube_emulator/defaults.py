"""Defaulting of built-in kinds, as kube-apiserver v1.32 does on every write (pkg/apis/*/v1/defaults.go):
what a controller reads back is not what it sent, so "compare my spec with the live one" code must cope.

Covers the kinds the operator and chart write: Deployment, Job, Service (and pod templates), Secret.
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
from typing import Any

_CLUSTER_IPS = (str(ipaddress.ip_address("10.96.0.10") + n) for n in itertools.count())


def _probe(probe: dict[str, Any]) -> None:
    for key, value in (
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ):
        probe.setdefault(key, value)
    if isinstance(probe.get("httpGet"), dict):
        probe["httpGet"].setdefault("scheme", "HTTP")
        probe["httpGet"].setdefault("path", "/")


def _container(container: dict[str, Any]) -> None:
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    image = str(container.get("image", ""))
    latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
    container.setdefault("imagePullPolicy", "Always" if latest and "@" not in image else "IfNotPresent")
    container.setdefault("resources", {})
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")
    for env in container.get("env") or []:
        field_ref = (env.get("valueFrom") or {}).get("fieldRef")
        if isinstance(field_ref, dict):
            field_ref.setdefault("apiVersion", "v1")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if isinstance(container.get(probe), dict):
            _probe(container[probe])


def pod_spec(spec: dict[str, Any], restart_policy: str | None = "Always") -> None:
    """PodSpec defaults (a Job's template must set restartPolicy itself, so none is given there)."""
    if restart_policy:
        spec.setdefault("restartPolicy", restart_policy)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("terminationGracePeriodSeconds", 30)
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        _container(container)


def deployment(obj: dict[str, Any]) -> None:
    """apps/v1 Deployment defaults."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        strategy.setdefault("type", "RollingUpdate")
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    pod_spec(spec.setdefault("template", {}).setdefault("spec", {}))


def job(obj: dict[str, Any]) -> None:
    """batch/v1 Job defaults, including the controller-uid selector and pod labels."""
    spec = obj.setdefault("spec", {})
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    if spec.get("backoffLimitPerIndex") is None:
        spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault(
        "podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed"
    )
    meta = obj["metadata"]
    uid, name = meta.get("uid"), meta.get("name")
    template = spec.setdefault("template", {})
    if uid and not spec.get("selector"):
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        labels.update(
            {
                "batch.kubernetes.io/controller-uid": uid,
                "controller-uid": uid,
                "batch.kubernetes.io/job-name": name,
                "job-name": name,
            }
        )
    pod_spec(template.setdefault("spec", {}), restart_policy=None)


def service(obj: dict[str, Any]) -> None:
    """v1 Service defaults, with a cluster IP allocated once."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    if spec["type"] != "ExternalName":
        if not spec.get("clusterIP"):
            spec["clusterIP"] = next(_CLUSTER_IPS)
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))


def secret(obj: dict[str, Any]) -> None:
    """v1 Secret defaults: type Opaque; stringData is merged into data (base64) and not stored."""
    obj.setdefault("type", "Opaque")
    if not obj["type"]:
        obj["type"] = "Opaque"
    string_data = obj.pop("stringData", None) or {}
    if string_data:
        data = obj.setdefault("data", {})
        data.update({k: base64.b64encode(str(v).encode()).decode() for k, v in string_data.items()})


BY_KEY = {
    ("apps", "deployments"): deployment,
    ("batch", "jobs"): job,
    ("", "services"): service,
    ("", "secrets"): secret,
}


def apply_defaults(key: tuple[str, str], obj: dict[str, Any]) -> None:
    """Default ``obj`` in place when its kind has defaults here."""
    defaulter = BY_KEY.get(key)
    if defaulter is not None:
        defaulter(obj)
