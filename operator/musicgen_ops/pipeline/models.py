"""Loading MusicGen: the real checkpoints (hub name or local folder) and a tiny random one built in code.

Real users pass ``facebook/musicgen-small`` (or ``-medium``, ``-large``, ``-melody``) or a local folder
holding a ``save_pretrained`` copy. The family comes from the config's ``model_type``: ``musicgen`` loads
``MusicgenForConditionalGeneration``, ``musicgen_melody`` loads ``MusicgenMelodyForConditionalGeneration``
with a chroma processor (``pipeline.melody``); any other type, and any checkpoint whose weights do not
cover the model (weights transformers would "newly initialise"), is refused with a clear message.

Tests and the demo pass ``tiny-random``: the same architecture family
(T5 text encoder, 32 kHz EnCodec with 4 codebooks of 2048 entries, MusicGen decoder with the delay
pattern), random weights, and a small Unigram tokenizer built locally, so every code path is the one a
real checkpoint takes. ``small-random`` has musicgen-small's exact dimensions (for speed benchmarks).
``tiny-stereo-random`` is the tiny model shaped like ``facebook/musicgen-stereo-*``: 8 codebooks, the
left and right channels' 4 interleaved (left on even rows), each channel coded by the same mono EnCodec.
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

# Words that get their own token in the tiny tokenizer; everything else falls back to characters.
_TINY_VOCAB_WORDS = (
    "a an and the with of in for on to by at from music song track beat beats bpm tempo key major minor "
    "scale style rock pop jazz blues funk soul disco house techno ambient classical piano guitar bass drums "
    "drum synth strings violin cello organ pad lead vocal choir orchestral cinematic lofi hip hop electronic "
    "acoustic electric slow fast upbeat calm happy sad dark bright warm energetic relaxing chill melody "
    "chord chords groove loop riff solo c d e f g b sharp flat tone noise burst sine square saw"
).split()


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


def build_tiny_tokenizer():
    """A T5 (Unigram) tokenizer with a small music vocabulary, built without any download."""
    import string

    from transformers import T5Tokenizer

    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(f"▁{word}", -5.0) for word in _TINY_VOCAB_WORDS]
    pieces += [(char, -10.0) for char in string.ascii_lowercase + string.digits + ",.-#'/:"]
    pieces += [(f"▁{char}", -9.0) for char in string.ascii_lowercase + string.digits]
    seen: set[str] = set()
    unique = [(p, s) for p, s in pieces if not (p in seen or seen.add(p))]
    return T5Tokenizer(vocab=unique, extra_ids=0, model_max_length=512)


def _random_configs(preset: str):
    from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, T5Config

    # EnCodec 32 kHz exactly as in musicgen-small: hop 640 -> 50 Hz, 4 codebooks x 2048 entries.
    codec = dict(
        sampling_rate=SAMPLE_RATE,
        audio_channels=1,
        codebook_size=2048,
        target_bandwidths=[2.2],
        upsampling_ratios=[8, 5, 4, 4],
        use_causal_conv=False,
        use_conv_shortcut=False,
        normalize=False,
    )
    if preset == "tiny-random":
        text = T5Config(
            vocab_size=256,
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            decoder_start_token_id=0,
            pad_token_id=0,
            eos_token_id=1,
        )
        audio = EncodecConfig(hidden_size=16, codebook_dim=16, num_filters=4, num_lstm_layers=1, **codec)
        decoder = MusicgenDecoderConfig(
            vocab_size=2048,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            ffn_dim=64,
            max_position_embeddings=2048,
            num_codebooks=4,
            dropout=0.0,
            decoder_start_token_id=2048,
        )
    elif preset == "small-random":
        text = T5Config(
            vocab_size=32128,
            d_model=768,
            d_kv=64,
            d_ff=3072,
            num_layers=12,
            num_heads=12,
            decoder_start_token_id=0,
            pad_token_id=0,
            eos_token_id=1,
        )
        audio = EncodecConfig(hidden_size=128, codebook_dim=128, num_filters=64, num_lstm_layers=2, **codec)
        decoder = MusicgenDecoderConfig(
            vocab_size=2048,
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            ffn_dim=4096,
            max_position_embeddings=2048,
            num_codebooks=4,
            decoder_start_token_id=2048,
        )
    elif preset in STEREO_PRESETS:
        return _stereo_random_config()
    else:  # pragma: no cover - guarded by the caller
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(RANDOM_PRESETS)}")
    return MusicgenConfig(text_encoder=text, audio_encoder=audio, decoder=decoder)


def _stereo_random_config():
    """``tiny-random`` as a stereo checkpoint: twice the codebooks, ``decoder.audio_channels=2``; the
    codec stays the mono 32 kHz EnCodec (one pass per channel), as in ``facebook/musicgen-stereo-*``."""
    from transformers import MusicgenConfig, MusicgenDecoderConfig

    mono = _random_configs("tiny-random")
    decoder = MusicgenDecoderConfig(
        **{
            **mono.decoder.to_dict(),
            "num_codebooks": 2 * mono.decoder.num_codebooks,
            "audio_channels": 2,
        }
    )
    return MusicgenConfig(text_encoder=mono.text_encoder, audio_encoder=mono.audio_encoder, decoder=decoder)


def build_random_musicgen(preset: str = "tiny-random", seed: int = 0) -> LoadedModel:
    """Build a randomly initialised MusicGen and its processor in code (no download).

    Args:
        preset: ``tiny-random`` (a few hundred thousand parameters, for tests and the demo),
            ``small-random`` (musicgen-small's dimensions, for speed benchmarks) or
            ``tiny-stereo-random`` (the tiny model as a stereo checkpoint: 8 interleaved codebooks).
        seed: torch seed for the random weights; the same seed gives the same model.
    """
    import torch
    from transformers import EncodecFeatureExtractor, MusicgenForConditionalGeneration, MusicgenProcessor

    from musicgen_ops.pipeline.melody import MELODY_PRESET, build_random_melody

    if preset == MELODY_PRESET:
        return build_random_melody(seed)
    if preset not in RANDOM_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(RANDOM_PRESETS)}")
    config = _random_configs(preset)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = MusicgenForConditionalGeneration(config)
        _randomise_codebooks(model)
    finally:
        torch.random.set_rng_state(state)
    _set_generation_defaults(model)
    model.eval()
    tokenizer = build_tiny_tokenizer()  # generation speed does not depend on the vocabulary's contents
    feature_extractor = EncodecFeatureExtractor(
        feature_size=int(config.decoder.audio_channels), sampling_rate=SAMPLE_RATE, padding_value=0.0
    )
    processor = MusicgenProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)
    return LoadedModel(model=model, processor=processor, name=preset)


def _randomise_codebooks(model: MusicgenForConditionalGeneration) -> None:
    """Give the codec's codebooks random entries at the scale of its encoder's output.

    transformers initialises EnCodec codebooks to zeros (real checkpoints load trained ones), which would
    map every sound to code 0; random entries make codes depend on the audio, as with a trained codec.
    """
    import torch

    codec = model.audio_encoder
    with torch.no_grad():
        probe = torch.randn(1, 1, SAMPLE_RATE // 2) * 0.1
        scale = float(codec.encoder(probe).std())
        for layer in codec.quantizer.layers:
            layer.codebook.embed.normal_(std=scale)
            layer.codebook.embed_avg.copy_(layer.codebook.embed)


def _set_generation_defaults(model: MusicgenForConditionalGeneration) -> None:
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
