"""Pod pieces shared by Jobs and Deployments: resources, scheduling, security (pure functions)."""

from __future__ import annotations

from musicgen_ops.api.common import ComputeResources, Scheduling
from musicgen_ops.contracts.environment import BaseModelEnvironment
from musicgen_ops.controllers.config import OperatorConfig

GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"


def container_resources(resources: ComputeResources, config: OperatorConfig) -> dict:
    """requests/limits: CPU and memory both ways, GPUs as limits (extended resources)."""
    limits: dict[str, str] = {"cpu": resources.cpu, "memory": resources.memory}
    if resources.gpu:
        limits[resources.gpu_resource or config.default_gpu_resource] = str(resources.gpu)
    return {"requests": {"cpu": resources.cpu, "memory": resources.memory}, "limits": limits}


def pod_scheduling(resources: ComputeResources, scheduling: Scheduling, config: OperatorConfig) -> dict:
    """nodeSelector (defaults, GPU product, spec), tolerations, priority class, GPU runtime class."""
    selector = dict(config.default_node_selector)
    if resources.gpu and resources.gpu_type:
        selector[GPU_PRODUCT_LABEL] = resources.gpu_type
    selector.update(scheduling.node_selector)
    tolerations = list(config.default_tolerations) + [t.to_k8s() for t in scheduling.tolerations]
    result: dict = {}
    if selector:
        result["nodeSelector"] = selector
    if tolerations:
        result["tolerations"] = tolerations
    if scheduling.priority_class_name:
        result["priorityClassName"] = scheduling.priority_class_name
    if resources.gpu and config.default_runtime_class:
        result["runtimeClassName"] = config.default_runtime_class
    if config.job_service_account:
        result["serviceAccountName"] = config.job_service_account
    return result


def env_from(secret: str | None) -> list[dict]:
    """envFrom entries mounting the storage Secret, if any."""
    return [{"secretRef": {"name": secret}}] if secret else []


POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "fsGroup": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
#: Scratch space for downloads and checkpoints, and a larger /dev/shm for data loaders.
SCRATCH_VOLUMES = [
    {"name": "scratch", "emptyDir": {}},
    {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}},
]
#: Where Job and server containers work and keep downloaded models (on the scratch emptyDir).
SCRATCH_WORK_DIR = "/scratch/work"
SCRATCH_MODEL_CACHE = "/scratch/models"


def device_for(gpus: int) -> str:
    """The device a container is told to use: CUDA when its pod requests GPUs (never a silent CPU)."""
    return "cuda" if gpus > 0 else "cpu"


SCRATCH_MOUNTS = [{"name": "scratch", "mountPath": "/scratch"}, {"name": "dshm", "mountPath": "/dev/shm"}]

#: Where Job and server containers cache mirrored base models (one download per volume, not per pod).
BASE_MODEL_CACHE_PATH = "/cache/base-models"
BASE_MODEL_CACHE_VOLUME = "base-models"
HF_TOKEN_KEY = "HF_TOKEN"


def base_model_cache(config: OperatorConfig) -> tuple[dict, dict, list[dict]]:
    """(volume, mount, env) for base models: an emptyDir or the configured PVC, the mirror, HF_TOKEN."""
    if config.base_model_cache_pvc:
        source: dict = {"persistentVolumeClaim": {"claimName": config.base_model_cache_pvc}}
    else:
        source = {"emptyDir": {}}
    where = BaseModelEnvironment(cache=BASE_MODEL_CACHE_PATH, mirror=config.base_model_mirror or None)
    env: list[dict] = where.to_env()
    if config.hf_token_secret:
        ref = {"name": config.hf_token_secret, "key": HF_TOKEN_KEY, "optional": True}
        env.append({"name": HF_TOKEN_KEY, "valueFrom": {"secretKeyRef": ref}})
    volume = {"name": BASE_MODEL_CACHE_VOLUME, **source}
    return volume, {"name": BASE_MODEL_CACHE_VOLUME, "mountPath": BASE_MODEL_CACHE_PATH}, env
