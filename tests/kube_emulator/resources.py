"""Resource types the emulator serves: built-in kinds, plus whatever CustomResourceDefinitions define.

Custom resources are learned from CRD objects only (``crds/*.yaml`` loaded, or a CRD created through the
API, e.g. by ``kubectl apply -f crds/``); there is no hand-kept table of custom kinds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    """One served resource: what discovery publishes and what the storage, tables and validation use."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    printer_columns: tuple[dict[str, Any], ...] = ()
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    #: How object names are validated: "subdomain" (RFC 1123), "label" (RFC 1123) or "dns1035".
    name_rule: str = "subdomain"

    @property
    def api_version(self) -> str:
        """``v1`` for the core group, ``group/version`` otherwise."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        """(group, plural): how storage and routing find the type."""
        return (self.group, self.plural)

    @property
    def qualified(self) -> str:
        """``plural.group`` as kubectl spells it (``trainingjobs.musicgen.io``)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def discovery_entries(self) -> list[dict[str, Any]]:
        """APIResourceList entries: the resource and each of its subresources."""
        main = {
            "name": self.plural,
            "singularName": self.singular or self.kind.lower(),
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            main["shortNames"] = list(self.short_names)
        if self.categories:
            main["categories"] = list(self.categories)
        entries = [main]
        for sub in self.subresources:
            verbs = ["get", "patch", "update"]
            entries.append(
                {
                    "name": f"{self.plural}/{sub}",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": verbs,
                }
            )
        return entries


def _builtin(
    api_version: str,
    plural: str,
    kind: str,
    *,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    subresources: tuple[str, ...] = (),
    name_rule: str = "subdomain",
) -> ResourceType:
    group, _, version = api_version.rpartition("/")
    return ResourceType(
        group=group,
        version=version,
        plural=plural,
        kind=kind,
        namespaced=namespaced,
        singular=kind.lower(),
        short_names=short,
        categories=categories,
        subresources=subresources,
        name_rule=name_rule,
    )


#: The built-in kinds the chart, the operator and kubectl need (names, short names and categories as
#: a v1.32 API server publishes them).
BUILTINS: tuple[ResourceType, ...] = (
    _builtin(
        "v1",
        "namespaces",
        "Namespace",
        namespaced=False,
        short=("ns",),
        subresources=("status",),
        name_rule="label",
    ),
    _builtin("v1", "pods", "Pod", short=("po",), categories=("all",), subresources=("status",)),
    _builtin(
        "v1",
        "services",
        "Service",
        short=("svc",),
        categories=("all",),
        subresources=("status",),
        name_rule="dns1035",
    ),
    _builtin("v1", "serviceaccounts", "ServiceAccount", short=("sa",), subresources=("token",)),
    _builtin("v1", "secrets", "Secret"),
    _builtin("v1", "configmaps", "ConfigMap", short=("cm",)),
    _builtin("v1", "events", "Event", short=("ev",)),
    _builtin(
        "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short=("pvc",), subresources=("status",)
    ),
    _builtin(
        "apps/v1",
        "deployments",
        "Deployment",
        short=("deploy",),
        categories=("all",),
        subresources=("status", "scale"),
    ),
    _builtin("batch/v1", "jobs", "Job", categories=("all",), subresources=("status",)),
    _builtin("events.k8s.io/v1", "events", "Event", short=("ev",)),
    _builtin("coordination.k8s.io/v1", "leases", "Lease"),
    _builtin("rbac.authorization.k8s.io/v1", "roles", "Role"),
    _builtin(
        "authorization.k8s.io/v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", namespaced=False
    ),
    _builtin("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding"),
    _builtin("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", namespaced=False),
    _builtin("rbac.authorization.k8s.io/v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
    _builtin(
        "policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", short=("pdb",), subresources=("status",)
    ),
    _builtin("networking.k8s.io/v1", "ingresses", "Ingress", short=("ing",), subresources=("status",)),
    _builtin(
        "autoscaling/v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        short=("hpa",),
        categories=("all",),
        subresources=("status",),
    ),
    _builtin(
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short=("crd", "crds"),
        subresources=("status",),
    ),
)


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """One ResourceType per served version of a CustomResourceDefinition object."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    result = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        result.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=names.get("singular") or names["kind"].lower(),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=tuple(sorted((version.get("subresources") or {}).keys())),
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
            )
        )
    return result
