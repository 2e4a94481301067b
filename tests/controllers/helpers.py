"""Builders of test resources and a fake training Job's side effects (progress, manifest, results)."""

from __future__ import annotations

from pathlib import Path

from musicgen_ops.storage.artifacts import publish_model

API = "musicgen.io/v1alpha1"


def training_job(name: str, **spec: object) -> dict:
    return {
        "apiVersion": API,
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {"datasetUri": "s3://datasets/piano", "baseModel": "tiny-random", **spec},
    }


def trained_model(name: str, **spec: object) -> dict:
    return {
        "apiVersion": API,
        "kind": "TrainedModel",
        "metadata": {"name": name},
        "spec": {"baseModel": "tiny-random", **spec},
    }


def generation_request(name: str, model: str, **spec: object) -> dict:
    return {
        "apiVersion": API,
        "kind": "GenerationRequest",
        "metadata": {"name": name},
        "spec": {"trainedModelId": model, "prompt": "calm piano", "durationSeconds": 5, **spec},
    }


def write_progress(artifacts: Path, run_uri: str, contract: type, **values: object) -> None:
    """Write progress.json the way a training Job does: through the contract model, into its run folder
    (``status.runUri``, keyed by the resource's uid)."""
    path = artifacts / run_uri.removeprefix(f"file://{artifacts}/") / "progress.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(contract(**values).model_dump_json())


def publish(artifacts: Path, tmp: Path, model_id: str, formats: list[str], loss: float = 1.25) -> None:
    """Upload a small model folder with its manifest, as the training Job does when it finishes."""
    folder = tmp / model_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_model.safetensors").write_bytes(b"\0" * 64)
    (folder / "adapter_config.json").write_text("{}")
    publish_model(
        folder,
        f"file://{artifacts}",
        model_id,
        base_model="tiny-random",
        formats=formats,
        metadata={"final_loss": loss},
    )


def job_succeeded() -> dict:
    return {
        "status": {
            "succeeded": 1,
            "completionTime": "2026-01-01T00:10:00Z",
            "conditions": [{"type": "Complete", "status": "True"}],
        }
    }


def job_failed(
    reason: str = "BackoffLimitExceeded", message: str = "Job has reached the specified backoff limit"
) -> dict:
    return {
        "status": {
            "failed": 1,
            "conditions": [{"type": "Failed", "status": "True", "reason": reason, "message": message}],
        }
    }


def pod_of(job_name: str, pod_name: str, terminated: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name,
            "labels": {"batch.kubernetes.io/job-name": job_name, "job-name": job_name},
        },
        "status": {
            "phase": "Failed",
            "containerStatuses": [{"name": "trainer", "state": {"terminated": terminated}}],
        },
    }
