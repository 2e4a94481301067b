"""The generator Deployment and Service of a served TrainedModel (pure functions)."""

from __future__ import annotations

from musicgen_ops.api.trainedmodel import TrainedModelSpec
from musicgen_ops.contracts.environment import DEFAULT_MBD_WEIGHTS, ServeEnvironment
from musicgen_ops.controllers.builders.labels import Owner, child_labels, child_name, selector_labels
from musicgen_ops.controllers.builders.pods import (
    CONTAINER_SECURITY,
    POD_SECURITY,
    SCRATCH_MODEL_CACHE,
    SCRATCH_MOUNTS,
    SCRATCH_VOLUMES,
    base_model_cache,
    container_resources,
    device_for,
    env_from,
    pod_scheduling,
)
from musicgen_ops.controllers.config import OperatorConfig

SERVER_CONTAINER = "server"


def server_name(name: str) -> str:
    """Name of the Deployment and Service of a TrainedModel."""
    return child_name(name, "generator")


def serving_url(owner: Owner, spec: TrainedModelSpec) -> str:
    """In-cluster URL of the generator Service."""
    return f"http://{server_name(owner.name)}.{owner.namespace}.svc.cluster.local:{spec.serving.port}"


def serve_settings(
    spec: TrainedModelSpec, model_id: str, artifacts_root: str, config: OperatorConfig | None = None
) -> ServeEnvironment:
    """The server environment that preloads, warms up and serves ``model_id`` in the requested format,
    on CUDA in bfloat16 when the pods request GPUs."""
    serving = spec.serving
    device = device_for(serving.resources.gpu)
    return ServeEnvironment.serving(
        model_id,
        port=serving.port,
        models_uri=artifacts_root,
        model_format=serving.model_format,
        engine=serving.engine,
        device=device,
        dtype="bfloat16" if device == "cuda" else "float32",
        cache_dir=SCRATCH_MODEL_CACHE,
        output_dir="/scratch/output",
        mbd_weights=config.mbd_weights if config else DEFAULT_MBD_WEIGHTS,
    )


def build_generator_deployment(
    owner: Owner, spec: TrainedModelSpec, model_id: str, artifacts_root: str, config: OperatorConfig
) -> dict:
    """A Deployment running ``musicgen-ops serve`` for one model, probed on /readyz and /healthz."""
    serving = spec.serving
    selector = selector_labels(owner.kind, owner.name, "server")
    labels = {**child_labels(owner.kind, owner.name, "server"), **selector}
    port = serving.port
    cache_volume, cache_mount, cache_env = base_model_cache(config)
    container = {
        "name": SERVER_CONTAINER,
        "image": serving.image or config.generator_image,
        "imagePullPolicy": config.image_pull_policy,
        "command": ["musicgen-ops", "serve"],
        "env": [
            *serve_settings(spec, model_id, artifacts_root, config).to_env(),
            {"name": "HOME", "value": "/scratch"},
            {"name": "HF_HOME", "value": "/scratch/hf"},
            *cache_env,
        ],
        "envFrom": env_from(config.storage_secret or None),
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "resources": container_resources(serving.resources, config),
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": [*SCRATCH_MOUNTS, cache_mount],
        # Loading a model can take minutes: the startup probe holds the others back meanwhile.
        "startupProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 60,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "http"},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 20,
            "failureThreshold": 3,
            "timeoutSeconds": 5,
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": server_name(owner.name),
            "namespace": owner.namespace,
            "labels": labels,
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            "replicas": serving.replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "securityContext": POD_SECURITY,
                    "containers": [container],
                    "volumes": [*SCRATCH_VOLUMES, cache_volume],
                    **pod_scheduling(serving.resources, serving.scheduling, config),
                },
            },
        },
    }


def build_generator_service(owner: Owner, spec: TrainedModelSpec) -> dict:
    """A ClusterIP Service in front of the generator pods."""
    selector = selector_labels(owner.kind, owner.name, "server")
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": server_name(owner.name),
            "namespace": owner.namespace,
            "labels": {**child_labels(owner.kind, owner.name, "server"), **selector},
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": spec.serving.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }
