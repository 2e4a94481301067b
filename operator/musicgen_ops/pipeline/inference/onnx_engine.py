"""Generation on exported parts: the loop shared by runtimes, and ``ONNXInferenceEngine`` (ONNX Runtime).

The loop reproduces ``MusicgenForConditionalGeneration.generate``: tokenise, encode the text, (with
guidance) append an unconditional half whose encoder states and mask are zeros, start every codebook from
the bos token, decode step by step with the key/value cache, keep each new token only where the
codebook delay pattern allows it (pad elsewhere), undo the delay and decode the codes with EnCodec.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from musicgen_ops.pipeline.codes import apply_delay_pattern, check_prefix_codes, codebook_delays, delay_span
from musicgen_ops.pipeline.errors import ModelNotAvailableError
from musicgen_ops.pipeline.export.descriptor import DESCRIPTOR_NAME, ExportDescriptor
from musicgen_ops.pipeline.inference.base import GenerationOutput, SamplingParams
from musicgen_ops.pipeline.inference.decoders import AudioDecoder, ExportedEncodecDecoder
from musicgen_ops.pipeline.inference.onnx_binding import BoundDecoderState
from musicgen_ops.pipeline.inference.sampling import (
    make_rng,
    process_logits,
    select_tokens,
    uses_guidance,
    validate_sampling,
)

logger = logging.getLogger(__name__)


def resolve_export_folder(path: str | Path, runtime: str) -> Path:
    """``path`` itself if it holds ``descriptor.json``, else ``path/<runtime>`` (an export root)."""
    path = Path(path).expanduser()
    for candidate in (path, path / runtime):
        if (candidate / DESCRIPTOR_NAME).is_file():
            return candidate
    raise ModelNotAvailableError(
        f"no {runtime} export at {path}: expected {path / DESCRIPTOR_NAME} or "
        f"{path / runtime / DESCRIPTOR_NAME} "
        f"(write one with `musicgen-ops export --formats {runtime}`)"
    )


def load_processor(folder: Path, processor_path: str | Path | None) -> Any:
    """The processor saved beside the export (or at ``processor_path``)."""
    from transformers import AutoProcessor

    source = Path(processor_path).expanduser() if processor_path else folder
    try:
        return AutoProcessor.from_pretrained(str(source))
    except (OSError, ValueError, TypeError) as err:
        raise ModelNotAvailableError(
            f"cannot load the processor from {source}: {type(err).__name__}: {err}"
        ) from err


class DecoderState(Protocol):
    """The key/value cache of one generation: ``run`` feeds the next ids and returns their logits."""

    def run(self, ids: np.ndarray) -> np.ndarray:
        """``ids [(2)B, K, 1]`` -> logits ``[(2)B, K, 1, vocab]`` (the first call runs ``decoder_init``)."""
        ...


class NumpyDecoderState:
    """The cache as numpy arrays handed to and returned by the part runners each step."""

    def __init__(self, engine: PartsGenerationEngine, hidden: np.ndarray, mask: np.ndarray) -> None:
        self.engine, self.hidden, self.mask = engine, hidden, mask
        self.past: list[np.ndarray] | None = None

    def run(self, ids: np.ndarray) -> np.ndarray:
        if self.past is None:
            outputs = self.engine.run_decoder_init(ids, self.hidden, self.mask)
            self.past = list(outputs[1:])
            return outputs[0]
        outputs = self.engine.run_decoder_step(ids, self.mask, self.past)
        for layer in range(self.engine.constants.num_layers):
            self.past[4 * layer : 4 * layer + 2] = outputs[1 + 2 * layer : 3 + 2 * layer]
        return outputs[0]


class PartsGenerationEngine:
    """The generation loop over four exported parts; subclasses run the parts on one runtime.

    Besides the ``GenerationEngine`` protocol's batch ``generate(prompts, num_frames=...)``, it offers
    :meth:`generate_audio` for one prompt with the seed's keyword names (``duration_seconds`` or
    ``max_length``, ``guidance_scale``, ``temperature``, ``top_k``, ``seed``).
    """

    def __init__(
        self, descriptor: ExportDescriptor, processor: Any, decoder: AudioDecoder | None = None
    ) -> None:
        self.descriptor = descriptor
        self.constants = descriptor.constants
        self.processor = processor
        self.sample_rate = self.constants.sample_rate
        self.frame_rate = self.constants.frame_rate
        self.decoder = decoder or ExportedEncodecDecoder(
            self.run_audio_decoder,
            sample_rate=self.sample_rate,
            num_codebooks=self.constants.num_codebooks,
            runtime=descriptor.runtime,
            channels=self.constants.audio_channels,
        )
        self.audio_channels = int(self.constants.audio_channels)  # 2: [batch, 2, samples] audio
        #: Steps beyond the frames (the delay pattern's span: K - 1 mono, K / 2 - 1 stereo).
        self.delay_span = delay_span(self.constants.num_codebooks, self.audio_channels)
        if self.decoder.sample_rate != self.sample_rate:
            raise ValueError(
                f"decoder {self.decoder.name!r} makes {self.decoder.sample_rate} Hz audio, "
                f"the exported codes are for {self.sample_rate} Hz"
            )

    @property
    def max_frames(self) -> int:
        """Most frames (code prefix included) one ``generate`` call can hold."""
        return self.constants.max_positions - self.delay_span

    # The four parts, numpy in / numpy out; implemented per runtime.
    def run_text_encoder(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def run_decoder_init(self, ids: np.ndarray, hidden: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def run_decoder_step(self, ids: np.ndarray, mask: np.ndarray, past: list[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def run_audio_decoder(self, codes: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def generate(
        self,
        prompts: list[str],
        *,
        num_frames: int,
        sampling: SamplingParams = SamplingParams(),
        prefix_codes: np.ndarray | None = None,
        decode: bool = True,
    ) -> GenerationOutput:
        """Generate ``num_frames`` new codec frames (``num_frames / frame_rate`` s) of audio per prompt.

        ``prefix_codes`` (int64 ``[batch, K, P]``) are continued: the steps over them feed these codes
        (as Hugging Face's delay pattern mask does); only the new codes and audio are returned.
        ``decode=False`` returns the codes only (``audio`` empty).
        """
        if isinstance(prompts, str) or not prompts:
            raise ValueError("prompts must be a non-empty list of strings")
        validate_sampling(sampling)
        const = self.constants
        k, pad, span = const.num_codebooks, const.pad_token_id, self.delay_span
        prefix = None
        if prefix_codes is not None:
            prefix = check_prefix_codes(
                prefix_codes, batch=len(prompts), num_codebooks=k, vocab_size=const.vocab_size
            ).numpy()
        skip = 0 if prefix is None else prefix.shape[-1]
        total = skip + num_frames
        steps = total + span
        if num_frames < 1 or steps > const.max_positions:
            raise ValueError(
                f"num_frames must be within 1..{const.max_positions - span - skip} for this model "
                f"(after {skip} prefix frames), got {num_frames}"
            )
        timings: dict[str, float] = {}
        start = time.perf_counter()
        tokens = self.processor(text=list(prompts), padding=True, return_tensors="np")
        ids = tokens["input_ids"].astype(np.int64)
        mask = tokens["attention_mask"].astype(np.int64)
        hidden = self.run_text_encoder(ids, mask)
        if uses_guidance(sampling):
            hidden = np.concatenate([hidden, np.zeros_like(hidden)])
            mask = np.concatenate([mask, np.zeros_like(mask)])
        timings["encode"] = time.perf_counter() - start

        start = time.perf_counter()
        codes = self._decode_loop(hidden, mask, len(prompts), steps, sampling, prefix)
        timings["decode"] = time.perf_counter() - start

        start = time.perf_counter()
        delays = codebook_delays(k, self.audio_channels)
        frames = np.stack([codes[:, c, d + 1 : d + 1 + total] for c, d in enumerate(delays)], axis=1)
        assert frames.shape[-1] == total and not (frames == pad).any()
        if decode:  # prefix and new frames decoded together: the codec sees the context it continues
            hop = self.sample_rate // self.frame_rate
            audio = self.decoder.decode(torch.from_numpy(frames)).numpy()[..., skip * hop :]
            audio = audio[:, 0] if self.audio_channels == 1 else audio  # mono [batch, samples]
        else:
            audio = np.zeros((len(prompts), 0), dtype=np.float32)
        timings["codec"] = time.perf_counter() - start
        return GenerationOutput(
            audio=audio, sample_rate=self.sample_rate, codes=frames[..., skip:], timings=timings
        )

    def open_decoder(self, hidden: np.ndarray, mask: np.ndarray, steps: int) -> DecoderState:
        """Decoder state for one generation of ``steps`` steps (runtimes may preallocate its cache)."""
        return NumpyDecoderState(self, hidden, mask)

    def _decode_loop(
        self,
        hidden: np.ndarray,
        mask: np.ndarray,
        batch: int,
        steps: int,
        sampling: SamplingParams,
        prefix: np.ndarray | None = None,
    ) -> np.ndarray:
        """Delayed codes ``[batch, K, steps + 1]`` (position 0 is bos), as transformers' generate has them;
        the positions of ``prefix``'s codes (``[batch, K, P]``) hold those codes instead of chosen ones."""
        const = self.constants
        k, pad = const.num_codebooks, const.pad_token_id
        guided = uses_guidance(sampling)
        rng = make_rng(sampling.seed)
        seq = np.full((batch, k, steps + 1), pad, dtype=np.int64)
        seq[:, :, 0] = const.bos_token_id
        codebook = np.asarray(codebook_delays(k, self.audio_channels))  # each codebook's delay
        span = int(codebook.max())
        forced = np.full((batch, k, steps + 1), -1, dtype=np.int64)
        if prefix is not None:
            delayed = apply_delay_pattern(torch.from_numpy(prefix), -1, self.audio_channels).numpy()
            forced[:, :, 1 : 1 + delayed.shape[-1]] = delayed
        state = self.open_decoder(hidden, mask, steps)
        for t in range(steps):
            current = seq[:, :, t : t + 1]
            feed = np.concatenate([current, current]) if guided else current
            logits = state.run(feed)[:, :, -1, :].reshape(-1, const.vocab_size)  # [(2)B * K, vocab]
            scores = process_logits(logits, sampling)
            new = select_tokens(scores, sampling, rng).reshape(batch, k)
            position = t + 1  # a codebook delayed d holds frames at positions d+1 .. steps-span+d
            valid = (position > codebook) & (position <= steps - span + codebook)
            new = np.where(forced[:, :, position] >= 0, forced[:, :, position], new)
            seq[:, :, position] = np.where(valid[None, :], new, pad)
        return seq

    def generate_audio(
        self,
        prompt: str,
        *,
        duration_seconds: float | None = None,
        max_length: int | None = None,
        guidance_scale: float | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        do_sample: bool | None = None,
        seed: int | None = None,
    ) -> np.ndarray:
        """One prompt -> float32 mono waveform ``[samples]`` at :attr:`sample_rate`.

        Args:
            prompt: the text description.
            duration_seconds: length of audio (rounded to whole codec frames); or
            max_length: decoder steps, as transformers' ``max_new_tokens`` (frames = steps - codebooks + 1).
            guidance_scale, temperature, top_k, do_sample: default to the model's generation config.
            seed: makes sampling reproducible.
        """
        if (duration_seconds is None) == (max_length is None):
            raise ValueError("give exactly one of duration_seconds or max_length")
        frames = (
            round(duration_seconds * self.frame_rate)
            if duration_seconds is not None
            else max_length - self.delay_span
        )
        defaults = self.constants.generation_defaults
        params = SamplingParams(
            guidance_scale=defaults.get("guidance_scale", 3.0) if guidance_scale is None else guidance_scale,
            temperature=defaults.get("temperature", 1.0) if temperature is None else temperature,
            top_k=defaults.get("top_k", 250) if top_k is None else top_k,
            do_sample=defaults.get("do_sample", True) if do_sample is None else do_sample,
            seed=seed,
        )
        return self.generate([prompt], num_frames=frames, sampling=params).audio[0]


class ONNXInferenceEngine(PartsGenerationEngine):
    """MusicGen generation on ONNX Runtime from a ``musicgen-ops export`` folder.

    Args:
        onnx_model_path: the export root (holding ``onnx/``) or the ``onnx/`` folder itself.
        processor_path: where the processor is; defaults to the one saved in the export folder.
        use_gpu: use the CUDA execution provider when ONNX Runtime has it (else CPU, with a log line).
        precision: ``fp32``, ``int8`` or ``auto`` (fp32 when exported, else int8).
        intra_op_threads: ONNX Runtime threads per operator (0: one per physical core).
        decoder: turns the codes into audio; default the exported EnCodec part.
        io_binding: keep the key/value cache in preallocated buffers on the provider's device
            (:mod:`~musicgen_ops.pipeline.inference.onnx_binding`); False hands numpy arrays each step.
        spin_threads: let idle ONNX Runtime threads spin (lower latency; False frees the cores on a
            shared machine).
    """

    def __init__(
        self,
        onnx_model_path: str | Path,
        processor_path: str | Path | None = None,
        use_gpu: bool = False,
        *,
        precision: str = "auto",
        intra_op_threads: int = 0,
        decoder: AudioDecoder | None = None,
        io_binding: bool = True,
        spin_threads: bool = True,
    ) -> None:
        import onnxruntime as ort

        folder = resolve_export_folder(onnx_model_path, "onnx")
        descriptor = ExportDescriptor.load(folder)
        available = descriptor.precisions()
        if precision == "auto":
            precision = "fp32" if "fp32" in available else available[0]
        if precision not in available:
            raise ModelNotAvailableError(
                f"{folder} has no {precision!r} ONNX files (exported: {', '.join(available) or 'none'})"
            )
        self.precision = precision
        self.providers = ["CPUExecutionProvider"]
        if use_gpu:
            if "CUDAExecutionProvider" in ort.get_available_providers():
                self.providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
            else:
                logger.warning(
                    "use_gpu=True but ONNX Runtime has no CUDAExecutionProvider here: running on CPU"
                )
        else:
            logger.info("running ONNX Runtime on CPU")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1  # the parts are chains of large ops: parallelism is within ops
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not spin_threads:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.io_binding = io_binding
        self.device_type = "cuda" if self.providers[0] == "CUDAExecutionProvider" else "cpu"
        self.sessions = {
            name: ort.InferenceSession(str(folder / spec.files[precision]), options, providers=self.providers)
            for name, spec in descriptor.parts.items()
        }
        super().__init__(descriptor, load_processor(folder, processor_path), decoder)
        self._step_inputs = descriptor.parts["decoder_step"].input_names

    def open_decoder(self, hidden: np.ndarray, mask: np.ndarray, steps: int) -> DecoderState:
        if not self.io_binding:
            return super().open_decoder(hidden, mask, steps)
        return BoundDecoderState(
            self.sessions["decoder_init"],
            self.sessions["decoder_step"],
            self.constants,
            hidden,
            mask,
            steps,
            device_type=self.device_type,
        )

    def run_text_encoder(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self.sessions["text_encoder"].run(
            None, {"input_ids": input_ids, "attention_mask": attention_mask}
        )[0]

    def run_decoder_init(self, ids: np.ndarray, hidden: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
        feeds = {"input_ids": ids, "encoder_hidden_states": hidden, "encoder_attention_mask": mask}
        return self.sessions["decoder_init"].run(None, feeds)

    def run_decoder_step(self, ids: np.ndarray, mask: np.ndarray, past: list[np.ndarray]) -> list[np.ndarray]:
        feeds = dict(zip(self._step_inputs, [ids, mask, *past], strict=True))
        return self.sessions["decoder_step"].run(None, feeds)

    def run_audio_decoder(self, codes: np.ndarray) -> np.ndarray:
        return self.sessions["audio_decoder"].run(None, {"codes": codes})[0]
