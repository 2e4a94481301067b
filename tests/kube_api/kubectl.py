"""Run the real ``kubectl`` against an emulator, with its own kubeconfig and discovery cache."""

from __future__ import annotations

import logging
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.kube_emulator import write_kubeconfig

logger = logging.getLogger("kubectl")
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl is not on PATH: the kubectl tests run the real binary"
)
REPO = Path(__file__).resolve().parents[2]


class Kubectl:
    """``kubectl`` pointed at one emulator; every call and its output go to the test log."""

    def __init__(self, url: str, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = write_kubeconfig(home / "kubeconfig", url)
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "KUBECONFIG": str(self.kubeconfig),
            "KUBECACHEDIR": str(home / "cache"),
        }

    def run(self, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run ``kubectl args`` from the repository root; fail with its stderr when ``check``."""
        assert KUBECTL is not None
        for arg in args:  # kubectl's own --timeout (e.g. of `wait`) bounds the call, plus a margin
            if match := re.fullmatch(r"--timeout=(\d+)s", arg):
                timeout = max(timeout, int(match.group(1)) + 10)
        process = subprocess.run(
            [KUBECTL, *args], cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        logger.info(
            "$ kubectl %s  (exit %d)\n%s%s",
            " ".join(args),
            process.returncode,
            process.stdout,
            process.stderr,
        )
        if check:
            assert process.returncode == 0, f"kubectl {' '.join(args)} failed:\n{process.stderr}"
        return process

    def popen(self, *args: str) -> subprocess.Popen:
        """Start ``kubectl args`` in the background (e.g. ``wait``)."""
        assert KUBECTL is not None
        return subprocess.Popen(
            [KUBECTL, *args],
            cwd=REPO,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def watch(self, *args: str, until: str, action: Callable[[], object], timeout: float = 15) -> list[str]:
        """Start ``kubectl args`` (a ``-w``), run ``action`` once it printed its first line, and return the
        lines printed until one contains ``until``."""
        process = self.popen(*args)
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True)
        reader.start()
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        try:
            while not any(until in line for line in seen):
                seen.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
                if len(seen) == 1:
                    action()
        except queue.Empty:
            raise AssertionError(f"kubectl {' '.join(args)} never printed {until!r}: {seen}") from None
        finally:
            process.terminate()
            process.wait(10)
            logger.info("$ kubectl %s\n%s", " ".join(args), "".join(seen))
        return [line.rstrip("\n") for line in seen]

    def __call__(self, *args: str) -> str:
        """stdout of a successful ``kubectl args``."""
        return self.run(*args).stdout


def table_rows(output: str) -> list[list[str]]:
    """kubectl's table as cells, cut at the header's column starts (empty cells stay empty)."""
    lines = output.rstrip().splitlines()
    starts = [m.start() for m in re.finditer(r"(?:^|(?<=\s{2}))\S", lines[0])]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    return [[line[a:b].strip() for a, b in bounds] for line in lines]
