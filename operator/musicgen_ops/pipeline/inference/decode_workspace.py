"""The fast engine's device memory: shared KV caches, per-batch-bucket step buffers and CUDA graphs.

One set of caches, sized for the largest batch bucket and the longest length bucket, is shared by
every bucket (requests run one at a time under the engine's lock): batch bucket ``b`` sees the first
``2 * b`` rows as contiguous views. Each (batch bucket, attention window, prompt bucket, sampler) gets one
captured ``torch.cuda.CUDAGraph`` of :func:`~musicgen_ops.pipeline.inference.static_decoder.decode_step`,
all in one memory pool; on CPU the same step runs eagerly. With ``fuse`` the step is compiled per bucket
(:class:`~musicgen_ops.pipeline.inference.step_fusion.FusedStep`) before its graph is captured.

Samplers: a request with ``0 < top_k <= top_k_candidates`` ranks only the ``top_k_candidates`` largest
scores with ``torch.topk`` (a fixed shape, whatever its own k); ``top_k`` off or larger sorts the whole
vocabulary. Both give exactly the tokens of transformers' top-k (and top-p) warpers.
"""

from __future__ import annotations

import logging

import torch

from musicgen_ops.pipeline.codes import apply_delay_pattern
from musicgen_ops.pipeline.inference.base import SamplingParams
from musicgen_ops.pipeline.inference.static_decoder import (
    DecoderWeights,
    StepBuffers,
    prefill,
    sinusoidal_positions,
)
from musicgen_ops.pipeline.inference.step_fusion import FusedStep

logger = logging.getLogger(__name__)


class DecodeWorkspace:
    """Preallocated tensors and captured graphs for one engine.

    Args:
        weights: the decoder's weights (device and dtype of every buffer follow them).
        max_text: longest prompt (tokens) the cross-attention buffers hold.
        noise_window: steps of sampling noise held per refill.
        attention: ``sdpa`` or ``math`` (see ``decode_step``).
        use_graphs: capture and replay CUDA graphs instead of running steps eagerly.
        top_k_candidates: scores ranked with ``torch.topk`` when a request's top_k fits (0: always sort).
        fuse: compile the step with ``torch.compile`` (see :class:`FusedStep`).
        compile_mode: ``torch.compile`` mode when fusing.
    """

    def __init__(
        self,
        weights: DecoderWeights,
        max_text: int,
        noise_window: int,
        attention: str,
        use_graphs: bool,
        top_k_candidates: int = 0,
        fuse: bool = False,
        compile_mode: str = "default",
    ) -> None:
        self.weights = weights
        self.device = weights.embed.device
        self.dtype = weights.embed.dtype
        self.max_text = max_text
        self.noise_window = noise_window
        self.attention = attention
        self.use_graphs = use_graphs
        #: The step function: ``decode_step``, compiled per bucket when fusing.
        self.run_step = FusedStep(fuse, compile_mode)
        vocab = weights.vocab_size
        self.top_k_candidates = top_k_candidates if 0 < top_k_candidates < vocab else None
        #: The samplers graphs are captured for: ``top_k_candidates`` (topk) and ``None`` (full sort).
        self.samplers: tuple[int | None, ...] = tuple(
            dict.fromkeys([c for c in (self.top_k_candidates,) if c is not None] + [None])
        )
        #: The sampler of the request being run (chosen by :meth:`reset`).
        self.candidates: int | None = None
        #: Graphs captured so far, and how many of them were captured while serving a request.
        self.captures = 0
        self.late_captures = 0
        self.shape: tuple[int, int] = (0, 0)  # (batch, cache slots) the caches hold
        self._storage: dict[str, list[torch.Tensor]] = {}
        self._buffers: dict[int, StepBuffers] = {}
        self._graphs: dict[tuple[int, int, int, int | None], torch.cuda.CUDAGraph] = {}
        self._pool = None
        dev = self.device
        self.scalars = {
            "num_frames": torch.zeros((), dtype=torch.long, device=dev),
            "guidance": torch.zeros((), dtype=torch.float32, device=dev),
            "use_guidance": torch.zeros((), dtype=torch.bool, device=dev),
            "do_sample": torch.zeros((), dtype=torch.bool, device=dev),
            "temperature": torch.ones((), dtype=torch.float32, device=dev),
            "top_k_index": torch.zeros(1, dtype=torch.long, device=dev),
            "top_p": torch.full((), 2.0, dtype=torch.float32, device=dev),
        }

    @property
    def tensors(self) -> list[torch.Tensor]:
        """The decoder's weights and the caches (for memory accounting)."""
        w = self.weights
        weights = [w.embed, w.heads, w.final_ln_w, w.final_ln_b]
        weights += [t for layer in w.layers for t in vars(layer).values() if isinstance(t, torch.Tensor)]
        return weights + [t for group in self._storage.values() for t in group]

    def ensure(self, batch: int, slots: int) -> None:
        """Make the caches hold ``batch`` rows of ``slots`` positions; growing drops buffers and graphs."""
        old_batch, old_slots = self.shape
        if batch <= old_batch and slots <= old_slots:
            return
        if self._graphs:
            logger.warning(
                "growing the decode caches to %s: %d CUDA graphs recaptured",
                (batch, slots),
                len(self._graphs),
            )
        batch, slots = max(batch, old_batch), max(slots, old_slots)
        w = self.weights
        per_row = w.num_heads * w.head_dim

        def zeros(n: int) -> list[torch.Tensor]:
            return [torch.zeros(n, dtype=self.dtype, device=self.device) for _ in w.layers]

        self._graphs.clear()
        self._buffers.clear()
        self._storage = {}  # free the old caches before allocating the new ones
        self._storage = {
            "self_kv": zeros(2 * 2 * batch * per_row * slots),  # keys and values, stacked
            "cross_k": zeros(2 * batch * per_row * self.max_text),
            "cross_v": zeros(2 * batch * per_row * self.max_text),
        }
        self.shape = (batch, slots)
        self._positions = sinusoidal_positions(slots, w.hidden).to(self.device, self.dtype)
        self._slots = torch.arange(slots, device=self.device)

    def buffers(self, batch: int) -> StepBuffers:
        """Batch bucket ``batch``'s buffers: views of the shared caches plus its own small tensors."""
        buf = self._buffers.get(batch)
        if buf is not None:
            return buf
        if batch > self.shape[0]:
            raise ValueError(f"batch {batch} exceeds the allocated caches ({self.shape[0]}); call ensure()")
        w, dev = self.weights, self.device
        rows, heads, dim, k = 2 * batch, w.num_heads, w.head_dim, w.num_codebooks
        slots = self.shape[1]

        def views(name: str, length: int) -> list[torch.Tensor]:
            n = rows * heads * length * dim
            return [flat[:n].view(rows, heads, length, dim) for flat in self._storage[name]]

        n = rows * heads * slots * dim
        self_kv = [flat[: 2 * n].view(2, rows, heads, slots, dim) for flat in self._storage["self_kv"]]

        buf = StepBuffers(
            batch=batch,
            tokens=torch.full((batch, k), w.start_token_id, dtype=torch.long, device=dev),
            position=torch.zeros(1, dtype=torch.long, device=dev),
            codes=torch.full((batch, k, slots), w.pad_token_id, dtype=torch.long, device=dev),
            forced=torch.full((batch, k, slots), -1, dtype=torch.long, device=dev),
            self_kv=self_kv,
            self_k=[kv[0] for kv in self_kv],
            self_v=[kv[1] for kv in self_kv],
            cross_k=views("cross_k", self.max_text),
            cross_v=views("cross_v", self.max_text),
            cross_mask=torch.zeros((rows, 1, 1, self.max_text), dtype=self.dtype, device=dev),
            noise=torch.ones((batch, self.noise_window, k, w.vocab_size), device=dev),
            positions_table=self._positions,
            slots=self._slots,
            codebook_index=torch.arange(k, device=dev),
            codebook_delay=torch.arange(k, device=dev) // w.audio_channels,
            **self.scalars,
        )
        self._buffers[batch] = buf
        return buf

    def reset(self, buf: StepBuffers, num_frames: int, sampling: SamplingParams | None = None) -> None:
        """Start a request: position 0, start tokens, pad codes, nothing forced, unit noise, its sampling
        settings."""
        w, s = self.weights, sampling or SamplingParams(do_sample=False, guidance_scale=1.0)
        buf.tokens.fill_(w.start_token_id)
        buf.position.zero_()
        buf.codes.fill_(w.pad_token_id)
        buf.forced.fill_(-1)
        buf.noise.fill_(1.0)
        top_k = s.top_k if 0 < s.top_k < w.vocab_size else w.vocab_size
        sc = self.scalars
        sc["num_frames"].fill_(num_frames)
        sc["guidance"].fill_(float(s.guidance_scale))
        sc["use_guidance"].fill_(s.guidance_scale > 1)
        sc["do_sample"].fill_(bool(s.do_sample))
        sc["temperature"].fill_(float(s.temperature) if s.do_sample else 1.0)
        sc["top_k_index"].fill_(top_k - 1)
        sc["top_p"].fill_(s.top_p if 0.0 < s.top_p < 1.0 else 2.0)  # > 1: nucleus filtering off
        self.candidates = self.sampler_for(s)

    def sampler_for(self, sampling: SamplingParams | None) -> int | None:
        """The sampler a request runs: ``top_k_candidates`` when its top_k fits, else None (full sort)."""
        vocab = self.weights.vocab_size
        top_k = sampling.top_k if sampling is not None and 0 < sampling.top_k < vocab else vocab
        cap = self.top_k_candidates
        return cap if cap is not None and top_k <= cap else None

    def prefill(self, buf: StepBuffers, prefix: torch.Tensor, text: int) -> int:
        """Start from a code prefix (``[count, K, P]``): its first ``P`` positions go through the decoder
        in one causal forward (as ``generate()`` does for ``decoder_input_ids``); the steps after it write
        its remaining delayed codes (``buf.forced``). Returns the first step still to run (``P``)."""
        count, length = prefix.shape[0], prefix.shape[-1]
        delayed = apply_delay_pattern(prefix, -1, self.weights.audio_channels)  # -1: no prefix code there
        buf.forced[:count, :, : delayed.shape[-1]].copy_(delayed)
        head = delayed[..., :length]
        buf.codes[:count, :, :length].copy_(torch.where(head >= 0, head, self.weights.pad_token_id))
        start = torch.full_like(buf.tokens[:, :, None], self.weights.start_token_id)
        inputs = torch.cat([start, buf.codes[:, :, : length - 1]], dim=-1)  # what each position is fed
        prefill(self.weights, buf, inputs, text, self.attention)
        buf.tokens.copy_(buf.codes[:, :, length - 1])
        buf.position.fill_(length)
        return length

    def step(self, buf: StepBuffers, window: int, text: int, *, late: bool = True) -> None:
        """Run one decode step: replay its graph, or run it eagerly (``late``: while serving)."""
        if self.use_graphs:
            self.graph(buf, window, text, late=late).replay()
        else:
            self.run_step(self.weights, buf, window, text, self.attention, self.candidates, late=late)

    def graph(
        self, buf: StepBuffers, window: int, text: int, *, late: bool, sampler: int | None | str = "current"
    ) -> torch.cuda.CUDAGraph:
        """The captured step for (batch bucket, window, prompt bucket, sampler), capturing it when missing.

        ``sampler``: one of :attr:`samplers` (default: the one :meth:`reset` chose). Capturing runs two
        eager warm-up steps (which move ``buf``'s state), so reset ``buf`` after.
        """
        candidates = self.candidates if sampler == "current" else sampler
        key = (buf.batch, window, text, candidates)
        graph = self._graphs.get(key)
        if graph is not None:
            return graph
        if late:
            logger.warning("capturing CUDA graph %s while serving; call warmup() first", key)
            self.late_captures += 1
        start = buf.position.clone()
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(2):  # compile (when fusing), initialise cuBLAS / attention workspaces
                self.run_step(self.weights, buf, window, text, self.attention, candidates, late=late)
                buf.position.copy_(start)
        torch.cuda.current_stream(self.device).wait_stream(side)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        # thread_local: other threads (the server) may use CUDA while a late capture runs.
        with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
            self.run_step(self.weights, buf, window, text, self.attention, candidates)
        self._graphs[key] = graph
        self.captures += 1
        return graph
