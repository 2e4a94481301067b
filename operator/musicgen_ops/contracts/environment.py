"""Container environments: what the operator (and the chart) set, and the entrypoints read.

* ``train-job`` reads :class:`TrainJobEnvironment` (``MUSICGEN_JOB_*``);
* ``generate-job`` reads :class:`GenerateJobEnvironment` (``MUSICGEN_JOB_*``);
* ``musicgen-ops serve`` reads :class:`ServeEnvironment` (``MUSICGEN_SERVE_*``).

The operator builds a container's ``env`` with ``to_env()`` on the same class the entrypoint reads
with ``from_environ()``; a variable with the prefix that no field declares stops the process at start.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator
from typing_extensions import Self

from musicgen_ops.contracts.base import StrictEnvironment
from musicgen_ops.contracts.generation import MAX_DURATION_SECONDS, AudioDecoderName, GenerationParameters
from musicgen_ops.contracts.names import (
    BASE_MODEL_ENV_PREFIX,
    ENV_NAMESPACE,
    ENV_NAMESPACE_KNOWN,
    JOB_ENV_PREFIX,
    SERVE_ENV_PREFIX,
)
from musicgen_ops.contracts.training import ExportFormat, LoraParameters, TrainingParameters

#: Exit code of a Job container for errors that retrying cannot fix (bad data, invalid spec):
#: the Job's podFailurePolicy fails the Job at once instead of using up backoffLimit.
EXIT_CODE_INVALID_INPUT = 3
#: Where a Job container writes its failure reason (terminationMessagePath).
TERMINATION_LOG = "/dev/termination-log"

#: Which exported artifact a server or job loads; ``auto``: the adapter (merged at load) on torch.
ModelFormat = Literal["auto", "adapter", "merged", "torchscript", "onnx", "onnx-int8"]
#: Generation backends; ``auto``: the CUDA-graph fast engine on GPU, torch on CPU.
EngineName = Literal["auto", "torch", "fast", "onnx", "torchscript"]
#: Torch dtypes of the generation engines; ``auto``: bfloat16 on CUDA, float32 on CPU.
DtypeName = Literal["auto", "float32", "bfloat16", "float16"]
DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]+)?)$"
#: Where MultiBand Diffusion weights come from by default (the published checkpoint's hub id).
DEFAULT_MBD_WEIGHTS = "facebook/multiband-diffusion"
MBD_WEIGHTS_HELP = (
    "MultiBand Diffusion weights for requests with decoder mbd: hub id, local folder or .th file, or a "
    "mirrored artifact URI <root>/models/<name> (downloaded like a base model); read on first use."
)
MBD_STEPS_HELP = "MultiBand Diffusion network calls per band (published: 20; fewer is faster and rougher)."


class ProjectEnvironment(StrictEnvironment):
    """A container environment of this project: besides its own prefix, a ``MUSICGEN_*`` variable of no
    known family (a typo: SEVRE for SERVE) stops the process too."""

    env_namespace: ClassVar[str] = ENV_NAMESPACE
    env_namespace_known: ClassVar[tuple[str, ...]] = ENV_NAMESPACE_KNOWN


class BaseModelEnvironment(ProjectEnvironment):
    """Where Job and server containers find base models: a mirror in the artifact store, a node cache."""

    env_prefix: ClassVar[str] = BASE_MODEL_ENV_PREFIX

    mirror: str | None = Field(
        None,
        description="Artifact root holding mirrored base models (models/<org>--<name>/); hub ids load "
        "from there first.",
    )
    cache: Path | None = Field(None, description="Local cache of downloaded base models (a volume).")


class JobEnvironment(ProjectEnvironment):
    """What every Job container knows: which resource it works for, and its local folders."""

    env_prefix: ClassVar[str] = JOB_ENV_PREFIX

    namespace: str = Field("default", description="Namespace of the custom resource.")
    resource_name: str = Field("", description="Name of the custom resource that created the Job.")
    work_dir: Path | None = Field(None, description="Scratch folder (an emptyDir); default: a temp folder.")
    cache_dir: Path | None = Field(None, description="Downloaded models (verified, reused across runs).")
    device: str = Field(
        "auto", pattern=DEVICE_PATTERN, description="auto (CUDA when visible), cpu, cuda[:N]."
    )
    termination_log: Path = Field(Path(TERMINATION_LOG), description="Where the failure reason is written.")


class TrainJobEnvironment(JobEnvironment):
    """Everything ``train-job`` needs."""

    dataset_uri: str = Field(description="Dataset folder URI: preprocessed (manifest.json) or raw tracks.")
    base_model: str = Field("facebook/musicgen-small", description="Hub id or folder of the base model.")
    model_id: str = Field(description="Id of the produced model: artifacts go to models/<model_id>/.")
    artifacts_uri: str = Field(description="Root URI of the artifact store.")
    output_uri: str = Field(description="Folder URI of the finished model (<artifacts>/models/<model_id>).")
    run_uri: str = Field(description="Folder URI of this run: checkpoints/ and progress.json.")
    progress_uri: str = Field(description="URI of progress.json that the operator polls.")
    lora: LoraParameters = Field(default_factory=LoraParameters)
    training: TrainingParameters = Field(default_factory=TrainingParameters)
    export_formats: list[ExportFormat] = Field(default_factory=lambda: ["adapter"], min_length=1)
    resume: bool = Field(True, description="Continue from the last checkpoint under run_uri if there is one.")
    progress_interval_seconds: float = Field(
        5.0, ge=0, description="Least time between two progress.json writes (phase changes always written)."
    )


class GenerateJobEnvironment(JobEnvironment):
    """Everything ``generate-job`` needs."""

    model_id: str = Field(description="Id of the TrainedModel.")
    model_uri: str = Field(description="Folder URI of the model's artifacts (models/<model_id>).")
    base_model: str = Field("facebook/musicgen-small", description="Base model the adapter fits.")
    parameters: GenerationParameters = Field(description="What to generate.")
    use_base_model: bool = Field(False, description="Generate with base_model alone (no adapter), for A/B.")
    output_uri: str = Field(description="URI of the audio file to write.")
    result_uri: str = Field(description="URI of the JSON result (GenerationJobResult).")
    mbd_weights: str = Field(DEFAULT_MBD_WEIGHTS, min_length=1, description=MBD_WEIGHTS_HELP)
    mbd_sampling_steps: int = Field(20, ge=1, le=1000, description=MBD_STEPS_HELP)


class ServeEnvironment(ProjectEnvironment):
    """How the generator server loads models, batches requests and writes results."""

    env_prefix: ClassVar[str] = SERVE_ENV_PREFIX

    host: str = Field("0.0.0.0", description="Address the HTTP server binds to.")
    port: int = Field(8080, ge=1, le=65535, description="Port the HTTP server listens on.")
    default_model: str = Field(
        "facebook/musicgen-small",
        description="Model used when a request names no trained_model_id (model id, hub id, path, preset).",
    )
    preload: list[str] = Field(
        default_factory=list,
        description="Models loaded (and warmed up) at start, comma-separated or JSON; /readyz is 503 "
        "until they are.",
    )
    warmup: bool = Field(True, description="Generate a short clip with each preloaded model before ready.")
    model_format: ModelFormat = Field(
        "auto", description="Exported format to load from a model folder (auto: the adapter, merged)."
    )
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
    engine: EngineName = Field("auto", description="Generation backend (auto: fast on GPU, torch on CPU).")
    device: str = Field(
        "auto", pattern=DEVICE_PATTERN, description="auto (CUDA when visible), cpu, cuda[:N]."
    )
    dtype: DtypeName = Field("auto", description="Torch dtype (auto: bfloat16 on CUDA, float32 on CPU).")
    decoder: AudioDecoderName = Field(
        "encodec",
        description="Codes to audio for requests that name no decoder: encodec, or mbd (MultiBand "
        "Diffusion; needs mbd_weights).",
    )
    mbd_weights: str = Field(DEFAULT_MBD_WEIGHTS, min_length=1, description=MBD_WEIGHTS_HELP)
    mbd_sampling_steps: int = Field(20, ge=1, le=1000, description=MBD_STEPS_HELP)
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
    stride_seconds: float = Field(
        18.0,
        gt=0,
        description="How far each continuation window moves on (audiocraft's extend_stride); the rest of "
        "the window is the previous window's codes, kept as context.",
    )
    max_duration_seconds: float = Field(
        MAX_DURATION_SECONDS,
        gt=0,
        le=MAX_DURATION_SECONDS,
        description="Longest track a request may ask for.",
    )
    sync_max_seconds: float = Field(
        30.0, ge=0, description="Longer requests get a job id (202) instead of waiting for the audio."
    )
    output_dir: Path = Field(Path("/tmp/musicgen-output"), description="Where results are written.")
    max_jobs: int = Field(1000, ge=1, description="Finished jobs remembered (oldest forgotten first).")
    job_retention_seconds: float = Field(
        7 * 24 * 3600.0,
        gt=0,
        description="Finished jobs (and their audio) are deleted this long after they finished.",
    )
    drain_seconds: float = Field(
        25.0,
        ge=0,
        description="Grace period on SIGTERM: /readyz answers 503, no new work is accepted, queued and "
        "running work finishes; keep it below the pod's terminationGracePeriodSeconds.",
    )
    max_body_bytes: int = Field(
        64 * 1024, ge=1024, description="Largest request body accepted; larger ones are answered 413."
    )
    max_audio_upload_bytes: int = Field(
        20 * 1024**2,
        ge=1024,
        description="Largest audio file part (audio_prompt, melody) of a multipart POST /v1/generate/upload; "
        "a larger part is answered 413 while it streams.",
    )
    spectrogram: bool = Field(False, description="Also write a spectrogram PNG beside each result.")

    @field_validator("preload", mode="before")
    @classmethod
    def _split_preload(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _check_engine(self) -> Self:
        family = {"onnx": "onnx", "onnx-int8": "onnx", "torchscript": "torchscript"}.get(self.model_format)
        engines = ("auto", family) if family else ("auto", "torch", "fast")
        if self.model_format != "auto" and self.engine not in engines:
            raise ValueError(
                f"engine {self.engine!r} cannot run a {self.model_format} model: use {' or '.join(engines)}"
            )
        return self

    @model_validator(mode="after")
    def _check_windows(self) -> Self:
        if self.stride_seconds >= self.window_seconds:
            raise ValueError(
                f"stride_seconds ({self.stride_seconds}) must be shorter than window_seconds "
                f"({self.window_seconds}): each window keeps the rest of the previous one as context"
            )
        return self

    @classmethod
    def serving(cls, model: str, **settings: object) -> Self:
        """A server that preloads, warms up and serves ``model`` by default."""
        return cls(default_model=model, preload=[model], **settings)
