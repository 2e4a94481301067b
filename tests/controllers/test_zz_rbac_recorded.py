"""Every request the operator makes is allowed by REQUIRED_RULES, and every rule is used.

The test drives the operator through every path itself (a scenario below), so it holds when run alone
and in any order; requests made by earlier tests in the session only add to what is checked.
"""

from __future__ import annotations

import pytest

from musicgen_ops.controllers.permissions import REQUIRED_RULES, is_allowed
from tests.controllers.conftest import TEST_AGENT, unique
from tests.controllers.helpers import (
    generation_request,
    job_failed,
    job_succeeded,
    pod_of,
    publish,
    training_job,
)
from tests.kube_api.kubelet import AGENT as KUBELET_AGENT

pytestmark = pytest.mark.emulator

#: Rules the session does not exercise: namespaces are listed and watched only when the operator watches
#: all namespaces (the tests give it one).
NOT_EXERCISED = {
    ("", "namespaces", "list"),
    ("", "namespaces", "watch"),
    # No request: the OwnerReferencesPermissionEnforcement admission plugin checks it when the operator
    # creates children whose ownerReferences set blockOwnerDeletion.
    ("musicgen.io", "trainingjobs/finalizers", "update"),
    ("musicgen.io", "trainedmodels/finalizers", "update"),
    ("musicgen.io", "generationrequests/finalizers", "update"),
}


def _operator_requests(cluster):
    return {
        (r.api_group, r.resource, r.verb)
        for r in cluster.emulator.recorded
        if r.user_agent not in (TEST_AGENT, KUBELET_AGENT) and not r.user_agent.startswith("kubectl")
    }


@pytest.fixture(scope="module")
def exercised(cluster, tmp_path_factory):
    """Drive every operator path once: Secrets, suspend, success, failure, serving, port change, TTLs."""
    tmp = tmp_path_factory.mktemp("rbac")
    secret = unique("creds")
    cluster.create(
        "secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret, "labels": {"musicgen.io/storage": "true"}},
        },
    )
    trained, failed = unique("rbac-ok"), unique("rbac-fail")
    cluster.create(
        "trainingjobs",
        training_job(
            trained, storageSecret=secret, suspend=True, ttlSecondsAfterFinished=0, exportFormats=["adapter"]
        ),
    )
    cluster.create("trainingjobs", training_job(failed))
    cluster.wait_status("trainingjobs", trained, lambda s: s.get("phase") == "Suspended", timeout=60)
    cluster.patch("trainingjobs", trained, {"spec": {"suspend": False}})  # jobs patch
    cluster.wait_for(
        "resumed", lambda: cluster.get("jobs", f"{trained}-train")["spec"]["suspend"] is False, timeout=60
    )
    publish(cluster.artifacts, tmp, trained, ["adapter"])  # what the trainer uploads
    cluster.patch("jobs", f"{trained}-train", job_succeeded(), sub="status")  # trainedmodels create
    cluster.wait_status("trainedmodels", trained, lambda s: s.get("phase") == "Ready", timeout=60)
    cluster.wait_for(
        "TTL deleted the TrainingJob", lambda: cluster.get("trainingjobs", trained) is None, timeout=60
    )
    cluster.wait_status("trainingjobs", failed, lambda s: s.get("jobName"), timeout=60)
    cluster.create("pods", pod_of(f"{failed}-train", f"{failed}-train-0", {"exitCode": 1, "reason": "Error"}))
    cluster.patch("jobs", f"{failed}-train", job_failed(), sub="status")  # pods list
    cluster.wait_status("trainingjobs", failed, lambda s: s.get("phase") == "Failed", timeout=60)
    cluster.patch("trainedmodels", trained, {"spec": {"serving": {"enabled": True}}})  # deployments, services
    cluster.wait_for("served", lambda: cluster.get("services", f"{trained}-generator"), timeout=60)
    cluster.patch(
        "trainedmodels", trained, {"spec": {"serving": {"port": 9000}}}
    )  # deployments/services patch
    cluster.wait_for(
        "port",
        lambda: cluster.get("services", f"{trained}-generator")["spec"]["ports"][0]["port"] == 9000,
        timeout=60,
    )
    request = unique("rbac-gen")
    cluster.create("generationrequests", generation_request(request, trained, ttlSecondsAfterFinished=0))
    cluster.wait_status("generationrequests", request, lambda s: s.get("jobName"), timeout=60)
    cluster.patch("jobs", f"{request}-generate", job_succeeded(), sub="status")
    cluster.wait_for(
        "TTL deleted the request", lambda: cluster.get("generationrequests", request) is None, timeout=60
    )
    cluster.delete("trainedmodels", trained)  # deployments/services delete
    cluster.wait_for("model gone", lambda: cluster.get("trainedmodels", trained) is None, timeout=60)
    return _operator_requests(cluster)


def test_every_operator_request_is_covered(exercised):
    uncovered = sorted(u for u in exercised if not is_allowed(*u))
    assert not uncovered, f"REQUIRED_RULES lacks {uncovered}"


def test_no_rule_is_unused(exercised):
    unused = []
    for rule in REQUIRED_RULES:
        for resource in rule.resources:
            for verb in rule.verbs:
                if not any((group, resource, verb) in exercised | NOT_EXERCISED for group in rule.api_groups):
                    unused.append((rule.api_groups, resource, verb))
    assert not unused, f"rules never used by the operator: {unused}"
