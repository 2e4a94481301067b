"""`generate-job`: the GenerationRequest Job's container — fetch the model, generate, upload audio + result.

Reads :class:`~musicgen_ops.contracts.environment.GenerateJobEnvironment` from ``MUSICGEN_JOB_*``
env, downloads ``models/<model_id>/`` (sha256-verified, cached under ``cache_dir``), generates with
the pipeline's generation path (the CLI's and the server's), and writes the audio to ``output_uri``
and a :class:`~musicgen_ops.contracts.generation.GenerationJobResult` to ``result_uri`` — the audio
first, so a result always points at audio that exists.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from pathlib import Path

from musicgen_ops.contracts.environment import GenerateJobEnvironment
from musicgen_ops.contracts.generation import GenerationJobResult, Timings
from musicgen_ops.jobs.runtime import run_job

logger = logging.getLogger(__name__)


def models_root(model_uri: str, model_id: str) -> str:
    """``<root>/models/<id>`` -> ``<root>`` (the artifact store's root URI)."""
    suffix = f"/models/{model_id}"
    trimmed = model_uri.rstrip("/")
    if not trimmed.endswith(suffix):
        raise ValueError(f"model URI {model_uri} does not end with {suffix}")
    return trimmed[: -len(suffix)] or "/"


def fetch_melody(uri: str, folder: Path) -> Path:
    """Download a request's ``melody_uri`` (s3://, az://, file://) into ``folder``; the local file."""
    from musicgen_ops.storage import open_object

    store, key = open_object(uri)
    return Path(store.get_file(key, folder / f"melody{Path(key).suffix.lower()}"))


def fetch_audio_prompt(uri: str, folder: Path) -> Path:
    """Download a request's ``audio_prompt_uri`` (s3://, az://, file://, a path) into ``folder``.

    Raises:
        InvalidParametersError: no object at the URI (a user error: the Job fails at once).
    """
    from musicgen_ops.pipeline.errors import InvalidParametersError
    from musicgen_ops.storage import open_object
    from musicgen_ops.storage.base import NotFoundError

    store, key = open_object(uri)
    try:
        name = f"audio-prompt-{hashlib.sha256(uri.encode()).hexdigest()[:12]}{Path(key).suffix.lower()}"
        return Path(store.get_file(key, folder / name))
    except NotFoundError as err:
        line = f"audio_prompt_uri: {uri}: no such object"
        raise InvalidParametersError(line, fields=[line]) from err


def mbd_options(settings: GenerateJobEnvironment) -> dict[str, object]:
    """MultiBand Diffusion's checkpoint file (``mbd_weights`` resolved like a base model) and steps.

    Raises:
        MbdWeightsError: the weights cannot be found or read (the message names the setting).
    """
    from musicgen_ops.pipeline.inference.decoders.mbd_checkpoint import (
        TINY_RANDOM,
        MbdWeightsError,
        resolve_mbd_file,
    )
    from musicgen_ops.storage.base import StorageError
    from musicgen_ops.storage.base_models import resolve_base_model

    try:
        weights = resolve_base_model(settings.mbd_weights)
        weights = weights if weights == TINY_RANDOM else str(resolve_mbd_file(weights))
    except (MbdWeightsError, StorageError) as err:
        where = GenerateJobEnvironment.variable_names()["mbd_weights"]
        reason = str(err).removeprefix("error: ")
        raise MbdWeightsError(
            f"decoder mbd is not available ({where}={settings.mbd_weights}): {reason}"
        ) from err
    return {"weights": weights, "sampling_steps": settings.mbd_sampling_steps}


def generate(settings: GenerateJobEnvironment) -> GenerationJobResult:
    """Run one generation; returns the result written to ``result_uri``."""
    from musicgen_ops.pipeline.generation.batch import generate_to_files
    from musicgen_ops.pipeline.inference.loader import open_engine, resolve_device
    from musicgen_ops.pipeline.models import set_base_model_resolver
    from musicgen_ops.storage import download_model, open_object
    from musicgen_ops.storage.base_models import resolve_base_model

    # The checkpoint's base model, when mirrored, loads from the node cache instead of the hub.
    set_base_model_resolver(resolve_base_model)
    started = time.perf_counter()
    params = settings.parameters
    model_id: str = settings.base_model if settings.use_base_model else settings.model_id
    decoder = params.decoder or "encodec"
    options = mbd_options(settings) if decoder == "mbd" else None  # before any download: fail fast
    if settings.use_base_model:  # the B of an A/B: the adapter's base model alone
        local_model: str | Path = settings.base_model
    else:
        cache = settings.cache_dir or Path(tempfile.mkdtemp(prefix="models-"))
        local_model = download_model(
            models_root(settings.model_uri, settings.model_id), settings.model_id, cache
        )
    device = resolve_device(settings.device)
    # Every engine continues codes past its window: auto (the fast engine on GPU) serves 300 s too.
    engine = open_engine(local_model, "auto", device, dtype="auto", decoder=decoder, decoder_options=options)
    loaded = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="generate-job-") as scratch:
        audio_path = Path(scratch) / f"audio.{params.output_format}"
        (track,) = generate_to_files(
            [params],
            engine,
            scratch,
            audio_paths=[audio_path],
            model_id=model_id,
            fetch_melody=lambda uri: fetch_melody(uri, Path(scratch)),
            fetch_audio_prompt=lambda uri: fetch_audio_prompt(uri, Path(scratch)),
        )
        generated = time.perf_counter()
        store, key = open_object(settings.output_uri)
        store.put_file(audio_path, key)
    finished = time.perf_counter()
    result = GenerationJobResult(
        output_uri=settings.output_uri,
        model_id=model_id,
        seed=track.seed,
        duration_seconds=track.duration_seconds,
        sample_rate=track.sample_rate,
        num_samples=track.num_samples,
        conditioning_text=track.conditioning_text,
        audio_sha256=track.audio_sha256,
        channels=track.channels,
        real_time_factor=round((generated - loaded) / track.duration_seconds, 4),
        timings=Timings(
            load_seconds=round(loaded - started, 3),
            generate_seconds=round(generated - loaded, 3),
            total_seconds=round(finished - started, 3),
        ),
    )
    store, key = open_object(settings.result_uri)
    store.put_bytes(key, result.model_dump_json(indent=2).encode(), content_type="application/json")
    logger.info(
        "wrote %s (%.1f s of audio, seed %d)", settings.output_uri, track.duration_seconds, track.seed
    )
    return result


def main() -> None:
    """Console script ``generate-job``."""
    run_job("generate-job", lambda: generate(GenerateJobEnvironment.from_environ()))


if __name__ == "__main__":
    main()
