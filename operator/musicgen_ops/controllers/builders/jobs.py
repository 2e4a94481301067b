"""batch/v1 Jobs for training and batch generation, and the storage layout they write (pure functions)."""

from __future__ import annotations

from musicgen_ops.api.generationrequest import GenerationRequestSpec
from musicgen_ops.api.trainingjob import TrainingJobSpec
from musicgen_ops.contracts.environment import (
    EXIT_CODE_INVALID_INPUT,
    TERMINATION_LOG,
    GenerateJobEnvironment,
    TrainJobEnvironment,
)
from musicgen_ops.contracts.generation import GenerationParameters
from musicgen_ops.contracts.training import LoraParameters, TrainingParameters
from musicgen_ops.controllers.builders.labels import Owner, child_labels, child_name
from musicgen_ops.controllers.builders.pods import (
    CONTAINER_SECURITY,
    POD_SECURITY,
    SCRATCH_MODEL_CACHE,
    SCRATCH_MOUNTS,
    SCRATCH_VOLUMES,
    SCRATCH_WORK_DIR,
    base_model_cache,
    container_resources,
    device_for,
    env_from,
    pod_scheduling,
)
from musicgen_ops.controllers.builders.workers import is_multi_node, make_indexed, torchrun_command
from musicgen_ops.controllers.config import OperatorConfig

TRAINER_CONTAINER = "trainer"
GENERATOR_CONTAINER = "generator"
#: Exit code of a container the kernel killed (SIGKILL), which is how OOMKilled shows in a Job.
EXIT_CODE_KILLED = 137


def join_uri(root: str, *parts: str) -> str:
    """Join a storage root URI and path parts with '/'."""
    return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts if p)])


def run_uri(root: str, namespace: str, name: str, uid: str) -> str:
    """Folder of one training run (checkpoints/ and progress.json), keyed by the resource's uid: a
    TrainingJob re-created with the same name never sees or resumes the previous one's state."""
    return join_uri(root, "runs", namespace, f"{name}-{uid}")


def progress_uri(root: str, namespace: str, name: str, uid: str) -> str:
    """Where a training Job writes progress.json."""
    return join_uri(run_uri(root, namespace, name, uid), "progress.json")


def model_uri(root: str, model_id: str) -> str:
    """Folder of a finished model's artifacts."""
    return join_uri(root, "models", model_id)


def generation_output_uri(root: str, namespace: str, name: str, fmt: str) -> str:
    """Default location of a GenerationRequest's audio."""
    return join_uri(root, "generations", namespace, name, f"output.{fmt}")


def result_uri_for(output_uri: str) -> str:
    """The JSON a generation Job writes next to the audio: <output>.json."""
    return f"{output_uri}.json"


def training_job_name(name: str) -> str:
    """Deterministic Job name of a TrainingJob (re-running a handler finds, never duplicates, it)."""
    return child_name(name, "train")


def generation_job_name(name: str) -> str:
    """Deterministic Job name of a GenerationRequest."""
    return child_name(name, "generate")


def train_settings(owner: Owner, spec: TrainingJobSpec, config: OperatorConfig) -> TrainJobEnvironment:
    """The train-job environment for a TrainingJob (becomes the container env)."""
    model_id = spec.model_id or owner.name
    return TrainJobEnvironment(
        namespace=owner.namespace,
        resource_name=owner.name,
        dataset_uri=spec.dataset_uri,
        base_model=spec.base_model,
        model_id=model_id,
        artifacts_uri=config.artifacts_uri,
        output_uri=model_uri(config.artifacts_uri, model_id),
        run_uri=run_uri(config.artifacts_uri, owner.namespace, owner.name, owner.uid),
        progress_uri=progress_uri(config.artifacts_uri, owner.namespace, owner.name, owner.uid),
        lora=LoraParameters.pick(spec.lora),
        training=TrainingParameters.pick(spec.training),
        export_formats=list(spec.export_formats),
        device=device_for(spec.resources.gpu),
        work_dir=SCRATCH_WORK_DIR,
        cache_dir=SCRATCH_MODEL_CACHE,
        resume=True,
    )


def _job(
    owner: Owner,
    *,
    job_name: str,
    component: str,
    container: dict,
    pod_extra: dict,
    backoff_limit: int,
    active_deadline: int | None,
    suspend: bool,
    config: OperatorConfig,
) -> dict:
    labels = child_labels(owner.kind, owner.name, component, owner.labels)
    # Evictions and preemptions (DisruptionTarget) come first: they do not count against backoffLimit.
    # Exit code 3 means bad input and 137 (OOMKilled) would fail again with the same memory: both fail
    # the Job at once (137 is retried only when the operator is set to retry_oom).
    fail_codes = [EXIT_CODE_INVALID_INPUT] + ([] if config.retry_oom else [EXIT_CODE_KILLED])
    spec: dict = {
        "backoffLimit": backoff_limit,
        "ttlSecondsAfterFinished": config.job_ttl_seconds,
        "suspend": suspend,
        "podFailurePolicy": {
            "rules": [
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": container["name"],
                        "operator": "In",
                        "values": fail_codes,
                    },
                },
            ]
        },
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "restartPolicy": "Never",
                "securityContext": POD_SECURITY,
                "containers": [container],
                "volumes": [*SCRATCH_VOLUMES, base_model_cache(config)[0]],
                **pod_extra,
            },
        },
    }
    if active_deadline is not None:
        spec["activeDeadlineSeconds"] = active_deadline
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name,
            "namespace": owner.namespace,
            "labels": labels,
            "ownerReferences": [owner.reference()],
        },
        "spec": spec,
    }


def _container(
    name: str,
    image: str,
    command: list[str],
    env: list[dict],
    secret: str | None,
    resources: dict,
    config: OperatorConfig,
) -> dict:
    _, cache_mount, cache_env = base_model_cache(config)
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": config.image_pull_policy,
        "command": command,
        "env": [
            *env,
            {"name": "HOME", "value": "/scratch"},
            {"name": "HF_HOME", "value": "/scratch/hf"},
            *cache_env,
        ],
        "envFrom": env_from(secret),
        "resources": resources,
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": [*SCRATCH_MOUNTS, cache_mount],
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def build_training_job(
    owner: Owner, spec: TrainingJobSpec, config: OperatorConfig, *, queued: bool = False
) -> dict:
    """The batch/v1 Job that runs ``train-job`` for a TrainingJob (under torchrun when it has more than
    one training process; an Indexed Job of ``spec.resources.nodes`` pods on several nodes); under a
    Kueue queue it is created suspended and Kueue alone decides when it starts."""
    settings = train_settings(owner, spec, config)
    job_name = training_job_name(owner.name)
    command = torchrun_command(
        spec.resources,
        job_name=job_name,
        namespace=owner.namespace,
        run_id=owner.uid,
        cluster_domain=config.cluster_domain,
    )
    container = _container(
        TRAINER_CONTAINER,
        spec.image or config.trainer_image,
        command,
        settings.to_env(),
        spec.storage_secret or config.storage_secret or None,
        container_resources(spec.resources, config),
        config,
    )
    backoff_limit = config.job_backoff_limit if spec.backoff_limit is None else spec.backoff_limit
    job = _job(
        owner,
        job_name=job_name,
        component="trainer",
        container=container,
        pod_extra=pod_scheduling(spec.resources, spec.scheduling, config),
        backoff_limit=backoff_limit,
        active_deadline=spec.active_deadline_seconds,
        suspend=True if queued else spec.suspend,
        config=config,
    )
    return make_indexed(job, spec.resources, backoff_limit) if is_multi_node(spec.resources) else job


def generate_settings(
    owner: Owner,
    spec: GenerationRequestSpec,
    model_id: str,
    model_folder: str,
    base_model: str,
    config: OperatorConfig,
) -> GenerateJobEnvironment:
    """The generate-job environment for a GenerationRequest."""
    output = spec.output_uri or generation_output_uri(
        config.artifacts_uri, owner.namespace, owner.name, spec.output_format
    )
    return GenerateJobEnvironment(
        namespace=owner.namespace,
        resource_name=owner.name,
        model_id=model_id,
        model_uri=model_folder,
        base_model=base_model,
        parameters=GenerationParameters.pick(spec),
        use_base_model=spec.use_base_model,
        device=device_for(spec.resources.gpu),
        work_dir=SCRATCH_WORK_DIR,
        cache_dir=SCRATCH_MODEL_CACHE,
        output_uri=output,
        result_uri=result_uri_for(output),
        mbd_weights=config.mbd_weights,
    )


def build_generation_job(
    owner: Owner, spec: GenerationRequestSpec, settings: GenerateJobEnvironment, config: OperatorConfig
) -> dict:
    """The batch/v1 Job that runs ``generate-job`` for a GenerationRequest."""
    container = _container(
        GENERATOR_CONTAINER,
        spec.image or config.generator_image,
        ["generate-job"],
        settings.to_env(),
        config.storage_secret or None,
        container_resources(spec.resources, config),
        config,
    )
    return _job(
        owner,
        job_name=generation_job_name(owner.name),
        component="generator",
        container=container,
        pod_extra=pod_scheduling(spec.resources, spec.scheduling, config),
        backoff_limit=min(config.job_backoff_limit, 2),
        active_deadline=3600,
        suspend=False,
        config=config,
    )
