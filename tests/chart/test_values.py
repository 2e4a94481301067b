"""values.yaml is documented key by key, and values.schema.json turns bad values into install errors."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from .conftest import CHART_DIR


@pytest.fixture(scope="module")
def helm() -> Any:
    return pytest.importorskip("helm_python")


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"operator": {"replicas": "two"}}, "replicas"),
        ({"operator": {"replica": 1}}, "replica"),
        ({"unknownTopLevel": True}, "unknownTopLevel"),
        ({"images": {"trainer": {"repository": "x", "pullPolicy": "Sometimes"}}}, "pullPolicy"),
        ({"storage": {"artifactsUri": "ftp://bucket/"}}, "artifactsUri"),
        ({"operator": {"watchNamespaces": ["Not_A_Namespace"]}}, "watchNamespaces"),
        ({"jobs": {"tolerations": [{"key": "k", "effect": "Sometimes"}]}}, "effect"),
        ({"minio": {"enabled": True, "rootPassword": "short"}}, "rootPassword"),
        ({"metrics": {"port": 70000}}, "port"),
        ({"serving": {"cache": {"size": "lots"}}}, "size"),
    ],
)
def test_bad_values_fail_schema_validation(
    helm: Any, chart: Any, values: dict[str, Any], needle: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as excinfo:
        chart.validate_schema(values)
    assert needle in str(excinfo.value)


def test_bad_values_fail_lint_too(helm: Any) -> None:
    report = helm.lint(CHART_DIR, values={"operator": {"replicas": "two"}})
    assert report["errors"] or any(m["severity"] == 3 for m in report["messages"])


def test_defaults_satisfy_the_schema(chart: Any) -> None:
    chart.validate_schema({})
    chart.validate_schema(yaml.safe_load((CHART_DIR / "values.yaml").read_text()))


def test_schema_is_draft07_and_closed() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert set(schema["properties"]) - {"global"} == set(defaults)

    def walk(node: dict[str, Any], path: str) -> None:
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, f"{path} is not closed"
            for key, child in node["properties"].items():
                walk(child, f"{path}.{key}")

    walk(schema, "values")


def test_values_yaml_points_at_its_schema_and_documents_every_key() -> None:
    lines = (CHART_DIR / "values.yaml").read_text().splitlines()
    assert lines[0] == "# yaml-language-server: $schema=./values.schema.json"
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    key = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z][A-Za-z0-9]*):")
    parents: list[dict[str, Any] | None] = [schema]  # schema node of the object at each indent level
    undocumented: list[str] = []
    for n, line in enumerate(lines):
        match = key.match(line)
        if not match:
            continue
        depth = len(match["indent"]) // 2
        del parents[depth + 1 :]
        parent = parents[depth] if depth < len(parents) else None
        node = (parent or {}).get("properties", {}).get(match["key"]) if parent else None
        if node is not None and not lines[n - 1].lstrip().startswith("#"):
            undocumented.append(f"line {n + 1}: {line.strip()}")
        if node is not None and "$ref" in node:
            node = schema["definitions"][node["$ref"].rsplit("/", 1)[-1]]
        parents.append(node)
    assert undocumented == []


def test_crds_ship_with_the_chart_and_match_the_generated_ones() -> None:
    generated = CHART_DIR.parents[1] / "crds"
    chart_copy = CHART_DIR / "crds"
    sources = sorted(p.name for p in generated.glob("*.yaml")) if generated.is_dir() else []
    if not sources:
        pytest.skip("crds/ is not generated yet (make crds)")
    assert chart_copy.is_dir(), "charts/musicgen/crds/ is missing: run make crds"
    assert sorted(p.name for p in chart_copy.glob("*.yaml")) == sources
    for name in sources:
        assert (chart_copy / name).read_bytes() == (generated / name).read_bytes(), (
            f"{name} differs: run make crds"
        )
    kinds = {yaml.safe_load((generated / n).read_text())["spec"]["names"]["kind"] for n in sources}
    assert {"TrainingJob", "TrainedModel", "GenerationRequest"} <= kinds


def test_helm_loads_the_crds_and_they_are_valid(chart: Any) -> None:
    if not (CHART_DIR / "crds").is_dir():
        pytest.skip("charts/musicgen/crds/ is not generated yet (make crds)")
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    crds = [doc for c in chart.crds for doc in yaml.safe_load_all(c["data"]) if doc]
    for crd in crds:
        kubernetes_validate.validate(crd, "1.33", strict=True)
    names = {c["metadata"]["name"]: c["spec"]["names"] for c in crds}
    assert set(names) >= {
        "trainingjobs.musicgen.io",
        "trainedmodels.musicgen.io",
        "generationrequests.musicgen.io",
    }
    assert {"mtj", "tj"} <= set(names["trainingjobs.musicgen.io"].get("shortNames", []))
    assert "mtm" in names["trainedmodels.musicgen.io"].get("shortNames", [])
    assert "mgr" in names["generationrequests.musicgen.io"].get("shortNames", [])
