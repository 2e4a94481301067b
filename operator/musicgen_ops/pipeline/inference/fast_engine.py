"""The fast generation engine: static KV cache, guidance in one batch, on-device sampling, CUDA graphs.

Hugging Face's ``generate()`` spends most of a MusicGen step launching kernels from Python. This engine
runs the decoder step of :mod:`musicgen_ops.pipeline.inference.static_decoder` over preallocated
buffers, so every step has the same shapes and touches the same memory; on a GPU each step is captured
once as a ``torch.cuda.CUDAGraph`` per (batch bucket, attention window, prompt bucket) and replayed,
with no host synchronisation inside the loop (``compile_step``: the graph replays the step fused by
``torch.compile``). On CPU (or with ``cuda_graphs=False``) the same step runs eagerly, which is how the
tests prove it matches ``generate()`` token for token. A code prefix (``prefix_codes``) goes through the
decoder in one causal forward that fills the cache, as ``generate()`` does for ``decoder_input_ids``.

Buckets: ``B`` prompts run in the smallest batch bucket ``>= B`` (extra rows are padding); the
``num_frames + K - 1`` steps must fit the longest length bucket; a step at position ``s`` attends over
the smallest bucket window ``> s`` (plain eager steps: the filled slots rounded up to 64); prompts are
padded to the smallest prompt bucket. Call :meth:`FastGenerationEngine.warmup` before serving: it
captures (and compiles) every bucket, so nothing is captured or compiled at request time.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from musicgen_ops.pipeline.codes import check_prefix_codes, delay_span, revert_delay_pattern
from musicgen_ops.pipeline.inference.base import GenerationOutput, SamplingParams
from musicgen_ops.pipeline.inference.decode_workspace import DecodeWorkspace
from musicgen_ops.pipeline.inference.decoders import AudioDecoder, build_decoder, with_decoder
from musicgen_ops.pipeline.inference.fast_config import (
    SEED_MODULUS,
    FastEngineConfig,
    FastEngineError,
    item_seeds,
    plain_musicgen,
    torch_dtype,
    validate_request,
    warmup_sampling,
)
from musicgen_ops.pipeline.inference.fast_io import codes_to_audio, encode_text, stream_audio
from musicgen_ops.pipeline.inference.prompt_codes import encode_audio_prompt
from musicgen_ops.pipeline.inference.static_decoder import DecoderWeights, StepBuffers, fill_cross_attention

if TYPE_CHECKING:
    from musicgen_ops.pipeline.models import LoadedModel

__all__ = ["FastEngineConfig", "FastEngineError", "FastGenerationEngine"]

logger = logging.getLogger(__name__)

_CACHE_ALIGN = 64  # cache windows are rounded up to this many slots (aligned attention masks)


class FastGenerationEngine:
    """MusicGen generation over a static KV cache, with guidance folded into one batch.

    Args:
        loaded: model and processor; a ``PeftModel`` is merged (in place) first. The engine moves the
            text encoder and codec to ``device``; the decoder's weights are copied into its own tensors.
        device: ``cuda``, ``cuda:1``, ``cpu``...; default CUDA when available.
        dtype: decoder dtype, ``bfloat16`` by default on CUDA and ``float32`` on CPU.
        config: buckets and switches (:class:`FastEngineConfig`).
        decoder: turns the codes into audio; default EnCodec (``build_decoder("encodec")``).
    """

    #: Accepts ``seeds=`` with one seed per prompt: a prompt's audio does not depend on its batch.
    supports_item_seeds = True

    def __init__(
        self,
        loaded: LoadedModel,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        config: FastEngineConfig | None = None,
        decoder: AudioDecoder | None = None,
    ) -> None:
        self.config = config or FastEngineConfig()
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = torch_dtype(dtype, self.device)
        self.use_graphs = (
            self.device.type == "cuda" if self.config.cuda_graphs is None else self.config.cuda_graphs
        )
        if self.use_graphs and self.device.type != "cuda":
            raise FastEngineError(f"cuda_graphs=True needs a CUDA device, got {self.device}")
        model = plain_musicgen(loaded.model)
        self.name = loaded.name
        self.processor = loaded.processor
        self.model = model
        model.text_encoder.to(self.device)
        model.audio_encoder.to(self.device)
        if getattr(model, "enc_to_dec_proj", None) is not None:
            model.enc_to_dec_proj.to(self.device)
        self.weights = DecoderWeights.from_model(model, self.device, self.dtype)
        self.sample_rate = loaded.sample_rate
        self.frame_rate = loaded.frame_rate
        self.num_codebooks = loaded.num_codebooks
        self.audio_channels = loaded.audio_channels  # 2: stereo, [batch, 2, samples] audio
        #: Steps beyond the frames (the delay pattern's span: K - 1 mono, K / 2 - 1 stereo).
        self.delay_span = delay_span(self.num_codebooks, self.audio_channels)
        self.hop_length = self.sample_rate // self.frame_rate
        self.decoder = decoder or build_decoder("encodec", model=model, device=self.device)
        if self.decoder.sample_rate != self.sample_rate:
            raise FastEngineError(
                f"decoder {self.decoder.name!r} makes {self.decoder.sample_rate} Hz audio, "
                f"the model's codes are for {self.sample_rate} Hz"
            )
        steps = [round(s * self.frame_rate) + self.delay_span for s in self.config.length_buckets_s]
        #: Cache windows (slots), one per length bucket, ascending.
        self.windows = sorted({math.ceil(n / _CACHE_ALIGN) * _CACHE_ALIGN for n in steps})
        #: Batch size of every chunk run, in order (for tests and metrics).
        self.batch_sizes: list[int] = []
        self.workspace = DecodeWorkspace(
            self.weights,
            max_text=self.config.text_buckets[-1],
            noise_window=self.config.noise_window,
            attention=self.config.attention,
            use_graphs=self.use_graphs,
            top_k_candidates=self.config.top_k_candidates,
            fuse=self.config.compile_step,
            compile_mode=self.config.compile_mode,
        )
        #: Steps run over the bucket windows, fixed shapes, as graphs do: with graphs, or when fused
        #: (one compilation per window); plain eager steps attend over the filled slots only.
        self.fixed_windows = self.use_graphs or self.workspace.run_step.active
        self._lock = threading.Lock()  # a Lock, not an RLock: a closed stream may release it elsewhere

    # ----------------------------------------------------------------------------------- public API
    def with_decoder(self, decoder: AudioDecoder) -> FastGenerationEngine:
        """This engine decoding with ``decoder``: a view sharing its weights (``decoders.with_decoder``)."""
        return with_decoder(self, decoder)

    @property
    def max_frames(self) -> int:
        """Longest request in frames (the longest length bucket)."""
        return round(self.config.length_buckets_s[-1] * self.frame_rate)

    @property
    def memory_bytes(self) -> int:
        """Bytes of the tensors this engine holds on its device (weights, codec, encoder, buffers)."""
        tensors = [*self.model.text_encoder.parameters(), *self.model.audio_encoder.parameters()]
        tensors += self.workspace.tensors  # decoder weights and caches
        seen: dict[int, int] = {}
        for t in tensors:
            if t.device == self.device:
                seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return sum(seen.values()) + int(getattr(self.decoder, "memory_bytes", 0) or 0)  # MBD's bands

    @property
    def captures(self) -> int:
        """CUDA graphs captured so far."""
        return self.workspace.captures

    @property
    def late_captures(self) -> int:
        """CUDA graphs captured while serving a request (0 after a complete ``warmup()``)."""
        return self.workspace.late_captures

    def warmup(self) -> dict[str, float]:
        """Allocate every buffer, compile every bucket's step (``compile_step``) and capture its CUDA
        graph (run one eager step per bucket on CPU). Returns ``{"seconds", "graphs", "compiled",
        "compile_seconds"}``; call before reporting ready."""
        started = time.perf_counter()
        ws = self.workspace
        with self._lock, torch.inference_mode():
            ws.ensure(self.config.batch_buckets[-1], self.windows[-1])
            for batch in self.config.batch_buckets:
                buf = ws.buffers(batch)
                for text in self.config.text_buckets:
                    for window in self.windows:
                        for sampler in ws.samplers:  # topk for top_k <= top_k_candidates, else sort
                            if self.use_graphs:
                                ws.graph(buf, window, text, late=False, sampler=sampler)
                            ws.reset(buf, num_frames=1, sampling=warmup_sampling(sampler))
                            ws.step(buf, window, text, late=False)
            self._sync()
        seconds = time.perf_counter() - started
        compiled, compiling = len(ws.run_step.compiled), ws.run_step.compile_seconds
        logger.info("fast engine warm: %d graphs, %d fused steps", self.captures, compiled)
        logger.info("fast engine warm in %.1f s (compiling %.1f s) on %s", seconds, compiling, self.device)
        return {
            "seconds": seconds,
            "graphs": self.captures,
            "compiled": compiled,
            "compile_seconds": compiling,
        }

    def generate(
        self,
        prompts: list[str],
        *,
        num_frames: int,
        sampling: SamplingParams = SamplingParams(),
        prefix_codes: np.ndarray | None = None,
        seeds: Sequence[int] | None = None,
        decode: bool = True,
    ) -> GenerationOutput:
        """Generate ``num_frames`` frames per prompt (see ``GenerationEngine.generate``).

        Args:
            prompts: text conditioning, one per output.
            num_frames: new frames of audio per prompt (``num_frames * hop_length`` samples).
            sampling: guidance, greedy or temperature/top-k/top-p; prompt ``i`` is seeded with
                ``sampling.seed + i`` (random when unset) unless ``seeds`` is given.
            prefix_codes: int64 ``[batch, K, P]`` codes to continue: the steps over them write these
                codes (as Hugging Face's delay pattern mask does), so the cache holds them as context.
            seeds: one seed per prompt.
            decode: also decode the audio (False: codes only, ``audio`` is empty).
        """
        prefix = None
        if prefix_codes is not None:
            prefix = check_prefix_codes(
                prefix_codes,
                batch=len(prompts),
                num_codebooks=self.num_codebooks,
                vocab_size=self.weights.vocab_size,
            ).to(self.device)
        self._validate(prompts, num_frames, sampling, 0 if prefix is None else prefix.shape[-1])
        seeds = list(seeds) if seeds is not None else item_seeds(sampling, len(prompts))
        if len(seeds) != len(prompts):
            raise FastEngineError(f"got {len(seeds)} seeds for {len(prompts)} prompts")
        largest = self.config.batch_buckets[-1]
        audio, codes, timings = [], [], {"encode": 0.0, "decode": 0.0, "codec": 0.0, "capture": 0.0}
        for start in range(0, len(prompts), largest):
            out = self._generate_chunk(
                prompts[start : start + largest],
                seeds[start : start + largest],
                num_frames,
                sampling,
                None if prefix is None else prefix[start : start + largest],
                decode,
            )
            audio.append(out.audio)
            codes.append(out.codes)
            for key, value in out.timings.items():
                timings[key] = timings.get(key, 0.0) + value
        timings["steps"] = float(num_frames + self.delay_span)  # a prefix is one prefill, not steps
        return GenerationOutput(
            audio=np.concatenate(audio),
            sample_rate=self.sample_rate,
            codes=np.concatenate(codes),
            timings=timings,
        )

    def encode_audio(self, audio: np.ndarray) -> np.ndarray:
        """EnCodec codes ``[batch, K, frames]`` of mono float32 ``[batch, samples]`` (an audio prompt)."""
        return encode_audio_prompt(
            self.model.audio_encoder,
            audio,
            hop_length=self.hop_length,
            num_codebooks=self.num_codebooks,
            device=self.device,
        )

    # ------------------------------------------------------------------------------------ internals
    def _validate(
        self, prompts: list[str], num_frames: int, sampling: SamplingParams, prefix_frames: int = 0
    ) -> None:
        validate_request(
            prompts,
            num_frames,
            sampling,
            capacity=self.windows[-1] - self.delay_span - prefix_frames,
            longest_s=self.config.length_buckets_s[-1],
            prefix_frames=prefix_frames,
        )

    def generate_stream(
        self,
        prompts: list[str],
        *,
        num_frames: int,
        sampling: SamplingParams = SamplingParams(),
        seeds: Sequence[int] | None = None,
        chunk_frames: int = 50,
        lookahead_frames: int = 8,
    ) -> Iterator[np.ndarray]:
        """Yield float32 audio ``[B, samples]`` while generating: about every ``chunk_frames`` frames
        (see :func:`~musicgen_ops.pipeline.inference.fast_io.stream_audio`)."""
        yield from stream_audio(
            self,
            prompts,
            num_frames=num_frames,
            sampling=sampling,
            seeds=seeds,
            chunk_frames=chunk_frames,
            lookahead_frames=lookahead_frames,
        )

    def _generate_chunk(
        self,
        prompts: list[str],
        seeds: list[int],
        num_frames: int,
        sampling: SamplingParams,
        prefix: torch.Tensor | None = None,
        decode: bool = True,
    ) -> GenerationOutput:
        run = self._run(prompts, seeds, num_frames, sampling, every=None, prefix=prefix)
        codes, timings = list(run)[-1]
        skip = 0 if prefix is None else prefix.shape[-1]
        before = time.perf_counter()
        if decode:  # prefix and new frames decoded together: the codec sees the context it continues
            audio = self._decode_audio(codes, skip + num_frames, seeds)[..., skip * self.hop_length :]
        else:
            audio = np.zeros((len(prompts), 0), dtype=np.float32)
        timings["codec"] = time.perf_counter() - before
        self.batch_sizes.append(len(prompts))
        return GenerationOutput(
            audio=audio, sample_rate=self.sample_rate, codes=codes[..., skip:].cpu().numpy(), timings=timings
        )

    def _run(
        self,
        prompts: list[str],
        seeds: list[int],
        num_frames: int,
        sampling: SamplingParams,
        every: int | None,
        prefix: torch.Tensor | None = None,
    ) -> Iterator[tuple[torch.Tensor, dict[str, float] | None]]:
        """Decode one batch (at most the largest bucket). Yields ``(codes [B, K, frames done], None)``
        each time ``every`` more frames are complete, then ``(all codes, timings)``; the codes start
        with ``prefix`` (``[B, K, P]``) when one is given."""
        count, span, channels = len(prompts), self.delay_span, self.audio_channels
        num_frames += 0 if prefix is None else prefix.shape[-1]
        steps = num_frames + span
        batch = next(b for b in self.config.batch_buckets if b >= count)
        ws = self.workspace
        with self._lock:  # a suspended stream keeps the lock; inference mode is entered per piece
            with torch.inference_mode():
                t0 = time.perf_counter()
                buf, text, windows, capture = self._prepare(prompts, batch, steps, sampling)
                ws.reset(buf, num_frames, sampling)
                start = 0 if prefix is None else ws.prefill(buf, prefix, text)
                generators = self._generators(seeds) if sampling.do_sample else []
                self._sync()
                t1 = time.perf_counter()
            for step in range(start, steps):
                with torch.inference_mode():
                    if generators and (step == start or step % buf.noise_window == 0):
                        for row, gen in enumerate(generators):
                            buf.noise[row].exponential_(generator=gen)
                        buf.noise[:count].clamp_min_(torch.finfo(torch.float32).tiny)
                    ws.step(buf, windows[step], text)
                    done = step - span + 1  # frames complete after this step
                    partial = None
                    if every and done > 0 and done % every == 0 and done < num_frames:
                        partial = revert_delay_pattern(buf.codes[:count, :, : done + span], channels)
                if partial is not None:
                    yield partial, None
            with torch.inference_mode():
                codes = revert_delay_pattern(buf.codes[:count, :, :steps], channels)
                self._sync()
            t2 = time.perf_counter()
        yield codes, {"encode": t1 - t0 - capture, "capture": capture, "decode": t2 - t1}

    def _prepare(
        self, prompts: list[str], batch: int, steps: int, sampling: SamplingParams | None = None
    ) -> tuple[StepBuffers, int, list[int], float]:
        """Encode the prompts into the batch bucket's buffers; returns them, the prompt bucket, the
        attention window of every step and the seconds spent capturing graphs (0 after warm-up)."""
        states, mask = encode_text(self.model, self.processor, prompts, batch, self.device, self.dtype)
        text = next((t for t in self.config.text_buckets if t >= states.shape[1]), None)
        if text is None:
            raise FastEngineError(
                f"a prompt has {states.shape[1]} tokens, more than the longest prompt bucket "
                f"({self.config.text_buckets[-1]}); shorten it or raise FastEngineConfig.text_buckets"
            )
        windows = [next(w for w in self.windows if w > s) for s in range(steps)]
        if not self.fixed_windows:  # eager steps need no fixed shapes: attend over the slots filled so far
            windows = [
                min(w, math.ceil((s + 1) / _CACHE_ALIGN) * _CACHE_ALIGN) for s, w in enumerate(windows)
            ]
        ws = self.workspace
        if self.use_graphs:  # caches always hold the largest buckets: graphs are never recaptured
            ws.ensure(self.config.batch_buckets[-1], self.windows[-1])
        else:
            ws.ensure(batch, windows[-1])
        buf = ws.buffers(batch)
        before = time.perf_counter()
        if self.use_graphs:  # normally all captured by warmup(); capturing runs steps, so do it first
            sampler = ws.sampler_for(sampling)
            for window in sorted(set(windows)):
                ws.graph(buf, window, text, late=True, sampler=sampler)
        capture = time.perf_counter() - before
        fill_cross_attention(self.weights, buf, states, mask)
        return buf, text, windows, capture

    def _decode_audio(self, codes: torch.Tensor, num_frames: int, seeds: Sequence[int]) -> np.ndarray:
        return codes_to_audio(
            self.decoder,
            codes,
            num_frames,
            seeds,
            hop_length=self.hop_length,
            audio_channels=self.audio_channels,
        )

    def _generators(self, seeds: list[int]) -> list[torch.Generator]:
        return [torch.Generator(device=self.device).manual_seed(int(s) % SEED_MODULUS) for s in seeds]

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
