"""Fixtures for rendering the Helm chart with Helm's own engine (helm-python-sdk, no helm binary)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from .manifests import Manifest

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "musicgen"
CI_VALUES = sorted((CHART_DIR / "ci").glob("*-values.yaml"))
RELEASE = "musicgen"
NAMESPACE = "musicgen"

Render = Callable[..., list[Manifest]]


def load_values(path: Path) -> dict[str, Any]:
    """Read a values file (an empty file means no overrides)."""
    return yaml.safe_load(path.read_text()) or {}


@pytest.fixture(scope="session")
def chart() -> Any:
    """The chart loaded by Helm's library."""
    helm = pytest.importorskip("helm_python")
    return helm.Chart.load(CHART_DIR)


@pytest.fixture(scope="session")
def render_raw(chart: Any) -> Callable[..., dict[str, str]]:
    """Render the templates for some values: {template path: text}, as `helm template` would."""

    def _render(values: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, str]:
        chart.validate_schema(values or {})
        opts = {"name": RELEASE, "namespace": NAMESPACE, "is_install": True, **kwargs}
        return chart.render(values or {}, **opts)

    return _render


@pytest.fixture(scope="session")
def render(render_raw: Callable[..., dict[str, str]]) -> Render:
    """Render the chart and parse every manifest (NOTES.txt left out)."""

    def _render(values: dict[str, Any] | None = None, **kwargs: Any) -> list[Manifest]:
        docs: list[Manifest] = []
        for path, text in sorted(render_raw(values, **kwargs).items()):
            if path.endswith("NOTES.txt"):
                continue
            docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
        return docs

    return _render
