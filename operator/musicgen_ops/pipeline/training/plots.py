"""The loss curve people look at after training."""

from __future__ import annotations

from pathlib import Path


def plot_loss_curve(
    history: list[dict],
    path: Path,
    title: str = "MusicGen LoRA fine-tuning",
    baseline: float | None = None,
) -> Path | None:
    """Plot training (``loss``) and validation (``eval_loss``) loss over optimizer steps to a PNG, with the
    base model's validation loss (``baseline``) as a horizontal line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    val = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h and "step" in h]
    if not train:
        return None
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot(*zip(*train, strict=True), label="train", linewidth=1.5)
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="validation", linewidth=1.5)
    if baseline is not None:
        ax.axhline(
            baseline, color="grey", linestyle="--", linewidth=1.2, label=f"base model (val) {baseline:.3f}"
        )
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (mean over codebooks)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
