"""The chart's RBAC grants exactly musicgen_ops.controllers.permissions.REQUIRED_RULES, no more."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from musicgen_ops.controllers.permissions import REQUIRED_RULES, cluster_role_rules, rules_for

from .conftest import NAMESPACE, Render
from .manifests import find, one

Triple = tuple[str, str, str]


def triples(rules: Iterable[dict[str, Any]]) -> set[Triple]:
    """Expand PolicyRules into (apiGroup, resource, verb) triples: what is granted, whatever the grouping."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_required_rules_cover_every_scope() -> None:
    assert {rule.scope for rule in REQUIRED_RULES} == {"cluster", "clusterwide", "namespace"}


def test_cluster_wide_mode_uses_one_cluster_role_with_exactly_the_required_rules(render: Render) -> None:
    docs = render({"operator": {"watchNamespaces": []}})
    assert not find(docs, "Role") and not find(docs, "RoleBinding")
    role = one(docs, "ClusterRole", "musicgen-operator")
    assert role["rules"] == cluster_role_rules(clusterwide=True)
    assert triples(role["rules"]) == triples(rule.to_k8s() for rule in REQUIRED_RULES)
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "musicgen-operator",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "musicgen", "namespace": NAMESPACE}]


def test_namespaced_mode_uses_a_role_per_namespace(render: Render) -> None:
    docs = render({"operator": {"watchNamespaces": ["team-a", "team-b"]}})
    roles = find(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert role["rules"] == rules_for("namespace")
    bindings = find(docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "musicgen", "namespace": NAMESPACE}]
    # Only CRD discovery stays cluster-wide: no namespaces, no namespaced resources.
    cluster_role = one(docs, "ClusterRole", "musicgen-operator")
    assert cluster_role["rules"] == cluster_role_rules(clusterwide=False)
    assert not triples(cluster_role["rules"]) & triples(rules_for("namespace") + rules_for("clusterwide"))


def test_no_wildcards_secrets_or_leases(render: Render) -> None:
    for values in ({}, {"operator": {"watchNamespaces": ["x"]}}):
        docs = render(values)
        for doc in find(docs, "ClusterRole") + find(docs, "Role"):
            for group, resource, verb in triples(doc["rules"]):
                assert "*" not in (group, resource, verb)
                assert resource not in {"leases", "kopfpeerings", "clusterkopfpeerings"}
                # Secrets: only get (the storage-label check of spec.storageSecret), never list or watch.
                assert resource != "secrets" or verb == "get"


def test_user_roles_aggregate_into_edit_and_view(render: Render) -> None:
    docs = render({})
    edit = one(docs, "ClusterRole", "musicgen-edit")
    view = one(docs, "ClusterRole", "musicgen-view")
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    custom = {"trainingjobs", "trainedmodels", "generationrequests"}
    assert {r for _, r, v in triples(edit["rules"]) if v == "create"} == custom
    assert {v for _, _, v in triples(view["rules"])} == {"get", "list", "watch"}
    # Status is the operator's alone.
    assert not {(r, v) for _, r, v in triples(edit["rules"]) if r.endswith("/status") and v != "get"}


def test_rbac_can_be_left_to_the_cluster_admin(render: Render) -> None:
    docs = render({"rbac": {"create": False}})
    assert not [d for d in docs if d["apiVersion"].startswith("rbac.authorization.k8s.io/")]


@pytest.mark.parametrize("create", [True, False])
def test_service_account_toggle(render: Render, create: bool) -> None:
    docs = render({"serviceAccount": {"create": create, "name": "" if create else "ops"}})
    accounts = [d["metadata"]["name"] for d in find(docs, "ServiceAccount", namespace=NAMESPACE)]
    assert ("musicgen" in accounts) is create
    pod = one(docs, "Deployment", "musicgen-operator")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == ("musicgen" if create else "ops")
    binding = one(docs, "ClusterRoleBinding")
    assert binding["subjects"][0]["name"] == pod["serviceAccountName"]
