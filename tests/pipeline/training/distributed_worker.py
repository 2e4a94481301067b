"""One training process of the distributed tests: ``torchrun ... distributed_worker.py CONFIG OUT``.

Trains the tiny model with ``run_training`` from a saved :class:`TrainConfig`, with a progress file of its
own, and saves its own LoRA weights (``OUT/weights-rank<R>.pt``) so the test can compare the ranks.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from musicgen_ops.pipeline.presets import build_random_musicgen
from musicgen_ops.pipeline.progress import JsonLinesProgressWriter
from musicgen_ops.pipeline.training import TrainConfig, run_training


def main(config_path: str, out: str) -> None:
    torch.set_num_threads(1)
    rank = int(os.environ.get("RANK", "0"))
    config = TrainConfig.model_validate_json(Path(config_path).read_text())
    loaded = build_random_musicgen("tiny-random")
    run_training(config, JsonLinesProgressWriter(Path(out) / f"progress-rank{rank}.jsonl"), loaded=loaded)
    lora = {k: v.detach().clone() for k, v in loaded.model.state_dict().items() if "lora_" in k}
    torch.save(lora, Path(out) / f"weights-rank{rank}.pt")


if __name__ == "__main__":
    main(*sys.argv[1:3])
