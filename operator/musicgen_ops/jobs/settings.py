"""The environment a Job's container reads: one pydantic-settings model per entrypoint.

The operator builds the container env from a custom resource with :meth:`JobSettingsBase.to_env`; the
entrypoints (``train-job``, ``generate-job``) instantiate the same class, so every name exists once.
Env names are ``MUSICGEN_JOB_<FIELD>``; lists are JSON (``MUSICGEN_JOB_EXPORT_FORMATS='["merged"]'``).
Only pydantic here: the operator image imports this module without the ML stack.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "MUSICGEN_JOB_"
#: Exit code of a Job container for errors that retrying cannot fix (bad data, invalid spec):
#: the Job's podFailurePolicy fails the Job at once instead of using up backoffLimit.
EXIT_CODE_INVALID_INPUT = 3
#: Where the container writes its failure reason (terminationMessagePath).
TERMINATION_LOG = "/dev/termination-log"


class JobSettingsBase(BaseSettings):
    """Shared behaviour: env prefix, strict fields, and the reverse mapping to a container env."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", case_sensitive=False)

    namespace: str = Field("default", description="Namespace of the custom resource.")
    resource_name: str = Field("", description="Name of the custom resource that created the Job.")

    def to_env(self) -> list[dict[str, str]]:
        """Container ``env`` entries that make ``type(self)()`` rebuild this object."""
        env = []
        for name, value in self.model_dump(mode="json").items():
            if value is None:
                continue
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, (list, dict)):
                text = json.dumps(value)
            else:
                text = str(value)
            env.append({"name": f"{ENV_PREFIX}{name.upper()}", "value": text})
        return env


class TrainJobSettings(JobSettingsBase):
    """Everything ``train-job`` needs (names follow pipeline.training.TrainConfig)."""

    dataset_uri: str = Field(description="Preprocessed dataset folder URI (holds manifest.json).")
    base_model: str = Field("facebook/musicgen-small", description="Hub id or folder URI of the base model.")
    model_id: str = Field(description="Id of the produced model: artifacts go to models/<model_id>/.")
    artifacts_uri: str = Field(description="Root URI of the artifact store.")
    output_uri: str = Field(description="Folder URI of the finished model (<artifacts>/models/<model_id>).")
    run_uri: str = Field(description="Folder URI of this run: checkpoints/ and progress.json.")
    progress_uri: str = Field(description="URI of progress.json that the operator polls.")
    lora_r: int = Field(16, ge=1, le=256)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.1, ge=0.0, lt=1.0)
    target_modules: list[str] | None = None
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(4, ge=1)
    learning_rate: float = Field(1e-4, gt=0)
    grad_accum: int = Field(1, ge=1)
    precision: Literal["fp32", "bf16", "fp16"] = "bf16"
    backend: Literal["hf", "lightning"] = "hf"
    seed: int = 42
    val_fraction: float = Field(0.1, ge=0, lt=1)
    max_steps: int = -1
    save_steps: int = Field(50, ge=1)
    export_formats: list[str] = Field(default_factory=lambda: ["adapter"])
    resume: bool = Field(True, description="Continue from the last checkpoint under run_uri if there is one.")


class GenerateJobSettings(JobSettingsBase):
    """Everything ``generate-job`` needs."""

    model_id: str = Field(description="Id of the TrainedModel.")
    model_uri: str = Field(description="Folder URI of the model's artifacts (models/<model_id>).")
    base_model: str = Field("facebook/musicgen-small")
    prompt: str = Field(min_length=1)
    duration_seconds: float = Field(10.0, ge=1, le=300)
    bpm: int | None = None
    style: str | None = None
    key: str | None = None
    scale: str | None = None
    temperature: float = Field(1.0, ge=0, le=2)
    top_k: int = Field(250, ge=0)
    top_p: float = Field(0.0, ge=0, le=1)
    guidance_scale: float = Field(3.0, ge=0)
    seed: int | None = None
    output_format: Literal["wav", "flac"] = "wav"
    output_uri: str = Field(description="URI of the audio file to write.")
    result_uri: str = Field(description="URI of the JSON result (seed, durations, timings).")
