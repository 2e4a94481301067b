"""``python -m musicgen_ops torchrun <torchrun arguments>``: torchrun, keeping the Job's exit-code contract.

torchrun itself exits 1 whenever a worker fails, which would turn a permanent failure of ``train-job``
(exit 3: bad data, invalid settings, which the Job's podFailurePolicy fails at once) into a retry. This
runs torchrun's own entry point (``torch.distributed.run.main``) and exits with 3 when the first worker to
fail exited with 3, with 1 for any other failure.
"""

from __future__ import annotations

import logging
import sys

from musicgen_ops.contracts.environment import EXIT_CODE_INVALID_INPUT
from musicgen_ops.jobs.runtime import EXIT_CODE_RETRYABLE

logger = logging.getLogger(__name__)


def exit_code_of(first_failure_exitcode: int) -> int:
    """The container's exit code for the root-cause worker's exit code."""
    return (
        EXIT_CODE_INVALID_INPUT if first_failure_exitcode == EXIT_CODE_INVALID_INPUT else EXIT_CODE_RETRYABLE
    )


def main(argv: list[str] | None = None) -> None:
    """Run torchrun with ``argv`` (default: ``sys.argv[1:]``)."""
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    try:
        torchrun.main(sys.argv[1:] if argv is None else argv)
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        logger.error("worker rank %d failed first (exit code %d)", rank, failure.exitcode)
        sys.exit(exit_code_of(failure.exitcode))
