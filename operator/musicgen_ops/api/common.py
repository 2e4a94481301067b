"""What the three custom resources share: API group, conditions, compute resources, scheduling.

Only pydantic here: this package is the CRD contract, imported by the operator, the CLI and tests.
Field names are snake_case in Python and camelCase in Kubernetes (``alias_generator``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from musicgen_ops.contracts.base import Contract

GROUP = "musicgen.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "musicgen"

#: Kubernetes quantities such as "500m", "4", "16Gi".
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$"
#: Storage URIs the platform understands (musicgen_ops.storage schemes).
STORAGE_URI_PATTERN = r"^(s3|az|file)://\S+$"
#: A DNS-1123 label (names of Kubernetes objects we create from it).
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
#: A DNS-1035 label: what a Service name must be (starts with a letter).
DNS_1035_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"


#: The configuration of every CRD model; a contract subclassed into a CRD model sets it again, so the
#: camelCase aliases apply to the fields it inherits.
CAMEL_CONFIG = ConfigDict(
    alias_generator=to_camel, populate_by_name=True, extra="forbid", use_enum_values=True
)


class CamelModel(Contract):
    """Base of every CRD model: camelCase on the wire, unknown fields refused, legacy names accepted."""

    model_config = CAMEL_CONFIG

    def to_k8s(self) -> dict:
        """The camelCase dict Kubernetes stores (unset optional fields dropped)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ConditionStatus(str, Enum):
    """Status of a condition, as in every Kubernetes API."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class ConditionType(str, Enum):
    """Condition types the operator writes."""

    VALIDATED = "Validated"
    JOB_CREATED = "JobCreated"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    READY = "Ready"
    ARTIFACTS_READY = "ArtifactsReady"
    SERVING = "Serving"
    MODEL_READY = "ModelReady"
    SUSPENDED = "Suspended"
    #: Kueue admitted the Job (False with reason Queued while Kueue holds it suspended).
    ADMITTED = "Admitted"
    #: The latest spec generation was acted on (False: an edit of an immutable field was refused).
    SPEC_ACCEPTED = "SpecAccepted"
    #: progress.json held only finite numbers (False: NaN/Infinity were dropped).
    PROGRESS_VALID = "ProgressValid"


class Condition(CamelModel):
    """One observation about a resource (Kubernetes API conventions)."""

    type: str = Field(description="Condition type, e.g. Validated, Running, Ready.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field("", description="CamelCase machine-readable reason.")
    message: str = Field("", description="Human-readable details.")
    last_transition_time: datetime | None = Field(None, description="When the status last changed.")
    observed_generation: int | None = Field(None, description="The generation this condition is about.")


class Toleration(CamelModel):
    """A pod toleration (the subset of core/v1 Toleration we pass through)."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(None, ge=0)


class ComputeResources(CamelModel):
    """What one pod asks for: GPUs (count and product), CPU and memory."""

    gpu: int = Field(1, ge=0, le=16, description="GPUs per pod (0 runs on CPU).")
    gpu_type: str | None = Field(
        None,
        description="GPU product (node label nvidia.com/gpu.product), e.g. NVIDIA-A100-SXM4-80GB.",
    )
    gpu_resource: str | None = Field(
        None, description="Extended resource name; default from the operator (nvidia.com/gpu)."
    )
    cpu: str = Field("4", pattern=QUANTITY_PATTERN, description="CPU request and limit, e.g. 4 or 500m.")
    memory: str = Field("16Gi", pattern=QUANTITY_PATTERN, description="Memory request and limit.")


class Scheduling(CamelModel):
    """Where pods may run."""

    node_selector: dict[str, str] = Field(default_factory=dict, description="Extra node labels to match.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Extra tolerations.")
    priority_class_name: str | None = Field(None, description="PriorityClass of the pods.")


@dataclass(frozen=True)
class PrinterColumn:
    """One additionalPrinterColumn of a CRD (what `kubectl get` shows)."""

    name: str
    json_path: str
    type: Literal["string", "integer", "number", "boolean", "date"] = "string"
    description: str = ""
    priority: int = 0

    def to_k8s(self) -> dict:
        """The CRD form of this column."""
        column: dict = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            column["description"] = self.description
        if self.priority:
            column["priority"] = self.priority
        return column


AGE_COLUMN = PrinterColumn("Age", ".metadata.creationTimestamp", "date")


@dataclass(frozen=True)
class ResourceKind:
    """Names and models of one custom resource; crdgen turns it into a CRD."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    spec_model: type[BaseModel]
    status_model: type[BaseModel]
    columns: tuple[PrinterColumn, ...]
    description: str
    #: CEL ``x-kubernetes-validations`` on the whole object (e.g. a rule on ``metadata.name``).
    rules: tuple[dict[str, str], ...] = ()

    @property
    def crd_name(self) -> str:
        """metadata.name of the CRD."""
        return f"{self.plural}.{GROUP}"


class StatusBase(CamelModel):
    """Fields every status carries (Kubernetes conventions)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", use_enum_values=True
    )

    conditions: list[Condition] = Field(default_factory=list, description="Latest observations.")
    observed_generation: int | None = Field(None, description="The spec generation last acted on.")
    message: str | None = Field(None, description="Human-readable summary of the current phase.")
    reason: str | None = Field(None, description="CamelCase reason of the current phase (kubectl REASON).")


#: The REASON printer column every resource shows.
REASON_COLUMN = PrinterColumn("Reason", ".status.reason")
