"""The PyTorch generation engine: Hugging Face ``MusicgenForConditionalGeneration.generate()``.

Sampling is done by :class:`SeededSampler`, a logits processor with one ``torch.Generator`` per prompt,
so each prompt's tokens depend only on its own seed and logits: a seeded prompt gives the same audio
alone or batched with others (up to float rounding of the batched matmuls). It samples with the
Gumbel-max trick (``argmax(logits / T + Gumbel noise)``, the same distribution as multinomial sampling)
and hands Hugging Face a one-hot score, so ``generate`` runs in greedy mode and never touches the
global RNG. Classifier-free guidance, temperature, top-k and top-p are applied inside the sampler.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from musicgen_ops.pipeline.codes import check_prefix_codes, delay_span
from musicgen_ops.pipeline.inference.base import GenerationOutput, SamplingParams
from musicgen_ops.pipeline.inference.decoders import AudioDecoder, build_decoder, decode_codes, with_decoder
from musicgen_ops.pipeline.inference.prompt_codes import encode_audio_prompt
from musicgen_ops.pipeline.melody import melody_generate_inputs

if TYPE_CHECKING:
    from musicgen_ops.pipeline.models import LoadedModel

logger = logging.getLogger(__name__)

#: Score given to every token except the sampled one (finite, so guidance arithmetic stays finite).
_MASKED = -1e4
_SEED_MODULUS = 2**63 - 1


def item_seeds(sampling: SamplingParams, batch: int) -> list[int]:
    """Per-prompt seeds for one call: ``seed + i`` for prompt ``i``, or fresh random seeds when unset."""
    if sampling.seed is None:
        return [int(s) for s in np.random.SeedSequence().generate_state(batch, dtype=np.uint64) >> 1]
    return [(int(sampling.seed) + i) % _SEED_MODULUS for i in range(batch)]


class SeededSampler:
    """Logits processor: guidance, temperature, top-k/top-p and per-prompt seeded sampling in one step.

    Rows of ``scores`` are ``prompt * num_codebooks + codebook`` (the conditional half first, then the
    unconditional half when Hugging Face doubled the batch for classifier-free guidance).

    Args:
        seeds: one seed per prompt.
        num_codebooks: codebooks per prompt (rows per prompt in ``scores``).
        sampling: guidance scale, temperature, top-k, top-p and ``do_sample``.
    """

    def __init__(self, seeds: Sequence[int], num_codebooks: int, sampling: SamplingParams) -> None:
        self.num_codebooks = num_codebooks
        self.sampling = sampling
        self.generators = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]
        self.steps = 0

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        rows = len(self.generators) * self.num_codebooks
        logits = scores.float()
        doubled = logits.shape[0] == 2 * rows
        if doubled:  # [cond; uncond] rows: apply classifier-free guidance here
            cond, uncond = logits.split(rows, dim=0)
            logits = uncond + (cond - uncond) * float(self.sampling.guidance_scale)
        elif logits.shape[0] != rows:
            raise ValueError(f"expected {rows} or {2 * rows} rows of logits, got {logits.shape[0]}")
        chosen = self._sample(logits)
        one_hot = torch.full_like(scores[:rows], _MASKED)
        one_hot.scatter_(1, chosen[:, None], 0.0)
        self.steps += 1
        # Both halves equal: whatever guidance Hugging Face applies afterwards keeps the one-hot.
        return torch.cat([one_hot, one_hot], dim=0) if doubled else one_hot

    def _sample(self, logits: torch.Tensor) -> torch.Tensor:
        params = self.sampling
        if not params.do_sample or params.temperature <= 0:
            # Still draw the noise, so later steps see the same generator state either way.
            for gen in self.generators:
                torch.rand((self.num_codebooks, logits.shape[1]), generator=gen)
            return logits.argmax(dim=-1)
        logits = logits / float(params.temperature)
        vocab = logits.shape[-1]
        if 0 < params.top_k < vocab:
            kth = torch.topk(logits, params.top_k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if 0.0 < params.top_p < 1.0:
            sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
            cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
            drop_sorted = cumulative - sorted_logits.softmax(dim=-1) > params.top_p  # keeps at least one
            drop = drop_sorted.scatter(1, order, drop_sorted)
            logits = logits.masked_fill(drop, float("-inf"))
        noise = torch.cat(
            [torch.rand((self.num_codebooks, vocab), generator=gen) for gen in self.generators], dim=0
        ).to(logits.device)
        gumbel = -torch.log(-torch.log(noise.clamp(1e-20, 1.0 - 1e-7)))
        return (logits + gumbel).argmax(dim=-1)


class _CodesTap:
    """Stands in for ``audio_encoder.decode`` so that ``generate()`` hands over its codes undecoded.

    ``generate()`` always ends by decoding with EnCodec; the engine decodes through its
    :class:`AudioDecoder` instead. While a thread is inside :meth:`capture`, calls from that thread
    record the codes and return an empty waveform; every other call goes to the real ``decode``.
    """

    def __init__(self, decode: Any) -> None:
        self.decode = decode
        self._local = threading.local()

    def __call__(self, audio_codes: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        sink = getattr(self._local, "sink", None)
        if sink is None:
            return self.decode(audio_codes, *args, **kwargs)
        sink.append(audio_codes)
        return SimpleNamespace(
            audio_values=audio_codes.new_zeros((audio_codes.shape[1], 1, 0), dtype=torch.float)
        )

    def __reduce__(self) -> tuple:
        """Copies and pickles of the model (``deepcopy``, ``torch.save``) get a fresh tap on their codec."""
        return (_CodesTap, (self.decode,))

    def capture(self, sink: list[torch.Tensor]) -> _TapScope:
        return _TapScope(self._local, sink)


class _TapScope:
    def __init__(self, local: threading.local, sink: list[torch.Tensor]) -> None:
        self.local, self.sink = local, sink

    def __enter__(self) -> list[torch.Tensor]:
        self.local.sink = self.sink
        return self.sink

    def __exit__(self, *exc: object) -> None:
        self.local.sink = None


def _codes_tap(audio_encoder: torch.nn.Module) -> _CodesTap:
    """The tap on ``audio_encoder.decode``, installed once per codec (engines may share a model)."""
    tap = audio_encoder.__dict__.get("decode")
    if not isinstance(tap, _CodesTap):
        tap = _CodesTap(audio_encoder.decode)
        audio_encoder.decode = tap
    return tap


class TorchEngine:
    """A MusicGen model (base, or base with a merged LoRA adapter) generating with ``generate()``.

    Args:
        loaded: the model and processor (from ``load_base_model`` or the checkpoint loader).
        device: ``cpu``, ``cuda``, ``cuda:1`` ...
        dtype: ``float32`` (default), ``bfloat16`` or ``float16``; the codec always decodes in float32.
        decoder: turns the codes into audio; default EnCodec (``build_decoder("encodec")``).
    """

    #: Accepts ``seeds=`` with one seed per prompt: results do not depend on batch composition.
    supports_item_seeds = True

    def __init__(
        self,
        loaded: LoadedModel,
        device: str = "cpu",
        dtype: str | None = None,
        decoder: AudioDecoder | None = None,
    ) -> None:
        self.name = loaded.name
        self.processor = loaded.processor
        self.device = torch.device(device)
        self.dtype = _torch_dtype(dtype)
        model = loaded.model.to(self.device)
        if self.dtype != torch.float32:
            model.text_encoder.to(self.dtype)
            model.decoder.to(self.dtype)
            for projection in ("enc_to_dec_proj", "audio_enc_to_dec_proj"):  # the latter: melody chroma
                if hasattr(model, projection):
                    getattr(model, projection).to(self.dtype)
        self.model = model.eval()
        self.sample_rate = loaded.sample_rate
        self.frame_rate = loaded.frame_rate
        self.num_codebooks = loaded.num_codebooks
        self.audio_channels = loaded.audio_channels  # 2: stereo, [batch, 2, samples] audio
        self.hop_length = self.sample_rate // self.frame_rate
        self.decoder = decoder or build_decoder("encodec", model=model, device=self.device)
        if self.decoder.sample_rate != self.sample_rate:
            raise ValueError(
                f"decoder {self.decoder.name!r} makes {self.decoder.sample_rate} Hz audio, "
                f"the model's codes are for {self.sample_rate} Hz"
            )
        self._tap = _codes_tap(model.audio_encoder)
        #: ``musicgen`` or ``musicgen-melody``; only melody models take ``melody=`` (chroma conditioning).
        self.family = loaded.family
        self.supports_melody = self.family == "musicgen-melody"
        #: Batch size of every ``generate()`` call, in order (read by tests and metrics).
        self.batch_sizes: list[int] = []

    def with_decoder(self, decoder: AudioDecoder) -> TorchEngine:
        """This engine decoding with ``decoder``: a view sharing its weights (``decoders.with_decoder``)."""
        return with_decoder(self, decoder)

    @property
    def max_frames(self) -> int:
        """Frames the decoder can attend to in one window (1500 = 30 s for MusicGen)."""
        limit = int(getattr(self.model.generation_config, "max_length", 0) or 0)
        positions = int(self.model.config.decoder.max_position_embeddings)
        return min(limit, positions) if limit else positions

    @property
    def memory_bytes(self) -> int:
        """Bytes held by parameters and buffers, the decoder's own included (what the model cache budgets)."""
        tensors = [*self.model.parameters(), *self.model.buffers()]
        own = int(getattr(self.decoder, "memory_bytes", 0) or 0)  # e.g. MBD's diffusion bands
        return sum(t.numel() * t.element_size() for t in tensors) + own

    def generate(
        self,
        prompts: list[str],
        *,
        num_frames: int,
        sampling: SamplingParams = SamplingParams(),
        prefix_codes: np.ndarray | None = None,
        seeds: Sequence[int] | None = None,
        decode: bool = True,
        melody: Sequence[np.ndarray | None] | None = None,
    ) -> GenerationOutput:
        """Generate ``num_frames`` new frames per prompt (see ``GenerationEngine.generate``).

        Args:
            prompts: text conditioning, one per output.
            num_frames: frames of new audio (``num_frames * hop_length`` samples per prompt).
            sampling: guidance, temperature, top-k/top-p; ``sampling.seed`` seeds prompt ``i`` with
                ``seed + i`` unless ``seeds`` is given.
            prefix_codes: int64 ``[batch, K, P]`` codes to continue (``generate()``'s
                ``decoder_input_ids``); only the new codes and audio are returned.
            seeds: one seed per prompt (overrides ``sampling.seed``).
            decode: also decode the audio (False: codes only, ``audio`` is empty).
            melody: musicgen-melody only: per prompt, mono audio at ``sample_rate`` (or None) whose
                chroma conditions the generation.
        """
        if not prompts:
            raise ValueError("prompts is empty: give at least one text prompt")
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        seeds = list(seeds) if seeds is not None else item_seeds(sampling, len(prompts))
        if len(seeds) != len(prompts):
            raise ValueError(f"got {len(seeds)} seeds for {len(prompts)} prompts")
        started = time.perf_counter()
        if melody is not None and not self.supports_melody:
            raise ValueError(f"{self.name} is a {self.family} model: a melody needs a musicgen-melody model")
        inputs, prefix_frames = self._inputs(prompts, prefix_codes, melody)
        encoded = time.perf_counter()
        sampler = SeededSampler(seeds, self.num_codebooks, sampling)
        guidance = float(sampling.guidance_scale)
        with torch.inference_mode(), self._tap.capture([]) as captured:
            self.model.generate(
                **inputs,
                do_sample=False,
                guidance_scale=guidance if guidance > 1 else 1.0,  # <= 1: no unconditional half
                max_new_tokens=num_frames + delay_span(self.num_codebooks, self.audio_channels),
                logits_processor=[sampler],
            )
        done = time.perf_counter()
        expected = prefix_frames + num_frames
        # Below 2K - 1 steps generate() skips the delay pattern and hands over a few extra frames.
        codes = _captured_codes(captured)[..., :expected]
        if codes.shape[-1] != expected:
            raise RuntimeError(f"generate() gave {codes.shape[-1]} frames, expected {expected}")
        self.batch_sizes.append(len(prompts))
        if decode:  # prefix and continuation decoded together: the codec sees the context it continues
            start, samples = prefix_frames * self.hop_length, num_frames * self.hop_length
            audio = decode_codes(self.decoder, codes, seeds)[:, :, start : start + samples].cpu().numpy()
            audio = audio[:, 0] if self.audio_channels == 1 else audio  # mono [batch, samples]
            if audio.shape[-1] != samples:
                raise RuntimeError(f"codec returned {audio.shape[-1]} new samples, expected {samples}")
        else:
            audio = np.zeros((len(prompts), 0), dtype=np.float32)
        decoded = time.perf_counter()
        return GenerationOutput(
            audio=np.ascontiguousarray(audio, dtype=np.float32),
            sample_rate=self.sample_rate,
            codes=codes[:, :, prefix_frames:].cpu().numpy(),
            timings={
                "inputs": encoded - started,
                "generate": done - encoded,
                "codec": decoded - done,
                "steps": float(sampler.steps),
            },
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

    def _inputs(
        self,
        prompts: list[str],
        prefix_codes: np.ndarray | None,
        melody: Sequence[np.ndarray | None] | None = None,
    ) -> tuple[dict, int]:
        """Tokenised text (chroma for a melody model, the code prefix as ``decoder_input_ids``) on the
        model's device, and the prefix's frames."""
        if self.supports_melody:
            melodies = list(melody) if melody is not None else None
            inputs, _ = melody_generate_inputs(
                self.model,
                self.processor,
                prompts,
                melody=melodies,
                audio_prompt=None,
                hop_length=self.hop_length,
            )
        else:
            inputs = dict(self.processor(text=prompts, padding=True, return_tensors="pt"))
        if prefix_codes is None:
            return {k: v.to(self.device) for k, v in inputs.items()}, 0
        config = self.model.config.decoder
        prefix = check_prefix_codes(
            prefix_codes, batch=len(prompts), num_codebooks=self.num_codebooks, vocab_size=config.vocab_size
        )
        # generate() prepends the start token and lays the codes out in the (mono or stereo) delay pattern.
        inputs["decoder_input_ids"] = prefix.reshape(len(prompts) * self.num_codebooks, prefix.shape[-1])
        return {k: v.to(self.device) for k, v in inputs.items()}, prefix.shape[-1]


def _captured_codes(captured: list[torch.Tensor]) -> torch.Tensor:
    """``(batch, K, frames)`` from what ``generate()`` handed the codec: ``[1, B, K, F]`` once (mono) or
    the even and odd codebooks of stereo in two calls (interleaved back)."""
    if len(captured) == 1:
        return captured[0][0]
    if len(captured) == 2:
        left, right = captured[0][0], captured[1][0]
        return torch.stack([left, right], dim=2).flatten(1, 2)
    raise RuntimeError(f"generate() called the codec {len(captured)} times, expected 1 or 2")


def _torch_dtype(name: str | None) -> torch.dtype:
    choices = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name is None:
        return torch.float32
    if name not in choices:
        raise ValueError(f"unknown dtype {name!r}; choose one of {', '.join(choices)}")
    return choices[name]
