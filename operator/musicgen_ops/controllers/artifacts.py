"""The operator's only contact with object storage: progress.json, model manifests, generation results.

Everything here is blocking (storage SDKs) and is called through ``asyncio.to_thread``. Keeping storage
behind these few functions keeps the controllers independent of the storage package's details.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from musicgen_ops.contracts.generation import GenerationJobResult
from musicgen_ops.contracts.progress import TrainingProgress
from musicgen_ops.storage.artifacts import MANIFEST_NAME, delete_model, model_prefix, read_manifest
from musicgen_ops.storage.base import NotFoundError, StorageError
from musicgen_ops.storage.uri import open_object, open_store

logger = logging.getLogger(__name__)


def read_json(uri: str) -> dict[str, Any] | None:
    """A small JSON document by URI, or None when it does not exist (yet)."""
    store, key = open_object(uri)
    try:
        value = store.get_json(key)
    except NotFoundError:
        return None
    if not isinstance(value, dict):
        raise StorageError("expected a JSON object", uri=uri)
    return value


def read_progress(uri: str) -> TrainingProgress | None:
    """A training Job's ``progress.json``, or None before the Job wrote one."""
    value = read_json(uri)
    return None if value is None else TrainingProgress.model_validate(value)


def read_generation_result(uri: str) -> GenerationJobResult | None:
    """The result a generator Job wrote next to its audio, or None when absent."""
    value = read_json(uri)
    return None if value is None else GenerationJobResult.model_validate(value)


@dataclass
class ArtifactCheck:
    """Outcome of checking a model folder: complete or what is missing."""

    complete: bool
    missing: list[str] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)
    base_model: str | None = None
    final_loss: float | None = None
    validation_loss: float | None = None
    base_validation_loss: float | None = None
    size_bytes: int | None = None


def check_model(root_uri: str, model_id: str, required_formats: list[str]) -> ArtifactCheck:
    """Whether ``<root>/models/<id>/`` holds a manifest, the required formats and every listed file."""
    manifest = read_manifest(root_uri, model_id)
    if manifest is None:
        return ArtifactCheck(False, [f"{model_prefix(model_id)}/{MANIFEST_NAME}"])
    missing = [f"format {fmt}" for fmt in required_formats if fmt not in manifest.formats]
    store = open_store(root_uri).child(model_prefix(model_id))
    present = {info.key for info in store.list("")}
    missing += [f"file {entry.path}" for entry in manifest.files if entry.path not in present]
    loss = manifest.training.final_loss
    return ArtifactCheck(
        complete=not missing,
        missing=missing,
        formats=list(manifest.formats),
        base_model=manifest.base_model,
        final_loss=loss,
        validation_loss=manifest.training.validation_loss,
        base_validation_loss=manifest.training.base_validation_loss,
        size_bytes=manifest.total_size,
    )


def remove_model(root_uri: str, model_id: str) -> int:
    """Delete a model's artifacts (manifest first); returns how many objects went."""
    count = delete_model(root_uri, model_id)
    logger.info("deleted %d objects of model %s under %s", count, model_id, root_uri)
    return count
