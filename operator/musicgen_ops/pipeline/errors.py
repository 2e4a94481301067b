"""Errors the ML pipeline raises: each names the file or setting at fault and the reason."""

from __future__ import annotations


class PipelineError(Exception):
    """Base class of every error the pipeline raises on purpose (bad input, missing model, ...)."""


class ModelNotAvailableError(PipelineError):
    """A base model or checkpoint cannot be found or loaded."""


class UnsupportedModelError(ModelNotAvailableError):
    """A checkpoint of a family or shape this platform does not load, or a feature its family lacks."""


class DeviceNotAvailableError(PipelineError):
    """The requested device (e.g. CUDA) is not there."""


class AudioDecodeError(PipelineError):
    """An audio file cannot be decoded, is empty, silent or in an unsupported format."""


class DatasetError(PipelineError):
    """A dataset folder or manifest is missing, empty or inconsistent."""


class TrainingError(PipelineError):
    """Training cannot start or cannot go on (bad configuration, NaN loss, unwritable output)."""


class ExportError(PipelineError):
    """A model cannot be exported (not a checkpoint, unsupported opset, missing processor)."""


class InvalidParametersError(PipelineError, ValueError):
    """Generation parameters out of range or malformed; ``fields`` has one line per bad field."""

    def __init__(self, message: str, *, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or [message]
