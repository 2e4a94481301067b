"""LoRA fine-tuning of MusicGen: one configuration, one loss, two training loops (HF Trainer, Lightning)."""

from musicgen_ops.pipeline.training.config import TrainConfig
from musicgen_ops.pipeline.training.run import run_training
from musicgen_ops.pipeline.training.trainer import MusicGenLoRATrainer, TrainingResult

__all__ = ["MusicGenLoRATrainer", "TrainConfig", "TrainingResult", "run_training"]
