"""What a platform team checks first: generated README, helm test hooks, LICENSE, MinIO password,
NetworkPolicy, base model settings, GPU runtime class, one version everywhere, one backoffLimit default."""

from __future__ import annotations

import importlib.util
import re
import textwrap
from types import ModuleType
from typing import Any

import pytest
import yaml

from musicgen_ops import __version__
from musicgen_ops.controllers.config import OperatorConfig

from .conftest import CHART_DIR, Render, load_values
from .manifests import container_env, find, one

REPO_ROOT = CHART_DIR.parents[1]
MINIO_OK = {"enabled": True, "rootPassword": "not-the-default-1"}


def chart_readme_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chart_readme", REPO_ROOT / ".ci" / "chart_readme.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_chart_readme_is_generated_from_values_and_up_to_date() -> None:
    module = chart_readme_module()
    assert (CHART_DIR / "README.md").read_text() == module.render_readme(), "run `make chart-docs`"
    values_text = (CHART_DIR / "values.yaml").read_text()
    keys = dict(module.documented_keys(values_text))
    assert keys["jobs.backoffLimit"].startswith("Pod retries of a training Job")
    table = module.values_table(values_text)
    assert "| `minio.allowDefaultPassword` | bool | `false` |" in table
    assert "| `baseModels.mirror` | string |" in table


def test_readme_generator_follows_comments() -> None:
    module = chart_readme_module()
    text = textwrap.dedent(
        """\
        # Section heading, not a value doc.
        a:
          # -- First line
          # second line.
          b: 1
          c: x
        # -- A list.
        d: [1]
        """
    )
    assert module.documented_keys(text) == [("a.b", "First line second line."), ("d", "A list.")]
    assert "| `a.b` | int | `1` | First line second line. |" in module.values_table(text)


def test_license_is_apache_in_repo_and_chart() -> None:
    for path in (REPO_ROOT / "LICENSE", CHART_DIR / "LICENSE"):
        text = path.read_text()
        assert "Apache License" in text and "Version 2.0, January 2004" in text, path
    assert (REPO_ROOT / "LICENSE").read_bytes() == (CHART_DIR / "LICENSE").read_bytes()


def test_one_version_for_package_chart_images_and_changelog() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["version"] == chart["appVersion"] == __version__
    defaults = {
        name: OperatorConfig.model_fields[name].default for name in ("trainer_image", "generator_image")
    }
    assert all(image.endswith(f":{__version__}") for image in defaults.values()), defaults
    changelog = (REPO_ROOT / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## \[(\d[^\]]*)\]", changelog, re.MULTILINE)
    assert releases and releases[0] == __version__, f"CHANGELOG.md's newest release is not {__version__}"
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "operator/musicgen_ops/__init__.py" in makefile and ":$(VERSION)" in makefile


def test_backoff_limit_default_agrees_across_values_operator_and_docs() -> None:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    default = OperatorConfig.model_fields["job_backoff_limit"].default
    assert values["jobs"]["backoffLimit"] == default
    for doc in (REPO_ROOT / "docs").glob("*.md"):
        for found in re.findall(r"(?:backoffLimit|JOB_BACKOFF_LIMIT)[^\d\n]{0,6}(\d+)", doc.read_text()):
            assert int(found) == default, f"{doc.name} says backoffLimit {found}, the default is {default}"


def test_helm_test_hooks_probe_metrics_and_generator(render: Render) -> None:
    docs = render({"serving": {"enabled": True}})
    tests = {p["metadata"]["name"]: p for p in find(docs, "Pod")}
    assert set(tests) == {"musicgen-test-metrics", "musicgen-test-generator"}
    for pod in tests.values():
        assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        compile(pod["spec"]["containers"][0]["args"][0], "probe", "exec")  # the probe is valid Python
    metrics = one(docs, "Service", "musicgen-metrics")["spec"]["ports"][0]["port"]
    assert (
        f"http://musicgen-metrics:{metrics}/metrics"
        in tests["musicgen-test-metrics"]["spec"]["containers"][0]["args"][0]
    )
    assert (
        "http://musicgen-generator:8000/readyz"
        in tests["musicgen-test-generator"]["spec"]["containers"][0]["args"][0]
    )
    assert not find(render({"metrics": {"enabled": False}}), "Pod")


def test_minio_refuses_the_published_default_password(render: Render) -> None:
    helm = pytest.importorskip("helm_python")
    with pytest.raises(helm.HelmRenderError, match="minio.rootPassword is the chart's published default"):
        render({"minio": {"enabled": True}})
    assert one(
        render({"minio": {"enabled": True, "allowDefaultPassword": True}}), "Deployment", "musicgen-minio"
    )
    assert one(render({"minio": MINIO_OK}), "Deployment", "musicgen-minio")


def test_network_policies_admit_only_the_release_and_listed_peers(render: Render) -> None:
    assert not find(render(), "NetworkPolicy")
    peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    docs = render(
        {
            "networkPolicy": {"enabled": True, "metricsFrom": [peer]},
            "serving": {"enabled": True},
            "minio": MINIO_OK,
        }
    )
    policies = {p["metadata"]["name"]: p["spec"] for p in find(docs, "NetworkPolicy")}
    assert set(policies) == {"musicgen-operator", "musicgen-generator", "musicgen-minio"}
    release = {
        "podSelector": {
            "matchLabels": {"app.kubernetes.io/name": "musicgen", "app.kubernetes.io/instance": "musicgen"}
        }
    }
    operator = policies["musicgen-operator"]["ingress"][0]
    assert operator["from"] == [release, peer]
    assert {p["port"] for p in operator["ports"]} == {8080, 9090}
    assert policies["musicgen-generator"]["ingress"][0]["from"] == [release]
    minio_from = policies["musicgen-minio"]["ingress"][0]["from"]
    assert minio_from[1]["podSelector"]["matchLabels"] == {"app.kubernetes.io/part-of": "musicgen-ops"}
    # Each policy selects the pods of its component.
    for name, component in [("musicgen-operator", "operator"), ("musicgen-generator", "generator")]:
        labels = one(docs, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        selector = policies[name]["podSelector"]["matchLabels"]
        assert selector.items() <= labels.items() and selector["app.kubernetes.io/component"] == component


def test_base_model_values_reach_the_operator_and_the_generator(render: Render) -> None:
    values = load_values(CHART_DIR / "ci" / "full-values.yaml")
    docs = render(values)
    operator_env = container_env(one(docs, "Deployment", "musicgen-operator"))
    assert operator_env["MUSICGEN_OPERATOR_BASE_MODEL_MIRROR"] == "s3://musicgen/base-models"
    assert operator_env["MUSICGEN_OPERATOR_BASE_MODEL_CACHE_PVC"] == "base-model-cache"
    assert operator_env["MUSICGEN_OPERATOR_HF_TOKEN_SECRET"] == "hf-token"
    assert operator_env["MUSICGEN_OPERATOR_DEFAULT_RUNTIME_CLASS"] == "nvidia"
    generator = one(docs, "Deployment", "musicgen-generator")
    env = {e["name"]: e for e in generator["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MUSICGEN_BASE_MODEL_MIRROR"]["value"] == "s3://musicgen/base-models"
    assert env["MUSICGEN_BASE_MODEL_CACHE"]["value"].startswith("/cache/")
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "hf-token",
        "key": "HF_TOKEN",
        "optional": True,
    }
    assert generator["spec"]["template"]["spec"]["runtimeClassName"] == "nvidia"


def test_notes_manifests_are_valid_custom_resources(render_raw: Any) -> None:
    from musicgen_ops.api.generationrequest import GenerationRequestSpec
    from musicgen_ops.api.trainingjob import TrainingJobSpec

    notes = render_raw({})["musicgen/templates/NOTES.txt"]
    blocks = re.findall(r"cat <<'EOF' \| kubectl apply[^\n]*\n(.*?)\n\s*EOF", notes, re.DOTALL)
    manifests = [yaml.safe_load(textwrap.dedent(block)) for block in blocks]
    assert [m["kind"] for m in manifests] == ["TrainingJob", "GenerationRequest"]
    TrainingJobSpec.model_validate(manifests[0]["spec"])
    GenerationRequestSpec.model_validate(manifests[1]["spec"])
    assert manifests[1]["spec"]["model"] == manifests[0]["metadata"]["name"]
