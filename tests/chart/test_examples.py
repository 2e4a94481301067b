"""The GitOps examples install this chart with values the chart accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import CHART_DIR, Render
from .manifests import one

EXAMPLES = CHART_DIR.parents[1] / "examples"


def applications() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EXAMPLES / "argocd-application.yaml").read_text()) if d]


def test_argocd_application_installs_the_chart_from_the_repo_path(chart: Any, render: Render) -> None:
    app = next(a for a in applications() if a["spec"]["source"].get("path") == "charts/musicgen")
    assert app["apiVersion"] == "argoproj.io/v1alpha1" and app["kind"] == "Application"
    assert (CHART_DIR.parents[1] / app["spec"]["source"]["path"] / "Chart.yaml").is_file()
    assert {"CreateNamespace=true", "ServerSideApply=true"} <= set(app["spec"]["syncPolicy"]["syncOptions"])
    assert "ignoreDifferences" not in app["spec"]  # the operator writes status only (see the file's comment)
    values = app["spec"]["source"]["helm"]["valuesObject"]
    chart.validate_schema(values)
    docs = render(values, namespace=app["spec"]["destination"]["namespace"])
    assert one(docs, "Role")["metadata"]["namespace"] == "musicgen"


def test_workloads_application_never_prunes_trained_models() -> None:
    workloads = [a for a in applications() if a["spec"]["source"].get("path") != "charts/musicgen"]
    assert workloads and all(a["spec"]["syncPolicy"]["automated"]["prune"] is False for a in workloads)


@pytest.mark.parametrize("name", ["values-gpu-cluster.yaml"])
def test_example_values_files_are_accepted(chart: Any, render: Render, name: str) -> None:
    path: Path = EXAMPLES / name
    if not path.exists():
        pytest.skip(f"{name} not present")
    values = yaml.safe_load(path.read_text())
    chart.validate_schema(values)
    assert render(values)
