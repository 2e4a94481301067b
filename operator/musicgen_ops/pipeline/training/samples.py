"""Checkpoint samples: at each checkpoint, a short clip per sample prompt from the model being trained.

The clips go INSIDE the checkpoint, so the checkpoint mirror publishes them beside it:
``checkpoint-<step>/samples/<index>.wav`` for the HF Trainer; Lightning's checkpoints are files, so its
clips go to a sibling folder ``samples-<step>/<index>.wav``. Each folder also holds ``samples.json``
(the :class:`~musicgen_ops.contracts.progress.CheckpointSample` entries: prompt, seed, seconds, path) and
is written atomically (staged, then renamed).

:class:`CheckpointSampler` is also a progress reporter wrapper: every event it forwards carries the
samples rendered so far (of the checkpoints still on disk), and a ``saving`` event is sent as soon as a
checkpoint's clips are written. Only the process that writes checkpoints renders (rank 0).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback

from musicgen_ops.contracts.progress import CheckpointSample
from musicgen_ops.pipeline.inference.base import SamplingParams
from musicgen_ops.pipeline.models import LoadedModel
from musicgen_ops.pipeline.progress import ProgressEvent, ProgressReporter
from musicgen_ops.pipeline.training.config import TrainConfig

__all__ = [
    "SAMPLES_DIR",
    "SAMPLES_INDEX",
    "CheckpointSampler",
    "HfSampleCallback",
    "checkpoint_sampler",
    "is_checkpoint_writer",
    "read_samples",
]

logger = logging.getLogger(__name__)

#: Folder of the clips inside an HF checkpoint, and the listing written beside them.
SAMPLES_DIR = "samples"
SAMPLES_INDEX = "samples.json"


def is_checkpoint_writer() -> bool:
    """True unless this is a non-zero rank of an initialised ``torch.distributed`` group."""
    distributed = torch.distributed
    return not (distributed.is_available() and distributed.is_initialized() and distributed.get_rank() != 0)


def read_samples(checkpoint_dir: Path) -> list[CheckpointSample]:
    """The samples listed in the ``samples.json`` files under ``checkpoint_dir`` (a resumed run's earlier
    checkpoints), ordered by step and prompt; unreadable listings are skipped."""
    found: list[CheckpointSample] = []
    if not checkpoint_dir.is_dir():
        return found
    for index in [
        *checkpoint_dir.glob(f"*/{SAMPLES_DIR}/{SAMPLES_INDEX}"),
        *checkpoint_dir.glob(f"*/{SAMPLES_INDEX}"),
    ]:
        try:
            found.extend(CheckpointSample.model_validate(item) for item in json.loads(index.read_text()))
        except (OSError, ValueError) as err:
            logger.warning("ignoring checkpoint samples listing %s: %s", index, err)
    return sorted(found, key=lambda s: (s.step, s.index))


class CheckpointSampler:
    """Renders ``config.sample_prompts`` at each checkpoint and stamps them on every progress event.

    Args:
        peft_model: the model being trained (LoRA active).
        processor: its processor (tokenises the prompts).
        config: the run's configuration (sample prompts, seconds, seed, checkpoint folder, epochs).
        reporter: where progress events go (may be None).
    """

    def __init__(
        self, peft_model: Any, processor: Any, config: TrainConfig, reporter: ProgressReporter | None
    ) -> None:
        self.peft_model = peft_model
        self.processor = processor
        self.prompts = list(config.sample_prompts)
        self.seconds = config.sample_seconds
        self.seed = config.sample_seed
        self.checkpoint_dir = config.checkpoint_dir
        self.reporter = reporter
        self.rendered: list[CheckpointSample] = read_samples(self.checkpoint_dir)
        self._last: ProgressEvent | None = None
        self._engine: Any = None

    def published(self) -> list[CheckpointSample]:
        """Samples rendered so far whose checkpoint is still kept (rotated-away ones are dropped)."""
        return [s for s in self.rendered if (self.checkpoint_dir / s.path).is_file()]

    def on_progress(self, event: ProgressEvent) -> None:
        """ProgressReporter: forward ``event`` with the samples so far."""
        self._last = event
        if self.reporter is not None:
            self.reporter.on_progress(event.model_copy(update={"samples": self.published()}))

    def on_checkpoint(
        self, step: int, folder: Path, epoch: float, total_epochs: int, total_steps: int
    ) -> None:
        """Render the clips of the checkpoint at ``step`` into ``folder`` and announce them.

        A failure is logged, never raised: samples must not stop a training run.
        """
        if not self.prompts or not is_checkpoint_writer() or any(s.step == step for s in self.rendered):
            return
        try:
            samples = self.render(step, folder)
        except Exception as err:  # a sample is a nicety: log and keep training
            logger.warning("could not render checkpoint samples at step %d: %s", step, err)
            return
        self.rendered.extend(samples)
        logger.info("checkpoint %d: %d samples written to %s", step, len(samples), folder)
        base = self._last or ProgressEvent(
            phase="training", epoch=epoch, total_epochs=total_epochs, step=step, total_steps=total_steps
        )
        self.on_progress(
            base.model_copy(
                update={
                    "phase": "saving",
                    "step": step,
                    "epoch": epoch,
                    "message": f"checkpoint {step}: {len(samples)} samples rendered",
                }
            )
        )

    def render(self, step: int, folder: Path) -> list[CheckpointSample]:
        """Generate one clip per prompt with the current weights (eval mode, no grad, fixed seeds) and write
        ``<folder>/<index>.wav`` plus ``samples.json`` atomically; training mode and RNG state are kept."""
        import soundfile as sf

        modes = {module: module.training for module in self.peft_model.modules()}
        engine = self._engine_for_model()
        devices = [engine.device] if engine.device.type == "cuda" else []
        self.peft_model.eval()
        try:
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                output = engine.generate(
                    self.prompts,
                    num_frames=max(1, round(self.seconds * engine.frame_rate)),
                    seeds=[self.seed + i for i in range(len(self.prompts))],
                    sampling=SamplingParams(seed=self.seed),
                )
        finally:
            for module, training in modes.items():
                module.training = training
        staging = folder.parent / f".{folder.name}.staging"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        samples = []
        for index, (prompt, audio) in enumerate(zip(self.prompts, output.audio, strict=True)):
            target = folder / f"{index}.wav"
            sf.write(staging / target.name, np.clip(audio, -1.0, 1.0), output.sample_rate, subtype="PCM_16")
            samples.append(
                CheckpointSample(
                    step=step,
                    index=index,
                    prompt=prompt,
                    path=target.relative_to(self.checkpoint_dir).as_posix(),
                    seconds=audio.shape[-1] / output.sample_rate,
                    sample_rate=output.sample_rate,
                    seed=self.seed + index,
                )
            )
        listing = [s.model_dump(mode="json") for s in samples]
        (staging / SAMPLES_INDEX).write_text(json.dumps(listing, indent=2) + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
        return samples

    def _engine_for_model(self) -> Any:
        """A TorchEngine over the model being trained (built once; it shares the weights)."""
        if self._engine is None:
            from musicgen_ops.pipeline.inference.torch_engine import TorchEngine

            base = self.peft_model.get_base_model()
            device = next(self.peft_model.parameters()).device
            self._engine = TorchEngine(
                LoadedModel(model=base, processor=self.processor, name="training"), str(device)
            )
        return self._engine


def checkpoint_sampler(
    peft_model: Any, processor: Any, config: TrainConfig, reporter: ProgressReporter | None
) -> CheckpointSampler | None:
    """A sampler when ``config.sample_prompts`` asks for checkpoint samples, else None."""
    return CheckpointSampler(peft_model, processor, config, reporter) if config.sample_prompts else None


class HfSampleCallback(TrainerCallback):
    """HF Trainer: render the samples into each ``checkpoint-<step>/`` right after it is saved."""

    def __init__(self, sampler: CheckpointSampler, total_epochs: int) -> None:
        self.sampler = sampler
        self.total_epochs = total_epochs

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}" / SAMPLES_DIR
        if folder.parent.is_dir():
            self.sampler.on_checkpoint(
                state.global_step, folder, float(state.epoch or 0.0), self.total_epochs, state.max_steps
            )
