"""RBAC for service-account tokens: what a pod may do is what its ServiceAccount's Roles and
ClusterRoles (through RoleBindings and ClusterRoleBindings, aggregation included) allow.

Tokens come from the TokenRequest API (``POST .../serviceaccounts/<name>/token``), as a kubelet gets
them for a pod. Any other bearer token, or none, is the test's own cluster-admin client.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from tests.kube_emulator.store import Store
from tests.kube_emulator.validation import ApiError

RBAC = "rbac.authorization.k8s.io"


@dataclass
class Authorizer:
    """Issued tokens and the RBAC check for requests made with them."""

    store: Store
    tokens: dict[str, tuple[str, str]] = field(default_factory=dict)  # token -> (namespace, sa name)
    denied: list[str] = field(default_factory=list)  # every 403 message, for assertions

    def issue(self, namespace: str, name: str) -> str:
        """A new token for ServiceAccount ``namespace/name``."""
        token = secrets.token_urlsafe(24)
        self.tokens[token] = (namespace, name)
        return token

    def _rules(self, role_ref: dict[str, Any], namespace: str | None) -> list[dict[str, Any]]:
        if role_ref.get("kind") == "Role":
            role = self.store.get((RBAC, "roles"), namespace, role_ref.get("name", ""))
            return (role or {}).get("rules") or []
        role = self.store.get((RBAC, "clusterroles"), None, role_ref.get("name", ""))
        if role is None:
            return []
        rules = list(role.get("rules") or [])
        for selector in (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []:
            wanted = selector.get("matchLabels") or {}
            for other in self.store.list((RBAC, "clusterroles"), None):
                labels = other["metadata"].get("labels") or {}
                if other is not role and all(labels.get(k) == v for k, v in wanted.items()):
                    rules.extend(other.get("rules") or [])
        return rules

    def rules_for(self, namespace: str, name: str, request_namespace: str | None) -> list[dict[str, Any]]:
        """Every rule that applies to the ServiceAccount in ``request_namespace`` (cluster-wide if None)."""

        def bound(binding: dict[str, Any]) -> bool:
            for subject in binding.get("subjects") or []:
                kind, subject_name = subject.get("kind"), subject.get("name")
                if (
                    kind == "ServiceAccount"
                    and subject_name == name
                    and subject.get("namespace") == namespace
                ):
                    return True
                if kind == "Group" and subject_name in (
                    "system:serviceaccounts",
                    f"system:serviceaccounts:{namespace}",
                    "system:authenticated",
                ):
                    return True
            return False

        rules = []
        for binding in self.store.list((RBAC, "clusterrolebindings"), None):
            if bound(binding):
                rules.extend(self._rules(binding.get("roleRef") or {}, None))
        if request_namespace:
            for binding in self.store.list((RBAC, "rolebindings"), request_namespace):
                if bound(binding):
                    rules.extend(self._rules(binding.get("roleRef") or {}, request_namespace))
        return rules

    def allows(
        self, token: str | None, verb: str, group: str, resource: str, namespace: str | None, name: str | None
    ) -> bool:
        """Whether the token's rules allow the request (any other token is the test's cluster-admin)."""
        if token not in self.tokens:
            return True
        sa_namespace, sa_name = self.tokens[token]
        rules = self.rules_for(sa_namespace, sa_name, namespace)
        return any(_matches(rule, verb, group, resource, name) for rule in rules)

    def check(
        self, token: str | None, verb: str, group: str, resource: str, namespace: str | None, name: str | None
    ) -> None:
        """403 Forbidden, with kube-apiserver's message, unless the token's rules allow the request."""
        if self.allows(token, verb, group, resource, namespace, name):
            return
        sa_namespace, sa_name = self.tokens[token]
        user = f"system:serviceaccount:{sa_namespace}:{sa_name}"
        plural = resource.split("/")[0]
        target = f'{plural}.{group} "{name}"' if name else f"{plural}.{group}" if group else plural
        if not group and name:
            target = f'{plural} "{name}"'
        where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
        error = ApiError(
            403,
            "Forbidden",
            f'{target} is forbidden: User "{user}" cannot {verb} resource "{resource}" in API group '
            f'"{group}"{where}',
            {"name": name or "", "group": group, "kind": plural},
        )
        self.denied.append(error.message)
        raise error


def _matches(rule: dict[str, Any], verb: str, group: str, resource: str, name: str | None) -> bool:
    base, _, sub = resource.partition("/")
    resources = rule.get("resources") or []
    resource_ok = (
        "*" in resources
        or resource in resources
        or (sub and (f"{base}/*" in resources or f"*/{sub}" in resources))
    )
    names = rule.get("resourceNames") or []
    return bool(
        ("*" in (rule.get("verbs") or []) or verb in (rule.get("verbs") or []))
        and ("*" in (rule.get("apiGroups") or []) or group in (rule.get("apiGroups") or []))
        and resource_ok
        and (not names or name in names)
    )
