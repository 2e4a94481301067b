"""The fast engine's decode step, optionally fused by ``torch.compile`` (issue 19: fewer kernels per step).

:class:`FusedStep` calls :func:`~musicgen_ops.pipeline.inference.static_decoder.decode_step` through one
``torch.compile`` wrapper (inductor, ``fullgraph=True``, ``dynamic=False``): every (batch bucket, attention
window, prompt bucket, sampler) is compiled once, on its first call, into a few fused kernels (layer norms,
residual adds, masks, sampling arithmetic) around the matrix products. The engine makes that first call
in ``warmup()``, before it captures the bucket's CUDA graph, so the graph replays the fused kernels and
nothing is compiled while serving. Off (``FastEngineConfig.compile_step=False``) it is the plain step.

Inductor needs a C compiler (its CPU kernels and Triton's launchers are built with one): without one,
or when a compilation fails, the step runs unfused and one log line says why.
"""

from __future__ import annotations

import logging
import shutil
import time

import torch

from musicgen_ops.pipeline.inference.static_decoder import DecoderWeights, StepBuffers, decode_step

logger = logging.getLogger(__name__)

StepKey = tuple[int, int, int, "int | None"]


def compiler_missing() -> str | None:
    """Why inductor cannot build kernels here (no C compiler on ``PATH``), or None when it can."""
    if any(shutil.which(name) for name in ("cc", "gcc", "clang")):
        return None
    return "no C compiler (cc, gcc or clang) on PATH"


class FusedStep:
    """``decode_step``, compiled once per bucket when ``enabled`` (else called as is).

    Args:
        enabled: fuse with ``torch.compile``; falls back to the plain step (logged) when impossible.
        mode: ``torch.compile`` mode (``default`` or ``max-autotune-no-cudagraphs``).
    """

    def __init__(self, enabled: bool, mode: str = "default") -> None:
        self.mode = mode
        #: Buckets compiled so far, seconds spent compiling them, and how many were compiled late
        #: (while serving a request, i.e. missed by ``warmup()``).
        self.compiled: set[StepKey] = set()
        self.compile_seconds = 0.0
        self.late_compiles = 0
        self._fn = None
        if enabled:
            missing = compiler_missing()
            if missing:
                logger.warning("fast engine: step fusion off, running the step unfused: %s", missing)
            else:
                self._fn = torch.compile(decode_step, fullgraph=True, dynamic=False, mode=mode)

    @property
    def active(self) -> bool:
        """Whether steps run fused (False when fusion is off or fell back)."""
        return self._fn is not None

    def __call__(
        self,
        w: DecoderWeights,
        buf: StepBuffers,
        window: int,
        text: int,
        impl: str,
        candidates: int | None,
        *,
        late: bool = False,
    ) -> None:
        """Run one step (see ``decode_step``); the first call of a bucket compiles it."""
        if self._fn is None:
            decode_step(w, buf, window, text, impl, candidates)
            return
        key = (buf.batch, window, text, candidates)
        if key in self.compiled:
            self._fn(w, buf, window, text, impl, candidates)
            return
        if late:
            logger.warning("compiling the fused step %s while serving; call warmup() first", key)
            self.late_compiles += 1
        started = time.perf_counter()
        # One cache entry per bucket: allow as many as there are buckets (dynamo's default is 8).
        limit = len(self.compiled) + 8
        try:
            with torch._dynamo.config.patch(recompile_limit=limit, accumulated_recompile_limit=4 * limit):
                self._fn(w, buf, window, text, impl, candidates)
        except Exception as exc:  # a compiler failure happens before the step touches any buffer
            logger.error("fast engine: compiling the step failed, running it unfused from now on: %s", exc)
            self._fn = None
            decode_step(w, buf, window, text, impl, candidates)
            return
        self.compiled.add(key)
        seconds = time.perf_counter() - started
        self.compile_seconds += seconds
        logger.info("fast engine: fused step %s compiled in %.1f s", key, seconds)
