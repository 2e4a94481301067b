"""musicgen-melody: a tiny random melody model, melody files, the conditioning inputs, and refusals.

MusicGen-Melody conditions its decoder on text *and* on the chroma of a reference tune: 12 pitch-class
bins per frame (the loudest bin set to 1, the rest 0), projected and prepended to the text encoder's
states. Transformers' own feature extractor needs ``torchaudio``; :class:`ChromaExtractor` computes the
same features with ``torch.stft`` (``pipeline.chroma``), so melody conditioning needs no extra package.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from musicgen_ops.pipeline.chroma import FEATURE_EXTRACTOR_TYPE, ChromaExtractor, MelodyProcessor
from musicgen_ops.pipeline.errors import AudioDecodeError, InvalidParametersError, TrainingError

logger = logging.getLogger(__name__)

#: ``model_type`` of a melody checkpoint's config.json.
MELODY_MODEL_TYPE = "musicgen_melody"
#: The in-code tiny random melody preset (tests, demo).
MELODY_PRESET = "tiny-random-melody"
#: Longest melody used: the model sees at most ``chroma_length`` chroma frames (30 s at 32 kHz).
MAX_MELODY_SECONDS = 30.0


def is_melody_model(model: Any) -> bool:
    """True for a ``MusicgenMelodyForConditionalGeneration`` (or a merged/wrapped one)."""
    config = getattr(model, "config", None)
    return getattr(config, "model_type", None) == MELODY_MODEL_TYPE


def build_random_melody(seed: int = 0) -> Any:
    """A tiny randomly initialised musicgen-melody (same code paths as the real one) and its processor."""
    import torch
    from transformers import (
        MusicgenMelodyConfig,
        MusicgenMelodyDecoderConfig,
        MusicgenMelodyForConditionalGeneration,
    )

    from musicgen_ops.pipeline.models import LoadedModel, set_generation_defaults
    from musicgen_ops.pipeline.presets import build_tiny_tokenizer, random_configs, randomise_codebooks

    base = random_configs("tiny-random")
    fields = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "ffn_dim")
    decoder = MusicgenMelodyDecoderConfig(
        **{name: getattr(base.decoder, name) for name in fields},
        max_position_embeddings=2048,
        num_codebooks=base.decoder.num_codebooks,
        dropout=0.0,
        decoder_start_token_id=2048,
    )
    config = MusicgenMelodyConfig(
        text_encoder=base.text_encoder.to_dict(),
        audio_encoder=base.audio_encoder.to_dict(),
        decoder=decoder.to_dict(),
        num_chroma=12,
        chroma_length=235,
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = MusicgenMelodyForConditionalGeneration(config)
        randomise_codebooks(model)
        with torch.no_grad():  # a visible melody effect even with random weights
            model.audio_enc_to_dec_proj.weight.normal_(std=1.0)
    finally:
        torch.random.set_rng_state(state)
    set_generation_defaults(model)
    model.eval()
    processor = MelodyProcessor(build_tiny_tokenizer(), ChromaExtractor())
    return LoadedModel(model=model, processor=processor, name=MELODY_PRESET)


def load_melody(path: str | Path, sample_rate: int, *, max_seconds: float = MAX_MELODY_SECONDS) -> np.ndarray:
    """Decode a melody file (WAV/MP3/FLAC) to float32 mono at ``sample_rate``, at most ``max_seconds``.

    Raises:
        AudioDecodeError: the file cannot be decoded or holds no samples.
    """
    from musicgen_ops.pipeline.audio import load_audio, resample, to_mono

    path = Path(path).expanduser()
    if not path.is_file():
        raise AudioDecodeError(f"melody {path}: no such file")
    audio, rate = load_audio(path)
    mono = resample(to_mono(audio), rate, sample_rate)
    return np.ascontiguousarray(mono[: int(max_seconds * sample_rate)], dtype=np.float32)


def melody_for_window(melody: np.ndarray, start: int, length: int) -> np.ndarray:
    """The part of a melody under samples ``[start, start + length)`` of a track, looping the melody
    when the track is longer than it (as the model repeats a short chroma)."""
    if len(melody) == 0:
        raise ValueError("empty melody")
    reps = -(-(start + length) // len(melody))
    return np.tile(melody, reps)[start : start + length] if reps > 1 else melody[start : start + length]


def melody_generate_inputs(
    model: Any,
    processor: MelodyProcessor,
    prompts: list[str],
    *,
    melody: list[np.ndarray | None] | None,
    audio_prompt: np.ndarray | None,
    hop_length: int,
) -> tuple[dict[str, Any], int]:
    """``generate()`` keyword arguments of a melody model: tokens, chroma (``input_features``) and, to
    continue audio, its codes as ``decoder_input_ids`` (the melody model takes no ``input_values``).

    Rows without a melody get the model's null chroma. Returns the inputs on the model's device and
    the number of audio-prompt samples they carry.
    """
    import torch

    device = model.device
    inputs = processor(text=prompts, padding=True, return_tensors="pt")
    if melody is not None:
        if len(melody) != len(prompts):
            raise ValueError(f"got {len(melody)} melodies for {len(prompts)} prompts")
        clips = [m if m is not None and len(m) else np.zeros(1, np.float32) for m in melody]
        features = processor.feature_extractor(clips)
        for row, clip in enumerate(melody):
            if clip is None or not len(clip):  # the null condition: chroma bin 0 everywhere
                features[row] = 0.0
                features[row, :, 0] = 1.0
        inputs["input_features"] = features.to(model.audio_enc_to_dec_proj.weight.dtype)
    inputs = {k: v.to(device) for k, v in inputs.items()}
    if audio_prompt is None:
        return inputs, 0
    audio_prompt = np.asarray(audio_prompt, dtype=np.float32)
    if audio_prompt.ndim != 2 or audio_prompt.shape[0] != len(prompts):
        raise ValueError(
            f"audio_prompt must be [batch={len(prompts)}, samples], got shape {audio_prompt.shape}"
        )
    usable = audio_prompt.shape[1] // hop_length * hop_length
    if usable == 0:
        raise ValueError(f"audio_prompt is shorter than one codec frame ({hop_length} samples)")
    values = torch.from_numpy(np.ascontiguousarray(audio_prompt[:, -usable:]))[:, None].to(device)
    with torch.inference_mode():
        codes = model.audio_encoder.encode(values).audio_codes  # [1, batch, codebooks, frames]
    batch, codebooks, frames = codes.shape[1:]
    inputs["decoder_input_ids"] = codes[0].reshape(batch * codebooks, frames)
    return inputs, usable


def local_melody_path(uri: str) -> Path:
    """A ``melody_uri`` that names a local file: a path or ``file://`` URI (others need the storage layer)."""
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://"))
    if "://" in uri:
        raise InvalidParametersError(
            f"melody_uri: {uri} is a remote URI; here only a local file or file:// URI is read "
            "(generate-job and the generator server fetch s3:// and az:// melodies)"
        )
    return Path(uri)


def read_melody(
    uri: str | None, sample_rate: int, fetch: Callable[[str], Path] | None = None
) -> np.ndarray | None:
    """The melody of a request (``melody_uri``), decoded; None without one.

    Args:
        uri: the request's ``melody_uri``.
        sample_rate: the model's sample rate.
        fetch: maps the URI to a local file (e.g. a storage download); default :func:`local_melody_path`.

    Raises:
        InvalidParametersError: the file is missing or not decodable audio (naming ``melody_uri``).
    """
    if uri is None:
        return None
    path = fetch(uri) if fetch is not None else local_melody_path(uri)
    try:
        return load_melody(path, sample_rate)
    except AudioDecodeError as err:
        raise InvalidParametersError(f"melody_uri: {err}") from err


def decode_melody_bytes(data: bytes, sample_rate: int, *, field: str = "melody_base64") -> np.ndarray:
    """A melody sent inline (WAV/FLAC/OGG/MP3 bytes), decoded to mono at ``sample_rate``.

    Raises:
        InvalidParametersError: the bytes are not decodable audio (naming ``field``).
    """
    from musicgen_ops.pipeline.audio import decode_audio_bytes, resample, to_mono

    audio, rate = decode_audio_bytes(data, field)
    mono = resample(to_mono(audio), rate, sample_rate)
    return np.ascontiguousarray(mono[: int(MAX_MELODY_SECONDS * sample_rate)], dtype=np.float32)


def require_melody_support(engine: Any, model_id: str, wanted: bool, *, field: str = "melody_uri") -> None:
    """Refuse, before any work, a melody for an engine that cannot condition on one.

    Raises:
        InvalidParametersError: a melody is ``wanted`` and the model is not musicgen-melody (or its
            engine does not take melodies).
    """
    if not wanted or getattr(engine, "supports_melody", False):
        return
    family = getattr(engine, "family", None)
    what = f"a {family} model" if family else f"served by {type(engine).__name__}, which takes no melody"
    raise InvalidParametersError(
        f"{field}: model {model_id} is {what}; melody conditioning needs a musicgen-melody model "
        "(e.g. facebook/musicgen-melody) on the torch engine"
    )


def refuse_melody_training(loaded: Any) -> None:
    """LoRA training takes text-conditioned MusicGen bases only: refuse a melody base up front.

    Raises:
        TrainingError: the base model is musicgen-melody.
    """
    if is_melody_model(loaded.model):
        raise TrainingError(
            f"base model {loaded.name} is a musicgen-melody model: LoRA training supports musicgen "
            "(text-conditioned) bases only (facebook/musicgen-small, -medium, -large); generate with the "
            "melody model directly instead"
        )


def melody_checkpoint_error(folder: Path) -> str | None:
    """Why ``folder`` (a saved model or checkpoint) cannot be exported, when it holds a melody model."""
    for name, key, value in (
        ("config.json", "model_type", MELODY_MODEL_TYPE),
        ("preprocessor_config.json", "feature_extractor_type", FEATURE_EXTRACTOR_TYPE),
    ):
        try:
            found = json.loads((folder / name).read_text()).get(key)
        except (OSError, ValueError, AttributeError):
            continue
        if found == value:
            return (
                f"{folder} holds a musicgen-melody model: export (TorchScript/ONNX) supports musicgen "
                "models only; serve it with the torch engine (engine torch or auto)"
            )
    return None
