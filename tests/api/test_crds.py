"""The generated CRDs: in sync with the models, valid apiextensions/v1, and the examples fit them."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from musicgen_ops.api.crdgen import (
    ALL_KINDS,
    crd_filename,
    crd_manifest,
    openapi_schema,
    stale_crds,
    write_crds,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = {
    "TrainingJob": "examples/trainingjob.yaml",
    "TrainedModel": "examples/trainedmodel.yaml",
    "GenerationRequest": "examples/generationrequest.yaml",
}


def test_committed_crds_are_up_to_date(tmp_path):
    write_crds(tmp_path)
    for kind in ALL_KINDS:
        fresh = (tmp_path / crd_filename(kind)).read_text()
        for folder in ("crds", "charts/musicgen/crds"):
            committed = ROOT / folder / crd_filename(kind)
            assert committed.is_file(), f"{committed} missing: run `make crds`"
            assert committed.read_text() == fresh, f"{committed} is out of date: run `make crds`"
    assert stale_crds(ROOT / "crds", ROOT / "charts/musicgen/crds") == []


def test_stale_detection(tmp_path):
    write_crds(tmp_path)
    path = tmp_path / crd_filename(ALL_KINDS[0])
    path.write_text(path.read_text() + "# edited\n")
    assert stale_crds(tmp_path) == [path]


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.kind)
def test_crd_is_a_valid_apiextensions_object(kind):
    manifest = yaml.safe_load((ROOT / "crds" / crd_filename(kind)).read_text())
    kubernetes_validate.validate(manifest, "1.30", strict=True)


def _walk(node, path="schema"):
    yield path, node
    for key in ("properties",):
        for name, sub in (node.get(key) or {}).items():
            yield from _walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.kind)
def test_schema_is_structural(kind):
    for path, node in _walk(openapi_schema(kind)):
        assert "type" in node or path.endswith("metadata"), f"{path} has no type"
        assert not {"$ref", "anyOf", "allOf", "oneOf", "const", "title"} & set(node), path
        if "properties" in node:
            assert "additionalProperties" not in node, path
        if "exclusiveMinimum" in node:
            assert node["exclusiveMinimum"] is True, path


def test_names_short_names_columns():
    by_kind = {k.kind: crd_manifest(k)["spec"] for k in ALL_KINDS}
    assert by_kind["TrainingJob"]["names"]["shortNames"] == ["mtj", "tj"]
    assert by_kind["TrainedModel"]["names"]["shortNames"] == ["mtm"]
    assert by_kind["GenerationRequest"]["names"]["shortNames"] == ["mgr"]
    for spec in by_kind.values():
        assert spec["names"]["categories"] == ["musicgen"]
        assert spec["versions"][0]["subresources"] == {"status": {}}
    columns = [c["name"] for c in by_kind["TrainingJob"]["versions"][0]["additionalPrinterColumns"]]
    assert columns[:5] == ["Phase", "Epoch", "Progress", "Loss", "Model"] and columns[-1] == "Age"


def test_defaults_enums_and_bounds_reach_the_schema():
    spec = openapi_schema(ALL_KINDS[2])["properties"]["spec"]["properties"]
    assert spec["durationSeconds"]["minimum"] == 0 and spec["durationSeconds"]["exclusiveMinimum"] is True
    assert spec["durationSeconds"]["maximum"] == 300
    assert spec["temperature"]["maximum"] == 2
    assert spec["outputFormat"]["enum"] == ["wav", "flac", "mp3", "ogg", "opus"]
    assert spec["decoder"]["enum"] == ["encodec", "mbd"] and spec["decoder"]["nullable"] is True
    assert spec["resources"]["default"]["gpu"] == 1
    tj = openapi_schema(ALL_KINDS[0])["properties"]["spec"]
    assert tj["required"] == ["datasetUri"]
    assert tj["properties"]["exportFormats"]["default"] == ["adapter", "merged"]


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.kind)
def test_example_validates_against_crd_schema(kind):
    example = yaml.safe_load((ROOT / EXAMPLES[kind.kind]).read_text())
    # OpenAPI v3.0 schemas use draft-4 semantics (boolean exclusiveMinimum/Maximum).
    jsonschema.Draft4Validator(openapi_schema(kind)).validate(example)
    kind.spec_model.model_validate(example["spec"])


def test_schema_rejects_bad_values():
    schema = openapi_schema(ALL_KINDS[2])
    bad = {"spec": {"model": "m", "prompt": "p", "durationSeconds": 301}}
    with pytest.raises(jsonschema.ValidationError, match="301"):
        jsonschema.Draft4Validator(schema).validate(bad)
