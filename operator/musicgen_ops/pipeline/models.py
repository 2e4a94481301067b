"""Loading MusicGen: the real checkpoints (hub name or local folder), or an in-code preset (presets.py).

Real users pass ``facebook/musicgen-small`` (or ``-medium``, ``-large``, ``-melody``) or a local folder
holding a ``save_pretrained`` copy. The family comes from the config's ``model_type``: ``musicgen`` loads
``MusicgenForConditionalGeneration``, ``musicgen_melody`` loads ``MusicgenMelodyForConditionalGeneration``
with a chroma processor (``pipeline.melody``); any other type, and any checkpoint whose weights do not
cover the model (weights transformers would "newly initialise"), is refused with a clear message.

"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from musicgen_ops.pipeline.errors import ModelNotAvailableError, UnsupportedModelError

if TYPE_CHECKING:
    from transformers import MusicgenForConditionalGeneration, MusicgenProcessor

logger = logging.getLogger(__name__)

DEFAULT_BASE_MODEL = "facebook/musicgen-small"
SAMPLE_RATE = 32_000
#: Names accepted in place of a hub id / path that build a randomly initialised model in code.
RANDOM_PRESETS = ("tiny-random", "small-random", "tiny-random-melody", "tiny-stereo-random")
#: Model families (config ``model_type``) that load, and what each is called in messages and listings.
FAMILIES = {"musicgen": "musicgen", "musicgen_melody": "musicgen-melody"}
#: Presets shaped like the stereo checkpoints (``decoder.audio_channels == 2``).
STEREO_PRESETS = ("tiny-stereo-random",)

#: Maps a base model reference to what is loaded (a mirrored ``s3://`` URI -> a cached local folder);
#: the jobs and the generator install ``storage.base_models``' resolver, which the pipeline may not import.
_reference_resolver: Callable[[str], str] | None = None


@dataclass(frozen=True)
class LoadedModel:
    """A MusicGen model, its processor and the name it was loaded from."""

    model: MusicgenForConditionalGeneration
    processor: MusicgenProcessor
    name: str

    @property
    def sample_rate(self) -> int:
        """Audio sample rate of the codec (32 kHz for every MusicGen checkpoint)."""
        return int(self.model.config.audio_encoder.sampling_rate)

    @property
    def frame_rate(self) -> int:
        """Codec frames (decoder steps) per second of audio (50 for MusicGen)."""
        return int(self.model.config.audio_encoder.frame_rate)

    @property
    def num_codebooks(self) -> int:
        """Number of parallel EnCodec codebooks the decoder predicts."""
        return int(self.model.config.decoder.num_codebooks)

    @property
    def family(self) -> str:
        """``musicgen`` (text conditioning) or ``musicgen-melody`` (text + melody chroma)."""
        return model_family(self.model)

    @property
    def audio_channels(self) -> int:
        """Channels of the generated audio: 1, or 2 for the stereo checkpoints (interleaved codebooks)."""
        return audio_channels_of(self.model)


def audio_channels_of(model) -> int:
    """1 for mono MusicGen, 2 for stereo (``decoder.audio_channels``); anything else is refused."""
    channels = int(getattr(model.config.decoder, "audio_channels", 1))
    codebooks = int(model.config.decoder.num_codebooks)
    if channels not in (1, 2) or codebooks % channels:
        raise ModelNotAvailableError(
            f"unsupported MusicGen: decoder.audio_channels={channels} with {codebooks} codebooks "
            "(mono, or stereo with an even number of codebooks, are supported)"
        )
    return channels


def set_generation_defaults(model: MusicgenForConditionalGeneration) -> None:
    """The generation settings musicgen-small ships with (sampling, top-k 250, guidance 3, 30 s)."""
    _ensure_decoder_start_token(model)
    gen = model.generation_config
    gen.decoder_start_token_id = model.config.decoder.bos_token_id
    gen.bos_token_id = model.config.decoder.bos_token_id
    gen.pad_token_id = model.config.decoder.pad_token_id
    gen.do_sample = True
    gen.top_k = 250
    gen.guidance_scale = 3.0
    gen.max_length = 1500


def _ensure_decoder_start_token(model: MusicgenForConditionalGeneration) -> None:
    """Training with ``labels`` shifts them right with the decoder's start token; some configs lack it."""
    decoder = model.config.decoder
    if getattr(decoder, "decoder_start_token_id", None) is None:
        decoder.decoder_start_token_id = decoder.bos_token_id


def set_base_model_resolver(resolver: Callable[[str], str] | None) -> None:
    """Install the function ``load_base_model`` first maps each reference through (None removes it)."""
    global _reference_resolver
    _reference_resolver = resolver


def load_base_model(
    name_or_path: str = DEFAULT_BASE_MODEL, *, local_files_only: bool | None = None
) -> LoadedModel:
    """Load a MusicGen checkpoint and its processor.

    Args:
        name_or_path: a hub id (``facebook/musicgen-small``), a local folder written by ``save_pretrained``,
            or one of the in-code presets ``tiny-random`` / ``small-random``.
        local_files_only: only look in the local Hugging Face cache; defaults to ``HF_HUB_OFFLINE``.

    Raises:
        ModelNotAvailableError: the model is neither a local folder nor in the cache and cannot be
            downloaded; the message says what to do.
    """
    if name_or_path in RANDOM_PRESETS:
        from musicgen_ops.pipeline.presets import build_random_musicgen

        return build_random_musicgen(name_or_path)
    reference = name_or_path
    if _reference_resolver is not None:
        name_or_path = _reference_resolver(reference)
        if name_or_path != reference:
            logger.info("base model %s resolved to %s", reference, name_or_path)

    if local_files_only is None:
        local_files_only = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    path = Path(name_or_path).expanduser()
    is_local = path.exists()
    if is_local and not (path / "config.json").is_file():
        raise ModelNotAvailableError(
            f"{path} exists but holds no config.json: it is not a saved MusicGen model "
            "(expected a folder written by save_pretrained)."
        )
    if not is_local and (name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1):
        raise ModelNotAvailableError(f"model folder {path} does not exist")
    source = str(path) if is_local else name_or_path
    hint = (
        f"Download it where there is internet (`hf download {name_or_path}`) and copy the Hugging Face "
        f"cache ({_hf_cache_dir()}), pass a local model folder, or use the preset 'tiny-random' to try the "
        "pipeline"
    )
    offline = not is_local and not local_files_only and not _in_hf_cache(name_or_path)
    if offline and (unreachable := _hub_unreachable()) is not None:
        raise ModelNotAvailableError(
            f"Cannot load MusicGen model {name_or_path!r}: not in the Hugging Face cache and the hub "
            f"is unreachable ({unreachable}). {hint}."
        )
    try:
        model, processor = _load_pretrained(source, name_or_path, local_files_only)
    except (OSError, ValueError) as err:
        raise ModelNotAvailableError(
            f"Cannot load MusicGen model {name_or_path!r}: it is not a local folder and not in the "
            f"Hugging Face cache, and it could not be downloaded. {hint}. "
            f"Cause: {type(err).__name__}: {_first_line(err)}"
        ) from err
    _ensure_decoder_start_token(model)
    model.eval()
    logger.info("loaded %s (%.1fM parameters)", name_or_path, model.num_parameters() / 1e6)
    return LoadedModel(model=model, processor=processor, name=reference)


def model_family(model: object) -> str:
    """The family of a loaded model (``musicgen`` or ``musicgen-melody``), from its config."""
    model_type = getattr(getattr(model, "config", None), "model_type", "musicgen")
    return FAMILIES.get(str(model_type), str(model_type))


def _load_pretrained(source: str, name: str, local_files_only: bool) -> tuple[object, object]:
    """The model of the checkpoint's family and its processor; refuses unknown families and
    checkpoints that would load with newly initialised weights."""
    from transformers import (
        AutoProcessor,
        MusicgenForConditionalGeneration,
        MusicgenMelodyForConditionalGeneration,
        PretrainedConfig,
    )

    from musicgen_ops.pipeline.melody import MELODY_MODEL_TYPE, MelodyProcessor

    config, _ = PretrainedConfig.get_config_dict(source, local_files_only=local_files_only)
    model_type = config.get("model_type")
    if model_type not in FAMILIES:
        raise UnsupportedModelError(
            f"{name}: config.json has model_type {model_type!r}, which is not a MusicGen family this "
            f"platform loads (supported: {', '.join(FAMILIES)})"
        )
    melody = model_type == MELODY_MODEL_TYPE
    model_class = MusicgenMelodyForConditionalGeneration if melody else MusicgenForConditionalGeneration
    model, info = model_class.from_pretrained(
        source, local_files_only=local_files_only, output_loading_info=True
    )
    refuse_incomplete_weights(name, FAMILIES[model_type], info)
    if melody:
        return model, MelodyProcessor.from_pretrained(source, local_files_only=local_files_only)
    return model, AutoProcessor.from_pretrained(source, local_files_only=local_files_only)


def refuse_incomplete_weights(name: str, family: str, info: dict) -> None:
    """Raise when transformers reports weights missing from (or shaped unlike) the checkpoint: such a
    model would run with randomly initialised layers and make noise without any error."""
    missing = sorted(info.get("missing_keys") or ())
    mismatched = sorted(
        str(key[0] if isinstance(key, tuple) else key) for key in info.get("mismatched_keys") or ()
    )
    if not (missing or mismatched):
        if info.get("unexpected_keys"):
            logger.warning("%s: ignoring %d unexpected weights", name, len(info["unexpected_keys"]))
        return
    bad = missing or mismatched
    what = "missing from" if missing else "shaped differently in"
    raise UnsupportedModelError(
        f"{name}: {len(bad)} weight(s) of the {family} model are {what} the checkpoint (e.g. {bad[0]}); "
        "it would load half-initialised, so it is refused. Is config.json's model_type right for these "
        "weights (a musicgen-melody checkpoint needs model_type musicgen_melody)?"
    )


def base_model_audio_channels(name_or_path: str) -> int:
    """Channels a base model generates (2 for ``facebook/musicgen-stereo-*``), read without loading it:
    from the preset name, the folder's (or cached hub copy's) ``config.json``, else the hub id's name."""
    import json

    if name_or_path in RANDOM_PRESETS:
        return 2 if name_or_path in STEREO_PRESETS else 1
    resolved = _reference_resolver(name_or_path) if _reference_resolver is not None else name_or_path
    config = Path(resolved).expanduser() / "config.json"
    if not config.is_file():
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(resolved, "config.json")
        except ValueError:  # not a repo id
            cached = None
        if not isinstance(cached, str):
            return 2 if "stereo" in name_or_path.lower() else 1
        config = Path(cached)
    try:
        return int(json.loads(config.read_text()).get("decoder", {}).get("audio_channels", 1))
    except (OSError, ValueError, AttributeError):
        return 1


def _in_hf_cache(repo_id: str) -> bool:
    """Whether the hub model's config is already in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except ValueError:  # not a valid repo id
        return False


def _hub_unreachable(timeout: float = 3.0) -> str | None:
    """None when a TCP connection to the hub (``HF_ENDPOINT``) opens within ``timeout``, else why not."""
    import socket
    from urllib.parse import urlsplit

    from huggingface_hub.constants import ENDPOINT

    parts = urlsplit(ENDPOINT)
    host, port = parts.hostname or "huggingface.co", parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        return f"{host}:{port}: {err.strerror or type(err).__name__}"
    return None


def _hf_cache_dir() -> str:
    from huggingface_hub.constants import HF_HUB_CACHE

    return str(HF_HUB_CACHE)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else ""
