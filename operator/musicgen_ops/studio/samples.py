"""Checkpoint samples of a training: find one in the run's progress, fetch its WAV from the run's storage.

``progress.json`` lists the samples (:class:`~musicgen_ops.contracts.progress.CheckpointSample`, each path
relative to ``<run>/checkpoints`` and checked to stay inside it); the API names a sample by step and prompt
index only, so a request can never point outside the run.
"""

from __future__ import annotations

from pathlib import Path

from musicgen_ops.contracts.progress import CheckpointSample
from musicgen_ops.storage import StorageError, open_store
from musicgen_ops.storage.base import NotFoundError as StorageNotFound
from musicgen_ops.studio.backend import NotFoundError, StudioError


class SampleUnavailableError(StudioError):
    """The run's storage did not answer."""

    status_code = 502


def find_sample(training_id: str, samples: list[CheckpointSample], step: int, index: int) -> CheckpointSample:
    """The sample of prompt ``index`` at checkpoint ``step``, or a NotFoundError naming both."""
    for sample in samples:
        if sample.step == step and sample.index == index:
            return sample
    raise NotFoundError(f"error: training {training_id!r} has no checkpoint sample {index} at step {step}")


def fetch_sample(run_uri: str, sample: CheckpointSample, cache_dir: Path) -> Path:
    """A local copy of the sample's WAV (downloaded once into ``cache_dir``)."""
    target = cache_dir / sample.path
    if not target.is_file():
        try:
            open_store(run_uri).child("checkpoints").get_file(sample.path, target)
        except StorageNotFound as err:
            raise NotFoundError(
                f"error: checkpoint sample {sample.path} is gone (its checkpoint was rotated away)"
            ) from err
        except StorageError as err:
            raise SampleUnavailableError(f"error: checkpoint sample {sample.path}: {err}") from err
    return target
