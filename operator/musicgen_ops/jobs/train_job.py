"""`train-job`: the training Job's container — pull data, preprocess, LoRA-train, export, publish.

Reads :class:`~musicgen_ops.contracts.environment.TrainJobEnvironment` from ``MUSICGEN_JOB_*`` env. Steps:

1. download ``dataset_uri``; a folder without ``manifest.json`` holds raw tracks and is preprocessed;
2. restore checkpoints from ``<run_uri>/checkpoints`` (a restarted pod resumes, not restarts);
3. train (progress to ``progress_uri``, checkpoints mirrored to storage as they are written);
4. export the requested formats and publish ``models/<model_id>/`` with ``manifest.json`` written last.

Started by ``torchrun`` (one process per GPU, ``python -m musicgen_ops train-job``), the ranks train
data-parallel: on each node the local rank 0 downloads and preprocesses the data and restores the
checkpoints while the node's other ranks wait; global rank 0 alone writes progress, mirrors checkpoints and
publishes the model.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from musicgen_ops.contracts.environment import TrainJobEnvironment

if TYPE_CHECKING:
    from musicgen_ops.pipeline.training import TrainConfig
from musicgen_ops.contracts.manifest import TrainingSummary
from musicgen_ops.jobs.checkpoints import CheckpointMirror
from musicgen_ops.jobs.reporting import StorageProgressReporter
from musicgen_ops.jobs.runtime import run_job

logger = logging.getLogger(__name__)


def work_dir(settings: TrainJobEnvironment) -> Path:
    """Local scratch space (an emptyDir volume in the pod; ``MUSICGEN_JOB_WORK_DIR``); without it, a temporary
    folder, named after torchrun's run id under torchrun so that the ranks of a node share it."""
    run_id = re.sub(r"[^A-Za-z0-9_.-]", "-", os.environ.get("TORCHELASTIC_RUN_ID", ""))
    if settings.work_dir:
        path = settings.work_dir
    elif run_id:
        path = Path(tempfile.gettempdir()) / f"train-job-{run_id}"
    else:
        path = Path(tempfile.mkdtemp(prefix="train-job-"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def prepare_dataset(settings: TrainJobEnvironment, scratch: Path) -> Path:
    """Download the dataset and preprocess it unless it already is (has ``manifest.json``)."""
    from musicgen_ops.pipeline.audio import AudioDataPreprocessor
    from musicgen_ops.pipeline.errors import DatasetError
    from musicgen_ops.pipeline.manifest import MANIFEST_NAME
    from musicgen_ops.storage import open_store

    downloaded = scratch / "dataset"
    if not downloaded.is_dir():
        staging = scratch / ".dataset-download"
        shutil.rmtree(staging, ignore_errors=True)
        open_store(settings.dataset_uri).get_folder("", staging)
        staging.rename(downloaded)
    if (downloaded / MANIFEST_NAME).is_file():
        return downloaded
    from musicgen_ops.pipeline.models import base_model_audio_channels

    channels = base_model_audio_channels(settings.base_model)  # stereo models train on stereo clips
    result = AudioDataPreprocessor(channels=channels).preprocess_directory(
        downloaded, prepared_dataset_dir(scratch)
    )
    for source, reason in result.skipped:
        logger.warning("skipped %s: %s", source, reason)
    if not result.entries:
        raise DatasetError(f"no usable audio in {settings.dataset_uri} ({len(result.skipped)} files skipped)")
    return result.output_dir


def prepared_dataset_dir(scratch: Path) -> Path:
    """Where :func:`prepare_dataset` leaves the training data: the download itself when it was preprocessed
    already, else ``preprocessed/``."""
    from musicgen_ops.pipeline.manifest import MANIFEST_NAME

    downloaded = scratch / "dataset"
    return downloaded if (downloaded / MANIFEST_NAME).is_file() else scratch / "preprocessed"


def export_formats(settings: TrainJobEnvironment, final_model: Path, publish: Path) -> list[str]:
    """Copy the adapter into ``publish`` and export the other requested formats beside it."""
    shutil.copytree(final_model, publish, dirs_exist_ok=True)
    extra = [f for f in settings.export_formats if f != "adapter"]
    if extra:
        from musicgen_ops.pipeline.export.exporter import export_trained_model_from_checkpoint

        exported = publish.parent / "exported"
        export_trained_model_from_checkpoint(final_model, exported, extra)
        shutil.copytree(exported, publish, dirs_exist_ok=True)
    return ["adapter", *extra]


def train_config(settings: TrainJobEnvironment, data_dir: Path, output_dir: Path) -> TrainConfig:
    """The pipeline's training configuration for this Job: the contract's LoRA and training settings as
    they arrived, plus this pod's folders and device."""
    from musicgen_ops.pipeline.training import TrainConfig

    return TrainConfig(
        **settings.training.model_dump(),
        lora=settings.lora,
        base_model=settings.base_model,
        device=settings.device,
        resume=settings.resume,
        data_dir=data_dir,
        output_dir=output_dir,
    )


def train(settings: TrainJobEnvironment) -> None:
    """Run the whole training Job."""
    from musicgen_ops.pipeline.models import set_base_model_resolver
    from musicgen_ops.pipeline.progress import MultiReporter
    from musicgen_ops.pipeline.training import run_training
    from musicgen_ops.pipeline.training.distributed import distributed_session
    from musicgen_ops.storage import open_store, publish_model
    from musicgen_ops.storage.base_models import resolve_base_model

    # A mirrored base model (URI, or hub id with MUSICGEN_BASE_MODEL_MIRROR) loads from the node cache.
    set_base_model_resolver(resolve_base_model)
    with distributed_session(settings.device) as context:
        scratch = work_dir(settings)
        with context.local_main_first():  # one download and preprocessing per node
            if context.is_local_main:
                prepare_dataset(settings, scratch)
        config = train_config(settings, prepared_dataset_dir(scratch), scratch / "output")
        mirror = CheckpointMirror(config.checkpoint_dir, open_store(settings.run_uri).child("checkpoints"))
        with context.local_main_first():  # every node resumes from the same checkpoints
            if context.is_local_main and settings.resume:
                mirror.restore()
        if not context.is_main:
            run_training(config)
            return
        progress = StorageProgressReporter(settings.progress_uri, settings.progress_interval_seconds)
        result = run_training(config, MultiReporter(mirror, progress))
    publish = scratch / "publish"
    shutil.rmtree(publish, ignore_errors=True)
    formats = export_formats(settings, result.final_model_dir, publish)
    manifest = publish_model(
        publish,
        settings.artifacts_uri,
        settings.model_id,
        base_model=settings.base_model,
        formats=formats,
        overwrite=True,
        metadata=TrainingSummary(
            final_loss=result.final_train_loss,
            validation_loss=result.val_loss,
            base_validation_loss=result.base_val_loss,
            steps=result.steps,
            train_loss_per_epoch=result.train_loss_per_epoch,
            dataset_uri=settings.dataset_uri,
            training_job=f"{settings.namespace}/{settings.resource_name}",
            resumed_from=result.resumed_from,
            world_size=result.world_size,
            effective_batch_size=result.effective_batch_size,
        ).model_dump(mode="json"),
    )
    logger.info(
        "published model %s (%d files, %s)", settings.model_id, len(manifest.files), ", ".join(formats)
    )


def main() -> None:
    """Console script ``train-job``."""
    run_job("train-job", lambda: train(TrainJobEnvironment.from_environ()))


if __name__ == "__main__":
    main()
