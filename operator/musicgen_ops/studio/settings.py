"""Settings of the studio process (``musicgen-ops studio``): state folder, bind address, limits."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from musicgen_ops.contracts.environment import DEFAULT_MBD_WEIGHTS, MBD_STEPS_HELP, MBD_WEIGHTS_HELP

#: Largest accepted audio file (per file, bytes).
DEFAULT_MAX_UPLOAD_BYTES = 200 * 1024**2
#: Largest clip to continue or melody a generation may upload.
DEFAULT_MAX_INPUT_BYTES = 20 * 1024**2


class StudioSettings(BaseModel):
    """How one studio process runs."""

    model_config = ConfigDict(extra="forbid")

    root: Path = Field(description="Folder of the local artifact store and the studio's SQLite state.")
    host: str = Field("127.0.0.1", description="Bind address (loopback: only this machine can connect).")
    port: int = Field(8765, ge=0, le=65535, description="Port (0: any free port).")
    token: str = Field(
        default_factory=lambda: secrets.token_urlsafe(24),
        min_length=16,
        description="Access token every API call must carry (printed in the start URL).",
    )
    max_upload_bytes: int = Field(DEFAULT_MAX_UPLOAD_BYTES, ge=1, description="Largest audio file accepted.")
    max_input_bytes: int = Field(
        DEFAULT_MAX_INPUT_BYTES,
        ge=1,
        description="Largest audio file sent with a generation (clip to continue, melody).",
    )
    max_tracks_per_dataset: int = Field(1000, ge=1, description="Tracks one dataset may hold.")
    device: str = Field("auto", description="Device for training and generation (auto, cpu, cuda[:N]).")
    default_base_model: str = Field(
        "facebook/musicgen-small", description="Base model a new training form starts with."
    )
    poll_seconds: float = Field(0.5, gt=0, description="How often running trainings' progress is read.")
    backend: Literal["local", "kubernetes"] = Field(
        "local",
        description="local: train-job subprocesses here; kubernetes: custom resources, as the caller.",
    )
    artifacts: str | None = Field(
        None, description="Artifact root URI (s3://, az://, file://); default: file://<root>."
    )
    kube_api_url: str | None = Field(None, description="Kubernetes API server URL (kubernetes backend).")
    kube_namespace: str = Field("default", description="Namespace of the custom resources.")
    kube_ca_file: Path | None = Field(None, description="CA bundle of the API server (default: system CAs).")
    serving_url_template: str | None = Field(
        None,
        description="URL of a served TrainedModel's generator (kubernetes backend); default: its status "
        "servingUrl (the in-cluster Service). May use {serving_url}, {name}, {namespace}, {port}.",
    )
    serving_timeout_seconds: float = Field(
        600, gt=0, description="Deadline of one generation through a serving Deployment."
    )
    direct_upload_min_bytes: int = Field(
        8 * 1024**2,
        ge=0,
        description="Files at least this large go from the browser straight to S3/Azure through a presigned "
        "URL when the artifact store offers one (0: always through the studio).",
    )
    direct_upload_expiry_seconds: int = Field(
        900, ge=1, le=7 * 24 * 3600, description="Lifetime of a presigned upload URL."
    )
    retention_days: float = Field(
        7,
        gt=0,
        description="Orphaned files (uploaded generation inputs no generation names, outputs of deleted "
        "generations) older than this many days are deleted by the studio's sweep.",
    )
    sweep_interval_seconds: float = Field(3600, gt=0, description="How often the sweep runs.")
    mbd_weights: str = Field(
        DEFAULT_MBD_WEIGHTS,
        min_length=1,
        description=MBD_WEIGHTS_HELP + " Local backend only (on Kubernetes the operator's setting applies).",
    )
    mbd_sampling_steps: int = Field(20, ge=1, le=1000, description=MBD_STEPS_HELP + " Local backend only.")

    @property
    def artifacts_uri(self) -> str:
        """URI of the artifact root (datasets/, models/, runs/, generations/): ``artifacts`` or file://<root>."""
        return self.artifacts or f"file://{self.root.resolve()}"

    @property
    def retention(self) -> timedelta:
        """``retention_days`` as a duration."""
        return timedelta(days=self.retention_days)

    @property
    def database_path(self) -> Path:
        """The SQLite file holding trainings, loss points and generations."""
        return self.root / "studio.db"
