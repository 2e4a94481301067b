"""Reading and writing MultiBand Diffusion checkpoints in the published layout; random bands for tests.

Layout, as audiocraft's ``load_diffusion_models`` reads ``mbd_musicgen_32khz.th``: ``{"sample_rate": int,
"n_bands": int, 0: {"cfg": <omegaconf config>, "model_state": <DiffusionUnet state dict>, "processor_state":
<processor state dict>}, 1: ...}``. Only ``cfg.channels``, ``cfg.schedule``, ``cfg.diffusion_unet`` and
``cfg.processor`` are read. Files are unpickled with ``weights_only=True`` (tensors, containers and the
OmegaConf classes only), so a checkpoint cannot run code.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from musicgen_ops.pipeline.errors import ModelNotAvailableError
from musicgen_ops.pipeline.inference.decoders.mbd_schedule import (
    IdentityProcessor,
    MultiBandProcessor,
    ScheduleConfig,
)
from musicgen_ops.pipeline.inference.decoders.mbd_unet import DiffusionUnet, UnetConfig, count_parameters

logger = logging.getLogger(__name__)

MBD_HUB_ID = "facebook/multiband-diffusion"
MBD_MUSICGEN_FILENAME = "mbd_musicgen_32khz.th"
#: ``weights`` value that builds random-weight bands in code (tests, demo, benchmarks).
TINY_RANDOM = "tiny-random"
BAND_STATE_KEYS = ("cfg", "model_state", "processor_state")


class MbdWeightsError(ModelNotAvailableError):
    """MBD weights are missing, unreadable or not in the published layout."""


@dataclass
class DiffusionBand:
    """One band's denoiser, its noise schedule and its equaliser."""

    model: DiffusionUnet
    schedule: ScheduleConfig
    processor: nn.Module
    processor_config: dict[str, Any]


def _omegaconf_classes() -> list[Any]:
    """The classes a pickled OmegaConf config needs; allowed through ``torch.load(weights_only=True)``."""
    try:
        import omegaconf
        from omegaconf import nodes
        from omegaconf.base import ContainerMetadata, Metadata
    except ImportError:  # pragma: no cover - omegaconf is in the pipeline extra
        return []
    import typing
    from collections import defaultdict

    node_classes = [getattr(nodes, name) for name in dir(nodes) if name.endswith("Node")]
    classes = [
        omegaconf.DictConfig,
        omegaconf.ListConfig,
        ContainerMetadata,
        Metadata,
        typing.Any,
        defaultdict,
        dict,
        list,
        tuple,
    ]
    return classes + [c for c in node_classes if isinstance(c, type)]


def resolve_mbd_file(
    weights: str | Path = MBD_HUB_ID,
    filename: str = MBD_MUSICGEN_FILENAME,
    local_files_only: bool | None = None,
) -> Path:
    """The checkpoint file for ``weights``: a file, a folder holding ``filename``, or a hub id."""
    path = Path(weights).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        candidate = path / filename
        if not candidate.is_file():
            raise MbdWeightsError(f"error: {path} holds no {filename} (the MultiBand Diffusion checkpoint)")
        return candidate
    if local_files_only is None:
        local_files_only = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(str(weights), filename, local_files_only=local_files_only))
    except Exception as err:  # hub errors are many (offline, gated, not found); one message for all
        raise MbdWeightsError(
            f"MultiBand Diffusion weights {str(weights)!r} are not available: not a local file or "
            f"folder, and {filename} could not be read from the hub cache or downloaded "
            f"({type(err).__name__}). "
            f"Download it where there is internet (`hf download {MBD_HUB_ID} {filename}`) and "
            "pass the file or its folder, or use the default decoder 'encodec'."
        ) from err


def load_mbd_checkpoint(
    weights: str | Path = MBD_HUB_ID,
    *,
    filename: str = MBD_MUSICGEN_FILENAME,
    local_files_only: bool | None = None,
) -> tuple[dict, str]:
    """Read an MBD checkpoint (tensors and OmegaConf configs only: ``weights_only`` unpickling)."""
    path = resolve_mbd_file(weights, filename, local_files_only)
    try:
        with torch.serialization.safe_globals(_omegaconf_classes()):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise MbdWeightsError(
            f"error: {path}: not a readable MBD checkpoint ({type(err).__name__}: {err})"
        ) from err
    if not isinstance(checkpoint, dict):
        raise MbdWeightsError(f"error: {path}: expected a dict checkpoint, got {type(checkpoint).__name__}")
    return checkpoint, str(path)


#: The parts of a band's training config that decoding needs.
CONFIG_SECTIONS = ("channels", "schedule", "diffusion_unet", "processor")


def _config_dict(value: Any, where: str) -> dict[str, Any]:
    """The decoding sections of a band's config as plain values.

    Only these sections are resolved: the rest of a training config may hold interpolations (paths,
    hydra resolvers) that cannot be resolved outside the training run.
    """
    if isinstance(value, dict):
        return {key: value[key] for key in CONFIG_SECTIONS if key in value}
    try:
        from omegaconf import OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is in the pipeline extra
        OmegaConf = None  # noqa: N806
    if OmegaConf is not None and OmegaConf.is_config(value):
        sections = {}
        for key in CONFIG_SECTIONS:
            if key in value:
                item = value[key]
                sections[key] = (
                    OmegaConf.to_container(item, resolve=True) if OmegaConf.is_config(item) else item
                )
        return sections
    raise MbdWeightsError(f"error: {where} is not a mapping ({type(value).__name__})")


def bands_from_checkpoint(
    checkpoint: dict, where: str, expected_sample_rate: int | None = None
) -> list[DiffusionBand]:
    """Build the bands of a checkpoint in the published layout; every missing or extra key is an error."""
    for key in ("sample_rate", "n_bands"):
        if key not in checkpoint:
            raise MbdWeightsError(f"error: {where}: missing key {key!r} (not an MBD checkpoint)")
    sample_rate, n_bands = int(checkpoint["sample_rate"]), int(checkpoint["n_bands"])
    if expected_sample_rate is not None and sample_rate != expected_sample_rate:
        raise MbdWeightsError(
            f"error: {where}: sample_rate is {sample_rate} Hz but the model's codec runs at "
            f"{expected_sample_rate} Hz"
        )
    bands = []
    for index in range(n_bands):
        entry = checkpoint.get(index)
        missing = [key for key in BAND_STATE_KEYS if not isinstance(entry, dict) or key not in entry]
        if missing:
            raise MbdWeightsError(f"error: {where}: band {index} lacks {', '.join(missing)}")
        cfg = _config_dict(entry["cfg"], f"{where}: band {index} cfg")
        try:
            bands.append(_build_band(cfg, sample_rate, entry["model_state"], entry["processor_state"]))
        except (KeyError, ValueError, TypeError, RuntimeError) as err:
            raise MbdWeightsError(f"error: {where}: band {index}: {err}") from err
    logger.info(
        "loaded MBD %s: %d bands, %.1fM parameters",
        where,
        n_bands,
        sum(count_parameters(b.model) for b in bands) / 1e6,
    )
    return bands


def _build_band(cfg: dict, sample_rate: int, model_state: dict, processor_state: dict) -> DiffusionBand:
    for key in CONFIG_SECTIONS:
        if key not in cfg:
            raise KeyError(f"cfg lacks {key!r}")
    schedule = ScheduleConfig.from_dict(cfg["schedule"], "cfg.schedule")
    unet = UnetConfig.from_dict(cfg["diffusion_unet"], "cfg.diffusion_unet")
    model = DiffusionUnet(int(cfg["channels"]), schedule.num_steps, unet)
    model.load_published_state(model_state)
    processor_config = dict(cfg["processor"])
    processor = _processor(processor_config, sample_rate)
    result = processor.load_state_dict(processor_state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise KeyError(f"processor_state: missing {result.missing_keys}, unexpected {result.unexpected_keys}")
    return DiffusionBand(model.eval(), schedule, processor, processor_config)


def _processor(config: dict, sample_rate: int) -> nn.Module:
    if not config.get("use", False):
        return IdentityProcessor()
    if config.get("name") != "multi_band_processor":
        raise ValueError(f"cfg.processor.name: unknown processor {config.get('name')!r}")
    return MultiBandProcessor(
        sample_rate, n_bands=int(config.get("n_bands", 8)), power_std=config.get("power_std", 1.0)
    )


#: The published schedule (audiocraft ``config/solver/diffusion/default.yaml``) and per-band equaliser
#: settings (``grids/diffusion/4_bands_base_32khz.py``: bands 2 and 3 use the processor).
PUBLISHED_SCHEDULE = dict(
    repartition="power", variable_step_batch=True, beta_t0=1.0e-5, beta_t1=2.9e-2, beta_exp=7.5,
    num_steps=1000, variance="beta", clip=5.0, rescale=1.0, n_bands=None, noise_scale=1.0,
)  # fmt: skip
PUBLISHED_PROCESSORS = tuple(
    dict(name="multi_band_processor", use=use, n_bands=8, num_samples=10_000, power_std=power)
    for use, power in ((False, 0.4), (False, 0.4), (True, 0.4), (True, 0.75))
)
#: Four stride-4 levels like the published shape (bottleneck at 125 Hz); ~0.8M weights per band, most in
#: the transformer's feed-forward (2048 wide, fixed by audiocraft).
TINY_UNET = UnetConfig(hidden=4, depth=4, growth=2.0, kernel=8, stride=4, transformer=True)


def build_random_bands(
    codec_dim: int, sample_rate: int = 32_000, seed: int = 0, unet: UnetConfig = TINY_UNET
) -> list[DiffusionBand]:
    """Four random-weight bands with the published schedule and equaliser settings (no download).

    Equaliser statistics are drawn too, so the processor's scaling is exercised as with trained weights.
    """
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        cfg_unet = {**asdict(unet), "codec_dim": codec_dim}
        bands = []
        for processor_config in PUBLISHED_PROCESSORS:
            schedule = ScheduleConfig.from_dict(PUBLISHED_SCHEDULE)
            model = DiffusionUnet(1, schedule.num_steps, UnetConfig.from_dict(cfg_unet)).eval()
            processor = _processor(processor_config, sample_rate)
            if isinstance(processor, MultiBandProcessor):
                n = processor.n_bands
                processor.counts.fill_(1.0)
                processor.sum_x.normal_(std=1e-3)
                processor.sum_x2.copy_(processor.sum_x**2 + torch.rand(n) * 1e-2 + 1e-3)
                processor.sum_target_x2.copy_(torch.rand(n) * 0.2 + 0.05)
            bands.append(DiffusionBand(model, schedule, processor, dict(processor_config)))
        return bands
    finally:
        torch.random.set_rng_state(state)


def save_mbd_checkpoint(path: str | Path, bands: Sequence[DiffusionBand], sample_rate: int) -> Path:
    """Write ``bands`` in the published layout (configs as OmegaConf objects, as audiocraft saves them)."""
    from omegaconf import OmegaConf

    checkpoint: dict[Any, Any] = {"sample_rate": int(sample_rate), "n_bands": len(bands)}
    for index, band in enumerate(bands):
        cfg = {
            "channels": band.model.encoders[0].conv.in_channels,
            "schedule": {**PUBLISHED_SCHEDULE, **asdict(band.schedule)},
            "diffusion_unet": asdict(band.model.config),
            "processor": band.processor_config,
        }
        checkpoint[index] = {
            "cfg": OmegaConf.create(cfg),
            "model_state": band.model.state_dict(),
            "processor_state": band.processor.state_dict(),
        }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    return path
