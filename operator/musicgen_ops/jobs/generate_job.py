"""`generate-job`: the GenerationRequest Job's container — fetch the model, generate, upload audio + result.

Reads :class:`~musicgen_ops.jobs.settings.GenerateJobSettings` from ``MUSICGEN_JOB_*`` env, downloads
``models/<model_id>/`` (sha256-verified, cached under ``MUSICGEN_JOB_CACHE_DIR``), generates with the
same code path as the generator server, and writes the audio to ``output_uri`` and a result JSON (seed
used, duration, sample rate, timings) to ``result_uri`` — the audio first, so a result always points
at audio that exists.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path

from musicgen_ops.jobs.runtime import run_job
from musicgen_ops.jobs.settings import GenerateJobSettings

logger = logging.getLogger(__name__)

GENERATION_FIELDS = (
    "prompt",
    "duration_seconds",
    "bpm",
    "style",
    "key",
    "scale",
    "temperature",
    "top_k",
    "top_p",
    "guidance_scale",
    "seed",
    "output_format",
)


def models_root(model_uri: str, model_id: str) -> str:
    """``<root>/models/<id>`` -> ``<root>`` (the artifact store's root URI)."""
    suffix = f"/models/{model_id}"
    trimmed = model_uri.rstrip("/")
    if not trimmed.endswith(suffix):
        raise ValueError(f"model URI {model_uri} does not end with {suffix}")
    return trimmed[: -len(suffix)] or "/"


def generate(settings: GenerateJobSettings) -> dict:
    """Run one generation; returns the result written to ``result_uri``."""
    import torch

    from musicgen_ops.pipeline.inference.loader import open_engine
    from musicgen_ops.pipeline.models import set_base_model_resolver
    from musicgen_ops.serving.batch import generate_to_files
    from musicgen_ops.serving.schemas import GenerationParameters
    from musicgen_ops.storage import download_model, open_object
    from musicgen_ops.storage.base_models import resolve_base_model

    # The checkpoint's base model, when mirrored, loads from the node cache instead of the hub.
    set_base_model_resolver(resolve_base_model)
    started = time.perf_counter()
    # The job settings use the CRD's names; GenerationParameters accepts them (bpm, seed) as aliases.
    params = GenerationParameters(**settings.model_dump(include=set(GENERATION_FIELDS)))
    cache = Path(os.environ.get("MUSICGEN_JOB_CACHE_DIR") or tempfile.mkdtemp(prefix="models-"))
    local_model = download_model(models_root(settings.model_uri, settings.model_id), settings.model_id, cache)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    # The fast (CUDA-graph) engine covers one 30 s window; longer tracks need the torch engine's
    # windowed continuation.
    kind = "auto" if settings.duration_seconds <= 30 else "torch"
    engine = open_engine(local_model, kind, device, dtype="bfloat16" if device == "cuda" else None)
    loaded = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="generate-job-") as scratch:
        audio_path = Path(scratch) / f"audio.{settings.output_format}"
        (result,) = generate_to_files(
            [params], engine, scratch, audio_paths=[audio_path], model_id=settings.model_id
        )
        generated = time.perf_counter()
        store, key = open_object(settings.output_uri)
        store.put_file(audio_path, key)
    finished = time.perf_counter()
    payload = {
        "output_uri": settings.output_uri,
        "model_id": settings.model_id,
        "seed": result.seed,
        "duration_seconds": result.duration_seconds,
        "sample_rate": result.sample_rate,
        "num_samples": result.num_samples,
        "conditioning_text": result.conditioning_text,
        "audio_sha256": result.audio_sha256,
        "real_time_factor": round((generated - loaded) / result.duration_seconds, 4),
        "timings": {
            "load_seconds": round(loaded - started, 3),
            "generate_seconds": round(generated - loaded, 3),
            "total_seconds": round(finished - started, 3),
        },
    }
    store, key = open_object(settings.result_uri)
    store.put_bytes(key, json.dumps(payload, indent=2).encode(), content_type="application/json")
    logger.info(
        "wrote %s (%.1f s of audio, seed %d)", settings.output_uri, result.duration_seconds, result.seed
    )
    return payload


def main() -> None:
    """Console script ``generate-job``."""
    run_job("generate-job", lambda: generate(GenerateJobSettings()))


if __name__ == "__main__":
    main()
