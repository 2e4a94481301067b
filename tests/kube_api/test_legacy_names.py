"""Old field names users may still write (``model``, ``bpm``, ``seed``, serving ``format``) pass the API
server — the generated CRDs publish them as deprecated properties, so they are not pruned — and reach the
operator's spec models under their canonical names. Producer: a user's manifest; server: the test API
server loaded from ``crds/``; consumer: the spec model the operator validates with."""

from __future__ import annotations

import pytest

from musicgen_ops.api.generationrequest import GenerationRequestSpec
from musicgen_ops.api.trainedmodel import TrainedModelSpec
from tests.kube_api.conftest import post_json

BASE = "/apis/musicgen.io/v1alpha1/namespaces/default"


@pytest.mark.parametrize(
    ("plural", "kind", "spec", "model", "expected"),
    [
        (
            "generationrequests",
            "GenerationRequest",
            {"model": "piano-v1", "prompt": "calm piano", "bpm": 84, "seed": 7},
            GenerationRequestSpec,
            {"trained_model_id": "piano-v1", "target_bpm": 84, "random_seed": 7},
        ),
        (
            "trainedmodels",
            "TrainedModel",
            {"serving": {"enabled": True, "format": "onnx-int8"}},
            TrainedModelSpec,
            {"serving.model_format": "onnx-int8"},
        ),
    ],
    ids=["generationrequest", "trainedmodel-serving"],
)
def test_old_names_survive_the_api_server_and_reach_the_operator(api, plural, kind, spec, model, expected):
    body = {"apiVersion": "musicgen.io/v1alpha1", "kind": kind, "metadata": {"name": "legacy"}, "spec": spec}
    created = post_json(api, f"{BASE}/{plural}", body, fieldValidation="Strict")
    assert created.status_code == 201, created.text
    parsed = model.model_validate(created.json()["spec"])
    for path, value in expected.items():
        target = parsed
        for part in path.split("."):
            target = getattr(target, part)
        assert target == value, path
