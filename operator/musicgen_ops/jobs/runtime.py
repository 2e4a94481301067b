"""What every Job container does around its work: logging, exit codes and the termination message.

Kubernetes shows the termination message (``/dev/termination-log``) in the pod status, where the
operator reads it into the custom resource's Failed condition. Errors that a retry cannot fix (bad
data, invalid settings, a missing model) exit with code 3, which the Job's podFailurePolicy turns into
an immediate failure; anything else exits 1 and the Job retries (resuming from its last checkpoint).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from musicgen_ops.contracts.environment import EXIT_CODE_INVALID_INPUT, TERMINATION_LOG, JobEnvironment
from musicgen_ops.contracts.names import LOG_LEVEL_ENV
from musicgen_ops.logs import configure_logging

logger = logging.getLogger(__name__)
EXIT_CODE_RETRYABLE = 1


def termination_log_path() -> Path:
    """Where the failure reason goes (overridable for local runs and tests)."""
    variable = JobEnvironment.variable_names()["termination_log"]
    return Path(os.environ.get(variable, TERMINATION_LOG))


def write_termination_message(message: str) -> None:
    """Write the reason Kubernetes shows in the pod status (at most 4 KiB); never raises."""
    try:
        termination_log_path().write_text(message[:4000], encoding="utf-8")
    except OSError:
        logger.debug("no termination log at %s", termination_log_path())


def classify(error: BaseException) -> int:
    """Exit code for an error: 3 when retrying cannot help, 1 otherwise."""
    from musicgen_ops.pipeline.errors import PipelineError
    from musicgen_ops.storage import AccessDeniedError, InvalidURIError, NotFoundError

    permanent = (
        ValidationError,
        PipelineError,
        NotFoundError,
        AccessDeniedError,
        InvalidURIError,
        ValueError,
    )
    return EXIT_CODE_INVALID_INPUT if isinstance(error, permanent) else EXIT_CODE_RETRYABLE


def run_job(name: str, work: Callable[[], None]) -> None:
    """Run ``work`` as a Job container: JSON logs, termination message and exit code on failure."""
    configure_logging(os.environ.get(LOG_LEVEL_ENV, "INFO"), json_lines=True)
    try:
        work()
    except Exception as error:  # the container's last line of defence: report, then exit
        code = classify(error)
        reason = f"{type(error).__name__}: {error}"
        logger.error(
            "%s failed (%s): %s",
            name,
            "permanent" if code == EXIT_CODE_INVALID_INPUT else "retryable",
            reason,
            exc_info=code != EXIT_CODE_INVALID_INPUT,
        )
        write_termination_message(reason)
        sys.exit(code)
    logger.info("%s finished", name)
