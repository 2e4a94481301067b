"""Generator server settings: one pydantic-settings class read from ``MUSICGEN_SERVE_*`` env vars."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import Self

ENV_PREFIX = "MUSICGEN_SERVE_"


class ServeSettings(BaseSettings):
    """How the generation service loads models, batches requests and writes results.

    Every field can be set with ``MUSICGEN_SERVE_<FIELD>`` (e.g. ``MUSICGEN_SERVE_MAX_BATCH_SIZE=8``);
    ``preload`` takes a comma-separated list.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    host: str = Field("0.0.0.0", description="Address the HTTP server binds to.")
    port: int = Field(8080, ge=1, le=65535, description="Port the HTTP server listens on.")
    default_model: str = Field(
        "facebook/musicgen-small",
        description="Base model used when a request names no trained_model_id (hub id, path, tiny-random).",
    )
    preload: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Model ids/paths loaded (and warmed up) at start; /readyz is 503 until they are.",
    )
    warmup: bool = Field(True, description="Generate a short clip with each preloaded model before ready.")
    models_root: Path = Field(
        Path("/models"), description="Local models folder: a model id resolves to <models_root>/<model-id>/."
    )
    models_uri: str | None = Field(
        None, description="Artifact root URI (s3://, az://, file://) holding models/<model-id>/ to download."
    )
    cache_dir: Path = Field(
        Path("/tmp/musicgen-cache"), description="Where models downloaded from models_uri are kept."
    )
    allow_local_paths: bool = Field(
        False, description="Accept an absolute local folder as trained_model_id (CLI and tests)."
    )
    engine: Literal["auto", "torch", "fast", "onnx"] = Field(
        "auto", description="Generation backend; auto: the CUDA-graph fast engine on GPU, torch on CPU."
    )
    device: str = Field("cpu", description="cpu, cuda or cuda:N.")
    dtype: Literal["float32", "bfloat16", "float16"] | None = Field(
        None, description="Torch dtype of text encoder and decoder (default float32)."
    )
    max_cached_models: int = Field(2, ge=1, description="Models kept loaded (least recently used evicted).")
    max_cache_bytes: int = Field(
        16 * 1024**3, ge=1, description="Memory budget of the loaded models (parameters + buffers)."
    )
    max_batch_size: int = Field(8, ge=1, description="Requests generated in one batched forward pass.")
    batch_window_ms: float = Field(
        25.0, ge=0, description="How long the first request of a batch waits for others to join."
    )
    max_concurrency: int = Field(1, ge=1, description="Batches running at once on the device.")
    max_queue: int = Field(
        32, ge=1, description="Requests admitted (waiting or running); beyond it the answer is 429 busy."
    )
    window_seconds: float = Field(
        30.0, gt=0, description="Longest audio one generate() call produces; longer tracks are continued."
    )
    context_seconds: float = Field(
        10.0, ge=0, description="Tail of the previous window each continuation window is conditioned on."
    )
    max_duration_seconds: float = Field(300.0, gt=0, description="Longest track a request may ask for.")
    sync_max_seconds: float = Field(
        30.0, ge=0, description="Longer requests get a job id (202) instead of waiting for the audio."
    )
    output_dir: Path = Field(Path("/tmp/musicgen-output"), description="Where results are written.")
    max_jobs: int = Field(1000, ge=1, description="Finished jobs remembered (oldest forgotten first).")
    spectrogram: bool = Field(False, description="Also write a spectrogram PNG beside each result.")

    @model_validator(mode="before")
    @classmethod
    def _split_preload(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("preload"), str):
            data = dict(data)
            data["preload"] = [part.strip() for part in data["preload"].split(",") if part.strip()]
        return data

    @model_validator(mode="after")
    def _check_windows(self) -> Self:
        if self.context_seconds >= self.window_seconds:
            raise ValueError(
                f"context_seconds ({self.context_seconds}) must be shorter than window_seconds "
                f"({self.window_seconds}): each window must add new audio"
            )
        return self
