"""Every request the operator made during the controller tests is allowed by REQUIRED_RULES.

Runs last in tests/controllers (zz_ sorts last), after the other tests exercised every path.
"""

from __future__ import annotations

import pytest

from musicgen_ops.controllers.permissions import REQUIRED_RULES, is_allowed
from tests.controllers.conftest import TEST_AGENT

pytestmark = pytest.mark.emulator

#: Rules the session does not exercise: namespaces are listed and watched only when the operator watches
#: all namespaces (the tests give it one).
NOT_EXERCISED = {
    ("", "namespaces", "list"),
    ("", "namespaces", "watch"),
}


def _operator_requests(cluster):
    return {
        (r.api_group, r.resource, r.verb)
        for r in cluster.emulator.recorded
        if r.user_agent != TEST_AGENT and not r.user_agent.startswith("kubectl")
    }


def test_every_operator_request_is_covered(cluster):
    used = _operator_requests(cluster)
    assert used, "no operator requests were recorded"
    uncovered = sorted(u for u in used if not is_allowed(*u))
    assert not uncovered, f"REQUIRED_RULES lacks {uncovered}"


def test_no_rule_is_unused(cluster):
    used = _operator_requests(cluster)
    unused = []
    for rule in REQUIRED_RULES:
        for resource in rule.resources:
            for verb in rule.verbs:
                if not any((group, resource, verb) in used | NOT_EXERCISED for group in rule.api_groups):
                    unused.append((rule.api_groups, resource, verb))
    assert not unused, f"rules never used by the operator: {unused}"
