"""Generations of the local backend: the pipeline's ``generate_to_files`` in one worker thread.

A fine-tuned model is read from the artifact store (sha256-verified into a cache); a base model by its
hub id, folder or preset. The last engine stays loaded, so a second clip with the same model is fast.
"""

from __future__ import annotations

import logging
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from musicgen_ops.contracts.generation import GenerationParameters
from musicgen_ops.studio.backend import StudioError
from musicgen_ops.studio.generation_inputs import input_fetcher, inputs_store
from musicgen_ops.studio.local.state import StudioState
from musicgen_ops.studio.settings import StudioSettings

logger = logging.getLogger(__name__)

#: ``model_ref`` prefix of a published model (downloaded from the artifact store when generating).
ARTIFACT_REF = "artifact:"


class DecoderNotAvailableError(StudioError):
    """The requested audio decoder's weights cannot be found or read (MBD without --mbd-weights)."""

    status_code = 503


class GenerationWorker:
    """Runs queued generations one after another, off the event loop."""

    def __init__(self, settings: StudioSettings, state: StudioState) -> None:
        self.settings = settings
        self.state = state
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="studio-generate")
        self._engine: tuple[str, Any] | None = None
        self._lock = threading.Lock()
        self._mbd_file: str | None = None  # the resolved checkpoint, once found

    def output_dir(self, generation_id: str) -> Path:
        """Where a generation's audio, sidecar and spectrogram go."""
        return self.settings.root / "generations" / generation_id

    def submit(self, generation_id: str) -> None:
        """Queue one generation row for the worker."""
        self._executor.submit(self._run, generation_id)

    def warm_up(self) -> None:
        """Import the generation stack in the worker now, so the first clip does not wait for it."""

        def load_modules() -> None:
            import musicgen_ops.pipeline.generation.batch
            import musicgen_ops.pipeline.inference.loader  # noqa: F401

        self._executor.submit(load_modules)

    def recover(self) -> None:
        """After a restart: generations that were queued or running are run (again)."""
        for row in reversed(self.state.select("generations", "state IN ('queued', 'running')")):
            self.state.update("generations", row["id"], state="queued")
            self.submit(row["id"])

    def close(self) -> None:
        """Finish the running generation, drop the queue."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def decoder_options(self, decoder: str) -> dict[str, Any] | None:
        """Options of ``decoder`` for ``open_engine``: MBD's checkpoint file (``--mbd-weights``, found once,
        before any model is loaded) and its steps; None for encodec.

        Raises:
            DecoderNotAvailableError: the MBD weights cannot be found (a 503 naming ``--mbd-weights``).
        """
        if decoder != "mbd":
            return None
        if self._mbd_file is None:
            from musicgen_ops.pipeline.inference.decoders.mbd_checkpoint import TINY_RANDOM, resolve_mbd_file
            from musicgen_ops.storage.base_models import resolve_base_model

            weights = self.settings.mbd_weights
            try:
                resolved = resolve_base_model(weights)
                self._mbd_file = resolved if resolved == TINY_RANDOM else str(resolve_mbd_file(resolved))
            except Exception as err:  # missing file, hub or storage errors: one answer naming the option
                reason = str(err).removeprefix("error: ")
                raise DecoderNotAvailableError(
                    f"error: decoder 'mbd' is not available in this studio: its weights "
                    f"(--mbd-weights {weights}) could not be loaded: {reason}; use decoder 'encodec' or "
                    "restart the studio with --mbd-weights <checkpoint file or folder>"
                ) from err
        return {"weights": self._mbd_file, "sampling_steps": self.settings.mbd_sampling_steps}

    def _engine_for(self, model_ref: str, decoder: str = "encodec") -> Any:
        """The engine of ``model_ref`` decoding with ``decoder``; a published model is re-read when its
        manifest changed."""
        from musicgen_ops.pipeline.inference.loader import open_engine
        from musicgen_ops.storage import download_model

        source: str | Path = model_ref
        if model_ref.startswith(ARTIFACT_REF):  # a cache hit reads only the manifest
            cache = self.settings.root / ".cache" / "models"
            source = download_model(self.settings.artifacts_uri, model_ref.removeprefix(ARTIFACT_REF), cache)
        key = f"{source}#{decoder}"
        if self._engine is not None and self._engine[0] == key:
            return self._engine[1]
        options = self.decoder_options(decoder)  # missing MBD weights: fail before freeing the old model
        self._engine = None  # free the old model before loading the next
        engine = open_engine(
            source, "auto", self.settings.device, dtype="auto", decoder=decoder, decoder_options=options
        )
        self._engine = (key, engine)
        return self._engine[1]

    def _run(self, generation_id: str) -> None:
        from musicgen_ops.pipeline.generation.batch import generate_to_files

        row = self.state.get("generations", generation_id)
        if row is None or row["state"] not in ("queued", "running"):
            return
        self.state.update("generations", generation_id, state="running")
        params = GenerationParameters.model_validate_json(row["parameters"])
        folder = self.output_dir(generation_id)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            with self._lock:
                engine = self._engine_for(row["model_ref"], params.decoder or "encodec")
                fetch = input_fetcher(inputs_store(self.settings.artifacts_uri), folder / "inputs")
                (result,) = generate_to_files(
                    [params],
                    engine,
                    folder,
                    audio_paths=[folder / f"audio.{params.output_format}"],
                    spectrogram=True,
                    model_id=row["model"],
                    fetch_melody=fetch,
                    fetch_audio_prompt=fetch,
                )
        except Exception as err:  # the user sees why in the generation's error
            logger.exception("generation %s failed", generation_id)
            self.state.update(
                "generations", generation_id, state="failed", error=f"{type(err).__name__}: {err}"
            )
            return
        self.state.update(
            "generations", generation_id, state="completed", result=result.model_dump(mode="json")
        )
        if self.state.get("generations", generation_id) is None:  # deleted while it was being made
            shutil.rmtree(folder, ignore_errors=True)
