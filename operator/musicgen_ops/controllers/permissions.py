"""The RBAC rules the operator needs — one list, rendered into the chart's Roles and checked by tests.

Scopes: ``cluster`` rules always go into a ClusterRole (CRDs are cluster-scoped); ``clusterwide`` rules
only when the operator watches every namespace (kopf then observes namespaces); ``namespace`` rules go
into a Role in each watched namespace (or into the ClusterRole when cluster-wide).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from musicgen_ops.api.common import GROUP

Scope = Literal["cluster", "clusterwide", "namespace"]


@dataclass(frozen=True)
class Rule:
    """One PolicyRule, with the reason the operator needs it."""

    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    scope: Scope
    why: str

    def to_k8s(self) -> dict:
        """The rbac.authorization.k8s.io/v1 PolicyRule."""
        return {
            "apiGroups": list(self.api_groups),
            "resources": list(self.resources),
            "verbs": list(self.verbs),
        }

    def covers(self, api_group: str, resource: str, verb: str) -> bool:
        """Whether this rule allows ``verb`` on ``api_group/resource``."""
        return api_group in self.api_groups and resource in self.resources and verb in self.verbs


_CRS = ("trainingjobs", "trainedmodels", "generationrequests")

REQUIRED_RULES: tuple[Rule, ...] = (
    Rule(
        ("apiextensions.k8s.io",),
        ("customresourcedefinitions",),
        ("list", "watch"),
        "cluster",
        "kopf observes which CRDs exist",
    ),
    Rule(
        ("",),
        ("namespaces",),
        ("list", "watch"),
        "clusterwide",
        "kopf observes namespaces when watching the whole cluster",
    ),
    Rule(("",), ("events",), ("create",), "namespace", "an Event for every phase transition"),
    Rule(
        (GROUP,),
        _CRS,
        ("get", "list", "watch", "patch"),
        "namespace",
        "watch the custom resources; kopf's finalizers and annotations; read fresh status before writing it",
    ),
    Rule((GROUP,), tuple(f"{r}/status" for r in _CRS), ("patch",), "namespace", "write status"),
    Rule(
        (GROUP,),
        tuple(f"{r}/finalizers" for r in _CRS),
        ("update",),
        "namespace",
        "owner references with blockOwnerDeletion (OwnerReferencesPermissionEnforcement admission)",
    ),
    Rule((GROUP,), ("trainedmodels",), ("create",), "namespace", "a TrainingJob creates its TrainedModel"),
    Rule(
        (GROUP,),
        ("trainingjobs", "generationrequests"),
        ("delete",),
        "namespace",
        "spec.ttlSecondsAfterFinished: delete finished resources",
    ),
    Rule(
        ("batch",),
        ("jobs",),
        ("create", "get", "patch", "delete"),
        "namespace",
        "training and generation Jobs (patch: suspend without a Kueue queue)",
    ),
    Rule(("",), ("pods",), ("list",), "namespace", "termination messages and OOMKilled of failed Job pods"),
    Rule(
        ("",),
        ("secrets",),
        ("get",),
        "namespace",
        "check that a spec.storageSecret carries the musicgen.io/storage label",
    ),
    Rule(
        ("apps",),
        ("deployments",),
        ("create", "get", "patch", "delete"),
        "namespace",
        "generator Deployments of served models",
    ),
    Rule(
        ("",),
        ("services",),
        ("create", "get", "patch", "delete"),
        "namespace",
        "Services in front of the generators (patch: a changed port); headless Services of multi-node "
        "training Jobs",
    ),
)


def rules_for(scope: Scope) -> list[dict]:
    """PolicyRules of one scope, in the order above."""
    return [rule.to_k8s() for rule in REQUIRED_RULES if rule.scope == scope]


def cluster_role_rules(clusterwide: bool) -> list[dict]:
    """The ClusterRole: CRD discovery, plus namespaces and every namespaced rule when cluster-wide."""
    if not clusterwide:
        return rules_for("cluster")
    return rules_for("cluster") + rules_for("clusterwide") + rules_for("namespace")


def is_allowed(api_group: str, resource: str, verb: str) -> bool:
    """Whether any required rule covers the request."""
    return any(rule.covers(api_group, resource, verb) for rule in REQUIRED_RULES)
