"""``python -m musicgen_ops``: the ``musicgen-ops`` CLI, or the Job entrypoint named by the first argument.

``torchrun ... -m musicgen_ops train-job`` (the training Job with several GPUs) and
``torchrun ... -m musicgen_ops train ...`` (``train --devices N``) start their workers this way;
``python -m musicgen_ops torchrun <torchrun arguments>`` is torchrun keeping train-job's exit code 3 for
permanent failures (:mod:`musicgen_ops.jobs.launcher`).
"""

from __future__ import annotations

import sys


def main() -> None:
    """``train-job``, ``generate-job`` and ``torchrun`` go to the Job entrypoints, the rest to the CLI."""
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "train-job":
        from musicgen_ops.jobs.train_job import main as job_main
    elif command == "generate-job":
        from musicgen_ops.jobs.generate_job import main as job_main
    elif command == "torchrun":
        from musicgen_ops.jobs.launcher import main as job_main
    else:
        from musicgen_ops.cli import main as cli_main

        cli_main()
        return
    del sys.argv[1]
    job_main()


if __name__ == "__main__":
    main()
