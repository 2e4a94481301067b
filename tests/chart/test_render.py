"""The chart lints clean, renders valid Kubernetes objects and wires values into them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from musicgen_ops.contracts.environment import ServeEnvironment

from .conftest import CHART_DIR, CI_VALUES, NAMESPACE, Render, load_values
from .manifests import Manifest, container_env, find, one

K8S_VERSION = "1.33"


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.name)
def test_helm_lint_strict_is_clean(values_file: Path) -> None:
    helm = pytest.importorskip("helm_python")
    report = helm.lint(CHART_DIR, values=load_values(values_file), strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.name)
def test_every_manifest_validates_against_kubernetes_openapi(values_file: Path, render: Render) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    docs = render(load_values(values_file))
    assert docs
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # prometheus-operator CRD: not in the Kubernetes schemas
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{values_file.name}: {name} is invalid: {str(exc).split(chr(10) * 2)[0]}")


def test_ci_scenarios_cover_serving_cluster_wide_and_minio() -> None:
    scenarios = [load_values(p) for p in CI_VALUES]
    assert any(
        v.get("serving", {}).get("enabled")
        and v.get("minio", {}).get("enabled")
        and not v.get("operator", {}).get("watchNamespaces")
        for v in scenarios
    )
    assert any(v.get("operator", {}).get("watchNamespaces") for v in scenarios)


def test_defaults_render_the_operator_and_nothing_optional(render: Render) -> None:
    docs = render()
    kinds = sorted({d["kind"] for d in docs})
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Pod",  # the `helm test` hook probing the operator's metrics
        "Secret",
        "Service",
        "ServiceAccount",
    ]
    assert [p["metadata"]["annotations"]["helm.sh/hook"] for p in find(docs, "Pod")] == ["test"]
    assert [d["metadata"]["name"] for d in find(docs, "Deployment")] == ["musicgen-operator"]
    assert not find(docs, "ServiceMonitor") and not find(docs, "PersistentVolumeClaim")


def test_operator_deployment_defaults(render: Render, chart: Any) -> None:
    dep = one(render(), "Deployment", "musicgen-operator")
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    app_version = chart.metadata["appVersion"]
    assert container["image"] == f"ghcr.io/musicgen-ops/operator:{app_version}"
    assert container["args"] == ["operator", "--liveness", "http://0.0.0.0:8080/healthz"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "resources" not in container  # unset by default (STYLE §5)
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["serviceAccountName"] == "musicgen"
    assert container["envFrom"] == [{"secretRef": {"name": "musicgen-storage"}}]
    assert dep["spec"]["template"]["metadata"]["annotations"]["checksum/storage-secret"]


def test_operator_env_carries_the_job_defaults(render: Render, chart: Any) -> None:
    values = load_values(CHART_DIR / "ci" / "full-values.yaml")
    env = container_env(one(render(values), "Deployment", "musicgen-operator"))
    tag = chart.metadata["appVersion"]
    assert env["MUSICGEN_OPERATOR_WATCH_NAMESPACES"] == ""
    assert env["MUSICGEN_OPERATOR_TRAINER_IMAGE"] == "registry.example.com/musicgen/trainer:0.1.0-cuda12.4"
    assert env["MUSICGEN_OPERATOR_GENERATOR_IMAGE"] == f"ghcr.io/musicgen-ops/generator:{tag}"
    assert env["MUSICGEN_OPERATOR_IMAGE_PULL_POLICY"] == "Always"
    assert env["MUSICGEN_OPERATOR_STORAGE_SECRET"] == "musicgen-storage"
    assert env["MUSICGEN_OPERATOR_ARTIFACTS_URI"] == "s3://musicgen/"
    assert env["MUSICGEN_OPERATOR_DEFAULT_GPU_RESOURCE"] == "nvidia.com/gpu"
    assert json.loads(env["MUSICGEN_OPERATOR_DEFAULT_NODE_SELECTOR"]) == {"nvidia.com/gpu.present": "true"}
    assert json.loads(env["MUSICGEN_OPERATOR_DEFAULT_TOLERATIONS"]) == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert env["MUSICGEN_OPERATOR_JOB_TTL_SECONDS"] == "3600"
    assert env["MUSICGEN_OPERATOR_JOB_BACKOFF_LIMIT"] == "2"
    assert env["MUSICGEN_OPERATOR_JOB_SERVICE_ACCOUNT"] == "musicgen-job"
    assert env["MUSICGEN_OPERATOR_PROGRESS_POLL_SECONDS"] == "15"
    assert env["MUSICGEN_OPERATOR_METRICS_PORT"] == "9090"


def test_watch_namespaces_env_is_a_comma_list(render: Render) -> None:
    env = container_env(one(render({"operator": {"watchNamespaces": ["a", "b"]}}), "Deployment"))
    assert env["MUSICGEN_OPERATOR_WATCH_NAMESPACES"] == "a,b"


def test_selectors_are_stable_and_match_their_pods(render: Render) -> None:
    docs = render(load_values(CHART_DIR / "ci" / "full-values.yaml"))
    workloads = find(docs, "Deployment")
    assert len(workloads) == 3  # operator, generator, minio
    for dep in workloads:
        selector = dep["spec"]["selector"]["matchLabels"]
        assert "helm.sh/chart" not in selector and "app.kubernetes.io/version" not in selector
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items()
        assert dep["metadata"]["labels"]["helm.sh/chart"].startswith("musicgen-")
    for svc in find(docs, "Service"):
        matches = [
            d
            for d in workloads
            if svc["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matches) == 1, f"Service {svc['metadata']['name']} selects {len(matches)} workloads"


def test_secret_change_rolls_the_operator(render: Render) -> None:
    def checksum(values: dict[str, Any]) -> str:
        dep = one(render(values), "Deployment", "musicgen-operator")
        return dep["spec"]["template"]["metadata"]["annotations"]["checksum/storage-secret"]

    first = checksum({"storage": {"secret": {"accessKeyId": "a", "secretAccessKey": "b"}}})
    assert first == checksum({"storage": {"secret": {"accessKeyId": "a", "secretAccessKey": "b"}}})
    assert first != checksum({"storage": {"secret": {"accessKeyId": "a", "secretAccessKey": "rotated"}}})


def test_storage_secret_in_release_and_watched_namespaces(render: Render) -> None:
    values = {
        "operator": {"watchNamespaces": ["team-a", NAMESPACE]},
        "storage": {
            "secret": {"accessKeyId": "AK", "secretAccessKey": "SK", "endpointUrl": "https://s3.example"}
        },
    }
    docs = render(values)
    secrets = find(docs, "Secret", "musicgen-storage")
    assert sorted(s["metadata"]["namespace"] for s in secrets) == ["musicgen", "team-a"]
    assert secrets[0]["stringData"] == {
        "AWS_ACCESS_KEY_ID": "AK",
        "AWS_SECRET_ACCESS_KEY": "SK",
        "S3_ENDPOINT_URL": "https://s3.example",
    }
    job_accounts = find(docs, "ServiceAccount", "musicgen-job")
    assert sorted(s["metadata"]["namespace"] for s in job_accounts) == ["musicgen", "team-a"]
    assert all(s["automountServiceAccountToken"] is False for s in job_accounts)


def test_existing_secret_is_referenced_not_created(render: Render) -> None:
    docs = render({"storage": {"existingSecret": "my-creds", "artifactsUri": "az://c/p/"}})
    assert not find(docs, "Secret")
    dep = one(docs, "Deployment", "musicgen-operator")
    assert dep["spec"]["template"]["spec"]["containers"][0]["envFrom"] == [
        {"secretRef": {"name": "my-creds"}}
    ]
    assert container_env(dep)["MUSICGEN_OPERATOR_STORAGE_SECRET"] == "my-creds"


def test_bundled_minio_is_wired_into_the_storage_secret(render: Render) -> None:
    docs = render(load_values(CHART_DIR / "ci" / "full-values.yaml"))
    data = one(docs, "Secret", "musicgen-storage", NAMESPACE)["stringData"]
    assert data == {
        "AWS_ACCESS_KEY_ID": "musicgen",
        "AWS_SECRET_ACCESS_KEY": "musicgen-try-it-out",
        "S3_ENDPOINT_URL": "http://musicgen-minio.musicgen.svc:9000",
    }
    job = one(docs, "Job", "musicgen-minio-make-bucket")
    assert "post-install" in job["metadata"]["annotations"]["helm.sh/hook"]
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["BUCKET"] == "musicgen" and env["ENDPOINT"] == data["S3_ENDPOINT_URL"]
    minio = one(docs, "Deployment", "musicgen-minio")
    assert (
        minio["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
        == "musicgen-minio"
    )
    ephemeral = render(
        {"minio": {"enabled": True, "rootPassword": "a-real-secret", "persistence": {"enabled": False}}}
    )
    assert not find(ephemeral, "PersistentVolumeClaim")
    assert (
        one(ephemeral, "Deployment", "musicgen-minio")["spec"]["template"]["spec"]["volumes"][0]["emptyDir"]
        == {}
    )


def test_serving_requests_a_gpu_on_gpu_nodes_with_a_cache_volume(render: Render) -> None:
    docs = render(load_values(CHART_DIR / "ci" / "full-values.yaml"))
    dep = one(docs, "Deployment", "musicgen-generator")
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["serve"]
    assert container["resources"]["limits"] == {"memory": "16Gi", "nvidia.com/gpu": 1}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    env = container_env(dep)
    assert env["HF_HOME"].startswith("/cache/") and env["MUSICGEN_SERVE_CACHE_DIR"].startswith("/cache/")
    # What the server really reads from the rendered env: preload, warm up and serve lofi-v1 on CUDA.
    settings = ServeEnvironment.from_environ(env)
    assert settings.models_uri == "s3://musicgen/" and settings.cache_dir.as_posix().startswith("/cache/")
    assert settings.default_model == "lofi-v1" and settings.preload == ["lofi-v1"]
    assert (settings.device, settings.dtype) == ("cuda", "bfloat16")
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "musicgen-generator-cache"
    assert pod["runtimeClassName"] == "nvidia"  # jobs.runtimeClassName in full-values.yaml
    cpu_only = render({"serving": {"enabled": True, "gpus": 0}, "jobs": {"runtimeClassName": "nvidia"}})
    cpu_pod = one(cpu_only, "Deployment", "musicgen-generator")["spec"]["template"]["spec"]
    # Requests/limits by default; no GPU and no GPU runtime class on CPU.
    assert cpu_pod["containers"][0]["resources"] == {
        "requests": {"cpu": "2", "memory": "8Gi"},
        "limits": {"memory": "16Gi"},
    }
    assert "runtimeClassName" not in cpu_pod
    gpu_pod = one(
        render({"serving": {"enabled": True}, "jobs": {"runtimeClassName": "nvidia"}}),
        "Deployment",
        "musicgen-generator",
    )["spec"]["template"]["spec"]
    assert gpu_pod["runtimeClassName"] == "nvidia"
    assert (
        ServeEnvironment.from_environ(container_env(one(cpu_only, "Deployment", "musicgen-generator"))).device
        == "cpu"
    )


def test_service_monitor_is_optional(render: Render) -> None:
    assert not find(render(), "ServiceMonitor")
    monitor = one(
        render({"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}}),
        "ServiceMonitor",
    )
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_names_follow_overrides(render: Render) -> None:
    docs = render({"fullnameOverride": "mg"})
    assert one(docs, "Deployment")["metadata"]["name"] == "mg-operator"
    long = render(name="a-very-long-release-name-that-goes-on-and-on-and-on-past-sixty-three")
    assert all(len(d["metadata"]["name"]) <= 63 for d in long)


def test_notes_name_the_next_commands(render_raw: Any) -> None:
    notes = render_raw({"minio": {"enabled": True, "rootPassword": "a-real-secret"}})[
        "musicgen/templates/NOTES.txt"
    ]
    for command in (
        "kubectl get tj",
        "kubectl get trainedmodels.musicgen.io",
        "port-forward svc/musicgen-minio",
        "kind: TrainingJob",
        "helm test musicgen",
        "musicgen-ops models mirror facebook/musicgen-small --to s3://musicgen/base-models",
    ):
        assert command in notes
    # A packaged chart ships no examples/ folder: the notes must not send users there.
    assert "examples/" not in notes
    mirrored = render_raw({"baseModels": {"mirror": "s3://musicgen/base-models"}})[
        "musicgen/templates/NOTES.txt"
    ]
    assert "models mirror" not in mirrored and "loaded from s3://musicgen/base-models" in mirrored


def manifest_names(docs: list[Manifest]) -> set[tuple[str, str, str]]:
    """(kind, namespace, name) of every manifest."""
    return {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]) for d in docs}


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.name)
def test_no_duplicate_objects(values_file: Path, render: Render) -> None:
    docs = render(load_values(values_file))
    assert len(manifest_names(docs)) == len(docs)


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.name)
def test_operator_env_is_accepted_by_the_operator_config(
    values_file: Path, render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    from musicgen_ops.controllers.config import ENV_PREFIX, OperatorConfig, load_config

    env = container_env(one(render(load_values(values_file)), "Deployment", "musicgen-operator"))
    ours = {k: v for k, v in env.items() if k.startswith(ENV_PREFIX)}
    # The operator ignores unknown variables, so a misspelt one would silently do nothing.
    assert {k.removeprefix(ENV_PREFIX).lower() for k in ours} == set(OperatorConfig.model_fields)
    for key, value in ours.items():
        monkeypatch.setenv(key, value)
    config = load_config()
    assert config.namespaces == (load_values(values_file).get("operator", {}).get("watchNamespaces") or [])
    assert config.storage_secret == env["MUSICGEN_OPERATOR_STORAGE_SECRET"]
    assert config.default_tolerations == json.loads(env["MUSICGEN_OPERATOR_DEFAULT_TOLERATIONS"])
