"""Operator configuration from ``MUSICGEN_OPERATOR_*`` environment variables (the Helm chart sets them)."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from musicgen_ops import __version__
from musicgen_ops.api.common import STORAGE_URI_PATTERN
from musicgen_ops.contracts.environment import DEFAULT_MBD_WEIGHTS
from musicgen_ops.contracts.names import OPERATOR_ENV_PREFIX

ENV_PREFIX = OPERATOR_ENV_PREFIX
IMAGE_REPOSITORY = "ghcr.io/musicgen-ops"


class ConfigurationError(ValueError):
    """An operator environment variable holds a value that cannot be used."""


class OperatorConfig(BaseSettings):
    """What the operator needs to know about its cluster; one field per env variable."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", case_sensitive=False)

    #: Comma-separated namespaces to watch; empty: the whole cluster.
    watch_namespaces: str = ""
    #: Image of the training Jobs (runs ``train-job``).
    trainer_image: str = Field(f"{IMAGE_REPOSITORY}/trainer:{__version__}", min_length=1)
    #: Image of the generation Jobs and servers (``generate-job``, ``musicgen-ops serve``).
    generator_image: str = Field(f"{IMAGE_REPOSITORY}/generator:{__version__}", min_length=1)
    #: imagePullPolicy of every container the operator creates.
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    #: Secret with storage credentials, mounted into Jobs with envFrom ("" for none).
    storage_secret: str = ""
    #: Root URI of the artifact store (runs/, models/, generations/).
    artifacts_uri: str = Field("s3://musicgen", pattern=STORAGE_URI_PATTERN)
    #: Extended resource name of a GPU.
    default_gpu_resource: str = Field("nvidia.com/gpu", min_length=1)
    #: JSON object of node labels added to every pod.
    default_node_selector: dict[str, str] = Field(default_factory=dict)
    #: JSON list of tolerations added to every pod.
    default_tolerations: list[dict[str, Any]] = Field(default_factory=list)
    #: RuntimeClass of GPU pods (e.g. "nvidia" for the NVIDIA GPU operator's runtime; "" : cluster default).
    default_runtime_class: str = ""
    #: ttlSecondsAfterFinished of finished Jobs (artifacts and TrainedModels stay).
    job_ttl_seconds: int = Field(86400, ge=0)
    #: Default backoffLimit of training Jobs (each retry resumes from the last checkpoint).
    job_backoff_limit: int = Field(3, ge=0, le=100)
    #: ServiceAccount of the Jobs' pods ("" for the namespace default).
    job_service_account: str = ""
    #: Seconds between reads of progress.json / Job status while a Job runs.
    progress_poll_seconds: float = Field(15.0, gt=0, le=3600)
    #: Port of the Prometheus /metrics endpoint (0 disables it).
    metrics_port: int = Field(9090, ge=0, le=65535)
    #: Root URI of mirrored base models (``musicgen-ops models mirror``); hub ids load from there first.
    base_model_mirror: str = Field("", pattern=rf"^$|{STORAGE_URI_PATTERN}")
    #: MultiBand Diffusion weights for requests with ``decoder: mbd`` (Jobs and servers): hub id, or a
    #: mirrored artifact URI ``<root>/models/<name>`` (``musicgen-ops models mirror``).
    mbd_weights: str = Field(DEFAULT_MBD_WEIGHTS, min_length=1)
    #: PersistentVolumeClaim caching base models across pods ("" : an emptyDir per pod).
    base_model_cache_pvc: str = ""
    #: Secret whose key ``HF_TOKEN`` reaches Jobs and servers (gated/private hub models; "" for none).
    hf_token_secret: str = ""
    #: Comma-separated images a spec may choose (``spec.image``); empty: only the trainer and generator
    #: images above. Anything else is refused as InvalidSpec.
    allowed_images: str = ""
    #: Label a Secret named in ``spec.storageSecret`` must carry (value "true"): users cannot mount
    #: arbitrary Secrets of the namespace into their pods.
    storage_secret_label: str = "musicgen.io/storage"
    #: Retry OOMKilled pods (exit code 137) like other failures; by default they fail the Job at once.
    retry_oom: bool = False
    #: DNS domain of the cluster: multi-node training rendezvous on ``<job>-0.<service>.<ns>.svc.<domain>``
    #: (the full name is in the worker's /etc/hosts, so index 0 hosts the rendezvous without a DNS lookup).
    cluster_domain: str = Field("cluster.local", pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    #: How multi-node TrainingJobs run: "indexed-job" (an Indexed Job plus a headless Service, on any
    #: cluster). JobSet and Kubeflow Trainer are not targeted (docs/training.md explains the trade-off).
    multi_node_launcher: Literal["indexed-job"] = "indexed-job"

    @field_validator("default_tolerations")
    @classmethod
    def _tolerations_are_objects(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for item in value:
            if "key" not in item and item.get("operator") != "Exists":
                raise ValueError(f"toleration {item} needs a 'key' (or operator: Exists)")
        return value

    @property
    def namespaces(self) -> list[str]:
        """The watched namespaces; empty means cluster-wide."""
        return [ns.strip() for ns in self.watch_namespaces.split(",") if ns.strip()]

    @property
    def image_allow_list(self) -> set[str]:
        """Images a spec may choose: the configured list, else the trainer and generator images."""
        listed = {image.strip() for image in self.allowed_images.split(",") if image.strip()}
        return listed or {self.trainer_image, self.generator_image}

    @property
    def clusterwide(self) -> bool:
        """Whether the operator watches every namespace."""
        return not self.namespaces


def load_config(**overrides: Any) -> OperatorConfig:
    """Read the configuration; any bad value raises ConfigurationError naming its env variable."""
    try:
        return OperatorConfig(**overrides)
    except ValidationError as err:
        problems = [
            f"{ENV_PREFIX}{str(error['loc'][0]).upper()}: {error['msg']}"
            + (f" (got {json.dumps(error['input'], default=str)})" if "input" in error else "")
            for error in err.errors()
        ]
        raise ConfigurationError("invalid operator configuration: " + "; ".join(problems)) from err
    except SettingsError as err:  # e.g. a JSON variable that is not JSON
        field = re.search(r'field "(\w+)"', str(err))
        name = f"{ENV_PREFIX}{field.group(1).upper()}" if field else "a MUSICGEN_OPERATOR_ variable"
        raise ConfigurationError(
            f"invalid operator configuration: {name} is not valid JSON ({err.__cause__ or err})"
        ) from err
