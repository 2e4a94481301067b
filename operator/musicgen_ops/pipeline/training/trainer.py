"""MusicGenLoRATrainer: base model + LoRA, trained by the HF Trainer or Lightning, saved with metadata."""

from __future__ import annotations

import copy
import json
import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from musicgen_ops.contracts.progress import CheckpointSample
from musicgen_ops.contracts.training import LoraParameters
from musicgen_ops.pipeline.dataset import MusicGenCollator
from musicgen_ops.pipeline.errors import TrainingError
from musicgen_ops.pipeline.filemodes import make_public
from musicgen_ops.pipeline.melody import refuse_melody_training
from musicgen_ops.pipeline.models import LoadedModel, load_base_model
from musicgen_ops.pipeline.progress import BaselineStamp, ProgressEvent, ProgressReporter
from musicgen_ops.pipeline.training.config import TrainConfig
from musicgen_ops.pipeline.training.distributed import (
    DistributedContext,
    RankZeroReporter,
    effective_batch_size,
)
from musicgen_ops.pipeline.training.lora import apply_lora, parameter_counts, target_modules_regex
from musicgen_ops.pipeline.training.plots import plot_loss_curve
from musicgen_ops.pipeline.training.samples import checkpoint_sampler
from musicgen_ops.pipeline.training.steps import check_precision, evaluate_loss, is_finite

logger = logging.getLogger(__name__)

METADATA_NAME = "training_metadata.json"


@dataclass
class TrainingResult:
    """What a training run produced and how it went."""

    train_loss_per_epoch: list[float]
    final_train_loss: float | None
    val_loss: float | None
    base_val_loss: float | None
    steps: int
    samples_per_second: float | None
    wall_seconds: float
    output_dir: Path
    final_model_dir: Path | None = None
    loss_curve: Path | None = None
    resumed_from: str | None = None
    world_size: int = 1
    effective_batch_size: int | None = None
    history: list[dict] = field(default_factory=list, repr=False)
    samples: list[CheckpointSample] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (paths as strings, no history or samples)."""
        data = asdict(self)
        data.pop("history")
        data.pop("samples")
        return {k: str(v) if isinstance(v, Path) else v for k, v in data.items()}


class MusicGenLoRATrainer:
    """LoRA fine-tuning of MusicGen's decoder attention; the T5 encoder and EnCodec stay frozen.

    Args:
        base_model_name: hub id, local folder or ``tiny-random``.
        lora_r, lora_alpha, lora_dropout: LoRA rank, scaling numerator (default ``2 * lora_r``) and dropout.
        target_modules: decoder projections (default: self- and cross-attention q/k/v/out; ``fc1``/``fc2``
            add the feed-forward layers).
        seed: seeds the LoRA initialisation.
        loaded: an already loaded model (skips loading ``base_model_name``).
    """

    def __init__(
        self,
        base_model_name: str = "facebook/musicgen-small",
        lora_r: int = 16,
        lora_alpha: int | None = None,
        lora_dropout: float = 0.1,
        target_modules: list[str] | None = None,
        seed: int = 42,
        loaded: LoadedModel | None = None,
    ) -> None:
        self.base_model_name = base_model_name
        self.lora = LoraParameters(
            r=lora_r, alpha=lora_alpha, dropout=lora_dropout, target_modules=target_modules or []
        )
        self.loaded = loaded or load_base_model(base_model_name)
        refuse_melody_training(self.loaded)
        lora_alpha = lora_alpha or 2 * lora_r
        self.lora_settings = {
            "r": lora_r,
            "alpha": lora_alpha,
            "dropout": lora_dropout,
            "target_modules": target_modules_regex(target_modules),
        }
        torch.manual_seed(seed)
        self.peft_model = apply_lora(self.loaded.model, lora_r, lora_alpha, lora_dropout, target_modules)
        self.trainable_parameters, self.total_parameters = parameter_counts(self.peft_model)
        logger.info(
            "LoRA r=%d on %s: %s trainable of %s parameters (%.3f%%)",
            lora_r,
            base_model_name,
            f"{self.trainable_parameters:,}",
            f"{self.total_parameters:,}",
            100 * self.trainable_parameters / self.total_parameters,
        )
        self.last_result: TrainingResult | None = None
        self._dataset_hash: str | None = None
        self.split: dict[str, Any] | None = None

    @property
    def processor(self):
        """The model's processor (tokenizer + EnCodec feature extractor)."""
        return self.loaded.processor

    def collator(self) -> MusicGenCollator:
        """The batch collator matching this model's tokenizer and pad token."""
        return MusicGenCollator(
            self.processor.tokenizer.pad_token_id,
            self.loaded.model.config.decoder.pad_token_id,
            audio_channels=self.loaded.audio_channels,
        )

    def train(
        self,
        train_dataset: Any,
        val_dataset: Any | None = None,
        output_dir: str | Path = "./checkpoints",
        num_epochs: int = 10,
        batch_size: int = 4,
        learning_rate: float = 1e-4,
        gradient_accumulation_steps: int = 1,
        fp16: bool = False,
        bf16: bool = False,
        backend: Literal["hf", "lightning"] = "hf",
        reporter: ProgressReporter | None = None,
        **options: Any,
    ) -> TrainingResult:
        """Train the adapters; ``options`` takes any other :class:`TrainConfig` field (``resume``, ...)."""
        config = TrainConfig(
            output_dir=Path(output_dir),
            base_model=self.base_model_name,
            lora=options.pop("lora", self.lora),
            epochs=num_epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            grad_accum=gradient_accumulation_steps,
            precision="fp16" if fp16 else "bf16" if bf16 else "fp32",
            backend=backend,
            **options,
        )
        return self.train_with_config(train_dataset, val_dataset, config, reporter)

    def train_with_config(
        self,
        train_dataset: Any,
        val_dataset: Any | None,
        config: TrainConfig,
        reporter: ProgressReporter | None = None,
    ) -> TrainingResult:
        """Train with a validated :class:`TrainConfig`.

        Before training, the base model (adapters disabled) is evaluated on ``val_dataset``; after, the
        fine-tuned one, with the same code: ``base_val_loss`` and ``val_loss`` of the result.
        """
        check_precision(config.precision, config.device)
        if len(train_dataset) == 0:
            raise TrainingError("the training set is empty")
        if config.batch_size > len(train_dataset):
            raise TrainingError(
                f"batch size {config.batch_size} is larger than the training set "
                f"({len(train_dataset)} clips): lower --batch-size or add data"
            )
        _ensure_writable(config.output_dir)
        self._dataset_hash = getattr(
            getattr(train_dataset, "dataset", train_dataset), "manifest_sha256", None
        )
        has_val = val_dataset is not None and len(val_dataset) > 0
        context = DistributedContext.from_environ()
        if reporter and not isinstance(reporter, RankZeroReporter):
            reporter = RankZeroReporter(reporter, context, describe_batch(config, context.world_size))
        device = training_device(config.device)
        self.peft_model.to(device)
        with self.peft_model.disable_adapter():
            base_val_loss = self._evaluate(val_dataset, config, device) if has_val else None
        if base_val_loss is not None:
            logger.info("base model validation loss: %.4f", base_val_loss)
        if reporter:
            reporter = BaselineStamp(reporter, base_val_loss)
        if reporter and base_val_loss is not None:
            message = f"validation loss of the base model: {base_val_loss:.4f}"
            reporter.on_progress(
                ProgressEvent(
                    phase="evaluating",
                    epoch=0.0,
                    total_epochs=config.epochs,
                    step=0,
                    total_steps=0,
                    message=message,
                )
            )
        sampler = checkpoint_sampler(self.peft_model, self.processor, config, reporter)
        reporter = sampler or reporter  # the sampler forwards every event with the samples so far
        self.peft_model.train()
        if config.backend == "lightning":
            from musicgen_ops.pipeline.training.lightning import train_with_pytorch_lightning

            def loader(ds, shuffle):
                return torch.utils.data.DataLoader(
                    ds,
                    batch_size=config.batch_size,
                    shuffle=shuffle,
                    collate_fn=self.collator(),
                    generator=torch.Generator().manual_seed(config.seed),
                )

            raw = train_with_pytorch_lightning(
                self.peft_model,
                loader(train_dataset, True),
                loader(val_dataset, False) if has_val else None,
                config.output_dir,
                config.epochs,
                config.learning_rate,
                accelerator="cpu" if config.device == "cpu" else "auto",
                devices=context.local_world_size,
                num_nodes=context.num_nodes,
                strategy="ddp" if context.is_distributed else "auto",
                precision=config.precision,
                max_steps=config.max_steps,
                grad_accum=config.grad_accum,
                max_grad_norm=config.max_grad_norm,
                lr_scheduler=config.lr_scheduler,
                warmup_ratio=config.warmup_ratio,
                weight_decay=config.weight_decay,
                optimizer=config.optimizer,
                condition_dropout=config.condition_dropout,
                save_steps=config.save_steps,
                seed=config.seed,
                resume=config.resume,
                reporter=reporter,
                sampler=sampler,
            )
        else:
            from musicgen_ops.pipeline.training.hf import train_with_hf_trainer

            raw = train_with_hf_trainer(
                self.peft_model, train_dataset, val_dataset, self.collator(), config, reporter, sampler
            )
        self.peft_model.eval()
        device = next(self.peft_model.parameters()).device
        result = _summarise(raw, config, base_val_loss, context.world_size)
        result.samples = sampler.published() if sampler else []
        if has_val:
            result.val_loss = self._evaluate(val_dataset, config, device)
            logger.info("fine-tuned validation loss: %.4f (base %.4f)", result.val_loss, base_val_loss)
        if context.is_main:  # rank 0 alone writes
            result.loss_curve = plot_loss_curve(
                result.history, config.output_dir / "loss_curve.png", baseline=base_val_loss
            )
        self.last_result = result
        return result

    def _evaluate(self, dataset: Any, config: TrainConfig, device: torch.device) -> float | None:
        return evaluate_loss(self.peft_model, dataset, self.collator(), config.batch_size, device)

    def save_model(self, path: str | Path, merge: bool = False, extra_metadata: dict | None = None) -> Path:
        """Write the adapter, the processor and ``training_metadata.json`` (``merged/`` full weights too
        when ``merge``), atomically: into a temporary folder, then renamed to ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            self.peft_model.save_pretrained(staging)
            self.processor.save_pretrained(staging)
            if merge:
                merged = copy.deepcopy(self.peft_model).merge_and_unload()
                merged.save_pretrained(staging / "merged")
                self.processor.save_pretrained(staging / "merged")
            (staging / METADATA_NAME).write_text(json.dumps(self.metadata(extra_metadata), indent=2) + "\n")
            make_public(staging)
            if path.exists():
                shutil.rmtree(path)
            staging.rename(path)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return path

    def metadata(self, extra: dict | None = None) -> dict[str, Any]:
        """What a trained model was made from (read back by export and serving)."""
        import peft
        import transformers

        from musicgen_ops import __version__

        result = self.last_result
        return {
            "base_model": self.base_model_name,
            "lora": self.lora_settings,
            "trainable_parameters": self.trainable_parameters,
            "total_parameters": self.total_parameters,
            "dataset_manifest_sha256": self._dataset_hash,
            "split": self.split,
            "training": result.to_dict() if result else None,
            "versions": {
                "musicgen_ops": __version__,
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "peft": peft.__version__,
            },
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        } | (extra or {})


def training_device(device: str) -> torch.device:
    """``auto`` -> CUDA when there is a GPU, else the CPU."""
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def describe_batch(config: TrainConfig, world_size: int) -> str:
    """How the effective batch is made up (the starting progress event's message)."""
    total = effective_batch_size(config.batch_size, config.grad_accum, world_size)
    return (
        f"effective batch {total} = {config.batch_size} per device x {world_size} process(es) "
        f"x {config.grad_accum} accumulation step(s)"
    )


def _summarise(
    raw: dict[str, Any], config: TrainConfig, base_val_loss: float | None, world_size: int = 1
) -> TrainingResult:
    history = raw["history"]
    per_epoch: dict[int, list[float]] = {}
    for entry in history:
        if "loss" in entry and is_finite(entry["loss"]):
            epoch = max(0, int(-(-float(entry.get("epoch", 1)) // 1)) - 1)  # ceil(epoch) - 1
            per_epoch.setdefault(epoch, []).append(float(entry["loss"]))
    losses = [sum(v) / len(v) for _, v in sorted(per_epoch.items())]
    train_losses = [float(e["loss"]) for e in history if "loss" in e]
    return TrainingResult(
        train_loss_per_epoch=losses,
        final_train_loss=train_losses[-1] if train_losses else None,
        val_loss=raw.get("final_val_loss"),
        base_val_loss=base_val_loss,
        steps=raw["steps"],
        samples_per_second=raw.get("samples_per_second"),
        wall_seconds=raw["wall_seconds"],
        output_dir=config.output_dir,
        resumed_from=raw.get("resumed_from"),
        world_size=world_size,
        effective_batch_size=effective_batch_size(config.batch_size, config.grad_accum, world_size),
        history=history,
    )


def _ensure_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise TrainingError(f"cannot write to the output folder {folder}: {err.strerror or err}") from err
